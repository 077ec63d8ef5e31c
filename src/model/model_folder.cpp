#include "rlaif/model_folder.h"

#include <filesystem>
#include <memory>

#include "rlaif/atomic_file.h"
#include "rlaif/error.h"
#include "rlaif/json_file.h"
#include "rlaif/safetensors.h"

namespace fs = std::filesystem;

namespace rlaif {

const char* const kTokenizerFiles[] = {
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json",
    "merges.txt",     "tokenizer.model",       "chat_template.jinja",     nullptr};

namespace {

const char* dtype_json_name(torch::ScalarType t) {
  switch (t) {
    case torch::kBFloat16:
      return "bfloat16";
    case torch::kFloat16:
      return "float16";
    default:
      return "float32";
  }
}

}  // namespace

ModelConfig load_config(const std::string& dir) {
  std::string path = (fs::path(dir) / "config.json").string();
  if (!fs::is_directory(dir))
    throw Error("model folder not found", dir,
                "pass a Hugging Face model folder (with config.json and model.safetensors)");
  return ModelConfig::from_json(read_json_file(path, "a model folder needs config.json"), path);
}

std::vector<int64_t> load_eos_token_ids(const std::string& dir, const ModelConfig& config) {
  std::string path = (fs::path(dir) / "generation_config.json").string();
  if (fs::exists(path)) {
    auto j = read_json_file(path);
    if (j.contains("eos_token_id")) {
      const auto& e = j["eos_token_id"];
      if (e.is_number_integer()) return {e.get<int64_t>()};
      if (e.is_array()) {
        std::vector<int64_t> ids;
        for (const auto& x : e) {
          if (!x.is_number_integer()) throw Error("eos_token_id list must hold integers", path + ": eos_token_id");
          ids.push_back(x.get<int64_t>());
        }
        return ids;
      }
      if (!e.is_null()) throw Error("eos_token_id must be an integer or a list", path + ": eos_token_id");
    }
  }
  return config.eos_token_ids;
}

std::map<std::string, torch::Tensor> load_weights(const std::string& dir) {
  fs::path single = fs::path(dir) / "model.safetensors";
  fs::path index = fs::path(dir) / "model.safetensors.index.json";
  std::map<std::string, torch::Tensor> out;
  if (fs::exists(index)) {
    auto j = read_json_file(index.string());
    if (!j.contains("weight_map") || !j["weight_map"].is_object())
      throw Error("missing key \"weight_map\"", index.string(), "the index must map tensor names to shard files");
    std::map<std::string, std::unique_ptr<SafetensorsFile>> shards;
    for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
      if (!it->is_string()) throw Error("weight_map value is not a file name", index.string() + ": " + it.key());
      std::string file = it->get<std::string>();
      if (file.find('/') != std::string::npos || file.find("..") != std::string::npos)
        throw Error("shard name must be a plain file name in the folder", index.string() + ": " + it.key());
      auto& shard = shards[file];
      if (!shard) {
        fs::path p = fs::path(dir) / file;
        if (!fs::exists(p))
          throw Error("shard file not found", p.string(), "the index names it for tensor " + it.key());
        shard = std::make_unique<SafetensorsFile>(p.string());
      }
      if (!shard->contains(it.key()))
        throw Error("tensor listed in the index is missing from its shard", shard->path() + ": tensor " + it.key(),
                    "the index and the shards disagree; re-save the model");
      out[it.key()] = shard->get(it.key());
    }
    return out;
  }
  if (!fs::exists(single))
    throw Error("no weights found", single.string(),
                "a model folder needs model.safetensors, or model.safetensors.index.json with its shards");
  SafetensorsFile f(single.string());
  for (const auto& e : f.entries()) out[e.first] = f.get(e.first);
  return out;
}

CausalLM load_model(const std::string& dir) {
  ModelConfig config = load_config(dir);
  auto weights = load_weights(dir);
  // Name of the file each tensor lives in, for messages.
  fs::path index = fs::path(dir) / "model.safetensors.index.json";
  auto file_of = [&](const std::string& name) {
    if (fs::exists(index)) return index.string() + " -> tensor " + name;
    return (fs::path(dir) / "model.safetensors").string() + ": tensor " + name;
  };
  CausalLM model(config);
  torch::NoGradGuard no_grad;
  for (auto& p : model->named_parameters()) {
    auto it = weights.find(p.key());
    if (it == weights.end())
      throw Error("missing tensor", file_of(p.key()),
                  "the weights do not match config.json (model_type " + config.model_type +
                      "); was the folder written for another architecture?");
    const auto& w = it->second;
    if (!torch::isFloatingType(w.scalar_type()))
      throw Error(std::string("tensor has non-floating dtype ") + c10::toString(w.scalar_type()), file_of(p.key()),
                  "model weights must be F32, BF16 or F16");
    if (w.sizes() != p.value().sizes())
      throw Error(
          "shape " + c10::str(w.sizes()) + " does not fit the config, which needs " + c10::str(p.value().sizes()),
          file_of(p.key()), "config.json and the weights disagree (hidden_size, heads, vocab_size, ...)");
    p.value().copy_(w);
    weights.erase(it);
  }
  for (const auto& kv : weights) {
    if (kv.first == "lm_head.weight" && config.tie_word_embeddings) continue;  // some tied models store it too
    if (kv.first.find("rotary_emb.inv_freq") != std::string::npos) continue;   // recomputed from the config
    std::fprintf(stderr, "warning: %s: tensor %s is not used by a %s model\n", dir.c_str(), kv.first.c_str(),
                 config.model_type.c_str());
  }
  model->eval();
  return model;
}

void save_model(CausalLM& model, const std::string& dir, const SaveOptions& options) {
  fs::create_directories(dir);
  ModelConfig config = model->config();
  config.torch_dtype = dtype_json_name(options.dtype);
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  int64_t total = 0;
  for (const auto& p : model->named_parameters()) {
    auto t = p.value().detach().to(options.dtype).contiguous();
    total += t.numel() * t.element_size();
    tensors.emplace_back(p.key(), t);
  }
  // Remove the weights of an earlier save so the folder never mixes two.
  for (const auto& e : fs::directory_iterator(dir)) {
    std::string n = e.path().filename().string();
    if (n.rfind("model-", 0) == 0 && n.size() > 12 && n.substr(n.size() - 12) == ".safetensors") fs::remove(e.path());
  }
  fs::remove(fs::path(dir) / "model.safetensors.index.json");
  fs::remove(fs::path(dir) / "model.safetensors");

  if (total <= options.max_shard_bytes) {
    write_safetensors((fs::path(dir) / "model.safetensors").string(), tensors);
  } else {
    std::vector<std::vector<std::pair<std::string, torch::Tensor>>> shards(1);
    int64_t in_shard = 0;
    for (auto& t : tensors) {
      int64_t n = t.second.numel() * t.second.element_size();
      if (in_shard > 0 && in_shard + n > options.max_shard_bytes) {
        shards.emplace_back();
        in_shard = 0;
      }
      shards.back().push_back(t);
      in_shard += n;
    }
    nlohmann::json weight_map = nlohmann::json::object();
    char name[64];
    for (size_t i = 0; i < shards.size(); ++i) {
      std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", i + 1, shards.size());
      write_safetensors((fs::path(dir) / name).string(), shards[i]);
      for (const auto& t : shards[i]) weight_map[t.first] = name;
    }
    nlohmann::json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
    write_file_atomic((fs::path(dir) / "model.safetensors.index.json").string(), index.dump(2));
  }
  write_file_atomic((fs::path(dir) / "config.json").string(), config.to_json().dump(2));
  nlohmann::json gen = options.generation_config.is_object() ? options.generation_config : nlohmann::json::object();
  if (config.bos_token_id >= 0) gen["bos_token_id"] = config.bos_token_id;
  if (config.eos_token_ids.size() == 1)
    gen["eos_token_id"] = config.eos_token_ids[0];
  else if (!config.eos_token_ids.empty())
    gen["eos_token_id"] = config.eos_token_ids;
  gen["transformers_version"] = "4.46.0";
  write_file_atomic((fs::path(dir) / "generation_config.json").string(), gen.dump(2));
  if (!options.tokenizer_from.empty() && fs::absolute(options.tokenizer_from) != fs::absolute(dir)) {
    for (int i = 0; kTokenizerFiles[i]; ++i) {
      fs::path src = fs::path(options.tokenizer_from) / kTokenizerFiles[i];
      if (fs::exists(src)) write_file_atomic((fs::path(dir) / kTokenizerFiles[i]).string(), read_file(src.string()));
    }
  }
}

}  // namespace rlaif
