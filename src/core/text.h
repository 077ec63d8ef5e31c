// Small text helpers shared by the HTTP front, the graders and the verdict parser (internal).
#pragma once

#include <cctype>
#include <string>

namespace rlaif {

// ASCII letters lower-cased; other bytes (UTF-8 included) unchanged.
inline std::string ascii_lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// `s` without leading and trailing bytes from `chars`.
inline std::string trim(const std::string& s, const char* chars = " \t\r\n") {
  const size_t b = s.find_first_not_of(chars), e = s.find_last_not_of(chars);
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

}  // namespace rlaif
