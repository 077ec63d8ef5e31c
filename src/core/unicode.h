// UTF-8 and Unicode helpers shared by the tokenizer, the Jinja interpreter, the graders and the server (internal,
// core).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace rlaif::unicode {

// Decodes the code point at s[i] (valid UTF-8 assumed) and advances i.
inline char32_t next_cp(const std::string& s, size_t& i) {
  auto c = static_cast<unsigned char>(s[i]);
  if (c < 0x80) {
    ++i;
    return c;
  }
  int len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
  char32_t cp = c & (0x7F >> len);
  for (int k = 1; k < len; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
  i += len;
  return cp;
}

// Byte length of the UTF-8 sequence starting with lead byte c (valid UTF-8 assumed).
inline size_t cp_len(unsigned char c) { return c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2; }

void append_utf8(std::string& out, char32_t cp);
bool is_valid_utf8(const std::string& s);
// Length of the valid UTF-8 sequence starting at s[i], or 0 if it is invalid; then *good is the length of its longest
// valid prefix (the "maximal subpart" that one U+FFFD replaces, as in Rust's from_utf8_lossy).
size_t utf8_sequence(const std::string& s, size_t i, size_t* good);

// Rust's char predicates (Unicode properties).
bool is_whitespace(char32_t cp);  // White_Space
bool is_numeric(char32_t cp);     // general category Nd, Nl or No
bool is_word_char(char32_t cp);   // regex \w: alphabetic, marks, decimal numbers, connector punctuation, join controls

// Unicode normalization forms; `form` is "NFC", "NFD", "NFKC" or "NFKD". Input must be valid UTF-8.
std::string normalize(const std::string& s, const std::string& form);

// GPT-2's reversible byte <-> code point alphabet: printable bytes map to themselves, the rest to U+0100...
const std::string& byte_to_char(unsigned char b);  // UTF-8 of the code point for byte b
int char_to_byte(char32_t cp);                     // -1 if cp is not in the alphabet

}  // namespace rlaif::unicode
