#include "rlaif/content_check.h"

#include <set>
#include <vector>

#include "core/unicode.h"

namespace rlaif {
namespace {

// CJK ideographs, kana and hangul syllables: scripts written without spaces, where each character counts as a word.
bool is_cjk(char32_t cp) {
  return (cp >= 0x3040 && cp <= 0x30FF) || (cp >= 0x3400 && cp <= 0x9FFF) || (cp >= 0xAC00 && cp <= 0xD7AF) ||
         (cp >= 0xF900 && cp <= 0xFAFF);
}

// Lower case for ASCII and Latin-1's letters (enough to match openers such as "Lösung" and "Réponse").
char32_t lower(char32_t cp) {
  if (cp >= 'A' && cp <= 'Z') return cp + 32;
  if (cp >= 0xC0 && cp <= 0xDE && cp != 0xD7) return cp + 32;
  return cp;
}

// The words of `text`, as defined in the header. Bytes that are not valid UTF-8 separate words.
std::vector<std::string> words(const std::string& text) {
  std::vector<std::string> out;
  std::string word;
  auto flush = [&] {
    if (!word.empty()) out.push_back(word), word.clear();
  };
  for (size_t i = 0; i < text.size();) {
    size_t good = 0;
    const size_t len = unicode::utf8_sequence(text, i, &good);
    if (len == 0) {
      flush();
      i += good > 0 ? good : 1;
      continue;
    }
    const char32_t cp = unicode::next_cp(text, i);
    if (is_cjk(cp)) {
      flush();
      unicode::append_utf8(word, cp);
      flush();
    } else if (unicode::is_word_char(cp) && cp != '_') {
      unicode::append_utf8(word, lower(cp));
    } else {
      flush();
    }
  }
  flush();
  return out;
}

const std::set<std::string>& opener_words() {
  static const std::set<std::string> words_set = [] {
    const char* openers[] = {
        // English reasoning openers and answer labels, and function words around them
        "thought process", "let's solve this step by step", "let's think step by step", "let me think", "solution",
        "answer", "the answer is", "final answer", "here is my answer", "reasoning", "analysis", "step 1", "sure",
        "okay", "ok", "of course", "i", "a", "an", "the", "it", "to", "we",
        // Spanish
        "proceso de pensamiento", "resolvamos esto paso a paso", "pensemos paso a paso", "solución", "respuesta",
        "la respuesta es", "razonamiento",
        // French
        "processus de réflexion", "résolvons cela étape par étape", "réfléchissons étape par étape", "solution",
        "réponse", "la réponse est", "raisonnement",
        // German
        "denkprozess", "lösen wir das schritt für schritt", "denken wir schritt für schritt", "lösung", "antwort",
        "die antwort ist", "überlegung",
        // Chinese and Japanese (each character is a word)
        "思考过程", "让我们一步一步地解决这个问题", "解答", "答案", "解", "思考プロセス",
        "ステップバイステップで考えましょう", "答え"};
    std::set<std::string> s;
    for (const char* o : openers)
      for (auto& w : words(o)) s.insert(w);
    return s;
  }();
  return words_set;
}

}  // namespace

int64_t content_words(const std::string& completion, const std::string& prompt) {
  const auto& openers = opener_words();
  std::set<std::string> in_prompt;
  for (auto& w : words(prompt)) in_prompt.insert(w);
  std::set<std::string> content;
  for (auto& w : words(completion))
    if (!openers.count(w) && !in_prompt.count(w)) content.insert(w);
  return static_cast<int64_t>(content.size());
}

}  // namespace rlaif
