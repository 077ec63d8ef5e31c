#include <cstdio>

#include "commands.h"
#include "rlaif/init_model.h"

namespace rlaif_cli {

Run add_init_model(CLI::App& app) {
  auto o = std::make_shared<rlaif::InitModelOptions>();
  auto out = std::make_shared<std::string>();
  app.add_option("--arch", o->arch, "architecture: llama, mistral, qwen2 (q/k/v biases) or qwen3 (q/k norms)")
      ->capture_default_str();
  app.add_option("--size", o->size,
                 "tiny (2 layers, width 64), small (4 layers, width 256), smollm2-135m, or a list such as "
                 "hidden=128,layers=3,heads=4,kv_heads=2,intermediate=344,vocab=512,tied=0,rope_scaling=llama3")
      ->capture_default_str();
  app.add_option("--out", *out, "folder to write (created if missing)")->required();
  app.add_option("--seed", o->seed, "random seed: the same seed writes the same weights")->capture_default_str();
  app.add_option("--tokenizer", o->tokenizer,
                 "folder with a real tokenizer.json (+ tokenizer_config.json) to use instead of the byte-level one; "
                 "the vocabulary grows to fit it");
  app.add_option("--dtype", o->dtype, "dtype of the stored weights: float32, bfloat16 or float16")
      ->capture_default_str();
  return [o, out]() {
    rlaif::init_model(*o, *out);
    std::printf("wrote %s (%s, %s, seed %llu)\n", out->c_str(), o->arch.c_str(), o->size.c_str(),
                static_cast<unsigned long long>(o->seed));
    return 0;
  };
}

}  // namespace rlaif_cli
