// Tokenizer read from a Hugging Face tokenizer.json.
//
// This version supports the byte-level vocabulary that `rlaif init-model` writes: a BPE model with a ByteLevel
// pre-tokenizer and decoder, one token per byte (GPT-2's byte-to-unicode alphabet), plus added/special tokens that
// are matched in the text before the bytes are. Hugging Face's tokenizers library produces the same ids for such a
// file. A tokenizer.json using anything else (merges, normalizers, other pre-tokenizers) is rejected with an error
// naming the component, never tokenized differently.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace rlaif {

struct AddedToken {
  int64_t id = 0;
  std::string content;
  bool special = false;
};

class Tokenizer {
 public:
  // Reads DIR/tokenizer.json (and DIR/tokenizer_config.json for bos/eos names). Throws rlaif::Error.
  static Tokenizer load(const std::string& dir);
  // The byte-level tokenizer init-model writes: ids 0..255 are bytes, then `special` tokens in order.
  static Tokenizer byte_level(const std::vector<std::string>& special);

  // Thread-safe (const). add_special_tokens adds the bos token when the tokenizer has one.
  std::vector<int64_t> encode(const std::string& text, bool add_special_tokens = false) const;
  // Invalid UTF-8 from partial byte sequences becomes U+FFFD, as in Hugging Face's decode.
  std::string decode(const std::vector<int64_t>& ids, bool skip_special_tokens = true) const;
  // The raw bytes token `id` stands for ("" for special tokens and ids the tokenizer does not know).
  const std::string& token_bytes(int64_t id) const;
  bool is_special(int64_t id) const;
  int64_t token_id(const std::string& content) const;  // -1 if absent

  int64_t vocab_size() const { return static_cast<int64_t>(pieces_.size()); }
  int64_t bos_id() const { return bos_id_; }  // -1 = none
  int64_t eos_id() const { return eos_id_; }  // -1 = none
  const std::vector<AddedToken>& added_tokens() const { return added_; }

  // The tokenizer.json / tokenizer_config.json texts that describe this tokenizer (init-model writes them).
  std::string to_tokenizer_json() const;
  std::string to_tokenizer_config_json() const;

 private:
  std::vector<std::string> pieces_;  // id -> raw bytes ("" for special)
  std::vector<bool> special_;
  std::vector<AddedToken> added_;    // sorted by decreasing length for matching
  std::map<std::string, int64_t> by_content_;
  int64_t bos_id_ = -1, eos_id_ = -1;
};

// Replaces invalid UTF-8 sequences with U+FFFD (like Rust's String::from_utf8_lossy).
std::string utf8_lossy(const std::string& bytes);

}  // namespace rlaif
