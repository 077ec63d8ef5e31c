#define PCRE2_CODE_UNIT_WIDTH 8
#include "core/regex.h"

#include <pcre2.h>

#include "core/unicode.h"
#include "rlaif/error.h"

namespace rlaif {
namespace {

// One JIT stack and match context per thread: a 1 MB line of spaces needs more than PCRE2's 32 KB default.
struct ThreadMatchState {
  pcre2_jit_stack* stack = pcre2_jit_stack_create(64 * 1024, 64 * 1024 * 1024, nullptr);
  pcre2_match_context* context = pcre2_match_context_create(nullptr);
  ThreadMatchState() { pcre2_jit_stack_assign(context, nullptr, stack); }
  ~ThreadMatchState() {
    pcre2_match_context_free(context);
    pcre2_jit_stack_free(stack);
  }
};

std::string pcre2_message(int code) {
  PCRE2_UCHAR buf[256];
  pcre2_get_error_message(code, buf, sizeof(buf));
  return reinterpret_cast<const char*>(buf);
}

// Oniguruma's (Hugging Face's regex engine) Unicode classes, which differ from PCRE2's: PCRE2's \s also matches
// U+180E, and its \w is letters and all numbers where Oniguruma's is letters, marks, decimal digits and connectors.
const char* const kSpace =
    "\\t\\n\\x0B\\f\\r\\x20\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}";
const char* const kWord = "\\p{L}\\p{M}\\p{Nd}\\p{Pc}";

// Rewrites \s \S \w \W into explicit classes with Oniguruma's members.
std::string oniguruma_classes(const std::string& p, const std::string& where) {
  std::string out;
  bool in_class = false;
  for (size_t i = 0; i < p.size(); ++i) {
    char c = p[i];
    if (c == '\\' && i + 1 < p.size()) {
      char d = p[++i];
      const char* members = d == 's' || d == 'S' ? kSpace : d == 'w' || d == 'W' ? kWord : nullptr;
      if (!members) {
        out += c;
        out += d;
      } else if (d == 's' || d == 'w') {
        out += in_class ? std::string(members) : "[" + std::string(members) + "]";
      } else if (!in_class) {
        out += "[^" + std::string(members) + "]";
      } else {
        throw Error(std::string("\\") + d + " inside a character class is not supported", where, "the pattern is " + p);
      }
      continue;
    }
    if (!in_class && c == '[') {
      in_class = true;
      out += c;
      if (i + 1 < p.size() && p[i + 1] == '^') out += p[++i];
      if (i + 1 < p.size() && p[i + 1] == ']') out += p[++i];  // a leading ] is a literal
      continue;
    }
    if (in_class && c == '[' && i + 1 < p.size() && p[i + 1] == ':') {  // POSIX class [:alpha:]
      size_t end = p.find(":]", i + 2);
      if (end != std::string::npos) {
        out += p.substr(i, end + 2 - i);
        i = end + 1;
        continue;
      }
    }
    if (in_class && c == ']') in_class = false;
    out += c;
  }
  return out;
}

}  // namespace

Regex::Regex(const std::string& source, const std::string& where) : where_(where) {
  int err = 0;
  PCRE2_SIZE offset = 0;
  std::string pattern = oniguruma_classes(source, where);
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), PCRE2_UTF | PCRE2_UCP,
                                   &err, &offset, nullptr);
  if (!code)
    throw Error("regex does not compile at offset " + std::to_string(offset) + ": " + pcre2_message(err), where,
                "the pattern is " + source);
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // falls back to the interpreter if JIT is unavailable
  code_ = code;
}

Regex::~Regex() { pcre2_code_free(static_cast<pcre2_code*>(code_)); }

void Regex::find_all(const std::string& s, std::vector<std::pair<size_t, size_t>>& out) const {
  thread_local ThreadMatchState state;
  auto* code = static_cast<pcre2_code*>(code_);
  std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> md(
      pcre2_match_data_create_from_pattern(code, nullptr), &pcre2_match_data_free);
  auto subject = reinterpret_cast<PCRE2_SPTR>(s.data());
  size_t pos = 0;
  while (pos <= s.size()) {
    int rc = pcre2_match(code, subject, s.size(), pos, PCRE2_NO_UTF_CHECK, md.get(), state.context);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) throw Error("regex match failed: " + pcre2_message(rc), where_, "the input may be too long for it");
    PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md.get());
    size_t start = ov[0], end = ov[1];
    out.emplace_back(start, end);
    if (end > start) {
      pos = end;
    } else {
      if (end >= s.size()) break;
      pos = end + unicode::cp_len(static_cast<unsigned char>(s[end]));
    }
  }
}

}  // namespace rlaif
