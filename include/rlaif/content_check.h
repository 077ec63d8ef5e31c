// Content-free answers: the "master keys" that fool LLM judges ("One Token to Fool LLM-as-a-Judge", arXiv 2507.08794)
// — an empty answer, bare punctuation, a reasoning opener alone ("Thought process:", "Let's solve this step by step",
// "Solution", in several languages), or the prompt said back. A policy under RL finds such answers within a few steps
// when its judge passes them. The same rule serves the `content` grader (a defence: such answers get reward 0) and the
// trainer's `integrity/master_key_share` detector.
//
// The rule: the answer's content words are its distinct words (maximal runs of letters and digits, lower-cased; each
// CJK character is a word of its own) that are neither words of the prompt nor opener words (the words of the
// openers above, in English, Spanish, French, German, Chinese and Japanese, and a few function words). An answer with
// fewer content words than the minimum (default 1) is content-free.
#pragma once

#include <cstdint>
#include <string>

namespace rlaif {

int64_t content_words(const std::string& completion, const std::string& prompt);
inline bool is_content_free(const std::string& completion, const std::string& prompt, int64_t min_words = 1) {
  return content_words(completion, prompt) < min_words;
}

}  // namespace rlaif
