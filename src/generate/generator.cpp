#include "rlaif/generator.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <deque>
#include <functional>
#include <numeric>
#include <tuple>

#include "generate/json_schema_prefix.h"
#include "rlaif/error.h"

namespace rlaif {

const char* to_string(FinishReason r) { return r == FinishReason::kStop ? "stop" : "length"; }

namespace {

using Clock = std::chrono::steady_clock;
// Prompts prefilled together are padded to the longest; more rows join while rows x that length stays within this.
constexpr int64_t kMaxPrefillTokens = 2048;
// Prompt tokens prefilled inside one decode step, at most (the packed kernels' cheap range on AVX2, 64 rows).
constexpr int64_t kMaxMixedRows = 64;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// The k most likely tokens of softmax(logits / temperature) (temperature 1 when greedy), most likely first.
std::vector<std::pair<int64_t, float>> top_logprobs(const float* logits, int64_t V, float temperature, int64_t k) {
  const double inv_t = temperature > 0 ? 1.0 / temperature : 1.0;
  double mx = -1e300;
  for (int64_t v = 0; v < V; ++v) mx = std::max(mx, logits[v] * inv_t);
  double sum = 0;
  for (int64_t v = 0; v < V; ++v) sum += std::exp(logits[v] * inv_t - mx);
  const double lse = mx + std::log(sum);
  std::vector<int64_t> ids(V);
  for (int64_t v = 0; v < V; ++v) ids[v] = v;
  k = std::min(k, V);
  std::partial_sort(ids.begin(), ids.begin() + k, ids.end(),
                    [&](int64_t a, int64_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); });
  std::vector<std::pair<int64_t, float>> out;
  for (int64_t i = 0; i < k; ++i) out.emplace_back(ids[i], static_cast<float>(logits[ids[i]] * inv_t - lse));
  return out;
}

// One request in flight: its samples finish into `result`; `unfinished` counts those still waiting or decoding.
struct Job {
  size_t id = 0;  // the request's index (generate) or the caller's id (run_continuous)
  GenerationRequest request;
  GenerationResult result;
  int64_t unfinished = 0;
};

struct Slot {
  bool active = false;
  std::shared_ptr<Job> job;
  int64_t sample = 0;
  int64_t len = 0;         // tokens in the cache for this slot
  int64_t next_token = 0;  // sampled, not yet fed to the model
  SampleRng rng;
  Sample out;
  std::string bytes;  // raw bytes of the completion so far (for stop strings)
  SamplerScratch scratch;
  JsonSchemaPrefix json;  // params.json_object: the JSON read so far, held to params.json_schema (or any object)
  // While inactive, after a request with a keep_key finished here: the tokens whose keys and values the slot holds
  // (positions [0, kept.size())), kept for the next request with that key.
  int64_t kept_key = -1;
  std::vector<int64_t> kept;
  uint64_t kept_at = 0;  // when it was kept: the least recent goes first when slots run short
};

// Pending work: samples [first, first + count) of one request.
struct Pending {
  std::shared_ptr<Job> job;
  int64_t first, count;
};

// Waiting samples given free slots: the first `slots.size()` of `item`. The first slot is prefilled (the others copy
// its cache); its first `reuse` prompt tokens are in the cache already (a kept slot), so only the rest are prefilled.
struct Placement {
  Pending* item;
  std::vector<int64_t> slots;
  int64_t reuse = 0;
  int64_t prompt_len() const { return static_cast<int64_t>(item->job->request.prompt_ids.size()); }
  int64_t rows() const { return prompt_len() - reuse; }  // tokens to prefill
};

// The decoding slots and the waiting samples of a generation, with the steps of continuous batching as methods
// (fill free slots with prefilled samples, one decode step over the active slots, append each drawn token and finish
// samples). Generator::generate adds all its requests at once; Generator::run_continuous adds and cancels them
// between steps.
class GenerationRun {
 public:
  using OnDone = std::function<void(Job& job)>;
  // `packed`: the model runs its packed path (one row per token, each with its own slot), so prompts can be
  // prefilled inside a decode step.
  GenerationRun(CausalLM& model, const Tokenizer& tokenizer, const std::vector<int64_t>& eos_ids, KVCache& cache,
                GenerationStats& stats, int64_t slots, bool packed, const Generator::OnSample& on_sample,
                const Generator::OnToken& on_token, OnDone on_done = {})
      : model_(model),
        packed_(packed),
        tokenizer_(tokenizer),
        eos_ids_(eos_ids),
        cache_(cache),
        stats_(stats),
        S_(slots),
        V_(model->config().vocab_size),
        on_sample_(on_sample),
        on_token_(on_token),
        on_done_(std::move(on_done)),
        slots_(S_) {}

  void add(std::shared_ptr<Job> job) {
    job->result.samples.resize(job->request.num_samples);
    job->unfinished = job->request.num_samples;
    pending_.push_back({job, 0, job->request.num_samples});
  }

  // Drops a request's waiting samples and frees its slots; its samples are not reported.
  void cancel(size_t id) {
    for (auto it = pending_.begin(); it != pending_.end();) it = it->job->id == id ? pending_.erase(it) : it + 1;
    for (auto& s : slots_)
      if (s.active && s.job->id == id) reset(s);
  }

  // Drops every request (after an error) and returns them.
  std::vector<std::shared_ptr<Job>> cancel_all() {
    std::vector<std::shared_ptr<Job>> jobs;
    auto keep = [&](const std::shared_ptr<Job>& j) {
      if (std::find(jobs.begin(), jobs.end(), j) == jobs.end()) jobs.push_back(j);
    };
    for (auto& p : pending_) keep(p.job);
    for (auto& s : slots_)
      if (s.active) keep(s.job), reset(s);
    pending_.clear();
    return jobs;
  }

  bool busy() const { return !pending_.empty() || running() > 0; }
  int64_t running() const {
    int64_t n = 0;
    for (const auto& s : slots_) n += s.active;
    return n;
  }
  int64_t waiting() const {
    int64_t n = 0;
    for (const auto& p : pending_) n += p.count;
    return n;
  }

  // One round: waiting samples take the free slots, then every active slot decodes one token. While slots decode,
  // the waiting prompts that can take slots are prefilled in the decode step's own forward when they come to at most
  // kMaxMixedRows tokens in all, one pass over the weights for both; more get a prefill forward of their own first.
  void step() {
    const int64_t busy = running();
    if (packed_ && busy > 0 && busy < S_ && !pending_.empty() && waiting_rows_fit()) return mixed_step();
    fill_free_slots();
    decode_step();
  }

 private:
  // 1. Fills free slots with waiting samples. The waiting prompts that fit are prefilled together, right-padded to
  // the longest: a row's padding lies past its prompt in its own cache slot, where its decode steps overwrite it
  // before any query reads it (a query at position p reads keys [0, p]). A prompt's samples share its prefill; a
  // prompt that continues a kept slot's sequence prefills only its new tokens, at their positions.
  void fill_free_slots() {
    while (!pending_.empty()) {
      int64_t T = 0, reach = 0;  // the longest row; the furthest position a padded row writes, plus one
      const auto placed = place([&](const std::vector<Placement>& rows, const Placement& next) {
        const int64_t t = std::max(T, next.rows());
        const int64_t r = std::max(reach - T, next.reuse) + t;
        if (!rows.empty() && (t * static_cast<int64_t>(rows.size() + 1) > kMaxPrefillTokens || r > cache_.max_len()))
          return false;
        T = t, reach = r;
        return true;
      });
      if (placed.empty()) break;
      const int64_t N = static_cast<int64_t>(placed.size());
      auto t0 = Clock::now();
      torch::Tensor at_last;  // [N, C]: each prompt's last hidden state
      if (packed_ && std::any_of(placed.begin(), placed.end(), [](const Placement& p) { return p.reuse > 0; })) {
        // Prompts that continue kept sequences: one row per new token, as in mixed_step. The decode kernels'
        // attention over the kept keys costs less than the padded batch's, and there is no padding.
        std::vector<int64_t> ids, pos, slot_of_row, last;
        add_prompt_rows(placed, ids, pos, slot_of_row, last);
        at_last = forward_rows(ids, pos, slot_of_row).index_select(0, torch::tensor(last, torch::kInt64));
      } else {
        std::vector<int64_t> ids(N * T, 0), pos(N * T), slots(N), last(N);
        bool contiguous = true;
        for (int64_t r = 0; r < N; ++r) {
          const auto& p = placed[r];
          const auto& prompt = p.item->job->request.prompt_ids;
          std::copy(prompt.begin() + p.reuse, prompt.end(), ids.begin() + r * T);
          std::iota(pos.begin() + r * T, pos.begin() + (r + 1) * T, p.reuse);
          slots[r] = p.slots[0];
          last[r] = p.rows() - 1;
          contiguous = contiguous && slots[r] == slots[0] + r;
        }
        CachedBatch batch;
        batch.input_ids = torch::tensor(ids, torch::kInt64).view({N, T});
        batch.positions = torch::tensor(pos, torch::kInt64).view({N, T});
        batch.slot_begin = slots[0];
        if (!contiguous) batch.slots = torch::tensor(slots, torch::kInt64);
        batch.key_len = reach;
        auto hidden = model_->forward_cached(batch, cache_);                             // [N, T, C]
        at_last = hidden.index({torch::arange(N), torch::tensor(last, torch::kInt64)});  // [N, C]
      }
      for (const auto& p : placed) stats_.prefill_tokens += p.rows();
      auto logits = model_->logits(at_last).to(torch::kFloat32).contiguous();  // [N, V]
      for (const auto& p : placed)
        for (size_t j = 1; j < p.slots.size(); ++j) cache_.copy_slot(p.slots[0], p.slots[j], p.prompt_len());
      stats_.prefills += 1;
      stats_.prefill_seconds += seconds_since(t0);
      for (int64_t r = 0; r < N; ++r) start(placed[r], logits.data_ptr<float>() + r * V_);
      drop_placed();
    }
  }

  // Appends one row per token each placement prefills (its slot, its position) and, to `last`, the index of each
  // placement's last row.
  static void add_prompt_rows(const std::vector<Placement>& placed, std::vector<int64_t>& ids,
                              std::vector<int64_t>& pos, std::vector<int64_t>& slot_of_row,
                              std::vector<int64_t>& last) {
    for (const auto& p : placed) {
      const auto& prompt = p.item->job->request.prompt_ids;
      for (int64_t t = p.reuse; t < p.prompt_len(); ++t) {
        ids.push_back(prompt[t]);
        pos.push_back(t);
        slot_of_row.push_back(p.slots[0]);
      }
      last.push_back(static_cast<int64_t>(ids.size()) - 1);
    }
  }

  // One forward of single-token rows, each with its own slot and position (rows of one slot see each other's keys
  // as causal attention allows); returns their hidden states [R, C].
  torch::Tensor forward_rows(const std::vector<int64_t>& ids, const std::vector<int64_t>& pos,
                             const std::vector<int64_t>& slot_of_row) {
    const int64_t R = static_cast<int64_t>(ids.size());
    CachedBatch batch;
    batch.input_ids = torch::tensor(ids, torch::kInt64).view({R, 1});
    batch.positions = torch::tensor(pos, torch::kInt64).view({R, 1});
    batch.slots = torch::tensor(slot_of_row, torch::kInt64);
    batch.key_len = *std::max_element(pos.begin(), pos.end()) + 1;
    return model_->forward_cached(batch, cache_).squeeze(1);
  }

  // The kept slot of a waiting request's keep_key, or -1, and how many of its prompt's tokens that slot holds (at
  // least one prompt token is always prefilled, for the logits of the first draw).
  std::pair<int64_t, int64_t> kept_for(const Pending& item) const {
    const auto& q = item.job->request;
    if (q.keep_key < 0) return {-1, 0};
    for (int64_t i = 0; i < S_; ++i) {
      const Slot& s = slots_[i];
      if (s.active || s.kept_key != q.keep_key) continue;
      const int64_t limit = std::min<int64_t>(static_cast<int64_t>(s.kept.size()), q.prompt_ids.size() - 1);
      int64_t n = 0;
      while (n < limit && s.kept[n] == q.prompt_ids[n]) ++n;
      return {i, n};
    }
    return {-1, 0};
  }

  // The free slots new work may take, in the order it takes them: never-kept slots, then kept slots whose key is not
  // waiting (least recently kept first: evicted). A kept slot whose key is waiting is left to that request.
  std::vector<int64_t> open_slots() const {
    std::vector<int64_t> waiting_keys;
    for (const auto& p : pending_)
      if (p.count > 0 && p.job->request.keep_key >= 0) waiting_keys.push_back(p.job->request.keep_key);
    std::vector<std::pair<uint64_t, int64_t>> order;  // (kept_at, slot); 0 = never kept
    for (int64_t i = 0; i < S_; ++i) {
      const Slot& s = slots_[i];
      if (s.active) continue;
      if (s.kept_key < 0)
        order.emplace_back(0, i);
      else if (std::find(waiting_keys.begin(), waiting_keys.end(), s.kept_key) == waiting_keys.end())
        order.emplace_back(s.kept_at, i);
    }
    std::sort(order.begin(), order.end());
    std::vector<int64_t> out;
    for (const auto& o : order) out.push_back(o.second);
    return out;
  }

  // Gives free slots to waiting samples in waiting order, while `fits(placed so far, next)` agrees (it is asked for
  // each placement, and may record its size). A request whose kept slot is free takes it; the others take open
  // slots, and wait when none is left.
  std::vector<Placement> place(const std::function<bool(const std::vector<Placement>&, const Placement&)>& fits) {
    std::vector<int64_t> open = open_slots();
    std::vector<bool> claimed(static_cast<size_t>(S_), false);
    std::vector<Placement> placed;
    for (auto& item : pending_) {
      if (item.count == 0) continue;
      Placement p{&item, {}, 0};
      const auto [kept_slot, reuse] = kept_for(item);
      if (kept_slot >= 0) {
        if (claimed[kept_slot]) continue;  // another request with the same key took it
        p.slots = {kept_slot};
        p.reuse = reuse;
      } else {
        if (open.empty()) continue;
        const size_t n = std::min<size_t>(static_cast<size_t>(item.count), open.size());
        p.slots.assign(open.begin(), open.begin() + static_cast<std::ptrdiff_t>(n));
      }
      if (!fits(placed, p)) break;
      for (int64_t slot : p.slots) {
        claimed[slot] = true;
        const auto at = std::find(open.begin(), open.end(), slot);
        if (at != open.end()) open.erase(at);
      }
      placed.push_back(std::move(p));
    }
    return placed;
  }

  // Drops the waiting entries whose samples all took slots.
  void drop_placed() {
    pending_.erase(std::remove_if(pending_.begin(), pending_.end(), [](const Pending& p) { return p.count == 0; }),
                   pending_.end());
  }

  // The placed samples start in their slots (their prompt is in the cache): each draws its first token from the
  // prompt's last logits.
  void start(const Placement& p, const float* row_logits) {
    Pending& item = *p.item;
    const auto& q = item.job->request;
    const int64_t n = static_cast<int64_t>(p.slots.size());
    stats_.reused_tokens += p.reuse;
    for (int64_t j = 0; j < n; ++j) {
      Slot& s = slots_[p.slots[j]];
      if (s.kept_key >= 0 && s.kept_key != q.keep_key) stats_.evictions += 1;
      s.kept_key = -1;
      s.kept.clear();
      s.active = true;
      s.job = item.job;
      s.sample = item.first + j;
      s.len = p.prompt_len();
      s.rng = SampleRng(sample_seed(q.seed, s.sample));
      if (q.params.json_object)
        s.json = JsonSchemaPrefix(q.params.json_schema ? q.params.json_schema : JsonSchema::any_object());
      auto t = sample_token(row_logits, V_, q.params.sampling, s.rng, s.scratch);
      // sample_token leaves z and softmax(z) in the scratch; lse = z[t] - logprob(t).
      t = constrain(s, t, s.scratch.z.data(), s.scratch.probs.data(), s.scratch.z[t.token] - t.logprob);
      if (append(s, t, row_logits)) finish(s);
    }
    item.first += n;
    item.count -= n;
  }

  // Whether the waiting prompts that can take slots now ride in a decode step together (mixed_step); more rows
  // than that get a prefill forward of their own first, all together, rather than joining a step at a time.
  bool waiting_rows_fit() {
    int64_t rows = 0;
    place([&](const std::vector<Placement>&, const Placement& next) {
      rows += next.rows();
      return true;
    });
    return rows > 0 && rows <= kMaxMixedRows;
  }

  // 1 + 2 in one forward (packed path only): a row for each active slot's next token, then one row per token of the
  // waiting prompts that take free slots, in waiting order while kMaxMixedRows prompt tokens last. Every row carries
  // its own slot and position; a prompt's rows share the slot of its first sample and see each other's keys as
  // causal attention allows. Logits are made only for the decode rows and each prompt's last row.
  void mixed_step() {
    auto t0 = Clock::now();
    std::vector<int64_t> ids, pos, slot_of_row;
    for (int64_t i = 0; i < S_; ++i)
      if (slots_[i].active) {
        ids.push_back(slots_[i].next_token);
        pos.push_back(slots_[i].len);
        slot_of_row.push_back(i);
      }
    const int64_t D = static_cast<int64_t>(ids.size());
    int64_t prompt_rows = 0;
    const auto admits = place([&](const std::vector<Placement>&, const Placement& next) {
      if (prompt_rows + next.rows() > kMaxMixedRows) return false;
      prompt_rows += next.rows();
      return true;
    });
    std::vector<int64_t> logit_rows(D);  // the rows that need logits
    std::iota(logit_rows.begin(), logit_rows.end(), 0);
    add_prompt_rows(admits, ids, pos, slot_of_row, logit_rows);
    const int64_t R = static_cast<int64_t>(ids.size());
    auto hidden = forward_rows(ids, pos, slot_of_row);                                    // [R, C]
    auto picked_rows = hidden.index_select(0, torch::tensor(logit_rows, torch::kInt64));  // [D + admits, C]
    auto logits = model_->logits(picked_rows).to(torch::kFloat32).contiguous();           // [D + admits, V]
    for (const auto& a : admits)
      for (size_t j = 1; j < a.slots.size(); ++j) cache_.copy_slot(a.slots[0], a.slots[j], a.prompt_len());
    // The forward's time is shared between prefill and decode by their rows.
    const double spent = seconds_since(t0);
    stats_.prefill_tokens += prompt_rows;
    stats_.prefills += 1;
    stats_.mixed_steps += 1;
    stats_.prefill_seconds += spent * prompt_rows / R;
    stats_.decode_seconds += spent * D / R;
    sample_rows(logits, std::vector<int64_t>(slot_of_row.begin(), slot_of_row.begin() + D));
    for (size_t a = 0; a < admits.size(); ++a)
      start(admits[a], logits.data_ptr<float>() + (D + static_cast<int64_t>(a)) * V_);
    drop_placed();
    stats_.decode_steps += 1;
  }

  // 2. One decode step over slots [0, hi); false when no slot is active.
  bool decode_step() {
    int64_t hi = 0, key_len = 0;
    for (int64_t i = 0; i < S_; ++i)
      if (slots_[i].active) {
        hi = i + 1;
        key_len = std::max(key_len, slots_[i].len + 1);
      }
    if (hi == 0) return false;
    auto t0 = Clock::now();
    // An idle slot's row writes its key and value past the tokens a kept slot holds, where nothing is read.
    std::vector<int64_t> ids(hi, 0), pos(hi, 0);
    for (int64_t i = 0; i < hi; ++i) {
      const Slot& s = slots_[i];
      ids[i] = s.active ? s.next_token : 0;
      pos[i] = s.active ? s.len : static_cast<int64_t>(s.kept.size());
    }
    CachedBatch batch;
    batch.input_ids = torch::tensor(ids, torch::kInt64).view({hi, 1});
    batch.positions = torch::tensor(pos, torch::kInt64).view({hi, 1});
    batch.slot_begin = 0;
    batch.key_len = key_len;
    auto hidden = model_->forward_cached(batch, cache_);                               // [hi, 1, C]
    auto logits = model_->logits(hidden.squeeze(1)).to(torch::kFloat32).contiguous();  // [hi, V]
    stats_.decode_seconds += seconds_since(t0);
    std::vector<int64_t> slot_of_row(hi);
    for (int64_t i = 0; i < hi; ++i) slot_of_row[i] = slots_[i].active ? i : -1;
    sample_rows(logits, slot_of_row);
    stats_.decode_steps += 1;
    return true;
  }

  // Each decoding slot draws its next token from its row of `logits` ([rows, V]; slot_of_row[r] = the row's slot,
  // -1 for none) and appends it.
  void sample_rows(const torch::Tensor& logits, const std::vector<int64_t>& slot_of_row) {
    auto t1 = Clock::now();
    const int64_t rows = static_cast<int64_t>(slot_of_row.size());
    // Scaled logits, softmax and logsumexp for all rows at once (vectorised), then each row draws with its own rng.
    std::vector<float> inv_t(rows, 1.0f);
    for (int64_t r = 0; r < rows; ++r)
      if (slot_of_row[r] >= 0) {
        float t = slots_[slot_of_row[r]].job->request.params.sampling.temperature;
        inv_t[r] = t > 0 ? 1.0f / t : 1.0f;
      }
    auto head = logits.narrow(0, 0, rows);
    const float* raw = head.data_ptr<float>();
    auto z = (head * torch::tensor(inv_t).view({rows, 1})).contiguous();  // [rows, V]
    auto lse = torch::logsumexp(z, -1, /*keepdim=*/true);                 // [rows, 1]
    auto probs = (z - lse).exp_().contiguous();                           // [rows, V]
    std::vector<SampledToken> picked(rows);
    const float* zp = z.data_ptr<float>();
    const float* pp = probs.data_ptr<float>();
    const float* lp = lse.data_ptr<float>();
    const int64_t V = V_;
    at::parallel_for(0, rows, 1, [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r)
        if (slot_of_row[r] >= 0) {
          Slot& s = slots_[slot_of_row[r]];
          picked[r] = sample_token_from_probs(zp + r * V, pp + r * V, lp[r], V, s.job->request.params.sampling, s.rng,
                                              s.scratch);
        }
    });
    stats_.sample_seconds += seconds_since(t1);
    for (int64_t r = 0; r < rows; ++r) {
      if (slot_of_row[r] < 0) continue;
      Slot& s = slots_[slot_of_row[r]];
      s.len += 1;
      stats_.decode_tokens += 1;
      const auto t = constrain(s, picked[r], zp + r * V, pp + r * V, lp[r]);
      if (append(s, t, raw + r * V)) finish(s);
    }
  }

  // json_object: redraws a token that cannot extend the slot's JSON-object prefix (z, probs, lse: the step's scaled
  // logits, softmax and logsumexp for this slot); after 64 rejections, the most likely allowed token.
  SampledToken constrain(Slot& s, SampledToken t, const float* z, const float* probs, double lse) {
    const auto& p = s.job->request.params;
    if (!p.json_object) return t;
    auto allowed = [&](int64_t tok) {
      if (std::find(eos_ids_.begin(), eos_ids_.end(), tok) != eos_ids_.end()) return s.json.complete();
      if (tokenizer_.is_special(tok)) return false;
      return s.json.accepts(tokenizer_.token_bytes(tok));
    };
    for (int tries = 0; tries < 64; ++tries) {
      if (allowed(t.token)) return t;
      t = sample_token_from_probs(z, probs, lse, V_, p.sampling, s.rng, s.scratch);
    }
    std::vector<int64_t> order(V_);
    for (int64_t v = 0; v < V_; ++v) order[v] = v;
    std::sort(order.begin(), order.end(),
              [&](int64_t a, int64_t b) { return probs[a] > probs[b] || (probs[a] == probs[b] && a < b); });
    for (int64_t v : order)
      if (allowed(v)) return SampledToken{v, static_cast<float>(z[v] - lse)};
    throw Error("no token of the vocabulary can continue the JSON object", "json_object",
                "the tokenizer lacks the characters JSON needs");
  }

  // Appends a sampled token to slot s (`logits`: the slot's row of raw logits, for top_logprobs); returns true when
  // the sample is finished (end of sequence, a stop string, a closed JSON object, or a length limit).
  bool append(Slot& s, const SampledToken& t, const float* logits) {
    const auto& p = s.job->request.params;
    s.out.token_ids.push_back(t.token);
    s.out.logprobs.push_back(t.logprob);
    if (on_token_) on_token_(s.job->id, static_cast<size_t>(s.sample), t.token);
    if (p.top_logprobs > 0)
      s.out.top_logprobs.push_back(top_logprobs(logits, V_, p.sampling.temperature, p.top_logprobs));
    s.next_token = t.token;
    bool eos = !p.ignore_eos && std::find(eos_ids_.begin(), eos_ids_.end(), t.token) != eos_ids_.end();
    if (eos) {
      s.out.finish_reason = FinishReason::kStop;
      return true;
    }
    if (!tokenizer_.is_special(t.token)) {
      size_t before = s.bytes.size();
      s.bytes += tokenizer_.token_bytes(t.token);
      if (p.json_object) {
        s.json.feed(tokenizer_.token_bytes(t.token));  // accepted by `constrain`
        if (s.json.complete()) {
          s.out.finish_reason = FinishReason::kStop;
          return true;
        }
      }
      for (const auto& stop : p.stop) {
        if (stop.empty()) continue;
        size_t from = before >= stop.size() ? before - stop.size() + 1 : 0;
        size_t at = s.bytes.find(stop, from);
        if (at != std::string::npos) {
          s.bytes.resize(at);
          s.out.finish_reason = FinishReason::kStop;
          return true;
        }
      }
    }
    if (static_cast<int64_t>(s.out.token_ids.size()) >= p.max_new_tokens || s.len + 1 >= cache_.max_len()) {
      s.out.finish_reason = FinishReason::kLength;
      return true;
    }
    return false;
  }

  void finish(Slot& s) {
    s.out.text = utf8_lossy(s.bytes);
    Job& job = *s.job;
    if (job.request.keep_key >= 0) {  // the cache holds the prompt and every drawn token but the last
      s.kept = job.request.prompt_ids;
      s.kept.insert(s.kept.end(), s.out.token_ids.begin(), s.out.token_ids.end());
      s.kept.resize(static_cast<size_t>(s.len));
      s.kept_key = job.request.keep_key;
      s.kept_at = ++kept_count_;
    }
    Sample& dst = job.result.samples[s.sample];
    dst = std::move(s.out);
    if (on_sample_) on_sample_(job.id, s.sample, dst);
    auto keep = s.job;  // `job` is owned by the slot: reset(s) must not end its life before on_done_ runs
    reset(s);
    if (--job.unfinished == 0 && on_done_) on_done_(job);
  }

  static void reset(Slot& s) {
    s.active = false;
    s.job.reset();
    s.out = Sample();
    s.bytes.clear();
    s.json = JsonSchemaPrefix();
  }

  CausalLM& model_;
  const bool packed_;
  const Tokenizer& tokenizer_;
  const std::vector<int64_t>& eos_ids_;
  KVCache& cache_;
  GenerationStats& stats_;
  const int64_t S_, V_;  // slots, vocabulary
  const Generator::OnSample& on_sample_;
  const Generator::OnToken& on_token_;
  OnDone on_done_;
  std::deque<Pending> pending_;
  std::vector<Slot> slots_;
  uint64_t kept_count_ = 0;
};

}  // namespace

Generator::Generator(CausalLM model, Tokenizer tokenizer, std::vector<int64_t> eos_ids, GeneratorOptions options)
    : model_(std::move(model)), tokenizer_(std::move(tokenizer)), eos_ids_(std::move(eos_ids)), options_(options) {
  if (options_.max_batch < 1) throw Error("max_batch must be >= 1", "max_batch");
  model_->eval();
}

int64_t Generator::context() const {
  const auto& cfg = model_->config();
  return cfg.sliding_window > 0 ? std::min(cfg.max_position_embeddings, cfg.sliding_window)
                                : cfg.max_position_embeddings;
}

int64_t Generator::cache_need(const GenerationRequest& q, const std::string& where) const {
  const auto& cfg = model_->config();
  const int64_t ctx = context();
  if (q.prompt_ids.empty()) throw Error("empty prompt", where, "a prompt needs at least one token");
  if (q.num_samples < 1) throw Error("num_samples must be >= 1", where);
  if (q.params.max_new_tokens < 1) throw Error("max_new_tokens must be >= 1", where);
  if (q.keep_key >= 0 && q.num_samples != 1)
    throw Error("keep_key needs num_samples = 1", where, "a kept cache belongs to one sequence");
  validate(q.params.sampling);
  for (int64_t id : q.prompt_ids)
    if (id < 0 || id >= cfg.vocab_size)
      throw Error("token id " + std::to_string(id) + " is outside the vocabulary", where);
  const int64_t P = static_cast<int64_t>(q.prompt_ids.size());
  if (P >= ctx)
    throw Error(
        "prompt of " + std::to_string(P) + " tokens leaves no room in the model's context of " + std::to_string(ctx),
        where, "shorten the prompt");
  if (options_.max_seq_len <= 0) return std::min<int64_t>(ctx, P + q.params.max_new_tokens);
  const int64_t len = std::min(options_.max_seq_len, ctx);
  if (P >= len)
    throw Error("prompt longer than the KV cache (max_seq_len " + std::to_string(len) + ")", where,
                "raise max_seq_len");
  return len;
}

void Generator::prepare_cache(int64_t cache_len) {
  // bf16 compute keeps keys/values in bf16 too: at 32-64 sequences the cache is read as often as the weights.
  const torch::ScalarType cache_dtype =
      model_->packed_inference() && model_->packed_bf16() ? torch::kBFloat16 : model_->dtype();
  const int64_t S = options_.max_batch;
  if (!cache_ || cache_->max_len() < cache_len || cache_->slots() != S || cache_->k(0).scalar_type() != cache_dtype)
    cache_ = std::make_unique<KVCache>(model_->config(), S, cache_len, cache_dtype);
}

std::vector<GenerationResult> Generator::generate(const std::vector<GenerationRequest>& requests,
                                                  const OnSample& on_sample, const OnToken& on_token) {
  int64_t need = 1;
  for (size_t r = 0; r < requests.size(); ++r)
    need = std::max(need, cache_need(requests[r], "request " + std::to_string(r)));
  prepare_cache(need);
  torch::InferenceMode inference;
  const bool packed = model_->prepare_inference();
  GenerationRun run(model_, tokenizer_, eos_ids_, *cache_, stats_, options_.max_batch, packed, on_sample, on_token);
  std::vector<std::shared_ptr<Job>> jobs;
  for (size_t r = 0; r < requests.size(); ++r) {
    jobs.push_back(std::make_shared<Job>());
    jobs.back()->id = r;
    jobs.back()->request = requests[r];
    run.add(jobs.back());
  }
  while (run.busy()) run.step();
  std::vector<GenerationResult> results;
  for (auto& j : jobs) results.push_back(std::move(j->result));
  return results;
}

void Generator::run_continuous(const Poll& poll, const OnSample& on_sample, const OnToken& on_token,
                               const OnDone& on_done, const OnError& on_error) {
  prepare_cache(options_.max_seq_len > 0 ? std::min(options_.max_seq_len, context())
                                         : std::min<int64_t>(256, context()));
  torch::InferenceMode inference;
  const bool packed = model_->prepare_inference();
  GenerationRun run(model_, tokenizer_, eos_ids_, *cache_, stats_, options_.max_batch, packed, on_sample, on_token,
                    [&](Job& job) { on_done(job.id, job.result); });
  for (;;) {
    ContinuousStatus status{!run.busy(), run.running(), run.waiting()};
    Incoming in = poll(status);
    for (size_t id : in.cancelled) run.cancel(id);
    if (in.stop) return;
    for (auto& [id, request] : in.requests) {
      try {
        const int64_t need = cache_need(request, "request");
        // A longer request lengthens the cache in place (the running slots keep their keys and values); doubling
        // keeps the copies rare.
        if (need > cache_->max_len()) cache_->grow(std::max(need, std::min(2 * cache_->max_len(), context())));
      } catch (const std::exception& e) {
        on_error(id, e.what());
        continue;
      }
      auto job = std::make_shared<Job>();
      job->id = id;
      job->request = std::move(request);
      run.add(job);
    }
    if (!run.busy()) continue;
    try {
      run.step();
    } catch (const std::exception& e) {
      // A step that fails (e.g. no token can continue a JSON object) ends the requests it held, not the server.
      for (const auto& job : run.cancel_all()) on_error(job->id, e.what());
    }
  }
}

}  // namespace rlaif
