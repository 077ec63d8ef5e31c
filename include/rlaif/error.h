// The one error type of rlaif: what went wrong, where (file, line, key, tensor) and how to fix it.
//
// Anything that can fail for reasons outside the program (files, config, user arguments, HTTP replies) throws
// rlaif::Error. Our own invariants use TORCH_CHECK. Only the CLI turns an Error into a message and an exit code.
#pragma once

#include <stdexcept>
#include <string>

namespace rlaif {

class Error : public std::runtime_error {
 public:
  // what: one sentence saying what is wrong. where: the file, file:line, key or tensor ("" if none).
  // hint: how to fix it ("" if there is nothing useful to say).
  Error(std::string what, std::string where = "", std::string hint = "");

  const std::string& what_part() const { return what_; }
  const std::string& where() const { return where_; }
  const std::string& hint() const { return hint_; }

 private:
  std::string what_, where_, hint_;
};

// Formats "where: what (hint: ...)" — the text Error::what() returns.
std::string format_error(const std::string& what, const std::string& where, const std::string& hint);

}  // namespace rlaif
