#include "tokenizer/bpe.h"

#include <cstdio>
#include <functional>
#include <queue>

#include "rlaif/error.h"
#include "tokenizer/unicode.h"

namespace rlaif {
namespace {

uint64_t pair_key(int32_t a, int32_t b) { return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b); }

std::string opt_string(const nlohmann::json& m, const char* key) {
  return m.contains(key) && m[key].is_string() ? m[key].get<std::string>() : "";
}

}  // namespace

BpeModel::BpeModel(const nlohmann::json& m, const std::string& where) {
  if (m.contains("dropout") && !m["dropout"].is_null() && m["dropout"].get<double>() != 0.0)
    throw Error("BPE dropout is not supported", where + ".dropout", "set it to null: encoding must be deterministic");
  if (!m.contains("vocab") || !m["vocab"].is_object())
    throw Error("BPE model has no \"vocab\" object", where + ".vocab", "the file is not a BPE tokenizer.json");
  int32_t max_id = -1;
  for (auto it = m["vocab"].begin(); it != m["vocab"].end(); ++it) {
    if (!it->is_number_integer() || it->get<int64_t>() < 0 || it->get<int64_t>() > INT32_MAX)
      throw Error("vocabulary id of \"" + it.key() + "\" is not a non-negative integer", where + ".vocab");
    int32_t id = it->get<int32_t>();
    vocab_[it.key()] = id;
    max_id = std::max(max_id, id);
  }
  by_id_.assign(static_cast<size_t>(max_id + 1), "");
  for (const auto& [tok, id] : vocab_) by_id_[id] = tok;

  unk_token_ = opt_string(m, "unk_token");
  prefix_ = opt_string(m, "continuing_subword_prefix");
  suffix_ = opt_string(m, "end_of_word_suffix");
  fuse_unk_ = m.value("fuse_unk", false);
  byte_fallback_ = m.value("byte_fallback", false);
  ignore_merges_ = m.value("ignore_merges", false);
  if (!unk_token_.empty() && !vocab_.count(unk_token_))
    throw Error("unk_token \"" + unk_token_ + "\" is not in the vocabulary", where + ".unk_token");
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    auto it = vocab_.find(name);
    byte_fallback_ids_[b] = it == vocab_.end() ? -1 : it->second;
  }

  const auto& merges = m.contains("merges") ? m["merges"] : nlohmann::json::array();
  if (!merges.is_array()) throw Error("BPE \"merges\" is not a list", where + ".merges");
  merges_.reserve(merges.size() * 2);
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& e = merges[rank];
    std::string at = where + ".merges[" + std::to_string(rank) + "]";
    std::string a, b;
    if (e.is_string()) {
      const std::string& s = e.get_ref<const std::string&>();
      size_t sp = s.find(' ');
      if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
        throw Error("merge \"" + s + "\" is not two tokens separated by one space", at);
      a = s.substr(0, sp);
      b = s.substr(sp + 1);
    } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
      a = e[0].get<std::string>();
      b = e[1].get<std::string>();
    } else {
      throw Error("merge is neither \"a b\" nor [\"a\", \"b\"]", at);
    }
    auto ia = vocab_.find(a), ib = vocab_.find(b);
    if (ia == vocab_.end()) throw Error("merge names token \"" + a + "\" that is not in the vocabulary", at);
    if (ib == vocab_.end()) throw Error("merge names token \"" + b + "\" that is not in the vocabulary", at);
    std::string merged = a + (b.compare(0, prefix_.size(), prefix_) == 0 ? b.substr(prefix_.size()) : b);
    auto im = vocab_.find(merged);
    if (im == vocab_.end()) throw Error("merged token \"" + merged + "\" is not in the vocabulary", at);
    merges_[pair_key(ia->second, ib->second)] = {static_cast<int32_t>(rank), im->second};
  }
}

int64_t BpeModel::token_id(const std::string& token) const {
  auto it = vocab_.find(token);
  return it == vocab_.end() ? -1 : it->second;
}

void BpeModel::merge_word(const std::string& w, std::vector<int32_t>& ids) const {
  // Initial symbols: one per character (or per byte with byte fallback), as in Hugging Face's BPE::merge_word.
  std::vector<int32_t> sym;
  sym.reserve(w.size());
  int32_t unk_id = -1;
  bool have_unk = false;
  std::string s;
  for (size_t i = 0; i < w.size();) {
    size_t start = i;
    i += unicode::cp_len(static_cast<unsigned char>(w[i]));
    s.assign(w, start, i - start);
    if (start > 0 && !prefix_.empty()) s.insert(0, prefix_);
    if (i >= w.size() && !suffix_.empty()) s += suffix_;
    auto it = vocab_.find(s);
    if (it != vocab_.end()) {
      if (have_unk) sym.push_back(unk_id), have_unk = false;
      sym.push_back(it->second);
      continue;
    }
    if (byte_fallback_) {
      bool all = true;
      for (unsigned char c : s) all &= byte_fallback_ids_[c] >= 0;
      if (all) {  // note: a pending unknown is emitted after these bytes, as Hugging Face does
        for (unsigned char c : s) sym.push_back(byte_fallback_ids_[c]);
        continue;
      }
    }
    if (!unk_token_.empty()) {
      int32_t id = vocab_.at(unk_token_);
      if (have_unk && !fuse_unk_) sym.push_back(unk_id);
      unk_id = id;
      have_unk = true;
    }
  }
  if (have_unk) sym.push_back(unk_id);

  // Merge the lowest-ranked adjacent pair first (leftmost among equals) until none applies.
  const int n = static_cast<int>(sym.size());
  std::vector<int> prev(n), next(n);
  std::vector<char> alive(n, 1);
  for (int k = 0; k < n; ++k) prev[k] = k - 1, next[k] = k + 1 < n ? k + 1 : -1;
  struct Cand {
    int32_t rank;
    int pos;
    int32_t id;
    bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> queue;
  auto push = [&](int pos) {
    int nx = next[pos];
    if (nx < 0) return;
    auto it = merges_.find(pair_key(sym[pos], sym[nx]));
    if (it != merges_.end()) queue.push({it->second.rank, pos, it->second.id});
  };
  for (int k = 0; k + 1 < n; ++k) push(k);
  while (!queue.empty()) {
    Cand top = queue.top();
    queue.pop();
    if (!alive[top.pos] || next[top.pos] < 0) continue;
    int right = next[top.pos];
    auto it = merges_.find(pair_key(sym[top.pos], sym[right]));
    if (it == merges_.end() || it->second.id != top.id) continue;  // stale entry
    sym[top.pos] = top.id;
    alive[right] = 0;
    next[top.pos] = next[right];
    if (next[right] >= 0) prev[next[right]] = top.pos;
    if (prev[top.pos] >= 0) push(prev[top.pos]);
    push(top.pos);
  }
  for (int k = 0; k < n; ++k)
    if (alive[k]) ids.push_back(sym[k]);
}

void BpeModel::tokenize(const std::string& word, std::vector<int64_t>& out) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    auto it = vocab_.find(word);
    if (it != vocab_.end()) {
      out.push_back(it->second);
      return;
    }
  }
  bool cacheable = word.size() <= kMaxCachedWord;
  Shard* shard = nullptr;
  if (cacheable) {
    shard = &cache_[std::hash<std::string>()(word) % kShards];
    std::lock_guard<std::mutex> lock(shard->mu);
    auto it = shard->words.find(word);
    if (it != shard->words.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> ids;
  merge_word(word, ids);
  out.insert(out.end(), ids.begin(), ids.end());
  if (cacheable) {
    std::lock_guard<std::mutex> lock(shard->mu);
    if (shard->words.size() >= kShardCapacity) shard->words.clear();
    shard->words.emplace(word, std::move(ids));
  }
}

}  // namespace rlaif
