// LoRA adapters: creation with PEFT's initialisation, PEFT's on-disk format, merging.
#include "rlaif/lora.h"

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "rlaif/atomic_file.h"
#include "rlaif/error.h"
#include "rlaif/json_file.h"
#include "rlaif/safetensors.h"

namespace rlaif {
namespace {

const std::string kPeftPrefix = "base_model.model.";

bool targets(const LoraConfig& c, const std::string& name) {
  for (const auto& t : c.target_modules)
    if (t == name || t == "all-linear") return true;
  return false;
}

std::string module_path(int64_t layer, int proj) {
  return "model.layers." + std::to_string(layer) + (proj < 4 ? ".self_attn." : ".mlp.") + kLoraProjections[proj];
}

}  // namespace

void add_lora(CausalLM& model, const LoraConfig& config, uint64_t seed) {
  config.validate("lora");
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  std::map<std::string, LoraAdapter> adapters;
  torch::NoGradGuard no_grad;
  for (int64_t layer = 0; layer < model->config().num_hidden_layers; ++layer)
    for (int p = 0; p < 7; ++p) {
      if (!targets(config, kLoraProjections[p])) continue;
      auto path = module_path(layer, p);
      const auto& w = model->projection(path)->weight;  // [out, in]
      const int64_t out = w.size(0), in = w.size(1);
      LoraAdapter a;
      // kaiming_uniform_(a = sqrt(5)): bound = sqrt(6 / ((1 + 5) fan_in)) = 1 / sqrt(in)
      const double bound = 1.0 / std::sqrt(double(in));
      a.A = torch::empty({config.r, in}).uniform_(-bound, bound, gen).requires_grad_(true);
      a.B = torch::zeros({out, config.r}).requires_grad_(true);
      a.scale = config.scale();
      a.dropout = config.lora_dropout;
      adapters[path] = std::move(a);
    }
  model->set_lora(std::move(adapters));
}

std::vector<torch::Tensor> lora_parameters(CausalLM& model) {
  std::vector<torch::Tensor> out;
  for (const auto& kv : model->lora()) {
    out.push_back(kv.second.A);
    out.push_back(kv.second.B);
  }
  return out;
}

std::vector<std::pair<std::string, torch::Tensor>> lora_state(const CausalLM& model) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& [path, a] : model->lora()) {
    out.emplace_back(kPeftPrefix + path + ".lora_A.weight", a.A.detach());
    out.emplace_back(kPeftPrefix + path + ".lora_B.weight", a.B.detach());
  }
  return out;
}

void save_lora(const CausalLM& model, const LoraConfig& config, const std::string& dir, const std::string& base_model) {
  std::filesystem::create_directories(dir);
  nlohmann::ordered_json c = {{"peft_type", "LORA"},
                              {"task_type", "CAUSAL_LM"},
                              {"base_model_name_or_path", base_model},
                              {"r", config.r},
                              {"lora_alpha", config.lora_alpha},
                              {"lora_dropout", config.lora_dropout},
                              {"target_modules", config.target_modules},
                              {"bias", "none"},
                              {"fan_in_fan_out", false},
                              {"use_rslora", config.use_rslora},
                              {"use_dora", false},
                              {"init_lora_weights", true},
                              {"inference_mode", true},
                              {"modules_to_save", nullptr},
                              {"layers_to_transform", nullptr},
                              {"revision", nullptr}};
  write_safetensors(dir + "/adapter_model.safetensors", lora_state(model));
  write_file_atomic(dir + "/adapter_config.json", c.dump(2) + "\n");
}

LoraConfig load_lora(CausalLM& model, const std::string& dir) {
  const std::string cpath = dir + "/adapter_config.json";
  const nlohmann::json c = read_json_file(cpath, "is this a PEFT LoRA adapter folder?");
  auto need = [&](const char* key) -> const nlohmann::json& {
    if (!c.contains(key))
      throw Error(std::string("missing key \"") + key + "\"", cpath, "is this a PEFT LoRA adapter folder?");
    return c[key];
  };
  if (need("peft_type") != "LORA")
    throw Error("peft_type is " + c["peft_type"].dump() + ", only LORA is supported", cpath + ": peft_type");
  if (c.value("use_dora", false)) throw Error("DoRA adapters are not supported", cpath + ": use_dora");
  if (c.value("fan_in_fan_out", false))
    throw Error("fan_in_fan_out adapters are not supported", cpath + ": fan_in_fan_out");
  if (c.value("bias", std::string("none")) != "none")
    throw Error("bias \"" + c["bias"].get<std::string>() + "\" is not supported", cpath + ": bias",
                "use bias = \"none\"");
  LoraConfig config;
  try {
    config.r = need("r").get<int64_t>();
    config.lora_alpha = need("lora_alpha").get<double>();
    config.lora_dropout = c.value("lora_dropout", 0.0);
    config.use_rslora = c.value("use_rslora", false);
    auto tm = need("target_modules");
    config.target_modules =
        tm.is_string() ? std::vector<std::string>{tm.get<std::string>()} : tm.get<std::vector<std::string>>();
  } catch (const nlohmann::json::type_error& e) {
    throw Error(std::string("a key has the wrong type: ") + e.what(), cpath);
  }
  config.validate(cpath);

  const std::string wpath = dir + "/adapter_model.safetensors";
  SafetensorsFile file(wpath);
  std::map<std::string, LoraAdapter> adapters;
  for (const auto& [key, entry] : file.entries()) {
    const std::string suffix_a = ".lora_A.weight", suffix_b = ".lora_B.weight";
    bool is_a =
        key.size() > suffix_a.size() && key.compare(key.size() - suffix_a.size(), suffix_a.size(), suffix_a) == 0;
    bool is_b =
        key.size() > suffix_b.size() && key.compare(key.size() - suffix_b.size(), suffix_b.size(), suffix_b) == 0;
    if ((!is_a && !is_b) || key.compare(0, kPeftPrefix.size(), kPeftPrefix) != 0)
      throw Error("unexpected tensor \"" + key + "\"", wpath,
                  "only base_model.model.<module>.lora_A/B.weight are supported");
    auto path = key.substr(kPeftPrefix.size(), key.size() - kPeftPrefix.size() - suffix_a.size());
    auto& a = adapters[path];
    (is_a ? a.A : a.B) = file.get(key).to(torch::kFloat32).clone().requires_grad_(true);
    a.scale = config.scale();
    a.dropout = config.lora_dropout;
  }
  for (const auto& [path, a] : adapters)
    if (!a.A.defined() || !a.B.defined())
      throw Error("tensor " + kPeftPrefix + path + (a.A.defined() ? ".lora_B" : ".lora_A") + ".weight is missing",
                  wpath);
  if (adapters.empty()) throw Error("no adapter tensors", wpath);
  for (const auto& [path, a] : adapters)
    if (a.A.size(0) != config.r)
      throw Error(
          "rank " + std::to_string(a.A.size(0)) + " differs from adapter_config.json's r = " + std::to_string(config.r),
          wpath + ": " + kPeftPrefix + path + ".lora_A.weight");
  try {
    model->set_lora(std::move(adapters));
  } catch (const Error& e) {
    throw Error(e.what_part(), wpath + ": " + kPeftPrefix + e.where(), e.hint());
  }
  return config;
}

void merge_lora(CausalLM& model) {
  torch::NoGradGuard no_grad;
  for (const auto& [path, a] : model->lora()) model->projection(path)->weight.add_(torch::matmul(a.B, a.A) * a.scale);
  model->set_lora({});
}

}  // namespace rlaif
