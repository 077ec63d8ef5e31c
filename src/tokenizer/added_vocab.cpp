#include "tokenizer/added_vocab.h"

#include <algorithm>

#include "core/unicode.h"

namespace rlaif {
namespace {

char32_t last_cp(const std::string& s, size_t end) {  // the code point ending at s[end) (end > 0)
  size_t i = end - 1;
  while (i > 0 && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) --i;
  return unicode::next_cp(s, i);
}

}  // namespace

AddedMatcher::AddedMatcher(const std::vector<AddedToken>& tokens, const std::vector<std::string>& patterns) {
  for (size_t i = 0; i < tokens.size(); ++i)
    if (!patterns[i].empty()) patterns_.push_back({patterns[i], tokens[i]});
  for (size_t i = 0; i < patterns_.size(); ++i)
    by_first_byte_[static_cast<unsigned char>(patterns_[i].text[0])].push_back(static_cast<int>(i));
  for (auto& list : by_first_byte_)
    std::stable_sort(list.begin(), list.end(),
                     [&](int a, int b) { return patterns_[a].text.size() > patterns_[b].text.size(); });
}

void AddedMatcher::split(const std::string& s, std::vector<TextSplit>& out) const {
  size_t start_offset = 0, pos = 0;
  while (pos < s.size()) {
    // Leftmost-longest match at or after pos.
    int found = -1;
    size_t at = pos;
    for (; at < s.size(); ++at) {
      for (int k : by_first_byte_[static_cast<unsigned char>(s[at])]) {
        if (s.compare(at, patterns_[k].text.size(), patterns_[k].text) == 0) {
          found = k;
          break;
        }
      }
      if (found >= 0) break;
    }
    if (found < 0) break;
    const Pattern& p = patterns_[found];
    size_t start = at, stop = at + p.text.size();
    pos = stop;  // the search goes on after this match even when it is discarded
    if (p.token.single_word) {
      bool start_ok = start == 0 || !unicode::is_word_char(last_cp(s, start));
      size_t k = stop;
      bool stop_ok = stop == s.size() || !unicode::is_word_char(unicode::next_cp(s, k));
      if (!start_ok || !stop_ok) continue;
    }
    if (p.token.lstrip) {
      size_t b = start;
      while (b > 0) {
        size_t i = b - 1;
        while (i > 0 && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) --i;
        size_t k = i;
        if (!unicode::is_whitespace(unicode::next_cp(s, k))) break;
        b = i;
      }
      start = std::max(b, start_offset);
    }
    if (p.token.rstrip) {
      while (stop < s.size()) {
        size_t k = stop;
        if (!unicode::is_whitespace(unicode::next_cp(s, k))) break;
        stop = k;
      }
    }
    if (start_offset < start) out.push_back({start_offset, start, -1});
    out.push_back({start, stop, p.token.id});
    start_offset = stop;
  }
  if (start_offset < s.size() || s.empty()) out.push_back({start_offset, s.size(), -1});
}

}  // namespace rlaif
