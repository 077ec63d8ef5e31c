// `rlaif export --format gguf`: a model and its tokenizer as one GGUF file, named and laid out as llama.cpp's own
// converter (convert_hf_to_gguf.py) writes llama, mistral, qwen2 and qwen3 models.
#pragma once

#include <string>

#include "rlaif/gguf.h"
#include "rlaif/model.h"
#include "rlaif/model_config.h"

namespace rlaif {

// The tokenizer metadata of the Hugging Face tokenizer in `dir` (tokenizer.json, tokenizer_config.json) for the model
// `config` (its vocab_size rows; its bos/eos ids where the tokenizer names none): tokenizer.ggml.model ("gpt2" for
// byte-level BPE, "llama" for SentencePiece-style BPE), pre, tokens, token_type, scores or merges, special token ids,
// add_bos/add_eos, chat template. A tokenizer GGUF cannot express (another model type, a pre-tokenizer llama.cpp does
// not know) is an rlaif::Error naming it.
void add_gguf_vocab(GgufWriter& writer, const std::string& dir, const ModelConfig& config);

// Writes `model` (tokenizer from `tokenizer_dir`) to the file `path` with its matrices in `type` (norms, biases and
// the rope factors stay f32; q8_0 matrices whose rows are not a multiple of 32 are written f16, as llama.cpp's
// converter does). `name` is general.name. Returns a summary ("qwen3, q8_0, 48 tensors").
std::string write_gguf(CausalLM& model, const std::string& tokenizer_dir, const std::string& name,
                       const std::string& path, GgmlType type);

}  // namespace rlaif
