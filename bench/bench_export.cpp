// `rlaif export` time for each format, on a LoRA run's checkpoint of the SmolLM2-135M-shaped model (so every row
// loads the base, merges the adapter where the format needs it, converts and writes): hf float32 / bfloat16, gguf
// f32 / f16 / bf16 / q8_0, and peft. Prints one row per format: seconds and the size written.
// Usage: bench_export [--size smollm2-135m] [--dir DIR (default: a temporary folder, removed at the end)]
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "bench_args.h"
#include "rlaif/export.h"
#include "rlaif/init_model.h"
#include "rlaif/lora.h"
#include "rlaif/model_folder.h"
#include "rlaif/runtime.h"

namespace fs = std::filesystem;

namespace {

int64_t bytes_under(const fs::path& p) {
  if (fs::is_regular_file(p)) return fs::file_size(p);
  int64_t total = 0;
  for (const auto& e : fs::recursive_directory_iterator(p))
    if (e.is_regular_file()) total += e.file_size();
  return total;
}

}  // namespace

int main(int argc, char** argv) {
  std::string size = "smollm2-135m", dir;
  rlaif::ensure_runtime_env(argc, argv);
  bench::Args args("Usage: bench_export [--size smollm2-135m] [--dir DIR]\n");
  args.value("--size", size);
  args.value("--dir", dir);
  args.parse(argc, argv);
  const int threads = rlaif::set_num_threads(0);
  const bool temporary = dir.empty();
  if (temporary) {
    std::string tmpl = (fs::temp_directory_path() / "rlaif-bench-export-XXXXXX").string();
    dir = ::mkdtemp(tmpl.data());
  }
  const fs::path root(dir);
  rlaif::InitModelOptions o;
  o.arch = "llama";
  o.size = size;
  rlaif::init_model(o, (root / "base").string());
  {
    auto model = rlaif::load_model((root / "base").string());
    rlaif::LoraConfig c;
    c.r = 16;
    c.lora_alpha = 32;
    c.target_modules = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
    rlaif::add_lora(model, c, 1);
    rlaif::save_lora(model, c, (root / "checkpoint").string(), (root / "base").string());
  }

  struct Row {
    std::string label, format, dtype, type, out;
  };
  const std::vector<Row> rows = {{"hf float32", "hf", "float32", "", "hf32"},
                                 {"hf bfloat16", "hf", "bfloat16", "", "hf16"},
                                 {"gguf f32", "gguf", "", "f32", "m-f32.gguf"},
                                 {"gguf f16", "gguf", "", "f16", "m-f16.gguf"},
                                 {"gguf bf16", "gguf", "", "bf16", "m-bf16.gguf"},
                                 {"gguf q8_0", "gguf", "", "q8_0", "m-q8_0.gguf"},
                                 {"peft", "peft", "", "", "peft"}};
  std::printf(
      "rlaif export of a LoRA checkpoint (r=16, all linear layers) on the %s-shaped llama model, %s, %d threads\n",
      size.c_str(), bench::cpu_name().c_str(), threads);
  std::printf("%-12s %9s %10s\n", "format", "seconds", "MB written");
  for (const auto& r : rows) {
    rlaif::ExportOptions e;
    e.format = r.format;
    if (!r.dtype.empty()) e.dtype = r.dtype;
    if (!r.type.empty()) e.type = r.type;
    const auto t0 = std::chrono::steady_clock::now();
    rlaif::export_model((root / "checkpoint").string(), (root / r.out).string(), e);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("%-12s %9.2f %10.1f\n", r.label.c_str(), s, bytes_under(root / r.out) / 1e6);
    std::fflush(stdout);
  }
  if (temporary) fs::remove_all(root);
  return 0;
}
