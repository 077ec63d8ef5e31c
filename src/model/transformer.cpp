// The llama-family decoder, following transformers' modeling_llama / modeling_qwen2 / modeling_qwen3 exactly.
#include <ATen/autocast_mode.h>

#include <cmath>
#include <limits>

#include "model/fused_ops.h"
#include "model/packed_linear.h"
#include "model/train_ops.h"
#include "rlaif/error.h"
#include "rlaif/model.h"

namespace rlaif {

using torch::indexing::Slice;

RMSNormImpl::RMSNormImpl(int64_t dim, double eps_) : eps(eps_) {
  weight = register_parameter("weight", torch::ones({dim}));
}

torch::Tensor RMSNormImpl::forward(const torch::Tensor& x) {
  if (x.scalar_type() == torch::kFloat32 && x.is_contiguous() && weight.scalar_type() == torch::kFloat32) {
    // the formula below, in one pass each way; under bf16 autocast the result goes to bf16 matmuls, so it is
    // written in bf16 (the same rounding autocast's cast would make)
    const bool bf16_out = at::autocast::is_cpu_enabled() && at::autocast::get_autocast_cpu_dtype() == at::kBFloat16;
    return rms_norm_fused(x, weight, eps, bf16_out);
  }
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
  gate_proj = register_module("gate_proj",
                              torch::nn::Linear(LinearOptions(c.hidden_size, c.intermediate_size).bias(c.mlp_bias)));
  up_proj =
      register_module("up_proj", torch::nn::Linear(LinearOptions(c.hidden_size, c.intermediate_size).bias(c.mlp_bias)));
  down_proj = register_module("down_proj",
                              torch::nn::Linear(LinearOptions(c.intermediate_size, c.hidden_size).bias(c.mlp_bias)));
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
  auto qg = q.reshape({N, Hkv, R * T, D});                                // query heads of a group, stacked
  auto raw = torch::matmul(qg, k.transpose(-1, -2));                      // [N, Hkv, R*T, L]
  if (raw.scalar_type() == v.scalar_type() && allowed.is_contiguous()) {  // the formula below, fused
    auto probs = masked_softmax_fused(raw.view({N, Hkv, R, T, L}), allowed, 1.0 / std::sqrt(static_cast<double>(D)));
    return torch::matmul(probs.view({N, Hkv, R * T, L}), v).view({N, H, T, D});
  }
  auto scores = raw.to(torch::kFloat32);
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
  if ((x.scalar_type() == torch::kFloat32 || x.scalar_type() == torch::kBFloat16) && x.is_contiguous() &&
      cos.scalar_type() == torch::kFloat32 && sin.scalar_type() == torch::kFloat32 && cos.is_contiguous() &&
      sin.is_contiguous() && cos.numel() == x.size(0) * x.size(1) * x.size(3))
    return rope_fused(x, cos, sin);       // the formula below in one pass each way (bf16 in, bf16 out)
  return x * cos + rotate_half(x) * sin;  // x [N, T, heads, D], cos/sin [N, T, 1, D]
}

CausalLMImpl::CausalLMImpl(ModelConfig config) : config_(std::move(config)) {
  model = register_module("model", BaseModel(config_));
  if (!config_.tie_word_embeddings)
    lm_head = register_module(
        "lm_head", torch::nn::Linear(torch::nn::LinearOptions(config_.hidden_size, config_.vocab_size).bias(false)));
  inv_freq_ = rope_inv_freq(config_);
}

void CausalLMImpl::ensure_rope_table(int64_t len) {
  if (cos_.defined() && cos_.size(0) >= len) return;
  int64_t n = std::max<int64_t>(len, cos_.defined() ? 2 * cos_.size(0) : 256);
  auto t = torch::arange(n, torch::kFloat32);
  auto freqs = torch::outer(t, inv_freq_);    // [P, D/2]
  auto emb = torch::cat({freqs, freqs}, -1);  // [P, D]
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

torch::nn::Linear& CausalLMImpl::projection(const std::string& path) {
  const std::string prefix = "model.layers.";
  if (path.compare(0, prefix.size(), prefix) == 0) {
    size_t dot = path.find('.', prefix.size());
    std::string idx = path.substr(prefix.size(), dot == std::string::npos ? 0 : dot - prefix.size());
    int64_t layer = idx.empty() || idx.find_first_not_of("0123456789") != std::string::npos ? -1 : std::stoll(idx);
    if (layer >= 0 && layer < config_.num_hidden_layers) {
      auto& l = model->layers->at<DecoderLayerImpl>(layer);
      std::string rest = path.substr(dot + 1);
      if (rest == "self_attn.q_proj") return l.self_attn->q_proj;
      if (rest == "self_attn.k_proj") return l.self_attn->k_proj;
      if (rest == "self_attn.v_proj") return l.self_attn->v_proj;
      if (rest == "self_attn.o_proj") return l.self_attn->o_proj;
      if (rest == "mlp.gate_proj") return l.mlp->gate_proj;
      if (rest == "mlp.up_proj") return l.mlp->up_proj;
      if (rest == "mlp.down_proj") return l.mlp->down_proj;
    }
  }
  throw Error("no adaptable projection \"" + path + "\" in this model", path,
              "expected model.layers.<0.." + std::to_string(config_.num_hidden_layers - 1) +
                  ">.self_attn.{q,k,v,o}_proj or .mlp.{gate,up,down}_proj");
}

void CausalLMImpl::set_lora(std::map<std::string, LoraAdapter> adapters) {
  std::vector<std::array<const LoraAdapter*, 7>> slots(config_.num_hidden_layers);
  for (auto& s : slots) s.fill(nullptr);
  for (const auto& [path, a] : adapters) {
    auto& lin = projection(path);
    const int64_t out = lin->weight.size(0), in = lin->weight.size(1);
    if (a.A.dim() != 2 || a.B.dim() != 2 || a.A.size(1) != in || a.B.size(0) != out || a.A.size(0) != a.B.size(1))
      throw Error("LoRA shapes A " + c10::str(a.A.sizes()) + " and B " + c10::str(a.B.sizes()) +
                      " do not fit the projection [" + std::to_string(out) + ", " + std::to_string(in) + "]",
                  path, "A must be [r, " + std::to_string(in) + "] and B [" + std::to_string(out) + ", r]");
  }
  lora_ = std::move(adapters);
  for (const auto& [path, a] : lora_) {
    size_t b = std::string("model.layers.").size();
    int64_t layer = std::stoll(path.substr(b, path.find('.', b) - b));
    std::string name = path.substr(path.rfind('.') + 1);
    for (int p = 0; p < 7; ++p)
      if (name == kLoraProjections[p]) slots[layer][p] = &a;
  }
  lora_slots_ = std::move(slots);
  packed_version_ = -1;  // repack with the adapters merged
}

torch::nn::Linear& CausalLMImpl::layer_projection(int64_t layer, int proj) {
  auto& l = model->layers->at<DecoderLayerImpl>(layer);
  auto& a = *l.self_attn;
  auto& m = *l.mlp;
  torch::nn::Linear* all[7] = {&a.q_proj, &a.k_proj, &a.v_proj, &a.o_proj, &m.gate_proj, &m.up_proj, &m.down_proj};
  return *all[proj];
}

torch::Tensor CausalLMImpl::frozen_weight(int64_t layer, const std::vector<int>& projs, at::ScalarType dtype) {
  std::vector<torch::Tensor> weights;
  std::vector<const void*> storage;
  int64_t version = 0;
  for (int p : projs) {
    weights.push_back(layer_projection(layer, p)->weight);
    storage.push_back(weights.back().data_ptr());
    version += weights.back()._version();
  }
  auto& slot = frozen_weights_[{layer, projs}];
  if (!slot.weight.defined() || slot.version != version || slot.storage != storage ||
      slot.weight.scalar_type() != dtype) {
    torch::NoGradGuard no_grad;
    slot.weight = (weights.size() == 1 ? weights[0] : torch::cat(weights)).to(dtype);
    slot.version = version;
    slot.storage = storage;
  }
  return slot.weight;
}

torch::Tensor CausalLMImpl::project(int64_t layer, const std::vector<int>& projs, const torch::Tensor& x) {
  std::vector<torch::Tensor> weights, biases;
  bool frozen = true;
  for (int p : projs) {
    auto& lin = layer_projection(layer, p);
    weights.push_back(lin->weight);
    frozen = frozen && !lin->weight.requires_grad() && !(lin->bias.defined() && lin->bias.requires_grad());
    if (lin->bias.defined()) biases.push_back(lin->bias);
  }
  auto join = [](const std::vector<torch::Tensor>& t, int64_t dim) {
    return t.size() == 1 ? t[0] : torch::cat(t, dim);
  };
  // Frozen weights (LoRA's base) are concatenated and cast to autocast's precision once, not every forward.
  const bool autocast_bf16 = at::autocast::is_cpu_enabled() && at::autocast::get_autocast_cpu_dtype() == at::kBFloat16;
  auto w = frozen && autocast_bf16 ? frozen_weight(layer, projs, at::kBFloat16) : join(weights, 0);  // [out, in]
  auto bias = biases.empty() ? torch::Tensor() : join(biases, 0);                                    // [out]
  auto x2 = x.reshape({-1, x.size(-1)});                                                             // [M, in]
  auto sizes = x.sizes().vec();
  sizes.back() = w.size(0);
  // LoRA on a frozen base: x W^T + each adapter's scale (x A^T) B^T in its projection's columns, one node with
  // its own backward (lora_linear); each adapter its own dropout mask, as PEFT.
  std::vector<LoraPart> parts;
  int64_t col = 0;
  for (int p : projs) {
    const LoraAdapter* a = lora_enabled() ? lora_slots_[layer][p] : nullptr;
    const bool drop = a && a->dropout > 0 && is_training() && torch::GradMode::is_enabled();
    if (a) parts.push_back({a->A, a->B, a->scale, drop ? a->dropout : 0.0, col});
    col += layer_projection(layer, p)->weight.size(0);
  }
  if (parts.empty()) return torch::nn::functional::linear(x2, w, bias).view(sizes);
  // The node computes no gradient for the base: it must be frozen (as LoRA training does), or no gradient wanted.
  TORCH_CHECK(frozen || !torch::GradMode::is_enabled(),
              "LoRA adapters on a projection whose base weight is trained: freeze the base model's parameters");
  const auto compute = autocast_bf16 ? at::kBFloat16 : w.scalar_type();  // as linear() would compute
  return lora_linear(x2, w.detach().to(compute), bias.defined() ? bias.detach().to(compute) : bias, parts, compute)
      .view(sizes);
}

torch::Tensor CausalLMImpl::effective_weight(int64_t layer, int proj, const torch::nn::Linear& linear) const {
  const LoraAdapter* a = lora_enabled() ? lora_slots_[layer][proj] : nullptr;
  if (!a) return linear->weight;
  return linear->weight + torch::matmul(a->B, a->A) * a->scale;
}

bool CausalLMImpl::set_packed_inference(bool enable, bool bf16) {
  packed_enabled_ = enable && packed_linear_supported(bf16);
  packed_bf16_ = bf16;
  packed_version_ = -1;
  packed_.reset();
  return packed_enabled_;
}

bool CausalLMImpl::use_packed() {
  if (!packed_enabled_ || packed_suspended_ || torch::GradMode::is_enabled()) return false;
  if (!lora_.empty() && !lora_enabled_) return false;  // the base model with adapters off: plain path
  int64_t version = 0;
  for (const auto& p : parameters()) version += p._version();
  for (const auto& kv : lora_) version += kv.second.A._version() + kv.second.B._version();
  if (version != packed_version_) {
    repack();
    packed_version_ = version;
  }
  return true;
}

struct CausalLMImpl::PackedWeights {
  struct Layer {
    PackedWeight qkv, o, gate_up, down;
  };
  std::vector<Layer> layers;
  PackedWeight head;
};

void CausalLMImpl::repack() {
  packed_ = std::make_shared<PackedWeights>();
  for (int64_t i = 0; i < config_.num_hidden_layers; ++i) {
    auto& layer = model->layers->at<DecoderLayerImpl>(i);
    auto& a = *layer.self_attn;
    auto& m = *layer.mlp;
    PackedWeights::Layer pl;
    torch::NoGradGuard no_grad;
    auto qkv_w = torch::cat(
        {effective_weight(i, 0, a.q_proj), effective_weight(i, 1, a.k_proj), effective_weight(i, 2, a.v_proj)});
    auto qkv_b = config_.qkv_bias ? torch::cat({a.q_proj->bias, a.k_proj->bias, a.v_proj->bias}) : torch::Tensor();
    pl.qkv = pack_linear(qkv_w, qkv_b, packed_bf16_);
    pl.o =
        pack_linear(effective_weight(i, 3, a.o_proj), config_.o_bias ? a.o_proj->bias : torch::Tensor(), packed_bf16_);
    auto gu_b = config_.mlp_bias ? torch::cat({m.gate_proj->bias, m.up_proj->bias}) : torch::Tensor();
    pl.gate_up = pack_linear(torch::cat({effective_weight(i, 4, m.gate_proj), effective_weight(i, 5, m.up_proj)}), gu_b,
                             packed_bf16_);
    pl.down = pack_linear(effective_weight(i, 6, m.down_proj), config_.mlp_bias ? m.down_proj->bias : torch::Tensor(),
                          packed_bf16_);
    packed_->layers.push_back(std::move(pl));
  }
  packed_->head = pack_linear(lm_head ? lm_head->weight : model->embed_tokens->weight, torch::Tensor(), packed_bf16_);
}

torch::Tensor CausalLMImpl::decode_layers(const torch::Tensor& input_ids, const torch::Tensor& positions,
                                          KVCache& cache, int64_t slot_begin, const torch::Tensor& slots) {
  const int64_t N = input_ids.size(0);
  const int64_t I = config_.intermediate_size;
  auto pos = positions.reshape({N}).contiguous();
  auto slot_ids = slots.defined() ? slots.to(torch::kInt64).contiguous() : slots;  // [N] or undefined
  ensure_rope_table(pos.max().item<int64_t>() + 1);
  auto x = model->embed_tokens(input_ids.reshape({N}));  // [N, C]
  for (int64_t i = 0; i < config_.num_hidden_layers; ++i) {
    auto& layer = model->layers->at<DecoderLayerImpl>(i);
    auto& a = *layer.self_attn;
    const auto& pl = packed_->layers[i];
    auto h = rms_norm_rows(x, layer.input_layernorm->weight, config_.rms_norm_eps);
    DecodeAttentionArgs args;
    args.qkv = packed_linear(h, pl.qkv);  // [N, (H + 2 Hkv) D]
    args.positions = pos.data_ptr<int64_t>();
    args.slot_begin = slot_begin;
    args.slots = slot_ids.defined() ? slot_ids.data_ptr<int64_t>() : nullptr;
    args.heads = config_.num_attention_heads;
    args.kv_heads = config_.num_key_value_heads;
    args.head_dim = config_.head_dim;
    args.cos = cos_.data_ptr<float>();
    args.sin = sin_.data_ptr<float>();
    args.q_norm = config_.qk_norm ? a.q_norm->weight.data_ptr<float>() : nullptr;
    args.k_norm = config_.qk_norm ? a.k_norm->weight.data_ptr<float>() : nullptr;
    args.eps = config_.rms_norm_eps;
    auto attn = decode_attention(args, cache.k(i), cache.v(i));  // [N, H D]
    x = packed_linear(attn, pl.o, /*residual=*/x);
    auto gu = packed_linear(rms_norm_rows(x, layer.post_attention_layernorm->weight, config_.rms_norm_eps), pl.gate_up);
    x = packed_linear(silu_mul(gu, I), pl.down, /*residual=*/x);
  }
  return rms_norm_rows(x, model->norm->weight, config_.rms_norm_eps).view({N, 1, -1});
}

torch::Tensor CausalLMImpl::run_layers(const torch::Tensor& input_ids, const torch::Tensor& positions,
                                       const torch::Tensor& allowed, KVCache* cache, const CachedBatch* batch) {
  const int64_t N = input_ids.size(0), T = input_ids.size(1);
  const int64_t H = config_.num_attention_heads, Hkv = config_.num_key_value_heads, D = config_.head_dim;
  const bool packed = use_packed() && packed_linear_prefers(N * T, packed_bf16_);
  auto [cos, sin] = rope(positions);  // [N, T, 1, D]
  // [N, T, C]. With tied embeddings the output head gives this weight a dense gradient; the lookup's own is sparse
  // (the rows it read), added into that one instead of a dense [V, C] of zeros plus a full-size sum.
  auto x = torch::embedding(model->embed_tokens->weight, input_ids, /*padding_idx=*/-1, /*scale_grad_by_freq=*/false,
                            /*sparse=*/config_.tie_word_embeddings);
  torch::Tensor slot_rows, slot_idx;  // [N]: each row's cache slot; [N, T] for writing the cache
  if (cache) {
    slot_rows = batch->slots.defined() ? batch->slots : torch::arange(batch->slot_begin, batch->slot_begin + N);
    slot_idx = slot_rows.view({N, 1}).expand({N, T});
  }
  // Several tokens per sequence (a training forward, a prompt's prefill): q/k/v and gate/up as one matmul each
  // (one cast of their input under autocast, one gradient for it). A decode step keeps them apart: concatenating
  // the weights would cost more than the one token's matmuls.
  const bool grouped = !packed && T > 1;
  const int64_t I = config_.intermediate_size;
  for (int64_t i = 0; i < config_.num_hidden_layers; ++i) {
    auto& layer = model->layers->at<DecoderLayerImpl>(i);
    auto& a = *layer.self_attn;
    auto h = layer.input_layernorm(x);
    torch::Tensor qkv;  // [N, T, (H + 2 Hkv) D]
    if (packed)
      qkv = packed_linear(h, packed_->layers[i].qkv);
    else if (grouped)
      qkv = project(i, {0, 1, 2}, h);
    torch::Tensor q, k, v;  // [N, heads, T, D], rope applied to q and k
    if (qkv.defined() && !config_.qk_norm && qkv.is_contiguous() &&
        (qkv.scalar_type() == torch::kFloat32 || qkv.scalar_type() == torch::kBFloat16) &&
        cos.scalar_type() == torch::kFloat32 && cos.is_contiguous() && sin.is_contiguous()) {
      auto parts = qkv_rope_fused(qkv, cos, sin, H, Hkv);  // split, rotated and laid out for attention in one pass
      q = parts[0], k = parts[1], v = parts[2];
    } else {
      if (qkv.defined()) {
        q = qkv.narrow(-1, 0, H * D).reshape({N, T, H, D});
        k = qkv.narrow(-1, H * D, Hkv * D).reshape({N, T, Hkv, D});
        v = qkv.narrow(-1, (H + Hkv) * D, Hkv * D).reshape({N, T, Hkv, D});
      } else {
        q = project(i, {0}, h).view({N, T, H, D});
        k = project(i, {1}, h).view({N, T, Hkv, D});
        v = project(i, {2}, h).view({N, T, Hkv, D});
      }
      if (config_.qk_norm) {
        q = a.q_norm(q);
        k = a.k_norm(k);
      }
      q = apply_rope(q, cos, sin).transpose(1, 2);
      k = apply_rope(k, cos, sin).transpose(1, 2);
      v = v.transpose(1, 2);
    }
    torch::Tensor keys = k, values = v;  // [N, Hkv, L, D]
    if (cache) {
      const auto cdt = cache->k(i).scalar_type();
      cache->k(i).index_put_({slot_idx, Slice(), positions}, k.transpose(1, 2).to(cdt));
      cache->v(i).index_put_({slot_idx, Slice(), positions}, v.transpose(1, 2).to(cdt));
      auto rows_of = [&](const torch::Tensor& c) {  // [N, Hkv, key_len, D]
        auto head = c.narrow(2, 0, batch->key_len);
        return batch->slots.defined() ? head.index_select(0, slot_rows) : head.narrow(0, batch->slot_begin, N);
      };
      keys = rows_of(cache->k(i)).to(q.scalar_type());
      values = rows_of(cache->v(i)).to(q.scalar_type());
    }
    auto o = gqa_attention(q, keys, values, allowed);  // [N, H, T, D]
    auto attn = o.transpose(1, 2).reshape({N, T, H * D});
    x = x + (packed ? packed_linear(attn, packed_->layers[i].o) : project(i, {3}, attn));
    auto hn = layer.post_attention_layernorm(x);
    torch::Tensor gu;  // [N, T, 2 I]: gate, then up
    if (packed)
      gu = packed_linear(hn, packed_->layers[i].gate_up);
    else if (grouped)
      gu = project(i, {4, 5}, hn);
    torch::Tensor act;  // silu(gate) * up [N, T, I]
    if (gu.defined() && gu.is_contiguous() &&
        (gu.scalar_type() == torch::kFloat32 || gu.scalar_type() == torch::kBFloat16))
      act = swiglu_fused(gu);
    else if (gu.defined())
      act = torch::silu(gu.narrow(-1, 0, I)) * gu.narrow(-1, I, I);
    else
      act = torch::silu(project(i, {4}, hn)) * project(i, {5}, hn);
    x = x + (packed ? packed_linear(act, packed_->layers[i].down) : project(i, {6}, act));
  }
  return model->norm(x);
}

torch::Tensor CausalLMImpl::hidden_states(const torch::Tensor& input_ids, const torch::Tensor& attention_mask) {
  const int64_t N = input_ids.size(0), T = input_ids.size(1);
  auto mask = attention_mask.defined() ? attention_mask.to(torch::kBool) : torch::ones({N, T}, torch::kBool);
  auto positions = (mask.to(torch::kInt64).cumsum(1) - 1).clamp_min(0);  // [N, T]
  auto idx = torch::arange(T);
  auto causal = idx.view({1, T}) <= idx.view({T, 1});                    // [T, L=T]
  auto allowed = causal.unsqueeze(0).logical_and(mask.view({N, 1, T}));  // [N, T, T]
  return run_layers(input_ids, positions, allowed, nullptr, nullptr);
}

torch::Tensor CausalLMImpl::forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask) {
  return logits(hidden_states(input_ids, attention_mask));
}

torch::Tensor CausalLMImpl::forward_cached(const CachedBatch& batch, KVCache& cache) {
  if (batch.slots.defined()) {
    TORCH_CHECK(batch.slots.numel() == batch.input_ids.size(0) && batch.slots.min().item<int64_t>() >= 0 &&
                    batch.slots.max().item<int64_t>() < cache.slots(),
                "slots out of range");
  } else {
    TORCH_CHECK(batch.slot_begin >= 0 && batch.slot_begin + batch.input_ids.size(0) <= cache.slots(), "slot range");
  }
  TORCH_CHECK(batch.key_len <= cache.max_len(), "key_len beyond the cache");
  if (batch.input_ids.size(1) == 1 && use_packed())
    return decode_layers(batch.input_ids, batch.positions, cache, batch.slot_begin, batch.slots);
  auto keys = torch::arange(batch.key_len).view({1, 1, batch.key_len});
  auto allowed = keys <= batch.positions.unsqueeze(-1);  // [N, T, L]
  return run_layers(batch.input_ids, batch.positions, allowed, &cache, &batch);
}

torch::Tensor CausalLMImpl::logits(const torch::Tensor& hidden) {
  if (use_packed()) return packed_linear(hidden, packed_->head);
  const auto& w = lm_head ? lm_head->weight : model->embed_tokens->weight;  // [V, C]
  return torch::nn::functional::linear(hidden, w);
}

}  // namespace rlaif

namespace rlaif {

std::string set_inference_precision(CausalLM& model, const std::string& name) {
  if (name != "auto" && name != "float32" && name != "bfloat16")
    throw Error("unknown precision \"" + name + "\"", "--dtype", "use auto, float32 or bfloat16");
  bool want_bf16 = name == "bfloat16" || (name == "auto" && packed_linear_supported(/*bf16=*/true));
  if (model->set_packed_inference(true, want_bf16))
    return std::string(want_bf16 ? "bf16" : "fp32") + " (packed " + packed_kernel_isa(want_bf16) + " kernels)";
  if (want_bf16) {
    model->to(torch::kBFloat16);
    return "bf16 (libtorch)";
  }
  return "fp32 (libtorch)";
}

}  // namespace rlaif
