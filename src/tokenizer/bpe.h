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

  int64_t token_id(const std::string& token) const;  // -1 if absent
  const std::vector<std::string>& vocab_by_id() const { return by_id_; }  // "" where an id is unused
  size_t vocab_count() const { return vocab_.size(); }

 private:
  void merge_word(const std::string& word, std::vector<int32_t>& ids) const;

  std::unordered_map<std::string, int32_t> vocab_;
  std::vector<std::string> by_id_;
  struct MergeTarget {
    int32_t rank, id;
  };
  std::unordered_map<uint64_t, MergeTarget> merges_;  // (left id << 32 | right id) -> rank and merged id
  std::string unk_token_, prefix_, suffix_;
  bool fuse_unk_ = false, byte_fallback_ = false, ignore_merges_ = false;
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
