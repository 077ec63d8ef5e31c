#include <ATen/Parallel.h>
#include <c10/util/Half.h>

#include <cmath>
#include <cstring>

#include "rlaif/atomic_file.h"
#include "rlaif/error.h"
#include "rlaif/gguf.h"

namespace rlaif {
namespace {

constexpr uint32_t kVersion = 3;
constexpr uint64_t kAlignment = 32;  // GGUF's default (general.alignment is not written)
constexpr int64_t kQ8Block = 32;
constexpr int64_t kQ8BlockBytes = 2 + kQ8Block;

// Metadata value types of the GGUF specification.
enum ValueType : uint32_t { kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7, kString = 8, kArray = 9 };

template <typename T>
void put(std::string& out, T value) {
  out.append(reinterpret_cast<const char*>(&value), sizeof value);  // little-endian hosts only (x86-64, aarch64)
}

void put_string(std::string& out, const std::string& s) {
  put<uint64_t>(out, s.size());
  out += s;
}

// An array value after its ARRAY type: element type, count, the elements.
template <typename T>
void put_array(std::string& out, uint32_t type, const std::vector<T>& values) {
  put(out, type);
  put<uint64_t>(out, values.size());
  for (T v : values) put(out, v);
}

// Bytes that `n` values take in `type` (n a multiple of 32 for Q8_0).
int64_t ggml_row_bytes(GgmlType type, int64_t n) {
  switch (type) {
    case GgmlType::F32:
      return 4 * n;
    case GgmlType::F16:
    case GgmlType::BF16:
      return 2 * n;
    case GgmlType::Q8_0:
      return n / kQ8Block * kQ8BlockBytes;
  }
  return 0;
}

uint64_t padded(uint64_t n) { return (n + kAlignment - 1) / kAlignment * kAlignment; }

// The tensor's bytes in `type`.
std::string encode(const torch::Tensor& value, GgmlType type) {
  torch::Tensor t;
  switch (type) {
    case GgmlType::F32:
      t = value.to(torch::kFloat32).contiguous();
      break;
    case GgmlType::F16:
      t = value.to(torch::kFloat16).contiguous();
      break;
    case GgmlType::BF16:
      t = value.to(torch::kBFloat16).contiguous();
      break;
    case GgmlType::Q8_0:
      return quantize_q8_0(value.to(torch::kFloat32).contiguous());
  }
  return std::string(static_cast<const char*>(t.data_ptr()), t.numel() * t.element_size());
}

}  // namespace

GgmlType ggml_type_from_name(const std::string& name, const std::string& where) {
  for (GgmlType t : {GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::Q8_0})
    if (name == ggml_type_name(t)) return t;
  throw Error("unknown GGUF type \"" + name + "\"", where, "use f32, f16, bf16 or q8_0");
}

const char* ggml_type_name(GgmlType type) {
  switch (type) {
    case GgmlType::F32:
      return "f32";
    case GgmlType::F16:
      return "f16";
    case GgmlType::BF16:
      return "bf16";
    case GgmlType::Q8_0:
      return "q8_0";
  }
  return "?";
}

std::string quantize_q8_0(const torch::Tensor& values) {
  TORCH_CHECK(values.scalar_type() == torch::kFloat32 && values.is_contiguous() && values.numel() % kQ8Block == 0,
              "quantize_q8_0: needs contiguous float32 with numel % 32 == 0");
  const float* x = values.data_ptr<float>();
  const int64_t blocks = values.numel() / kQ8Block;
  std::string out(blocks * kQ8BlockBytes, '\0');
  char* y = out.data();
  at::parallel_for(0, blocks, 1024, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      const float* xb = x + b * kQ8Block;
      float amax = 0;
      for (int64_t j = 0; j < kQ8Block; ++j) amax = std::max(amax, std::fabs(xb[j]));
      const float d = amax / 127;
      const float id = d != 0 ? 1.0f / d : 0.0f;
      const uint16_t half = c10::Half(d).x;
      char* yb = y + b * kQ8BlockBytes;
      std::memcpy(yb, &half, 2);
      for (int64_t j = 0; j < kQ8Block; ++j)
        yb[2 + j] = static_cast<char>(static_cast<int8_t>(std::roundf(xb[j] * id)));
    }
  });
  return out;
}

void GgufWriter::key(const std::string& name, uint32_t value_type) {
  put_string(metadata_, name);
  put(metadata_, value_type);
  ++metadata_count_;
}

void GgufWriter::add_string(const std::string& key, const std::string& value) {
  this->key(key, kString);
  put_string(metadata_, value);
}

void GgufWriter::add_u32(const std::string& key, uint32_t value) {
  this->key(key, kU32);
  put(metadata_, value);
}

void GgufWriter::add_f32(const std::string& key, float value) {
  this->key(key, kF32);
  put(metadata_, value);
}

void GgufWriter::add_bool(const std::string& key, bool value) {
  this->key(key, kBool);
  put<uint8_t>(metadata_, value ? 1 : 0);
}

void GgufWriter::add_strings(const std::string& key, const std::vector<std::string>& values) {
  this->key(key, kArray);
  put<uint32_t>(metadata_, kString);
  put<uint64_t>(metadata_, values.size());
  for (const auto& v : values) put_string(metadata_, v);
}

void GgufWriter::add_i32s(const std::string& key, const std::vector<int32_t>& values) {
  this->key(key, kArray);
  put_array(metadata_, kI32, values);
}

void GgufWriter::add_f32s(const std::string& key, const std::vector<float>& values) {
  this->key(key, kArray);
  put_array(metadata_, kF32, values);
}

void GgufWriter::add_tensor(const std::string& name, torch::Tensor value, GgmlType type) {
  TORCH_CHECK(value.dim() >= 1 && value.dim() <= 4, "GGUF tensor ", name, " needs 1 to 4 dims");
  TORCH_CHECK(type != GgmlType::Q8_0 || value.size(-1) % kQ8Block == 0, "GGUF tensor ", name,
              ": q8_0 needs rows that are a multiple of 32");
  tensors_.push_back({name, value.detach(), type});
}

void GgufWriter::write(const std::string& path) const {
  std::string header;
  header += "GGUF";
  put(header, kVersion);
  put<uint64_t>(header, tensors_.size());
  put<uint64_t>(header, metadata_count_);
  header += metadata_;
  uint64_t offset = 0;
  for (const auto& t : tensors_) {
    put_string(header, t.name);
    put<uint32_t>(header, t.value.dim());
    for (int64_t d = t.value.dim() - 1; d >= 0; --d) put<uint64_t>(header, t.value.size(d));  // ne[0] innermost
    put(header, static_cast<uint32_t>(t.type));
    put(header, offset);
    offset += padded(ggml_row_bytes(t.type, t.value.size(-1)) * (t.value.numel() / t.value.size(-1)));
  }
  header.resize(padded(header.size()), '\0');

  AtomicFile file(path);
  file.write(header);
  for (const auto& t : tensors_) {
    const std::string data = encode(t.value, t.type);
    file.write(data);
    file.write(std::string(padded(data.size()) - data.size(), '\0'));
  }
  file.commit();
}

}  // namespace rlaif
