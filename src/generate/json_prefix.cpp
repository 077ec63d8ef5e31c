#include "generate/json_prefix.h"

namespace rlaif {
namespace {

bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_hex(char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

}  // namespace

bool JsonObjectPrefix::feed(char c) {
  JsonObjectPrefix saved = *this;
  if (step(c)) return true;
  *this = saved;
  return false;
}

bool JsonObjectPrefix::feed(const std::string& bytes) {
  JsonObjectPrefix saved = *this;
  for (char c : bytes)
    if (!step(c)) {
      *this = saved;
      return false;
    }
  return true;
}

void JsonObjectPrefix::after_value() { mode_ = stack_.empty() ? kDone : kAfterValue; }

bool JsonObjectPrefix::step(char c) {
  const bool in_string = mode_ == kString || mode_ == kEscape || mode_ == kUnicode;
  const bool ws = !in_string && is_ws(c);
  if (ws && (whitespace_run_ >= kMaxWhitespaceRun || (c == '\n' && whitespace_newline_))) return false;
  if (!step_raw(c)) return false;
  if (ws) {
    ++whitespace_run_;
    whitespace_newline_ = whitespace_newline_ || c == '\n';
  } else if (!in_string) {
    whitespace_run_ = 0;
    whitespace_newline_ = false;
  }
  return true;
}

bool JsonObjectPrefix::step_raw(char c) {
  switch (mode_) {
    case kStart:  // the top level must be an object
      if (is_ws(c)) return true;
      if (c != '{') return false;
      stack_ = "o";
      mode_ = kObjectFirst;
      return true;
    case kArrayFirst:
      if (c == ']') {
        stack_.pop_back();
        after_value();
        return true;
      }
      [[fallthrough]];
    case kValue:
      if (is_ws(c)) return true;
      if (c == '{') return stack_ += 'o', mode_ = kObjectFirst, true;
      if (c == '[') return stack_ += 'a', mode_ = kArrayFirst, true;
      if (c == '"') return string_is_key_ = false, mode_ = kString, true;
      if (c == '-') return number_ = 0, mode_ = kNumber, true;
      if (c == '0') return number_ = 1, mode_ = kNumber, true;
      if (is_digit(c)) return number_ = 2, mode_ = kNumber, true;
      if (c == 't') return literal_ = "rue", mode_ = kLiteral, true;
      if (c == 'f') return literal_ = "alse", mode_ = kLiteral, true;
      if (c == 'n') return literal_ = "ull", mode_ = kLiteral, true;
      return false;
    case kObjectFirst:
      if (c == '}') {
        stack_.pop_back();
        after_value();
        return true;
      }
      [[fallthrough]];
    case kObjectKey:
      if (is_ws(c)) return true;
      if (c != '"') return false;
      string_is_key_ = true;
      mode_ = kString;
      return true;
    case kColon:
      if (is_ws(c)) return true;
      if (c != ':') return false;
      mode_ = kValue;
      return true;
    case kAfterValue:
      if (is_ws(c)) return true;
      if (c == ',') return mode_ = stack_.back() == 'o' ? kObjectKey : kValue, true;
      if ((c == '}' && stack_.back() == 'o') || (c == ']' && stack_.back() == 'a')) {
        stack_.pop_back();
        after_value();
        return true;
      }
      return false;
    case kString:
      if (c == '"') {
        if (string_is_key_)
          mode_ = kColon;
        else
          after_value();
        return true;
      }
      if (c == '\\') return mode_ = kEscape, true;
      return static_cast<unsigned char>(c) >= 0x20;  // control characters must be escaped
    case kEscape:
      if (c == 'u') return unicode_left_ = 4, mode_ = kUnicode, true;
      if (c == '"' || c == '\\' || c == '/' || c == 'b' || c == 'f' || c == 'n' || c == 'r' || c == 't')
        return mode_ = kString, true;
      return false;
    case kUnicode:
      if (!is_hex(c)) return false;
      if (--unicode_left_ == 0) mode_ = kString;
      return true;
    case kNumber: {
      const bool d = is_digit(c);
      switch (number_) {
        case 0:
          return d ? (number_ = c == '0' ? 1 : 2, true) : false;
        case 2:
          if (d) return true;
          [[fallthrough]];
        case 1:
          if (c == '.') return number_ = 3, true;
          if (c == 'e' || c == 'E') return number_ = 5, true;
          break;  // the number ends here
        case 3:
          return d ? (number_ = 4, true) : false;
        case 4:
          if (d) return true;
          if (c == 'e' || c == 'E') return number_ = 5, true;
          break;
        case 5:
          if (c == '+' || c == '-') return number_ = 6, true;
          [[fallthrough]];
        case 6:
          return d ? (number_ = 7, true) : false;
        case 7:
          if (d) return true;
          break;
      }
      mode_ = kAfterValue;  // numbers live inside containers: the next byte is read after the value
      return step_raw(c);
    }
    case kLiteral:
      if (c != *literal_) return false;
      if (*++literal_ == '\0') after_value();
      return true;
    case kDone:
      return is_ws(c);
  }
  return false;
}

}  // namespace rlaif
