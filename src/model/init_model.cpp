#include "rlaif/init_model.h"

#include <algorithm>
#include <filesystem>
#include <sstream>

#include "rlaif/atomic_file.h"
#include "rlaif/error.h"
#include "rlaif/model_folder.h"
#include "rlaif/tokenizer.h"

namespace rlaif {
namespace {

const std::vector<std::string> kSpecialTokens = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};

}  // namespace

ModelConfig init_model_config(const InitModelOptions& o) {
  if (o.arch != "llama" && o.arch != "mistral" && o.arch != "qwen2" && o.arch != "qwen3")
    throw Error("unknown architecture \"" + o.arch + "\"", "--arch", "use llama, mistral, qwen2 or qwen3");
  int64_t tok_vocab = 256 + static_cast<int64_t>(kSpecialTokens.size());
  nlohmann::json eos = {256, 258}, bos = nullptr;
  if (!o.tokenizer.empty()) {
    Tokenizer tok = Tokenizer::load(o.tokenizer);
    tok_vocab = tok.vocab_size();
    eos = nlohmann::json::array();
    for (int64_t id : {tok.eos_id(), tok.token_id("<|im_end|>"), tok.token_id("<|eot_id|>")})
      if (id >= 0 && std::find(eos.begin(), eos.end(), id) == eos.end()) eos.push_back(id);
    if (eos.empty())
      throw Error("the tokenizer names no eos token", o.tokenizer + "/tokenizer_config.json",
                  "set \"eos_token\" there");
    if (tok.bos_id() >= 0) bos = tok.bos_id();
  }
  nlohmann::json j = {{"model_type", o.arch},        {"vocab_size", tok_vocab},
                      {"rms_norm_eps", 1e-6},        {"max_position_embeddings", 2048},
                      {"tie_word_embeddings", true}, {"eos_token_id", eos}};
  if (!bos.is_null()) j["bos_token_id"] = bos;
  std::string spec = o.size;
  if (spec == "tiny")
    spec = "hidden=64,layers=2,heads=4,kv_heads=2,intermediate=176";
  else if (spec == "small")
    spec = "hidden=256,layers=4,heads=8,kv_heads=4,intermediate=688";
  else if (spec == "smollm2-135m")
    spec =
        "hidden=576,layers=30,heads=9,kv_heads=3,intermediate=1536,vocab=49152,tied=1,rope_theta=100000,max_pos=8192";
  else if (spec.find('=') == std::string::npos)
    throw Error("unknown size \"" + o.size + "\"", "--size",
                "use tiny, small, smollm2-135m or a list like hidden=64,layers=2,heads=4");
  std::stringstream ss(spec);
  std::string item;
  while (std::getline(ss, item, ',')) {
    auto eq = item.find('=');
    if (eq == std::string::npos) throw Error("expected key=value, got \"" + item + "\"", "--size");
    std::string k = item.substr(0, eq), v = item.substr(eq + 1);
    try {
      if (k == "hidden")
        j["hidden_size"] = std::stoll(v);
      else if (k == "layers")
        j["num_hidden_layers"] = std::stoll(v);
      else if (k == "heads")
        j["num_attention_heads"] = std::stoll(v);
      else if (k == "kv_heads")
        j["num_key_value_heads"] = std::stoll(v);
      else if (k == "intermediate")
        j["intermediate_size"] = std::stoll(v);
      else if (k == "vocab")
        j["vocab_size"] = std::max<int64_t>(std::stoll(v), tok_vocab);
      else if (k == "head_dim")
        j["head_dim"] = std::stoll(v);
      else if (k == "tied")
        j["tie_word_embeddings"] = v == "1" || v == "true";
      else if (k == "rope_theta")
        j["rope_theta"] = std::stod(v);
      else if (k == "max_pos")
        j["max_position_embeddings"] = std::stoll(v);
      else if (k == "rope_scaling" && v == "llama3")
        j["rope_scaling"] = {{"rope_type", "llama3"},
                             {"factor", 8.0},
                             {"low_freq_factor", 1.0},
                             {"high_freq_factor", 4.0},
                             {"original_max_position_embeddings", 64}};
      else
        throw Error("unknown key \"" + k + "\"", "--size",
                    "keys: hidden, layers, heads, kv_heads, intermediate, vocab, head_dim, tied, rope_theta, max_pos, "
                    "rope_scaling");
    } catch (const std::logic_error&) {
      throw Error("value of \"" + k + "\" is not a number: \"" + v + "\"", "--size");
    }
  }
  if (!j.contains("intermediate_size") && j.contains("hidden_size"))
    j["intermediate_size"] = j["hidden_size"].get<int64_t>() * 8 / 3;
  return ModelConfig::from_json(j, "--size " + o.size);
}

void init_model(const InitModelOptions& o, const std::string& out) {
  ModelConfig config = init_model_config(o);
  torch::ScalarType dtype = o.dtype == "float32"    ? torch::kFloat32
                            : o.dtype == "bfloat16" ? torch::kBFloat16
                            : o.dtype == "float16"  ? torch::kFloat16
                                                    : throw Error("unknown dtype \"" + o.dtype + "\"", "--dtype",
                                                                  "use float32, bfloat16 or float16");
  torch::manual_seed(o.seed);
  CausalLM model(config);
  {
    torch::NoGradGuard no_grad;
    for (auto& p : model->named_parameters()) {
      const std::string& name = p.key();
      auto& t = p.value();
      bool is_norm = name.find("norm") != std::string::npos;
      if (is_norm)
        t.normal_(1.0, 0.1);  // transformers uses ones; perturbed so tests see the weights
      else if (t.dim() == 1)
        t.normal_(0.0, 0.02);  // biases (transformers: zeros)
      else
        t.normal_(0.0, 0.02);
    }
  }
  std::filesystem::create_directories(out);
  SaveOptions save;
  if (o.tokenizer.empty()) {
    Tokenizer tok = Tokenizer::byte_level(kSpecialTokens);
    write_file_atomic((std::filesystem::path(out) / "tokenizer.json").string(), tok.to_tokenizer_json());
    write_file_atomic((std::filesystem::path(out) / "tokenizer_config.json").string(), tok.to_tokenizer_config_json());
  } else {
    save.tokenizer_from = o.tokenizer;  // save_model copies the tokenizer files
  }
  save.dtype = dtype;
  save.generation_config = {{"do_sample", true}, {"temperature", 1.0}};
  save_model(model, out, save);
}

}  // namespace rlaif
