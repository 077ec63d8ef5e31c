// `rlaif export`: a trained policy written where users deploy models.
//   hf    a Hugging Face folder: LoRA merged (a full fine-tune as it is), in the dtype asked for, sharded with
//         model.safetensors.index.json past max_shard_bytes, tokenizer and generation config copied;
//   gguf  one GGUF v3 file (llama.cpp, Ollama, LM Studio): LoRA merged, matrices in f32, f16, bf16 or q8_0, with
//         the tokenizer and chat template, named and laid out as llama.cpp's converter writes them;
//   peft  the adapter alone (adapter_config.json naming its base, adapter_model.safetensors).
// The folder (or file) is written under a temporary name and renamed when complete.
#pragma once

#include <cstdint>
#include <string>

namespace rlaif {

struct ExportOptions {
  std::string format = "hf";             // hf | gguf | peft
  std::string dtype = "auto";            // hf: auto (the base's torch_dtype) | float32 | bfloat16 | float16
  std::string type = "f16";              // gguf: f32 | f16 | bf16 | q8_0 (norms and biases are always f32)
  int64_t max_shard_bytes = 5000000000;  // hf: transformers' default max_shard_size "5GB"
  std::string adapter;                   // an adapter folder to put on the model folder `input`
  std::string base;                      // an adapter's base folder ("" = its adapter_config.json's)
};

// Exports `input` (a model folder, or a run's final/ or checkpoint-N/) to the new folder `out` (gguf: the new file).
// Returns one line saying what was written. Throws rlaif::Error for a bad input, an existing non-empty `out`, or
// weights float16 cannot hold.
std::string export_model(const std::string& input, const std::string& out, const ExportOptions& options);

// "5GB", "500MB", "2GiB", "1000" (bytes) as transformers' max_shard_size reads them. Throws rlaif::Error.
int64_t parse_byte_size(const std::string& text, const std::string& where);

}  // namespace rlaif
