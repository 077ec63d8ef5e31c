#include "tokenizer/bpe.h"

#include <algorithm>
#include <cstdio>
#include <functional>

#include "core/unicode.h"
#include "rlaif/error.h"

namespace rlaif {
namespace {

uint64_t pair_key(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

std::string opt_string(const nlohmann::json& m, const char* key) {
  return m.contains(key) && m[key].is_string() ? m[key].get<std::string>() : "";
}

}  // namespace

void BpeModel::MergeTable::reserve(size_t n) {
  size_t cap = 16;
  while (cap < n * 2) cap <<= 1;
  slots_.assign(cap, Slot());
  mask_ = cap - 1;
  size_ = 0;
}

void BpeModel::MergeTable::insert(uint64_t key, MergeTarget value) {
  if ((size_ + 1) * 2 > slots_.size()) {  // grow, keeping every entry
    std::vector<Slot> old = std::move(slots_);
    reserve(std::max<size_t>(size_ + 1, old.size()));
    for (const auto& s : old)
      if (s.key != kEmpty) insert(s.key, s.value);
  }
  for (size_t i = mix(key) & mask_;; i = (i + 1) & mask_) {
    Slot& s = slots_[i];
    if (s.key == key) {  // a repeated merge: the later one wins, as in Hugging Face's HashMap
      s.value = value;
      return;
    }
    if (s.key == kEmpty) {
      s.key = key;
      s.value = value;
      ++size_;
      return;
    }
  }
}

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
  merges_.reserve(merges.size());
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
    merges_.insert(pair_key(ia->second, ib->second), {static_cast<int32_t>(rank), im->second});
  }
  const std::string kMeta = "\xE2\x96\x81";  // ▁
  bool all_bytes =
      std::all_of(byte_fallback_ids_.begin(), byte_fallback_ids_.end(), [](int32_t id) { return id >= 0; });
  bool unk_impossible = unk_token_.empty() || (byte_fallback_ && all_bytes);  // fuse_unk could join across pieces
  split_at_metaspace_ = !ignore_merges_ && unk_impossible && prefix_.empty() && suffix_.empty() && vocab_.count(kMeta);
  for (const auto& [tok, id] : vocab_) {
    if (!split_at_metaspace_) break;
    for (size_t p = tok.find(kMeta, 1); p != std::string::npos; p = tok.find(kMeta, p + 1))
      if (p < kMeta.size() || tok.compare(p - kMeta.size(), kMeta.size(), kMeta) != 0) split_at_metaspace_ = false;
  }
  if (prefix_.empty() && suffix_.empty()) {
    char_ids_.assign(0x30000, -1);
    for (const auto& [tok, id] : vocab_) {
      size_t i = 0;
      if (tok.empty()) continue;
      char32_t cp = unicode::next_cp(tok, i);
      if (i == tok.size() && cp < char_ids_.size()) char_ids_[cp] = id;
    }
  }
}

int64_t BpeModel::token_id(const std::string& token) const {
  auto it = vocab_.find(token);
  return it == vocab_.end() ? -1 : it->second;
}

void BpeModel::merge_word(const std::string& w, std::vector<int32_t>& ids) const {
  // Buffers reused across calls on this thread (long SentencePiece words make this the hot path).
  struct Cand {
    int32_t rank;
    int pos;
    int32_t id;
    bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  struct Scratch {
    std::vector<int32_t> sym;
    std::vector<int> prev, next;
    std::vector<char> alive;
    std::vector<Cand> heap;
  };
  thread_local Scratch scratch;
  // Initial symbols: one per character (or per byte with byte fallback), as in Hugging Face's BPE::merge_word.
  std::vector<int32_t>& sym = scratch.sym;
  sym.clear();
  int32_t unk_id = -1;
  bool have_unk = false;
  std::string s;
  for (size_t i = 0; i < w.size();) {
    size_t start = i;
    if (!char_ids_.empty()) {  // no prefix/suffix: a character is a token by itself, looked up in the flat table
      size_t k = i;
      char32_t cp = unicode::next_cp(w, k);
      if (cp < char_ids_.size() && char_ids_[cp] >= 0) {
        if (have_unk) sym.push_back(unk_id), have_unk = false;
        sym.push_back(char_ids_[cp]);
        i = k;
        continue;
      }
    }
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
  std::vector<int>& prev = scratch.prev;
  std::vector<int>& next = scratch.next;
  std::vector<char>& alive = scratch.alive;
  prev.resize(n);
  next.resize(n);
  alive.assign(n, 1);
  for (int k = 0; k < n; ++k) prev[k] = k - 1, next[k] = k + 1 < n ? k + 1 : -1;
  std::vector<Cand>& heap = scratch.heap;  // a min-heap on (rank, position)
  heap.clear();
  auto push = [&](int pos) {
    int nx = next[pos];
    if (nx < 0) return;
    if (const MergeTarget* t = merges_.find(pair_key(sym[pos], sym[nx]))) {
      heap.push_back({t->rank, pos, t->id});
      std::push_heap(heap.begin(), heap.end(), std::greater<Cand>());
    }
  };
  for (int k = 0; k + 1 < n; ++k) {
    if (const MergeTarget* t = merges_.find(pair_key(sym[k], sym[k + 1]))) heap.push_back({t->rank, k, t->id});
  }
  std::make_heap(heap.begin(), heap.end(), std::greater<Cand>());
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), std::greater<Cand>());
    Cand top = heap.back();
    heap.pop_back();
    if (!alive[top.pos] || next[top.pos] < 0) continue;
    int right = next[top.pos];
    const MergeTarget* t = merges_.find(pair_key(sym[top.pos], sym[right]));
    if (!t || t->id != top.id) continue;  // stale entry
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
  if (split_at_metaspace_ && word.size() > kMaxCachedWord / 4) {
    static const std::string kMeta = "\xE2\x96\x81";
    size_t start = 0;
    for (size_t p = word.find(kMeta, 1); p != std::string::npos; p = word.find(kMeta, p + kMeta.size())) {
      if (p >= kMeta.size() && word.compare(p - kMeta.size(), kMeta.size(), kMeta) == 0) continue;  // inside a ▁ run
      tokenize_cached(word.substr(start, p - start), out);
      start = p;
    }
    tokenize_cached(word.substr(start), out);
    return;
  }
  tokenize_cached(word, out);
}

void BpeModel::tokenize_cached(const std::string& word, std::vector<int64_t>& out) const {
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
