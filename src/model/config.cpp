#include "rlaif/model_config.h"

#include "rlaif/error.h"

namespace rlaif {
namespace {

int64_t required_int(const nlohmann::json& j, const char* key, const std::string& where) {
  if (!j.contains(key))
    throw Error(std::string("missing config key \"") + key + "\"", where,
                "add it to config.json (see the model's transformers config class for its meaning)");
  if (!j[key].is_number_integer() || j[key].get<int64_t>() <= 0)
    throw Error(std::string("config key \"") + key + "\" must be a positive integer", where);
  return j[key].get<int64_t>();
}

// An integer key that may be absent or null (then `dflt`); present, it must be at least `min`.
int64_t optional_int(const nlohmann::json& j, const char* key, int64_t dflt, const std::string& where, int64_t min) {
  if (!j.contains(key) || j[key].is_null()) return dflt;
  if (!j[key].is_number_integer()) throw Error(std::string("config key \"") + key + "\" must be an integer", where);
  const int64_t v = j[key].get<int64_t>();
  if (v < min)
    throw Error(std::string("config key \"") + key + "\" must be at least " + std::to_string(min) + ", got " +
                    std::to_string(v),
                where + ": " + key);
  return v;
}

// A number key that may be absent or null (then `dflt`); present, it must be above 0.
double optional_positive(const nlohmann::json& j, const char* key, double dflt, const std::string& where) {
  if (!j.contains(key) || j[key].is_null()) return dflt;
  if (!j[key].is_number()) throw Error(std::string("config key \"") + key + "\" must be a number", where);
  const double v = j[key].get<double>();
  if (!(v > 0)) throw Error(std::string("config key \"") + key + "\" must be above 0", where + ": " + key);
  return v;
}

std::string optional_string(const nlohmann::json& j, const char* key, const std::string& where) {
  if (!j.contains(key) || j[key].is_null()) return "";
  if (!j[key].is_string()) throw Error(std::string("config key \"") + key + "\" must be a string", where);
  return j[key].get<std::string>();
}

bool optional_bool(const nlohmann::json& j, const char* key, bool dflt, const std::string& where) {
  if (!j.contains(key) || j[key].is_null()) return dflt;
  if (!j[key].is_boolean()) throw Error(std::string("config key \"") + key + "\" must be true or false", where);
  return j[key].get<bool>();
}

}  // namespace

ModelConfig ModelConfig::from_json(const nlohmann::json& j, const std::string& where) {
  if (!j.is_object()) throw Error("config is not a JSON object", where);
  ModelConfig c;
  if (!j.contains("model_type") || !j["model_type"].is_string())
    throw Error("missing config key \"model_type\"", where, "set it to one of: llama, mistral, qwen2, qwen3");
  c.model_type = j["model_type"].get<std::string>();
  if (c.model_type != "llama" && c.model_type != "mistral" && c.model_type != "qwen2" && c.model_type != "qwen3")
    throw Error("unsupported model_type \"" + c.model_type + "\"", where,
                "rlaif supports llama, mistral, qwen2 and qwen3 causal language models");
  c.vocab_size = required_int(j, "vocab_size", where);
  c.hidden_size = required_int(j, "hidden_size", where);
  c.intermediate_size = required_int(j, "intermediate_size", where);
  c.num_hidden_layers = required_int(j, "num_hidden_layers", where);
  c.num_attention_heads = required_int(j, "num_attention_heads", where);
  c.num_key_value_heads = optional_int(j, "num_key_value_heads", c.num_attention_heads, where, 1);
  c.head_dim = optional_int(j, "head_dim", c.hidden_size / c.num_attention_heads, where, 1);
  c.max_position_embeddings = optional_int(j, "max_position_embeddings", c.max_position_embeddings, where, 1);
  c.rms_norm_eps = optional_positive(j, "rms_norm_eps", c.rms_norm_eps, where);
  c.rope_theta = optional_positive(j, "rope_theta", c.rope_theta, where);
  c.tie_word_embeddings = optional_bool(j, "tie_word_embeddings", false, where);
  // As transformers' config classes: attention_bias exists for llama and qwen3 only (qwen2 always has q/k/v biases,
  // mistral none), mlp_bias for llama only; elsewhere the key is ignored.
  if (c.model_type == "llama" || c.model_type == "qwen3")
    c.attention_bias = optional_bool(j, "attention_bias", false, where);
  if (c.model_type == "llama") c.mlp_bias = optional_bool(j, "mlp_bias", false, where);
  if (c.model_type == "mistral" || c.model_type == "qwen2") {
    bool use_sw = c.model_type == "mistral" || optional_bool(j, "use_sliding_window", false, where);
    if (use_sw) c.sliding_window = optional_int(j, "sliding_window", 0, where, 0);
  }
  if (j.contains("torch_dtype") && j["torch_dtype"].is_string()) c.torch_dtype = j["torch_dtype"].get<std::string>();
  if (j.contains("hidden_act") && j["hidden_act"] != "silu")
    throw Error("unsupported hidden_act " + j["hidden_act"].dump(), where + ": hidden_act",
                "rlaif implements the SwiGLU MLP with silu");

  if (j.contains("rope_scaling") && !j["rope_scaling"].is_null()) {
    const auto& rs = j["rope_scaling"];
    std::string w = where + ": rope_scaling";
    if (!rs.is_object()) throw Error("rope_scaling must be an object or null", w);
    std::string type = rs.contains("rope_type") ? optional_string(rs, "rope_type", w) : optional_string(rs, "type", w);
    if (type == "default") type = "";
    if (type != "" && type != "llama3")
      throw Error("unsupported rope_scaling type \"" + type + "\"", w, "rlaif implements rope_scaling of type llama3");
    c.rope_scaling.type = type;
    if (type == "llama3") {
      c.rope_scaling.factor = optional_positive(rs, "factor", 8.0, w);
      c.rope_scaling.low_freq_factor = optional_positive(rs, "low_freq_factor", 1.0, w);
      c.rope_scaling.high_freq_factor = optional_positive(rs, "high_freq_factor", 4.0, w);
      c.rope_scaling.original_max_position_embeddings =
          optional_int(rs, "original_max_position_embeddings", 8192, w, 1);
    }
  }

  c.bos_token_id = optional_int(j, "bos_token_id", -1, where, 0);
  if (j.contains("eos_token_id") && !j["eos_token_id"].is_null()) {
    const auto& e = j["eos_token_id"];
    if (e.is_number_integer())
      c.eos_token_ids.push_back(e.get<int64_t>());
    else if (e.is_array()) {
      for (const auto& x : e) {
        if (!x.is_number_integer()) throw Error("eos_token_id list must hold integers", where + ": eos_token_id");
        c.eos_token_ids.push_back(x.get<int64_t>());
      }
    } else
      throw Error("eos_token_id must be an integer or a list of integers", where + ": eos_token_id");
    for (int64_t id : c.eos_token_ids)
      if (id < 0) throw Error("eos_token_id must not be negative, got " + std::to_string(id), where + ": eos_token_id");
  }

  c.qkv_bias = c.model_type == "qwen2" || c.attention_bias;
  c.o_bias = c.model_type != "qwen2" && c.attention_bias;
  c.qk_norm = c.model_type == "qwen3";
  if (c.num_attention_heads % c.num_key_value_heads != 0)
    throw Error("num_attention_heads (" + std::to_string(c.num_attention_heads) +
                    ") is not a multiple of num_key_value_heads (" + std::to_string(c.num_key_value_heads) + ")",
                where, "grouped-query attention needs each key/value head to serve a whole number of query heads");
  if (c.head_dim < 1)
    throw Error("hidden_size (" + std::to_string(c.hidden_size) + ") is smaller than num_attention_heads", where,
                "set head_dim, or check hidden_size and num_attention_heads");
  if (c.head_dim % 2 != 0) throw Error("head_dim must be even for rotary embeddings", where + ": head_dim");
  // Sizes whose product no machine holds are a typo (and would overflow the counts below): refuse them here.
  const double params =
      static_cast<double>(c.vocab_size) * c.hidden_size * 2 +
      static_cast<double>(c.num_hidden_layers) *
          (static_cast<double>(c.hidden_size) * (c.num_attention_heads + c.num_key_value_heads) * c.head_dim * 2 +
           3.0 * c.hidden_size * c.intermediate_size);
  if (params > 1e14)
    throw Error("the sizes describe about " + std::to_string(params / 1e12) + " trillion parameters", where,
                "check vocab_size, hidden_size, intermediate_size, num_hidden_layers and the head counts");
  return c;
}

nlohmann::json ModelConfig::to_json() const {
  static const std::map<std::string, std::string> kArch = {{"llama", "LlamaForCausalLM"},
                                                           {"mistral", "MistralForCausalLM"},
                                                           {"qwen2", "Qwen2ForCausalLM"},
                                                           {"qwen3", "Qwen3ForCausalLM"}};
  nlohmann::json j;
  j["architectures"] = {kArch.at(model_type)};
  j["model_type"] = model_type;
  j["vocab_size"] = vocab_size;
  j["hidden_size"] = hidden_size;
  j["intermediate_size"] = intermediate_size;
  j["num_hidden_layers"] = num_hidden_layers;
  j["num_attention_heads"] = num_attention_heads;
  j["num_key_value_heads"] = num_key_value_heads;
  j["head_dim"] = head_dim;
  j["max_position_embeddings"] = max_position_embeddings;
  j["rms_norm_eps"] = rms_norm_eps;
  j["rope_theta"] = rope_theta;
  if (rope_scaling.type.empty())
    j["rope_scaling"] = nullptr;
  else
    j["rope_scaling"] = {{"rope_type", rope_scaling.type},
                         {"factor", rope_scaling.factor},
                         {"low_freq_factor", rope_scaling.low_freq_factor},
                         {"high_freq_factor", rope_scaling.high_freq_factor},
                         {"original_max_position_embeddings", rope_scaling.original_max_position_embeddings}};
  j["tie_word_embeddings"] = tie_word_embeddings;
  j["hidden_act"] = "silu";
  j["initializer_range"] = 0.02;
  if (model_type == "llama" || model_type == "qwen3") j["attention_bias"] = attention_bias;
  if (model_type == "llama") j["mlp_bias"] = mlp_bias;
  if (model_type == "mistral") j["sliding_window"] = sliding_window ? nlohmann::json(sliding_window) : nlohmann::json();
  if (model_type == "qwen2" || model_type == "qwen3") {
    j["use_sliding_window"] = sliding_window != 0;
    j["sliding_window"] = sliding_window ? nlohmann::json(sliding_window) : nlohmann::json();
  }
  j["torch_dtype"] = torch_dtype;
  j["use_cache"] = true;
  if (bos_token_id >= 0) j["bos_token_id"] = bos_token_id;
  if (eos_token_ids.size() == 1)
    j["eos_token_id"] = eos_token_ids[0];
  else if (!eos_token_ids.empty())
    j["eos_token_id"] = eos_token_ids;
  j["transformers_version"] = "4.46.0";
  return j;
}

int64_t ModelConfig::num_parameters() const {
  int64_t C = hidden_size, I = intermediate_size, D = head_dim;
  int64_t q = num_attention_heads * D, kv = num_key_value_heads * D;
  int64_t attn = C * q + 2 * C * kv + q * C + (qkv_bias ? q + 2 * kv : 0) + (o_bias ? C : 0) + (qk_norm ? 2 * D : 0);
  int64_t mlp = 3 * C * I + (mlp_bias ? 2 * I + C : 0);
  int64_t layer = attn + mlp + 2 * C;
  return vocab_size * C * (tie_word_embeddings ? 1 : 2) + num_hidden_layers * layer + C;
}

}  // namespace rlaif
