#include "rlaif/error.h"

namespace rlaif {

std::string format_error(const std::string& what, const std::string& where, const std::string& hint) {
  std::string s = where.empty() ? what : where + ": " + what;
  if (!hint.empty()) s += "\n  hint: " + hint;
  return s;
}

Error::Error(std::string what, std::string where, std::string hint)
    : std::runtime_error(format_error(what, where, hint)),
      what_(std::move(what)),
      where_(std::move(where)),
      hint_(std::move(hint)) {}

}  // namespace rlaif
