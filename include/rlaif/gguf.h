// GGUF v3, the single-file format llama.cpp, Ollama and LM Studio load: a writer, and the ggml tensor types rlaif
// writes (F32, F16, BF16 and Q8_0).
//
// Layout (little-endian): "GGUF", version 3, tensor count, metadata count, the metadata (key, value type, value), the
// tensor table (name, dims with ne[0] the innermost, ggml type, offset into the data), padding to the alignment (32),
// then each tensor's data at its offset, each padded to the alignment.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

namespace rlaif {

enum class GgmlType : uint32_t { F32 = 0, F16 = 1, Q8_0 = 8, BF16 = 30 };

// "f32", "f16", "bf16", "q8_0" (the names llama.cpp's tools use); throws rlaif::Error naming `where` otherwise.
GgmlType ggml_type_from_name(const std::string& name, const std::string& where);
const char* ggml_type_name(GgmlType type);

// Q8_0 as ggml's reference quantizer writes it: blocks of 32 values, each an IEEE half scale d = max|x| / 127
// followed by 32 int8 values round(x / d) (halves away from zero). `values` is float32 with numel % 32 == 0.
std::string quantize_q8_0(const torch::Tensor& values);

class GgufWriter {
 public:
  void add_string(const std::string& key, const std::string& value);
  void add_u32(const std::string& key, uint32_t value);
  void add_f32(const std::string& key, float value);
  void add_bool(const std::string& key, bool value);
  void add_strings(const std::string& key, const std::vector<std::string>& values);
  void add_i32s(const std::string& key, const std::vector<int32_t>& values);
  void add_f32s(const std::string& key, const std::vector<float>& values);

  // A tensor in torch's shape (outermost first; GGUF stores the dims reversed) written as `type`. The tensor is
  // converted when write() reaches it, so a model's weights are never held twice.
  void add_tensor(const std::string& name, torch::Tensor value, GgmlType type);

  // Writes the file atomically (a temporary name, renamed when complete). Throws rlaif::Error naming the path.
  void write(const std::string& path) const;

 private:
  struct Tensor {
    std::string name;
    torch::Tensor value;
    GgmlType type;
  };
  void key(const std::string& name, uint32_t value_type);  // starts one key/value pair

  std::string metadata_;  // the encoded key/value pairs
  uint64_t metadata_count_ = 0;
  std::vector<Tensor> tensors_;
};

}  // namespace rlaif
