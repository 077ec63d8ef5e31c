#include "rlaif/model_source.h"

#include <filesystem>

#include "rlaif/error.h"
#include "rlaif/json_file.h"
#include "rlaif/lora.h"
#include "rlaif/model_folder.h"

namespace fs = std::filesystem;

namespace rlaif {
namespace {

bool is_adapter(const std::string& dir) { return fs::exists(fs::path(dir) / "adapter_config.json"); }

// The base named in an adapter's adapter_config.json, found as a folder.
std::string adapter_base(const std::string& adapter) {
  const std::string cpath = (fs::path(adapter) / "adapter_config.json").string();
  const auto c = read_json_file(cpath);
  if (!c.is_object() || !c.contains("base_model_name_or_path") || !c["base_model_name_or_path"].is_string())
    throw Error("no base_model_name_or_path", cpath, "pass the base model folder with --base");
  const std::string base = c["base_model_name_or_path"].get<std::string>();
  for (const fs::path& p : {fs::path(base), fs::path(adapter) / base})
    if (!base.empty() && fs::exists(p / "config.json")) return p.string();
  throw Error("the base model \"" + base + "\" is not a model folder here", cpath + ": base_model_name_or_path",
              "pass the base model folder with --base");
}

}  // namespace

ModelSource resolve_model_source(const std::string& dir, const std::string& adapter, const std::string& base) {
  if (!fs::is_directory(dir))
    throw Error("model folder not found", dir, "pass a model folder, or a LoRA run's final/ or checkpoint-N/");
  ModelSource s;
  if (is_adapter(dir)) {
    if (!adapter.empty())
      throw Error("is an adapter folder already", dir, "pass its base model folder, or drop --adapter");
    s.adapter_dir = dir;
    s.model_dir = base.empty() ? adapter_base(dir) : base;
  } else {
    if (!base.empty()) throw Error("--base is for adapter folders", dir, "drop --base (this is a model folder)");
    s.model_dir = dir;
    if (!adapter.empty()) {
      if (!is_adapter(adapter))
        throw Error("not an adapter folder (no adapter_config.json)", adapter,
                    "pass a LoRA run's final/ or checkpoint-N/, or a PEFT adapter folder");
      s.adapter_dir = adapter;
    }
  }
  if (!fs::exists(fs::path(s.model_dir) / "config.json"))
    throw Error("not a model folder (no config.json)", s.model_dir, "pass the base model folder with --base");
  return s;
}

CausalLM load_merged_model(const ModelSource& source) {
  CausalLM model = load_model(source.model_dir);
  if (!source.adapter_dir.empty()) {
    load_lora(model, source.adapter_dir);
    merge_lora(model);
  }
  return model;
}

}  // namespace rlaif
