// The local judge: the verdict JSON is written up to each score, and the score's distribution is read there. Each
// judge prompt is prefilled once into a KV-cache slot; the verdict then grows a few tokens per criterion.
//
// For criterion j the judge model is conditioned on its chat-rendered judge prompt and the assistant prefix
//   {"rationale": "R", "scores": {"c1": v1, ..., "cj":
// (R = "" unless local_rationale_tokens > 0, when the model writes it first, greedily; earlier criteria at their most
// likely value) — the text format_verdict writes, encoded as one text, so the model sees the tokens it was trained
// on. Each candidate score v in [min, max] is the token sequence s(v) of " v" (one or more tokens). With a trie over
// the candidates, exactly:
//   P(v) = prod_k P(s(v)_k | prefix, s(v)_<k) * P(stop | prefix, s(v))
// where P(stop) = 1 - the probability of continuing into a longer candidate. The distribution is renormalised over
// the candidates (what the model puts on non-scores is reported as 1 - mass); the score is its mean, the confidence
// its largest probability.
#include "judge/local_backend.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <set>

#include "rlaif/chat_template.h"
#include "rlaif/error.h"
#include "rlaif/model_folder.h"
#include "rlaif/model_source.h"

namespace rlaif {

LocalJudge::LocalJudge(const ModelSource& source, int64_t batch_size, int64_t rationale_tokens)
    : batch_size_(batch_size), rationale_tokens_(rationale_tokens) {
  model_ = load_merged_model(source);
  set_inference_precision(model_, "float32");
  tokenizer_ = std::make_unique<Tokenizer>(Tokenizer::load(source.model_dir));
}

torch::Tensor LocalJudge::feed(KVCache& cache, const std::vector<std::vector<int64_t>>& tokens,
                               const std::vector<int64_t>& at) {
  torch::NoGradGuard no_grad;
  const int64_t n = static_cast<int64_t>(tokens.size());
  int64_t T = 1, key_len = 0;
  for (int64_t s = 0; s < n; ++s) T = std::max<int64_t>(T, tokens[s].size());
  CachedBatch b;
  b.input_ids = torch::zeros({n, T}, torch::kInt64);
  b.positions = torch::zeros({n, T}, torch::kInt64);
  auto ids = b.input_ids.accessor<int64_t, 2>();
  auto pos = b.positions.accessor<int64_t, 2>();
  for (int64_t s = 0; s < n; ++s) {
    // Padding goes after a row's tokens, at later positions its real tokens never attend to (and later feeds
    // overwrite).
    for (int64_t t = 0; t < T; ++t) {
      ids[s][t] = t < static_cast<int64_t>(tokens[s].size()) ? tokens[s][t] : 0;
      pos[s][t] = at[s] + t;
    }
    key_len = std::max(key_len, at[s] + T);
  }
  b.slot_begin = 0;
  b.key_len = key_len;
  auto hidden = model_->forward_cached(b, cache);  // [n, T, C]
  auto last = torch::empty({n}, torch::kInt64);
  for (int64_t s = 0; s < n; ++s) last[s] = static_cast<int64_t>(tokens[s].size()) - 1;
  auto h = hidden.gather(1, last.view({n, 1, 1}).expand({n, 1, hidden.size(2)})).squeeze(1);  // [n, C]
  return torch::log_softmax(model_->logits(h).to(torch::kFloat32), -1);                       // [n, V]
}

namespace {

// Token `at` of prompt + written.
int64_t full_token_at(const std::vector<int64_t>& prompt, const std::vector<int64_t>& written, int64_t at) {
  return at < static_cast<int64_t>(prompt.size()) ? prompt[at] : written.at(at - prompt.size());
}

}  // namespace

std::vector<std::string> LocalJudge::write_rationales(KVCache& cache, const std::vector<std::vector<int64_t>>& prompts,
                                                      const std::string& first_key, std::vector<int64_t>& cur,
                                                      std::vector<std::vector<int64_t>>& pending) {
  const size_t n = prompts.size();
  std::vector<std::vector<int64_t>> written(n);
  std::vector<std::string> text(n);
  std::vector<bool> done(n, false);
  // Each step feeds every row's last token (the prompt's last token was fed by the prefill: re-feed it at its own
  // position, which rewrites the same cache entry) and appends the most likely next token.
  std::vector<std::vector<int64_t>> last(n);
  std::vector<int64_t> at(n);
  for (size_t s = 0; s < n; ++s) last[s] = {prompts[s].back()}, at[s] = cur[s] - 1;
  for (int64_t step = 0; step < rationale_tokens_; ++step) {
    auto logp = feed(cache, last, at);  // [n, V]
    auto next = logp.argmax(-1);
    bool all = true;
    for (size_t s = 0; s < n; ++s) {
      if (done[s]) continue;
      const int64_t id = next[static_cast<int64_t>(s)].item<int64_t>();
      written[s].push_back(id);
      text[s] = tokenizer_->decode(written[s]);
      const size_t quote = text[s].find('"');
      if (quote != std::string::npos || tokenizer_->is_special(id)) {
        text[s] = text[s].substr(0, std::min(quote, text[s].size()));
        done[s] = true;
      } else {
        all = false;
        last[s] = {id};
        at[s] = cur[s] + static_cast<int64_t>(written[s].size()) - 1;
      }
    }
    if (all) break;
  }
  // The verdict continues as the judge was trained to write it: the prompt, the rationale and `", "scores": {"c1":`
  // encoded as one text. The tokens after the part already in the cache are fed, all but the last, which is left in
  // `pending` for the first criterion (a stale tail past cur is never attended to and gets overwritten).
  std::vector<std::vector<int64_t>> rest(n);
  std::vector<int64_t> from(n);
  bool any = false;
  for (size_t s = 0; s < n; ++s) {
    // In the cache: the prompt and every written token but the last, which was chosen and never fed.
    std::vector<int64_t> cached = prompts[s];
    if (!written[s].empty()) cached.insert(cached.end(), written[s].begin(), written[s].end() - 1);
    auto full =
        tokenizer_->encode(tokenizer_->decode(prompts[s], /*skip_special_tokens=*/false) + text[s] + first_key, false);
    size_t common = 0;
    while (common + 1 < full.size() && common < cached.size() && full[common] == cached[common]) ++common;
    rest[s].assign(full.begin() + static_cast<std::ptrdiff_t>(common), full.end() - 1);
    pending[s] = {full.back()};
    from[s] = static_cast<int64_t>(common);
    cur[s] = from[s] + static_cast<int64_t>(rest[s].size());
    any = any || !rest[s].empty();
  }
  if (any) {  // rows with nothing to feed re-feed their last cached token in place (a harmless rewrite)
    for (size_t s = 0; s < n; ++s)
      if (rest[s].empty()) rest[s] = {full_token_at(prompts[s], written[s], from[s] - 1)}, from[s] -= 1;
    feed(cache, rest, from);
  }
  return text;
}

void LocalJudge::score(const std::vector<JudgeMessages>& prompts, const Rubric& rubric, std::vector<JudgeResult>& out) {
  auto chat = ChatTemplate::for_tokenizer(*tokenizer_);
  const auto& cfg = model_->config();
  const int64_t ctx = cfg.max_position_embeddings;
  // Candidate scores per criterion as token sequences, and the trie nodes (their proper prefixes, root first).
  struct Scale {
    std::vector<int> values;
    std::vector<std::vector<int64_t>> tokens;
    std::vector<std::vector<int64_t>> nodes;  // [] first, then longer prefixes
  };
  std::vector<Scale> scales(rubric.criteria.size());
  int64_t extra = 0;  // tokens the verdict adds after the prompt, at most
  for (size_t j = 0; j < rubric.criteria.size(); ++j) {
    const auto& c = rubric.criteria[j];
    auto& sc = scales[j];
    std::set<std::vector<int64_t>> nodes;
    size_t longest = 0;
    for (int v = static_cast<int>(std::ceil(c.min)); v <= static_cast<int>(std::floor(c.max)); ++v) {
      sc.values.push_back(v);
      sc.tokens.push_back(tokenizer_->encode(" " + std::to_string(v), false));
      longest = std::max(longest, sc.tokens.back().size());
      for (size_t k = 0; k < sc.tokens.back().size(); ++k)
        nodes.insert(std::vector<int64_t>(sc.tokens.back().begin(), sc.tokens.back().begin() + k));
    }
    sc.nodes.assign(nodes.begin(), nodes.end());  // std::set orders [] first
    extra += static_cast<int64_t>(tokenizer_->encode(", \"" + c.name + "\":", false).size() + longest);
  }
  // With a rationale: its tokens, then `", "scores": {"c1":` (re-encoded with it).
  const std::string first_key = "\", \"scores\": {\"" + rubric.criteria.at(0).name + "\":";
  if (rationale_tokens_ > 0)
    extra += rationale_tokens_ + static_cast<int64_t>(tokenizer_->encode(first_key, false).size()) + 2;
  std::vector<std::vector<int64_t>> base(prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i) {
    nlohmann::ordered_json messages = nlohmann::ordered_json::array();
    if (!prompts[i].system.empty()) messages.push_back({{"role", "system"}, {"content", prompts[i].system}});
    messages.push_back({{"role", "user"}, {"content", prompts[i].user}});
    // Without a rationale the prompt runs up to the first score; its last token is fed with the first criterion.
    base[i] = tokenizer_->encode(chat.render_for(*tokenizer_, messages, /*add_generation_prompt=*/true) +
                                     "{\"rationale\": \"" + (rationale_tokens_ > 0 ? "" : first_key),
                                 false);
    out[i] = JudgeResult();
    if (static_cast<int64_t>(base[i].size()) + extra > ctx) {
      out[i].failure = "prompt_too_long";
      out[i].detail = std::to_string(base[i].size()) + " prompt tokens + " + std::to_string(extra) +
                      " for the verdict exceed the judge's context of " + std::to_string(ctx);
    }
  }
  std::vector<size_t> todo;
  for (size_t i = 0; i < prompts.size(); ++i)
    if (out[i].failure.empty()) todo.push_back(i);
  for (size_t b0 = 0; b0 < todo.size(); b0 += batch_size_) {
    const size_t n = std::min<size_t>(batch_size_, todo.size() - b0);
    int64_t max_len = 0;
    for (size_t s = 0; s < n; ++s) max_len = std::max<int64_t>(max_len, base[todo[b0 + s]].size());
    KVCache cache(cfg, static_cast<int64_t>(n), max_len + extra + 1, torch::kFloat32);
    std::vector<int64_t> cur(n);
    std::vector<std::vector<int64_t>> pending(n);  // verdict tokens still to feed, per row
    for (size_t s = 0; s < n; ++s) {               // prefill each judge prompt once, into its slot
      std::vector<int64_t> ids = base[todo[b0 + s]];
      if (rationale_tokens_ == 0) pending[s] = {ids.back()}, ids.pop_back();
      CachedBatch b;
      b.input_ids = torch::tensor(ids).view({1, -1});
      b.positions = torch::arange(static_cast<int64_t>(ids.size())).view({1, -1});
      b.slot_begin = static_cast<int64_t>(s);
      b.key_len = static_cast<int64_t>(ids.size());
      torch::NoGradGuard no_grad;
      model_->forward_cached(b, cache);
      cur[s] = static_cast<int64_t>(ids.size());
    }
    if (rationale_tokens_ > 0) {
      std::vector<std::vector<int64_t>> rows;
      for (size_t s = 0; s < n; ++s) rows.push_back(base[todo[b0 + s]]);
      auto why = write_rationales(cache, rows, first_key, cur, pending);
      for (size_t s = 0; s < n; ++s) out[todo[b0 + s]].verdict.rationale = why[s];
    }
    for (size_t j = 0; j < rubric.criteria.size(); ++j) {
      const auto& c = rubric.criteria[j];
      const auto& sc = scales[j];
      if (j > 0) {
        auto key = tokenizer_->encode(", \"" + c.name + "\":", false);
        for (auto& p : pending) p.insert(p.end(), key.begin(), key.end());
      }
      // The distribution after each trie node: the root advances the rows; deeper nodes are read speculatively.
      std::vector<torch::Tensor> at_node(sc.nodes.size());
      at_node[0] = feed(cache, pending, cur);
      for (size_t s = 0; s < n; ++s) cur[s] += static_cast<int64_t>(pending[s].size());
      for (size_t k = 1; k < sc.nodes.size(); ++k)
        at_node[k] = feed(cache, std::vector<std::vector<int64_t>>(n, sc.nodes[k]), cur);
      auto node_index = [&](const std::vector<int64_t>& path) {
        return static_cast<size_t>(std::lower_bound(sc.nodes.begin(), sc.nodes.end(), path) - sc.nodes.begin());
      };
      for (size_t s = 0; s < n; ++s) {
        const size_t i = todo[b0 + s];
        // P(v) = prod_t P(token_t | prefix, tokens_<t) * P(not continuing into a longer candidate)
        std::vector<double> p(sc.values.size());
        double mass = 0;
        for (size_t k = 0; k < sc.values.size(); ++k) {
          const auto& t = sc.tokens[k];
          double prob = 1;
          for (size_t q = 0; q < t.size(); ++q)
            prob *= std::exp(at_node[node_index({t.begin(), t.begin() + q})][s][t[q]].item<double>());
          double cont = 0;
          std::set<int64_t> seen;
          for (const auto& o : sc.tokens)
            if (o.size() > t.size() && std::equal(t.begin(), t.end(), o.begin()) && seen.insert(o[t.size()]).second)
              cont += std::exp(at_node[node_index(t)][s][o[t.size()]].item<double>());
          p[k] = prob * std::max(0.0, 1.0 - cont);
          mass += p[k];
        }
        ScoreDistribution d;
        d.mass = mass;
        size_t best = 0;
        for (size_t k = 0; k < sc.values.size(); ++k) {
          p[k] = mass > 0 ? p[k] / mass : 1.0 / sc.values.size();
          d.mean += p[k] * sc.values[k];
          if (p[k] > p[best]) best = k;
        }
        d.confidence = p[best];
        out[i].verdict.scores[c.name] = d.mean;
        out[i].distributions[c.name] = d;
        pending[s] = sc.tokens[best];  // the verdict continues with the most likely score
      }
    }
    for (size_t s = 0; s < n; ++s) {
      const size_t i = todo[b0 + s];
      out[i].ok = true;
      out[i].verdict.ok = true;
      out[i].verdict.reward = rubric.aggregate(out[i].verdict.scores);
    }
  }
}

LocalBackend::LocalBackend(const JudgeConfig& config)
    : config_(config),
      source_(resolve_model_source(config.model_path, config.adapter)),
      judge_(source_, config.local_batch, config.local_rationale_tokens) {}

void LocalBackend::score(const std::vector<JudgeSample>& samples, const Done& done, const std::function<bool()>&) {
  // One LocalJudge call per rubric: the judge's, and each data row's own (shared by the row's completions), in the
  // order they first appear, so that results end in the same order from run to run.
  std::vector<std::pair<const Rubric*, std::vector<size_t>>> by_rubric;
  for (size_t k = 0; k < samples.size(); ++k) {
    const Rubric* rubric = &judged_on(samples[k], config_.rubric);
    auto it = std::find_if(by_rubric.begin(), by_rubric.end(), [&](const auto& g) { return g.first == rubric; });
    if (it == by_rubric.end()) it = by_rubric.insert(by_rubric.end(), {rubric, {}});
    it->second.push_back(k);
  }
  for (const auto& [rubric, index] : by_rubric) {
    std::vector<JudgeMessages> prompts;
    for (size_t k : index) prompts.push_back(render_judge_prompt(config_.tmpl, config_.rubric, samples[k]));
    std::vector<JudgeResult> out(prompts.size());
    auto t0 = std::chrono::steady_clock::now();
    judge_.score(prompts, *rubric, out);
    const double per =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / std::max<size_t>(1, out.size());
    for (size_t k = 0; k < out.size(); ++k) {
      out[k].latency_s = per;
      done(index[k], std::move(out[k]), nlohmann::json());
    }
  }
}

void LocalBackend::add_cache_material(nlohmann::json& material) const {
  material["model_path"] = source_.model_dir;
  if (!source_.adapter_dir.empty()) material["adapter"] = source_.adapter_dir;
  for (const auto& [dir, files] :
       {std::pair<std::string, std::vector<const char*>>{
            source_.model_dir, {"config.json", "model.safetensors", "model.safetensors.index.json"}},
        {source_.adapter_dir, {"adapter_config.json", "adapter_model.safetensors"}}}) {
    if (dir.empty()) continue;
    for (const char* f : files) {
      std::error_code ec;
      auto p = std::filesystem::path(dir) / f;
      if (!std::filesystem::exists(p, ec)) continue;
      material["stamp"].push_back(
          {f, std::filesystem::file_size(p, ec), std::filesystem::last_write_time(p, ec).time_since_epoch().count()});
    }
  }
}

}  // namespace rlaif
