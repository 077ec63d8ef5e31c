// The model half of a GGUF export: tensor names, the q/k row order and the hyperparameters, as llama.cpp's
// convert_hf_to_gguf.py writes them for llama (mistral is written as llama, as there), qwen2 and qwen3.
#include "gguf_export.h"

#include <cmath>
#include <map>
#include <regex>

#include "rlaif/error.h"

namespace rlaif {
namespace {

// llama.cpp's general.file_type (its LlamaFileType) for a model whose matrices are `type`.
uint32_t file_type(GgmlType type) {
  switch (type) {
    case GgmlType::F32:
      return 0;
    case GgmlType::F16:
      return 1;
    case GgmlType::Q8_0:
      return 7;
    case GgmlType::BF16:
      return 32;
  }
  return 0;
}

// The GGUF name of a transformers parameter name; throws for a tensor GGUF has no name for.
std::string gguf_tensor_name(const std::string& hf, const std::string& arch) {
  static const std::map<std::string, std::string> top = {{"model.embed_tokens.weight", "token_embd.weight"},
                                                         {"model.norm.weight", "output_norm.weight"},
                                                         {"lm_head.weight", "output.weight"}};
  static const std::map<std::string, std::string> block = {
      {"input_layernorm", "attn_norm"},    {"post_attention_layernorm", "ffn_norm"},
      {"self_attn.q_proj", "attn_q"},      {"self_attn.k_proj", "attn_k"},
      {"self_attn.v_proj", "attn_v"},      {"self_attn.o_proj", "attn_output"},
      {"self_attn.q_norm", "attn_q_norm"}, {"self_attn.k_norm", "attn_k_norm"},
      {"mlp.gate_proj", "ffn_gate"},       {"mlp.up_proj", "ffn_up"},
      {"mlp.down_proj", "ffn_down"}};
  if (auto it = top.find(hf); it != top.end()) return it->second;
  static const std::regex layer(R"(model\.layers\.(\d+)\.(.+)\.(weight|bias))");
  std::smatch m;
  if (std::regex_match(hf, m, layer))
    if (auto it = block.find(m[2].str()); it != block.end())
      return "blk." + m[1].str() + "." + it->second + "." + m[3].str();
  throw Error("has no GGUF name for the " + arch + " architecture", "tensor " + hf,
              "export with --format hf and convert it with llama.cpp's convert_hf_to_gguf.py");
}

// llama.cpp's llama architecture applies rotary embeddings to adjacent pairs (x0, x1), transformers' to the two
// halves of each head (x_i, x_{i+D/2}): the converter reorders q and k rows so that, within each head, GGUF row
// 2j + p holds transformers' row p * D/2 + j.
torch::Tensor interleave_rope_rows(const torch::Tensor& w, int64_t heads) {
  std::vector<int64_t> shape = {heads, 2, w.size(0) / heads / 2};
  for (int64_t d = 1; d < w.dim(); ++d) shape.push_back(w.size(d));
  return w.reshape(shape).transpose(1, 2).reshape(w.sizes());
}

// Llama 3's rope scaling as one factor per frequency (the converter's rope_freqs.weight): [D / 2].
torch::Tensor llama3_rope_factors(const ModelConfig& c) {
  const RopeScaling& s = c.rope_scaling;
  const double low_wavelen = s.original_max_position_embeddings / s.low_freq_factor;
  const double high_wavelen = s.original_max_position_embeddings / s.high_freq_factor;
  std::vector<float> factors;
  for (int64_t i = 0; i < c.head_dim; i += 2) {
    const double freq = 1.0 / std::pow(c.rope_theta, static_cast<double>(i) / c.head_dim);
    const double wavelen = 2 * M_PI / freq;
    if (wavelen < high_wavelen) {
      factors.push_back(1.0f);
    } else if (wavelen > low_wavelen) {
      factors.push_back(static_cast<float>(s.factor));
    } else {
      const double smooth =
          (s.original_max_position_embeddings / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
      factors.push_back(static_cast<float>(1.0 / ((1 - smooth) / s.factor + smooth)));
    }
  }
  return torch::tensor(factors);
}

}  // namespace

std::string write_gguf(CausalLM& model, const std::string& tokenizer_dir, const std::string& name,
                       const std::string& path, GgmlType type) {
  const ModelConfig& c = model->config();
  const bool llama = c.model_type == "llama" || c.model_type == "mistral";
  if (!llama && c.model_type != "qwen2" && c.model_type != "qwen3")
    throw Error("model_type " + c.model_type + " has no GGUF writer", "config.json",
                "GGUF export covers llama, mistral, qwen2 and qwen3");
  const std::string arch = llama ? "llama" : c.model_type;

  GgufWriter w;
  w.add_string("general.architecture", arch);
  w.add_string("general.name", name);
  w.add_u32(arch + ".block_count", c.num_hidden_layers);
  w.add_u32(arch + ".context_length", c.max_position_embeddings);
  w.add_u32(arch + ".embedding_length", c.hidden_size);
  w.add_u32(arch + ".feed_forward_length", c.intermediate_size);
  w.add_u32(arch + ".attention.head_count", c.num_attention_heads);
  w.add_u32(arch + ".attention.head_count_kv", c.num_key_value_heads);
  w.add_f32(arch + ".rope.freq_base", c.rope_theta);
  w.add_f32(arch + ".attention.layer_norm_rms_epsilon", c.rms_norm_eps);
  w.add_u32(arch + ".attention.key_length", c.head_dim);
  w.add_u32(arch + ".attention.value_length", c.head_dim);
  w.add_u32(arch + ".rope.dimension_count", c.head_dim);
  if (llama) w.add_u32(arch + ".vocab_size", c.vocab_size);
  w.add_u32("general.file_type", file_type(type));
  w.add_u32("general.quantization_version", 2);
  add_gguf_vocab(w, tokenizer_dir, c);

  if (c.rope_scaling.type == "llama3") w.add_tensor("rope_freqs.weight", llama3_rope_factors(c), GgmlType::F32);
  int64_t count = c.rope_scaling.type == "llama3" ? 1 : 0, as_f16 = 0;
  for (const auto& p : model->named_parameters()) {
    torch::Tensor t = p.value().detach();  // [rows, cols] or [n]
    const std::string& hf = p.key();
    if (llama && hf.find("self_attn.q_proj.") != std::string::npos) t = interleave_rope_rows(t, c.num_attention_heads);
    if (llama && hf.find("self_attn.k_proj.") != std::string::npos) t = interleave_rope_rows(t, c.num_key_value_heads);
    GgmlType tt = t.dim() == 1 ? GgmlType::F32 : type;
    if (tt == GgmlType::Q8_0 && t.size(-1) % 32 != 0) {
      tt = GgmlType::F16;
      ++as_f16;
    }
    w.add_tensor(gguf_tensor_name(hf, arch), t, tt);
    ++count;
  }
  w.write(path);
  std::string summary = arch + ", " + ggml_type_name(type) + ", " + std::to_string(count) + " tensors";
  if (as_f16 > 0) summary += " (" + std::to_string(as_f16) + " with rows not a multiple of 32 written f16)";
  return summary;
}

}  // namespace rlaif
