// Decoder-only transformer of the llama family (llama, mistral, qwen2, qwen3) with a preallocated KV cache.
//
// Submodules are registered under Hugging Face's names, so named_parameters() is exactly the list of safetensors keys
// (model.embed_tokens.weight, model.layers.0.self_attn.q_proj.weight, ..., lm_head.weight when untied).
// Shape legend: N rows (sequences), T tokens, C model width, H query heads, Hkv key/value heads, D head size, V vocab.
#pragma once

#include <torch/torch.h>

#include <array>
#include <map>
#include <memory>
#include <string>

#include "rlaif/cpu_features.h"
#include "rlaif/lora_config.h"  // kLoraProjections: the projections LoRA can adapt, by their Hugging Face names
#include "rlaif/model_config.h"

namespace rlaif {

// Keys and values of every layer for S sequence slots of up to Tmax tokens each, allocated once. The dtype may
// differ from the model's (bf16 cache with an fp32 model): values are converted when written and read.
class KVCache {
 public:
  KVCache(const ModelConfig& config, int64_t slots, int64_t max_len, torch::ScalarType dtype);
  torch::Tensor& k(int64_t layer) { return k_[layer]; }  // [S, Hkv, Tmax, D]
  torch::Tensor& v(int64_t layer) { return v_[layer]; }  // [S, Hkv, Tmax, D]
  int64_t slots() const { return slots_; }
  int64_t max_len() const { return max_len_; }
  // Copies positions [0, len) of slot `from` into slot `to` (G samples of one prompt share one prefill).
  void copy_slot(int64_t from, int64_t to, int64_t len);
  // Lengthens every slot to `max_len` positions, keeping what they hold (a server's longer request joins a running
  // batch).
  void grow(int64_t max_len);

 private:
  std::vector<torch::Tensor> k_, v_;
  int64_t slots_, max_len_;
};

// One forward over N cache slots (slot_begin + n, or slots[n]): token t of row n sits at positions[n][t], its keys and
// values are written there, and it attends to the cached positions 0..positions[n][t] of its slot.
struct CachedBatch {
  torch::Tensor input_ids;   // [N, T] int64
  torch::Tensor positions;   // [N, T] int64
  int64_t slot_begin = 0;    // row n uses cache slot slot_begin + n, or slots[n] when that is defined
  int64_t key_len = 0;       // > every position in the batch; keys [0, key_len) are read
  torch::Tensor slots = {};  // [N] int64: each row's cache slot, where they are not adjacent. Distinct, except with
                             // T = 1: then rows may share a slot (one row per token of a prompt, beside decode rows)
};

// A LoRA adapter on one projection, as PEFT defines it: y = W x + b + scale * B A dropout(x).
struct LoraAdapter {
  torch::Tensor A;     // [r, in]  (PEFT's lora_A.weight)
  torch::Tensor B;     // [out, r] (PEFT's lora_B.weight)
  double scale = 1;    // lora_alpha / r (or / sqrt(r) with rsLoRA)
  double dropout = 0;  // on the adapter's input, in training forwards only
};

struct RMSNormImpl : torch::nn::Module {
  RMSNormImpl(int64_t dim, double eps);
  torch::Tensor forward(const torch::Tensor& x);  // [..., dim]; normalised in fp32, as transformers does
  torch::Tensor weight;
  double eps;
};
TORCH_MODULE(RMSNorm);

struct AttentionImpl : torch::nn::Module {
  explicit AttentionImpl(const ModelConfig& c);
  torch::nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};
  RMSNorm q_norm{nullptr}, k_norm{nullptr};  // qwen3 only
  int64_t heads, kv_heads, head_dim;
};
TORCH_MODULE(Attention);

struct MLPImpl : torch::nn::Module {
  explicit MLPImpl(const ModelConfig& c);
  // SwiGLU, down(silu(gate(x)) * up(x)), computed by CausalLMImpl so LoRA adapters apply to each projection.
  torch::nn::Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
};
TORCH_MODULE(MLP);

struct DecoderLayerImpl : torch::nn::Module {
  explicit DecoderLayerImpl(const ModelConfig& c);
  Attention self_attn{nullptr};
  MLP mlp{nullptr};
  RMSNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
};
TORCH_MODULE(DecoderLayer);

struct BaseModelImpl : torch::nn::Module {
  explicit BaseModelImpl(const ModelConfig& c);
  torch::nn::Embedding embed_tokens{nullptr};
  torch::nn::ModuleList layers{nullptr};
  RMSNorm norm{nullptr};
};
TORCH_MODULE(BaseModel);

class CausalLMImpl : public torch::nn::Module {
 public:
  explicit CausalLMImpl(ModelConfig config);

  // Full forward without a cache (training, reference checks). attention_mask [N, T] (1 = token, 0 = padding;
  // undefined = all ones); positions count only real tokens, so left and right padding both work.
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask = {});        // [N, T, V]
  torch::Tensor hidden_states(const torch::Tensor& input_ids, const torch::Tensor& attention_mask = {});  // [N, T, C]
  // Forward through the KV cache; returns the final hidden states [N, T, C] (apply logits() to the rows needed).
  torch::Tensor forward_cached(const CachedBatch& batch, KVCache& cache);
  torch::Tensor logits(const torch::Tensor& hidden);  // [..., C] -> [..., V]

  // Inference fast path: with packing on, forwards run without autograd (inference/no-grad mode) use packed_linear
  // for every projection (q/k/v fused, gate/up fused) and the output head, in fp32 or bf16 (fp32 accumulation);
  // forwards that record gradients always use the plain libtorch path. The packed copy is rebuilt automatically when
  // a parameter changes (tensor version counters), so it never goes stale. Off when the CPU lacks AVX-512.
  // Returns whether packing is on.
  bool set_packed_inference(bool enable, bool bf16);
  bool packed_inference() const { return packed_enabled_; }
  // Brings the packed copy up to date now (so the first forward is not slowed by packing). Returns whether a forward
  // in the current grad mode takes the packed path.
  bool prepare_inference() { return use_packed(); }
  bool packed_bf16() const { return packed_bf16_; }
  // While suspended, no-grad forwards take the plain path too: the trainer's log-probs without gradient (old policy,
  // reference) must use the same numerics as its gradient forwards.
  void set_packed_suspended(bool suspended) { packed_suspended_ = suspended; }

  // LoRA adapters keyed by module path ("model.layers.0.self_attn.q_proj"). They are not registered parameters, so
  // named_parameters() stays the base model's key list. Every forward path (training, cached, packed inference —
  // which packs W + scale B A) applies them while enabled; disabled, the model is the base (LoRA's reference policy).
  // Throws rlaif::Error for a path that is not an adaptable projection or shapes that do not fit it.
  void set_lora(std::map<std::string, LoraAdapter> adapters);
  const std::map<std::string, LoraAdapter>& lora() const { return lora_; }
  void set_lora_enabled(bool enabled) { lora_enabled_ = enabled; }
  bool lora_enabled() const { return lora_enabled_ && !lora_.empty(); }
  // The projection at `path` (as in set_lora); throws rlaif::Error if there is none.
  torch::nn::Linear& projection(const std::string& path);

  const ModelConfig& config() const { return config_; }
  torch::ScalarType dtype() const { return model->embed_tokens->weight.scalar_type(); }

  BaseModel model{nullptr};
  torch::nn::Linear lm_head{nullptr};  // null when tie_word_embeddings

 private:
  // Runs the layers; `kv` returns each layer's keys/values [N, Hkv, L, D] to attend to, given this step's k, v.
  torch::Tensor run_layers(const torch::Tensor& input_ids, const torch::Tensor& positions, const torch::Tensor& allowed,
                           KVCache* cache, const CachedBatch* batch);
  // One-token decode step on the packed path with fused kernels (norms, rope, cache write, attention).
  torch::Tensor decode_layers(const torch::Tensor& input_ids, const torch::Tensor& positions, KVCache& cache,
                              int64_t slot_begin, const torch::Tensor& slots);
  std::pair<torch::Tensor, torch::Tensor> rope(const torch::Tensor& positions);  // cos, sin [N, T, 1, D] in fp32
  void ensure_rope_table(int64_t len);

  struct PackedWeights;  // the packed inference copy of every layer and the head (src/model/packed_linear.h)
  // x through projections `projs` (indices into kLoraProjections) of `layer` as one matmul (q/k/v or gate/up
  // share their input), outputs concatenated in `projs` order along the last dimension, with their adapters when
  // LoRA is on.
  torch::Tensor project(int64_t layer, const std::vector<int>& projs, const torch::Tensor& x);
  // The weights of `projs`, concatenated, in `dtype`, cached while their versions do not change (frozen weights).
  torch::Tensor frozen_weight(int64_t layer, const std::vector<int>& projs, at::ScalarType dtype);
  torch::nn::Linear& layer_projection(int64_t layer, int proj);  // by index into kLoraProjections
  torch::Tensor effective_weight(int64_t layer, int proj, const torch::nn::Linear& linear) const;  // W (+ scale B A)
  bool use_packed();  // true when this forward should take the packed path (repacks if parameters changed)
  void repack();

  ModelConfig config_;
  std::map<std::string, LoraAdapter> lora_;
  std::vector<std::array<const LoraAdapter*, 7>> lora_slots_;  // per layer, per projection (null = none)
  struct FrozenWeight {
    int64_t version = -1;              // sum of the weights' versions
    std::vector<const void*> storage;  // and their data, when it was cast
    torch::Tensor weight;
  };
  std::map<std::pair<int64_t, std::vector<int>>, FrozenWeight> frozen_weights_;  // by (layer, projections)
  bool lora_enabled_ = true;
  bool packed_enabled_ = false, packed_bf16_ = false, packed_suspended_ = false;
  int64_t packed_version_ = -1;
  std::shared_ptr<PackedWeights> packed_;  // null until packed
  torch::Tensor inv_freq_;                 // [D/2] fp32
  torch::Tensor cos_, sin_;                // [P, D] fp32, grown on demand
};
TORCH_MODULE(CausalLM);

// Chooses how `model` computes in inference: "float32" (packed fp32 kernels where the CPU has AVX-512, else libtorch),
// "bfloat16" (packed bf16 kernels with fp32 accumulation where the CPU has AVX512_BF16, else libtorch in bf16), or
// "auto" (bfloat16 where the packed bf16 kernels run, the fastest measured path: docs/perf.md; else float32).
// Returns a short description of the path taken. Throws rlaif::Error for another name.
std::string set_inference_precision(CausalLM& model, const std::string& name);

// Rotary embedding frequencies 1/theta^(2i/D), with llama3 scaling applied when configured. [D/2] fp32.
torch::Tensor rope_inv_freq(const ModelConfig& c);

// Rotary position embedding (transformers' rotate-half form): x [N, T, heads, D], cos/sin [N, T, 1, D].
torch::Tensor apply_rope(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin);

// Scaled dot-product attention with grouped-query heads. q [N, H, T, D]; k, v [N, Hkv, L, D]; allowed [N, T, L] bool.
// Returns [N, H, T, D]. Softmax runs in fp32.
torch::Tensor gqa_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                            const torch::Tensor& allowed);

}  // namespace rlaif
