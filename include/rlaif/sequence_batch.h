// Prompt + completion sequences laid out for one training forward, and the per-token log-probabilities of the
// completion tokens under a model.
//
// Layout: prompts left-padded to P tokens, completions right-padded to Tc, so every completion starts at column P:
//   [pad pad p p p | c c c pad]      the logits at columns P-1 .. P+Tc-2 predict the completion tokens.
#pragma once

#include <cstdint>
#include <vector>

#include "rlaif/model.h"

namespace rlaif {

struct SequenceBatch {
  torch::Tensor input_ids;        // [N, P + Tc] int64
  torch::Tensor attention_mask;   // [N, P + Tc] int64, 1 = token
  torch::Tensor completion_ids;   // [N, Tc] int64 (pad where masked)
  torch::Tensor completion_mask;  // [N, Tc] float32, 1 = a completion token in the loss
  int64_t prompt_len = 0;         // P
  int64_t tokens() const { return static_cast<int64_t>(completion_mask.sum().item<double>()); }
};

// Builds the layout from token lists (prompt and completion of sequence i). Completions may be empty.
SequenceBatch make_sequence_batch(const std::vector<const std::vector<int64_t>*>& prompts,
                                  const std::vector<const std::vector<int64_t>*>& completions, int64_t pad_id = 0);

// Multi-turn episodes: completion i's tokens with masks[i][t] == 0 (observations, template tokens) leave the loss:
// their completion_mask entries become 0. masks[i] has one entry per token of completion i.
void apply_policy_masks(SequenceBatch& batch, const std::vector<const std::vector<uint8_t>*>& masks);

// log softmax(logits / temperature) at each completion token, [N, Tc] (0 where masked). The output head runs only
// over the Tc completion columns, a chunk of rows at a time (linear_token_logprobs: the logits are never stored). With
// `entropy` non-null, also each position's entropy [N, Tc]. Records gradients when grad mode is on; without it, runs
// the same (plain) numerics. bf16: matmuls in bfloat16 under libtorch's CPU autocast (fp32 master weights, fp32 norms,
// softmax and log-probs); the backward follows the same casts.
torch::Tensor completion_logprobs(CausalLM& model, const SequenceBatch& batch, double temperature,
                                  torch::Tensor* entropy = nullptr, bool bf16 = false);

}  // namespace rlaif
