// Tokenizer read from a Hugging Face tokenizer.json, producing exactly the ids Hugging Face's tokenizers library does.
//
// Supported (everything the GPT-2, Llama-2/Mistral/TinyLlama, Llama-3, Qwen2/Qwen3 and SmolLM families use):
//   model          BPE (byte-level or SentencePiece-style with byte_fallback; ignore_merges; unk/fuse_unk;
//                  continuing_subword_prefix / end_of_word_suffix)
//   normalizer     NFC NFD NFKC NFKD Prepend Replace Strip Sequence
//   pre_tokenizer  Split ByteLevel Metaspace Digits Sequence
//   post_processor TemplateProcessing ByteLevel Sequence
//   decoder        ByteLevel ByteFallback Metaspace Fuse Strip Replace Sequence
//   added tokens   with special, lstrip, rstrip, single_word and normalized, matched before the model runs.
// Any other component type is an error naming it: a tokenizer is never silently approximated.
//
// Input that is not valid UTF-8 is encoded as if each invalid sequence were U+FFFD (documented replacement).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace rlaif {

struct AddedToken {
  int64_t id = 0;
  std::string content;
  bool special = false;
  bool lstrip = false, rstrip = false, single_word = false, normalized = false;
};

class TokenizerImpl;

class Tokenizer {
 public:
  // Reads DIR/tokenizer.json (and DIR/tokenizer_config.json, when present, for the bos/eos names and chat template).
  // Throws rlaif::Error naming the file, the JSON path of a bad component and how to fix it.
  static Tokenizer load(const std::string& dir);
  // Parses tokenizer.json text; `where` names its origin in error messages.
  static Tokenizer from_json(const std::string& tokenizer_json, const std::string& where,
                             const std::string& tokenizer_config_json = "");
  // The byte-level tokenizer init-model writes: ids 0..255 are bytes (GPT-2's byte alphabet), then `special` tokens.
  static Tokenizer byte_level(const std::vector<std::string>& special);
  // A byte-level BPE tokenizer learnt from `texts` (GPT-2's byte alphabet and word split, as Hugging Face's
  // ByteLevelBPETokenizer): merges of the most frequent adjacent pair, repeated until the vocabulary (bytes + merges,
  // then `special`) has `vocab_size` entries or no pair occurs twice. Deterministic: ties go to the smallest pair.
  static Tokenizer train_byte_level_bpe(const std::vector<std::string>& texts, int64_t vocab_size,
                                        const std::vector<std::string>& special);

  // Thread-safe (const). add_special_tokens applies the post-processor (e.g. Llama-2's <s>); special tokens written
  // inside `text` are always recognised, as in Hugging Face.
  std::vector<int64_t> encode(const std::string& text, bool add_special_tokens = false) const;
  // Encodes on `num_threads` threads (0 = all cores); results are in input order and identical to encode().
  std::vector<std::vector<int64_t>> encode_batch(const std::vector<std::string>& texts, bool add_special_tokens = false,
                                                 int num_threads = 0) const;
  // Hugging Face's decode: unknown ids are dropped, invalid UTF-8 from partial byte sequences becomes U+FFFD.
  std::string decode(const std::vector<int64_t>& ids, bool skip_special_tokens = true) const;
  // The token's vocabulary string (e.g. "Ġhello", "▁the", "<0x0A>", "<|im_end|>"); "" if the id is unknown.
  std::string id_to_token(int64_t id) const;
  // The raw bytes token `id` contributes to text mid-sequence ("" for special tokens and unknown ids). Used for stop
  // strings, where a byte-exact view is needed before the final decode.
  const std::string& token_bytes(int64_t id) const;
  bool is_special(int64_t id) const;
  int64_t token_id(const std::string& content) const;  // -1 if absent

  int64_t vocab_size() const;  // model vocabulary plus added tokens (max id + 1)
  int64_t bos_id() const;      // -1 = none
  int64_t eos_id() const;      // -1 = none
  const std::vector<AddedToken>& added_tokens() const;
  // tokenizer_config.json's "chat_template" ("" if none), and its bos/eos token strings.
  const std::string& chat_template() const;
  const std::string& bos_token() const;
  const std::string& eos_token() const;

  // The tokenizer.json / tokenizer_config.json texts of tokenizers made in memory (byte_level, train_byte_level_bpe,
  // from_json); init-model and train-tokenizer write them.
  std::string to_tokenizer_json() const;
  std::string to_tokenizer_config_json() const;

 private:
  std::shared_ptr<const TokenizerImpl> impl_;
};

// Incremental decoding for streaming: feed ids one at a time, get text as soon as it forms whole characters (never a
// broken UTF-8 sequence). The concatenated chunks equal decode(all ids) (Hugging Face's DecodeStream algorithm).
class DecodeStream {
 public:
  explicit DecodeStream(const Tokenizer& tokenizer, bool skip_special_tokens = true);
  // Returns the new text, or "" when the id does not complete any character yet.
  std::string step(int64_t id);

 private:
  const Tokenizer& tokenizer_;
  bool skip_special_;
  std::vector<int64_t> ids_;
  std::string prefix_;
  size_t prefix_index_ = 0;
};

// Replaces invalid UTF-8 sequences with U+FFFD (like Rust's String::from_utf8_lossy).
std::string utf8_lossy(const std::string& bytes);

}  // namespace rlaif
