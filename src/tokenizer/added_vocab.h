// Added and special tokens, found in the text before the model runs (internal). Matching is leftmost-longest, with
// the single_word, lstrip and rstrip rules of Hugging Face's AddedVocabulary.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "rlaif/tokenizer.h"

namespace rlaif {

struct TextSplit {
  size_t begin, end;
  int64_t id;  // -1: ordinary text
};

class AddedMatcher {
 public:
  AddedMatcher() = default;
  // `patterns[i]` is the text that stands for `tokens[i]`.
  AddedMatcher(const std::vector<AddedToken>& tokens, const std::vector<std::string>& patterns);
  bool empty() const { return patterns_.empty(); }
  // Splits `s` into added tokens and the ordinary text between them; covers all of `s`.
  void split(const std::string& s, std::vector<TextSplit>& out) const;

 private:
  struct Pattern {
    std::string text;
    AddedToken token;
  };
  std::vector<Pattern> patterns_;
  std::array<std::vector<int>, 256> by_first_byte_;  // pattern indices, longest first
};

}  // namespace rlaif
