// The local judge: the verdict JSON is written up to each score, and the score's distribution is read there.
//
// For criterion j the judge model is conditioned on its chat-rendered judge prompt and the assistant prefix
//   {"rationale": "", "scores": {"c1": v1, ..., "cj":
// (earlier criteria at their most likely value). Each candidate score v in [min, max] is a token sequence s(v)
// (" 7" or "7"; "10" may be one token or two). With a trie over the candidates, exactly:
//   P(v) = prod_k P(s(v)_k | prefix, s(v)_<k) * P(stop | prefix, s(v))
// where P(stop) = 1 - the probability of continuing into a longer candidate. The distribution is renormalised over
// the candidates (what the model puts on non-scores is reported as 1 - mass); the score is its mean, the confidence
// its largest probability.
#include "judge/local_backend.h"

#include <map>
#include <set>

#include "rlaif/chat_template.h"
#include "rlaif/error.h"
#include "rlaif/model_folder.h"

namespace rlaif {

LocalJudge::LocalJudge(const std::string& dir, int64_t batch_size) : batch_size_(batch_size) {
  model_ = load_model(dir);
  set_inference_precision(model_, "float32");
  tokenizer_ = std::make_unique<Tokenizer>(Tokenizer::load(dir));
}

torch::Tensor LocalJudge::last_logprobs(const std::vector<std::vector<int64_t>>& seqs) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> out;
  for (size_t s = 0; s < seqs.size(); s += batch_size_) {
    const size_t e = std::min(seqs.size(), s + batch_size_);
    size_t T = 0;
    for (size_t i = s; i < e; ++i) T = std::max(T, seqs[i].size());
    auto ids = torch::zeros({int64_t(e - s), int64_t(T)}, torch::kInt64);
    auto mask = torch::zeros_like(ids);
    for (size_t i = s; i < e; ++i)
      for (size_t t = 0; t < seqs[i].size(); ++t) {
        ids[i - s][T - seqs[i].size() + t] = seqs[i][t];
        mask[i - s][T - seqs[i].size() + t] = 1;
      }
    auto h = model_->hidden_states(ids, mask).select(1, int64_t(T) - 1);  // [n, C], left padding: the last is real
    out.push_back(torch::log_softmax(model_->logits(h).to(torch::kFloat32), -1));
  }
  return torch::cat(out);
}

void LocalJudge::score(const std::vector<JudgeMessages>& prompts, const Rubric& rubric, std::vector<JudgeResult>& out) {
  auto chat = ChatTemplate::for_tokenizer(*tokenizer_);
  const int64_t ctx = model_->config().max_position_embeddings;
  std::vector<std::string> base(prompts.size());
  std::vector<bool> alive(prompts.size(), true);
  for (size_t i = 0; i < prompts.size(); ++i) {
    nlohmann::ordered_json messages = nlohmann::ordered_json::array();
    if (!prompts[i].system.empty()) messages.push_back({{"role", "system"}, {"content", prompts[i].system}});
    messages.push_back({{"role", "user"}, {"content", prompts[i].user}});
    base[i] = chat.render_for(*tokenizer_, messages, /*add_generation_prompt=*/true) + "{\"rationale\": \"\", \"scores\": {";
    out[i] = JudgeResult();
  }
  for (size_t j = 0; j < rubric.criteria.size(); ++j) {
    const auto& c = rubric.criteria[j];
    // Candidate scores as token sequences after the prefix (the tokenizer decides " 7" vs "7" via the text).
    std::vector<int> values;
    for (int v = static_cast<int>(std::ceil(c.min)); v <= static_cast<int>(std::floor(c.max)); ++v) values.push_back(v);
    // Every (sample, trie node) needs the next-token distribution: nodes are the candidates' token prefixes.
    std::vector<std::vector<int64_t>> seqs;
    std::vector<std::map<std::vector<int64_t>, size_t>> node_of(prompts.size());
    std::vector<std::vector<std::vector<int64_t>>> cand(prompts.size());  // candidate suffix tokens per value
    for (size_t i = 0; i < prompts.size(); ++i) {
      if (!alive[i]) continue;
      const std::string prefix = base[i] + "\"" + c.name + "\": ";
      auto prefix_ids = tokenizer_->encode(prefix, false);
      for (int v : values) {
        auto full = tokenizer_->encode(prefix + std::to_string(v), false);
        // The candidate's tokens after the prefix; if the tokenizer merges across the boundary, fall back to
        // encoding the number alone after the prefix tokens.
        std::vector<int64_t> suffix;
        if (full.size() > prefix_ids.size() && std::equal(prefix_ids.begin(), prefix_ids.end(), full.begin()))
          suffix.assign(full.begin() + prefix_ids.size(), full.end());
        else
          suffix = tokenizer_->encode(std::to_string(v), false);
        cand[i].push_back(suffix);
      }
      if (static_cast<int64_t>(prefix_ids.size() + 3) >= ctx) {
        alive[i] = false;
        out[i].failure = "prompt_too_long";
        out[i].detail = std::to_string(prefix_ids.size()) + " tokens, the judge's context is " + std::to_string(ctx);
        continue;
      }
      std::set<std::vector<int64_t>> nodes;
      for (const auto& s : cand[i])
        for (size_t k = 0; k <= s.size(); ++k) nodes.insert(std::vector<int64_t>(s.begin(), s.begin() + k));
      for (const auto& n : nodes) {
        node_of[i][n] = seqs.size();
        auto seq = prefix_ids;
        seq.insert(seq.end(), n.begin(), n.end());
        seqs.push_back(std::move(seq));
      }
    }
    if (seqs.empty()) break;
    auto lp = last_logprobs(seqs);  // [S, V]
    auto lpa = lp.accessor<float, 2>();
    for (size_t i = 0; i < prompts.size(); ++i) {
      if (!alive[i]) continue;
      // P(v) = prod P(token | path) * P(stop | full path); stop = not continuing into a longer candidate.
      std::vector<double> p(values.size());
      double mass = 0;
      for (size_t k = 0; k < values.size(); ++k) {
        const auto& s = cand[i][k];
        double logp = 0;
        for (size_t t = 0; t < s.size(); ++t) logp += lpa[node_of[i][std::vector<int64_t>(s.begin(), s.begin() + t)]][s[t]];
        double cont = 0;
        std::set<int64_t> seen;
        for (size_t k2 = 0; k2 < values.size(); ++k2) {  // children of s's node among longer candidates
          const auto& o = cand[i][k2];
          if (o.size() > s.size() && std::equal(s.begin(), s.end(), o.begin()) && seen.insert(o[s.size()]).second)
            cont += std::exp(lpa[node_of[i][s]][o[s.size()]]);
        }
        p[k] = std::exp(logp) * std::max(0.0, 1.0 - cont);
        mass += p[k];
      }
      ScoreDistribution d;
      d.mass = mass;
      size_t best = 0;
      for (size_t k = 0; k < values.size(); ++k) {
        p[k] = mass > 0 ? p[k] / mass : 1.0 / values.size();
        d.mean += p[k] * values[k];
        if (p[k] > p[best]) best = k;
      }
      d.confidence = p[best];
      out[i].verdict.scores[c.name] = d.mean;
      out[i].distributions[c.name] = d;
      base[i] += "\"" + c.name + "\": " + std::to_string(values[best]) + (j + 1 < rubric.criteria.size() ? ", " : "");
    }
  }
  for (size_t i = 0; i < prompts.size(); ++i) {
    if (!alive[i]) continue;
    out[i].ok = true;
    out[i].verdict.ok = true;
    out[i].verdict.reward = rubric.aggregate(out[i].verdict.scores);
  }
}

}  // namespace rlaif
