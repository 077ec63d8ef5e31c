// rlaif export: a trained policy as a Hugging Face folder (LoRA merged), a GGUF file, or its adapter alone.
#include <cstdio>

#include "commands.h"
#include "rlaif/export.h"

namespace rlaif_cli {

Run add_export(CLI::App& app) {
  auto o = std::make_shared<rlaif::ExportOptions>();
  auto in = std::make_shared<std::string>(), out = std::make_shared<std::string>();
  auto shard = std::make_shared<std::string>("5GB");
  app.footer(
      "Input: a model folder, or a training run's final/ or checkpoint-N/ (full weights, or a LoRA adapter whose base "
      "is named in its adapter_config.json). The output folder (gguf: file) must not exist yet (a folder may be "
      "empty); "
      "it appears only when complete. transformers, vLLM and rlaif itself load the hf format; llama.cpp, Ollama and "
      "LM Studio load the gguf file; PEFT loads the peft format on its base.");
  app.add_option("--model", *in, "what to export: a model folder, or a run's final/ or checkpoint-N/")->required();
  app.add_option("--out", *out, "the folder to write (gguf: the file, e.g. model.gguf)")->required();
  app.add_option("--format", o->format,
                 "hf (a Hugging Face folder, LoRA merged), gguf (one GGUF file, LoRA merged, with the tokenizer) or "
                 "peft (the adapter alone)")
      ->capture_default_str();
  app.add_option("--type", o->type,
                 "gguf: f32, f16, bf16 or q8_0 for the matrices (norms and biases stay f32; q8_0 rows that are not "
                 "a multiple of 32 are written f16)")
      ->capture_default_str();
  app.add_option("--dtype", o->dtype, "hf: auto (the base model's torch_dtype), float32, bfloat16 or float16")
      ->capture_default_str();
  app.add_option("--max-shard-size", *shard,
                 "hf: weights past this are split into model-0000i-of-0000n.safetensors with an index (5GB, 500MB, "
                 "2GiB, or bytes)")
      ->capture_default_str();
  app.add_option("--adapter", o->adapter, "a PEFT LoRA adapter folder to merge into --model's weights");
  app.add_option("--base", o->base, "an adapter's base model folder (default: its adapter_config.json's)");
  return [o, in, out, shard]() {
    o->max_shard_bytes = rlaif::parse_byte_size(*shard, "--max-shard-size");
    std::printf("%s\n", rlaif::export_model(*in, *out, *o).c_str());
    return 0;
  };
}

}  // namespace rlaif_cli
