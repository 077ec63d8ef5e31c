// The llama-family decoder, following transformers' modeling_llama / modeling_qwen2 / modeling_qwen3 exactly.
#include <cmath>
#include <limits>

#include "rlaif/model.h"

namespace rlaif {

using torch::indexing::Slice;

RMSNormImpl::RMSNormImpl(int64_t dim, double eps_) : eps(eps_) {
  weight = register_parameter("weight", torch::ones({dim}));
}

torch::Tensor RMSNormImpl::forward(const torch::Tensor& x) {
  auto h = x.to(torch::kFloat32);
  h = h * torch::rsqrt(h.pow(2).mean(-1, /*keepdim=*/true) + eps);
  return weight * h.to(x.scalar_type());
}

AttentionImpl::AttentionImpl(const ModelConfig& c)
    : heads(c.num_attention_heads), kv_heads(c.num_key_value_heads), head_dim(c.head_dim) {
  using torch::nn::LinearOptions;
  const int64_t C = c.hidden_size, D = c.head_dim;
  q_proj = register_module("q_proj", torch::nn::Linear(LinearOptions(C, heads * D).bias(c.qkv_bias)));
  k_proj = register_module("k_proj", torch::nn::Linear(LinearOptions(C, kv_heads * D).bias(c.qkv_bias)));
  v_proj = register_module("v_proj", torch::nn::Linear(LinearOptions(C, kv_heads * D).bias(c.qkv_bias)));
  o_proj = register_module("o_proj", torch::nn::Linear(LinearOptions(heads * D, C).bias(c.o_bias)));
  if (c.qk_norm) {
    q_norm = register_module("q_norm", RMSNorm(D, c.rms_norm_eps));
    k_norm = register_module("k_norm", RMSNorm(D, c.rms_norm_eps));
  }
}

MLPImpl::MLPImpl(const ModelConfig& c) {
  using torch::nn::LinearOptions;
  gate_proj = register_module("gate_proj", torch::nn::Linear(LinearOptions(c.hidden_size, c.intermediate_size).bias(c.mlp_bias)));
  up_proj = register_module("up_proj", torch::nn::Linear(LinearOptions(c.hidden_size, c.intermediate_size).bias(c.mlp_bias)));
  down_proj = register_module("down_proj", torch::nn::Linear(LinearOptions(c.intermediate_size, c.hidden_size).bias(c.mlp_bias)));
}

torch::Tensor MLPImpl::forward(const torch::Tensor& x) {
  return down_proj(torch::silu(gate_proj(x)) * up_proj(x));
}

DecoderLayerImpl::DecoderLayerImpl(const ModelConfig& c) {
  self_attn = register_module("self_attn", Attention(c));
  mlp = register_module("mlp", MLP(c));
  input_layernorm = register_module("input_layernorm", RMSNorm(c.hidden_size, c.rms_norm_eps));
  post_attention_layernorm = register_module("post_attention_layernorm", RMSNorm(c.hidden_size, c.rms_norm_eps));
}

BaseModelImpl::BaseModelImpl(const ModelConfig& c) {
  embed_tokens = register_module("embed_tokens", torch::nn::Embedding(c.vocab_size, c.hidden_size));
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) layers->push_back(DecoderLayer(c));
  norm = register_module("norm", RMSNorm(c.hidden_size, c.rms_norm_eps));
}

torch::Tensor rope_inv_freq(const ModelConfig& c) {
  const int64_t D = c.head_dim;
  auto inv = 1.0 / torch::pow(c.rope_theta, torch::arange(0, D, 2, torch::kInt64).to(torch::kFloat32) / D);
  if (c.rope_scaling.type == "llama3") {
    const auto& s = c.rope_scaling;
    const double old_len = static_cast<double>(s.original_max_position_embeddings);
    const double low_wavelen = old_len / s.low_freq_factor, high_wavelen = old_len / s.high_freq_factor;
    auto wavelen = 2 * M_PI / inv;
    auto scaled = torch::where(wavelen > low_wavelen, inv / s.factor, inv);
    auto smooth = (old_len / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
    auto smoothed = (1 - smooth) * scaled / s.factor + smooth * scaled;
    auto medium = (wavelen >= high_wavelen).logical_and(wavelen <= low_wavelen);
    inv = torch::where(medium, smoothed, scaled);
  }
  return inv.to(torch::kFloat32);
}

torch::Tensor gqa_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                            const torch::Tensor& allowed) {
  const int64_t N = q.size(0), H = q.size(1), T = q.size(2), D = q.size(3);
  const int64_t Hkv = k.size(1), L = k.size(2), R = H / Hkv;
  auto qg = q.reshape({N, Hkv, R * T, D});                                    // query heads of a group, stacked
  auto scores = torch::matmul(qg, k.transpose(-1, -2)).to(torch::kFloat32);  // [N, Hkv, R*T, L]
  scores.mul_(1.0 / std::sqrt(static_cast<double>(D)));
  scores = scores.view({N, Hkv, R, T, L})
               .masked_fill(allowed.logical_not().view({N, 1, 1, T, L}), std::numeric_limits<float>::lowest());
  auto probs = torch::softmax(scores, -1).to(v.scalar_type()).view({N, Hkv, R * T, L});
  return torch::matmul(probs, v).view({N, H, T, D});
}

namespace {

torch::Tensor rotate_half(const torch::Tensor& x) {
  const int64_t half = x.size(-1) / 2;
  return torch::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}

}  // namespace

torch::Tensor apply_rope(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  return x * cos + rotate_half(x) * sin;  // x [N, T, heads, D], cos/sin [N, T, 1, D]
}

CausalLMImpl::CausalLMImpl(ModelConfig config) : config_(std::move(config)) {
  model = register_module("model", BaseModel(config_));
  if (!config_.tie_word_embeddings)
    lm_head = register_module("lm_head", torch::nn::Linear(
                                             torch::nn::LinearOptions(config_.hidden_size, config_.vocab_size).bias(false)));
  inv_freq_ = rope_inv_freq(config_);
}

void CausalLMImpl::ensure_rope_table(int64_t len) {
  if (cos_.defined() && cos_.size(0) >= len) return;
  int64_t n = std::max<int64_t>(len, cos_.defined() ? 2 * cos_.size(0) : 256);
  auto t = torch::arange(n, torch::kFloat32);
  auto freqs = torch::outer(t, inv_freq_);       // [P, D/2]
  auto emb = torch::cat({freqs, freqs}, -1);     // [P, D]
  cos_ = emb.cos();
  sin_ = emb.sin();
}

std::pair<torch::Tensor, torch::Tensor> CausalLMImpl::rope(const torch::Tensor& positions) {
  const int64_t N = positions.size(0), T = positions.size(1), D = config_.head_dim;
  ensure_rope_table(positions.max().item<int64_t>() + 1);
  auto flat = positions.reshape({-1});
  auto cos = cos_.index_select(0, flat).view({N, T, 1, D}).to(dtype());
  auto sin = sin_.index_select(0, flat).view({N, T, 1, D}).to(dtype());
  return {cos, sin};
}

torch::Tensor CausalLMImpl::run_layers(const torch::Tensor& input_ids, const torch::Tensor& positions,
                                       const torch::Tensor& allowed, KVCache* cache, const CachedBatch* batch) {
  const int64_t N = input_ids.size(0), T = input_ids.size(1);
  const int64_t H = config_.num_attention_heads, Hkv = config_.num_key_value_heads, D = config_.head_dim;
  auto [cos, sin] = rope(positions);         // [N, T, 1, D]
  auto x = model->embed_tokens(input_ids);   // [N, T, C]
  torch::Tensor slot_idx;
  if (cache) slot_idx = torch::arange(batch->slot_begin, batch->slot_begin + N).view({N, 1}).expand({N, T});
  for (int64_t i = 0; i < config_.num_hidden_layers; ++i) {
    auto& layer = model->layers->at<DecoderLayerImpl>(i);
    auto& a = *layer.self_attn;
    auto h = layer.input_layernorm(x);
    auto q = a.q_proj(h).view({N, T, H, D});
    auto k = a.k_proj(h).view({N, T, Hkv, D});
    auto v = a.v_proj(h).view({N, T, Hkv, D});
    if (config_.qk_norm) {
      q = a.q_norm(q);
      k = a.k_norm(k);
    }
    q = apply_rope(q, cos, sin);
    k = apply_rope(k, cos, sin);
    torch::Tensor keys, values;  // [N, Hkv, L, D]
    if (cache) {
      cache->k(i).index_put_({slot_idx, Slice(), positions}, k);
      cache->v(i).index_put_({slot_idx, Slice(), positions}, v);
      keys = cache->k(i).narrow(0, batch->slot_begin, N).narrow(2, 0, batch->key_len);
      values = cache->v(i).narrow(0, batch->slot_begin, N).narrow(2, 0, batch->key_len);
    } else {
      keys = k.transpose(1, 2);
      values = v.transpose(1, 2);
    }
    auto o = gqa_attention(q.transpose(1, 2), keys, values, allowed);  // [N, H, T, D]
    x = x + a.o_proj(o.transpose(1, 2).reshape({N, T, H * D}));
    x = x + layer.mlp(layer.post_attention_layernorm(x));
  }
  return model->norm(x);
}

torch::Tensor CausalLMImpl::hidden_states(const torch::Tensor& input_ids, const torch::Tensor& attention_mask) {
  const int64_t N = input_ids.size(0), T = input_ids.size(1);
  auto mask = attention_mask.defined() ? attention_mask.to(torch::kBool) : torch::ones({N, T}, torch::kBool);
  auto positions = (mask.to(torch::kInt64).cumsum(1) - 1).clamp_min(0);  // [N, T]
  auto idx = torch::arange(T);
  auto causal = idx.view({1, T}) <= idx.view({T, 1});                  // [T, L=T]
  auto allowed = causal.unsqueeze(0).logical_and(mask.view({N, 1, T}));  // [N, T, T]
  return run_layers(input_ids, positions, allowed, nullptr, nullptr);
}

torch::Tensor CausalLMImpl::forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask) {
  return logits(hidden_states(input_ids, attention_mask));
}

torch::Tensor CausalLMImpl::forward_cached(const CachedBatch& batch, KVCache& cache) {
  TORCH_CHECK(batch.slot_begin >= 0 && batch.slot_begin + batch.input_ids.size(0) <= cache.slots(), "slot range");
  TORCH_CHECK(batch.key_len <= cache.max_len(), "key_len beyond the cache");
  auto keys = torch::arange(batch.key_len).view({1, 1, batch.key_len});
  auto allowed = keys <= batch.positions.unsqueeze(-1);  // [N, T, L]
  return run_layers(batch.input_ids, batch.positions, allowed, &cache, &batch);
}

torch::Tensor CausalLMImpl::logits(const torch::Tensor& hidden) {
  const auto& w = lm_head ? lm_head->weight : model->embed_tokens->weight;  // [V, C]
  return torch::nn::functional::linear(hidden, w);
}

}  // namespace rlaif
