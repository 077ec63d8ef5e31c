#include "rlaif/export.h"

#include <cmath>
#include <filesystem>

#include "gguf_export.h"
#include "rlaif/atomic_file.h"
#include "rlaif/error.h"
#include "rlaif/json_file.h"
#include "rlaif/model_folder.h"
#include "rlaif/model_source.h"

namespace fs = std::filesystem;

namespace rlaif {
namespace {

torch::ScalarType export_dtype(const std::string& dtype, const std::string& model_dir) {
  std::string name = dtype;
  if (name == "auto") {
    name = load_config(model_dir).torch_dtype;
    if (name != "bfloat16" && name != "float16") name = "float32";
  }
  if (name == "float32") return torch::kFloat32;
  if (name == "bfloat16") return torch::kBFloat16;
  if (name == "float16") return torch::kFloat16;
  throw Error("unknown dtype \"" + dtype + "\"", "--dtype", "use auto, float32, bfloat16 or float16");
}

// float16 tops out at 65504: a weight past it would be written as infinity.
void check_fits(CausalLM& model, torch::ScalarType dtype) {
  if (dtype != torch::kFloat16) return;
  for (const auto& p : model->named_parameters()) {
    const double peak = p.value().detach().abs().max().item<double>();
    if (peak > 65504)
      throw Error("holds " + std::to_string(peak) + ", past float16's largest value 65504", "tensor " + p.key(),
                  "export with --dtype bfloat16 or float32");
  }
}

// Returns the dtype written, by name.
std::string write_hf(const ModelSource& source, const std::string& dir, const ExportOptions& o) {
  const torch::ScalarType dtype = export_dtype(o.dtype, source.model_dir);
  CausalLM model = load_merged_model(source);
  check_fits(model, dtype);
  SaveOptions so;
  so.dtype = dtype;
  so.max_shard_bytes = o.max_shard_bytes;
  so.tokenizer_from = source.model_dir;
  const fs::path gen = fs::path(source.model_dir) / "generation_config.json";
  if (fs::exists(gen)) so.generation_config = read_json_file(gen.string());
  save_model(model, dir, so);
  return load_config(dir).torch_dtype;
}

std::string write_gguf_file(const ModelSource& source, const std::string& path, const ExportOptions& o) {
  const GgmlType type = ggml_type_from_name(o.type, "--type");
  CausalLM model = load_merged_model(source);
  if (type == GgmlType::F16) check_fits(model, torch::kFloat16);
  const std::string name = fs::path(source.model_dir).lexically_normal().filename().string();
  return write_gguf(model, source.model_dir, name.empty() ? "model" : name, path, type);
}

void write_peft(const ModelSource& source, const std::string& dir) {
  if (source.adapter_dir.empty())
    throw Error("holds full weights, not a LoRA adapter", source.model_dir, "export it with --format hf");
  const std::string cpath = (fs::path(source.adapter_dir) / "adapter_config.json").string();
  auto config = read_json_file(cpath);
  config["base_model_name_or_path"] = fs::absolute(source.model_dir).lexically_normal().string();
  fs::create_directories(dir);
  write_file_atomic((fs::path(dir) / "adapter_model.safetensors").string(),
                    read_file((fs::path(source.adapter_dir) / "adapter_model.safetensors").string()));
  write_file_atomic((fs::path(dir) / "adapter_config.json").string(), config.dump(2) + "\n");
}

std::string describe(const ModelSource& source) {
  return source.adapter_dir.empty() ? source.model_dir : source.adapter_dir + " on " + source.model_dir;
}

}  // namespace

int64_t parse_byte_size(const std::string& text, const std::string& where) {
  size_t end = 0;
  double number = 0;
  try {
    number = std::stod(text, &end);
  } catch (const std::exception&) {
    end = 0;
  }
  std::string unit = text.substr(end);
  for (auto& ch : unit) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  const std::pair<const char*, double> units[] = {
      {"", 1},     {"B", 1},        {"KB", 1e3},        {"MB", 1e6},
      {"GB", 1e9}, {"KIB", 1024.0}, {"MIB", 1048576.0}, {"GIB", 1073741824.0}};
  for (const auto& [name, scale] : units)
    if (end > 0 && unit == name && number > 0 && number * scale < 9e18) return static_cast<int64_t>(number * scale);
  throw Error("\"" + text + "\" is not a size", where, "e.g. 5GB, 500MB or 2GiB");
}

std::string export_model(const std::string& input, const std::string& out, const ExportOptions& o) {
  if (o.format != "hf" && o.format != "peft" && o.format != "gguf")
    throw Error("unknown format \"" + o.format + "\"", "--format", "use hf, gguf or peft");
  if (o.format == "gguf") {
    ggml_type_from_name(o.type, "--type");  // a bad --type fails before the model loads
    if (fs::exists(out)) throw Error("already exists", out, "choose a new file name, or remove this one");
    const ModelSource source = resolve_model_source(input, o.adapter, o.base);
    const fs::path parent = fs::absolute(out).parent_path();
    fs::create_directories(parent);
    const std::string what = write_gguf_file(source, out, o);  // written under a temporary name, then renamed
    return "wrote " + out + " (gguf, " + what + ") from " + describe(source);
  }
  if (fs::exists(out) && !(fs::is_directory(out) && fs::is_empty(out)))
    throw Error("already exists", out, "choose a new folder, or remove this one");
  const ModelSource source = resolve_model_source(input, o.adapter, o.base);
  // Written beside `out` under a temporary name, renamed when complete: an interrupted export leaves no folder
  // that looks finished.
  const fs::path final_dir = fs::absolute(out).lexically_normal();
  const fs::path tmp = final_dir.parent_path() / ("." + final_dir.filename().string() + ".export-tmp");
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  std::string what = o.format;
  try {
    if (o.format == "hf")
      what += ", " + write_hf(source, tmp.string(), o);
    else
      write_peft(source, tmp.string());
  } catch (...) {
    fs::remove_all(tmp);
    throw;
  }
  if (fs::exists(final_dir)) fs::remove(final_dir);  // the empty folder checked above
  fs::rename(tmp, final_dir);
  return "wrote " + out + " (" + what + ") from " + describe(source);
}

}  // namespace rlaif
