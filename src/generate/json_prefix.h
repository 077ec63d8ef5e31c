// An incremental check that text is a prefix of one JSON object (RFC 8259), byte by byte: what constrained decoding
// for `response_format: {"type": "json_object"}` needs to accept or reject a candidate token. Whitespace between
// tokens is bounded as JSON grammars for constrained decoding bound it (llama.cpp's json.gbnf: a newline and up to 20
// spaces or tabs): a run of at most kMaxWhitespaceRun bytes holding at most one newline. Without the bound, a small
// model can spend all its tokens on whitespace and never write the object.
#pragma once

#include <string>

namespace rlaif {

class JsonObjectPrefix {
 public:
  // Whether `c` can extend the text read so far; on false the state is unchanged.
  bool feed(char c);
  // Feeds every byte; false (state unchanged) when any byte cannot extend the prefix.
  bool feed(const std::string& bytes);
  // A whole top-level object has been read (only whitespace may follow).
  bool complete() const { return mode_ == kDone; }

  static constexpr int kMaxWhitespaceRun = 21;

 private:
  enum Mode {
    kStart,
    kValue,
    kObjectFirst,
    kObjectKey,
    kColon,
    kAfterValue,
    kArrayFirst,
    kString,
    kEscape,
    kUnicode,
    kNumber,
    kLiteral,
    kDone
  };
  bool step(char c);      // with the whitespace bound
  bool step_raw(char c);  // the JSON grammar alone
  void after_value();

  Mode mode_ = kStart;
  std::string stack_;  // open containers: 'o' object, 'a' array
  bool string_is_key_ = false;
  int unicode_left_ = 0;
  // Number sub-state: 0 after '-', 1 after a leading '0', 2 in integer digits, 3 after '.', 4 in fraction digits,
  // 5 after 'e', 6 after the exponent's sign, 7 in exponent digits.
  int number_ = 0;
  const char* literal_ = nullptr;    // the rest of "true" / "false" / "null" still to match
  int whitespace_run_ = 0;           // whitespace bytes just read outside strings
  bool whitespace_newline_ = false;  // one of them was a newline
};

}  // namespace rlaif
