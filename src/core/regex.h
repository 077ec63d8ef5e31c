// A compiled Unicode regular expression (PCRE2 with JIT), shared by the tokenizer (Split pre-tokenizer, Replace
// components) and the regex grader. Internal to the library (core).
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace rlaif {

class Regex {
 public:
  // Throws rlaif::Error naming `where` when the pattern does not compile.
  Regex(const std::string& pattern, const std::string& where);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Appends the [start, end) byte ranges of all non-overlapping matches in `s` (valid UTF-8), left to right. After an
  // empty match the search resumes one character later, as Oniguruma's find_iter does.
  void find_all(const std::string& s, std::vector<std::pair<size_t, size_t>>& out) const;

 private:
  void* code_ = nullptr;  // pcre2_code*
  std::string where_;
};

}  // namespace rlaif
