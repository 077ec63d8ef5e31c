// Training-forward layout and completion log-probabilities.
#include "rlaif/sequence_batch.h"

#include <ATen/autocast_mode.h>

#include "rlaif/rl.h"

namespace rlaif {

SequenceBatch make_sequence_batch(const std::vector<const std::vector<int64_t>*>& prompts,
                                  const std::vector<const std::vector<int64_t>*>& completions, int64_t pad_id) {
  TORCH_CHECK(prompts.size() == completions.size() && !prompts.empty(), "one completion per prompt");
  const int64_t N = static_cast<int64_t>(prompts.size());
  int64_t P = 1, Tc = 1;
  for (int64_t i = 0; i < N; ++i) {
    P = std::max<int64_t>(P, prompts[i]->size());
    Tc = std::max<int64_t>(Tc, completions[i]->size());
  }
  SequenceBatch b;
  b.prompt_len = P;
  b.input_ids = torch::full({N, P + Tc}, pad_id, torch::kInt64);
  b.attention_mask = torch::zeros({N, P + Tc}, torch::kInt64);
  b.completion_ids = torch::full({N, Tc}, pad_id, torch::kInt64);
  b.completion_mask = torch::zeros({N, Tc}, torch::kFloat32);
  auto ids = b.input_ids.accessor<int64_t, 2>();
  auto am = b.attention_mask.accessor<int64_t, 2>();
  auto cid = b.completion_ids.accessor<int64_t, 2>();
  auto cm = b.completion_mask.accessor<float, 2>();
  for (int64_t i = 0; i < N; ++i) {
    const auto& p = *prompts[i];
    const int64_t off = P - static_cast<int64_t>(p.size());
    for (size_t t = 0; t < p.size(); ++t) ids[i][off + t] = p[t], am[i][off + t] = 1;
    const auto& c = *completions[i];
    for (size_t t = 0; t < c.size(); ++t) {
      ids[i][P + t] = c[t];
      am[i][P + t] = 1;
      cid[i][t] = c[t];
      cm[i][t] = 1;
    }
  }
  return b;
}

void apply_policy_masks(SequenceBatch& b, const std::vector<const std::vector<uint8_t>*>& masks) {
  TORCH_CHECK(static_cast<int64_t>(masks.size()) == b.completion_mask.size(0), "one policy mask per completion");
  auto cm = b.completion_mask.accessor<float, 2>();
  const size_t Tc = static_cast<size_t>(b.completion_mask.size(1));
  for (size_t i = 0; i < masks.size(); ++i) {
    const auto& m = *masks[i];
    TORCH_CHECK(m.size() <= Tc && (m.empty() || cm[i][m.size() - 1] == 1) && (m.size() == Tc || cm[i][m.size()] == 0),
                "completion ", i, ": its policy mask must have one entry per completion token");
    for (size_t t = 0; t < m.size(); ++t)
      if (!m[t]) cm[i][t] = 0;
  }
}

torch::Tensor completion_logprobs(CausalLM& model, const SequenceBatch& b, double temperature, torch::Tensor* entropy,
                                  bool bf16) {
  struct Autocast {  // bf16 matmuls; weights cast once per forward (autocast's cache), cleared on exit
    bool on;
    explicit Autocast(bool enable) : on(enable) {
      if (!on) return;
      at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
      at::autocast::set_cpu_enabled(true);
    }
    ~Autocast() {
      if (!on) return;
      at::autocast::set_cpu_enabled(false);
      at::autocast::clear_cache();
    }
  } autocast(bf16);
  struct Suspend {  // the no-grad forwards use the training numerics too
    CausalLM& m;
    explicit Suspend(CausalLM& model) : m(model) { m->set_packed_suspended(true); }
    ~Suspend() { m->set_packed_suspended(false); }
  } suspend(model);
  auto hidden = model->hidden_states(b.input_ids, b.attention_mask);  // [N, P + Tc, C]
  const int64_t Tc = b.completion_ids.size(1);
  auto h = hidden.narrow(1, b.prompt_len - 1, Tc);                                                  // [N, Tc, C]
  const auto& head = model->lm_head ? model->lm_head->weight : model->model->embed_tokens->weight;  // [V, C]
  // Logits a chunk of rows at a time, recomputed in backward: no [N, Tc, V] tensor is ever stored.
  auto logp = linear_token_logprobs(h, head, b.completion_ids, temperature, bf16, entropy);  // [N, Tc]
  if (entropy) *entropy = *entropy * b.completion_mask;
  return logp * b.completion_mask;
}

}  // namespace rlaif
