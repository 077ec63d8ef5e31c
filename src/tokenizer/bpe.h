// The BPE model of a tokenizer.json (internal): vocabulary, ranked merges, byte fallback and unknown tokens, with
// Hugging Face's exact merge order (lowest rank first, leftmost first among equal ranks).
#pragma once

#include <array>
#include <cstdint>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <unordered_map>
#include <vector>

namespace rlaif {

class BpeModel {
 public:
  // Reads the "model" object; `where` names it in errors (unknown tokens in merges, bad entries, dropout).
  BpeModel(const nlohmann::json& model, const std::string& where);

  // Appends the ids of one pre-tokenized word. Thread-safe.
  void tokenize(const std::string& word, std::vector<int64_t>& out) const;

  int64_t token_id(const std::string& token) const;                       // -1 if absent
  const std::vector<std::string>& vocab_by_id() const { return by_id_; }  // "" where an id is unused
  size_t vocab_count() const { return vocab_.size(); }

 private:
  void merge_word(const std::string& word, std::vector<int32_t>& ids) const;
  void tokenize_cached(const std::string& word, std::vector<int64_t>& out) const;

  std::unordered_map<std::string, int32_t> vocab_;
  std::vector<std::string> by_id_;
  struct MergeTarget {
    int32_t rank, id;
  };
  // (left id, right id) -> rank and merged id, in an open-addressing table: the hottest lookup of encoding.
  class MergeTable {
   public:
    void reserve(size_t n);
    void insert(uint64_t key, MergeTarget value);
    const MergeTarget* find(uint64_t key) const {
      for (size_t i = mix(key) & mask_;; i = (i + 1) & mask_) {
        const Slot& s = slots_[i];
        if (s.key == key) return &s.value;
        if (s.key == kEmpty) return nullptr;
      }
    }

   private:
    static constexpr uint64_t kEmpty = ~uint64_t{0};
    struct Slot {
      uint64_t key = kEmpty;
      MergeTarget value{0, 0};
    };
    static size_t mix(uint64_t x) {  // splitmix64 finaliser
      x ^= x >> 30;
      x *= 0xbf58476d1ce4e5b9ULL;
      x ^= x >> 27;
      x *= 0x94d049bb133111ebULL;
      return static_cast<size_t>(x ^ (x >> 31));
    }
    std::vector<Slot> slots_;
    size_t mask_ = 0, size_ = 0;
  };
  MergeTable merges_;
  // Ids of single-character tokens (the initial symbols of a word), for code points below 0x30000; -1 = not a token.
  std::vector<int32_t> char_ids_;
  std::string unk_token_, prefix_, suffix_;
  bool fuse_unk_ = false, byte_fallback_ = false, ignore_merges_ = false;
  // SentencePiece vocabularies (no pre-tokenizer: a whole text is one word) where no token has a "▁" after another
  // character: no merge can cross the start of a "▁" run, so a word is encoded piece by piece, each piece cached.
  // Identical ids, far less work on long texts.
  bool split_at_metaspace_ = false;
  std::array<int32_t, 256> byte_fallback_ids_{};

  // Words seen before, sharded to keep threads apart.
  static constexpr size_t kShards = 64, kShardCapacity = 4096, kMaxCachedWord = 256;
  struct Shard {
    std::mutex mu;
    std::unordered_map<std::string, std::vector<int32_t>> words;
  };
  mutable std::array<Shard, kShards> cache_;
};

}  // namespace rlaif
