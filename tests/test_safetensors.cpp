// safetensors: exact format round trip, and every kind of lying or broken file gives a clear rlaif::Error.
#include "rlaif/safetensors.h"

#include <torch/torch.h>

#include "test_util.h"

using rlaif_test::expect_error;
using rlaif_test::TempDir;

namespace {

// Writes a safetensors file by hand: 8-byte little-endian length (or `len_override`), header, data.
void write_raw(const std::string& path, const std::string& header, const std::string& data, int64_t len_override = -1) {
  uint64_t n = len_override >= 0 ? static_cast<uint64_t>(len_override) : header.size();
  std::string bytes;
  for (int i = 0; i < 8; ++i) bytes.push_back(static_cast<char>((n >> (8 * i)) & 0xFF));
  rlaif_test::write_text(path, bytes + header + data);
}

}  // namespace

TEST(Safetensors, RoundTripIsBitIdenticalForEveryDtype) {
  TempDir dir;
  torch::manual_seed(3);
  std::vector<std::pair<std::string, torch::Tensor>> in = {
      {"a.f32", torch::randn({3, 5})},
      {"b.bf16", torch::randn({7}).to(torch::kBFloat16)},
      {"c.f16", torch::randn({2, 3}).to(torch::kFloat16)},
      {"d.i64", torch::arange(5, torch::kInt64)},
      {"e.u8", torch::arange(3, torch::kUInt8)},
      {"f.scalar", torch::tensor(2.5f).reshape({})},
      {"g.empty", torch::zeros({0, 4})},
  };
  rlaif::write_safetensors(dir / "x.safetensors", in, {{"format", "pt"}});
  rlaif::SafetensorsFile f(dir / "x.safetensors");
  EXPECT_EQ(f.metadata().at("format"), "pt");
  ASSERT_EQ(f.entries().size(), in.size());
  for (const auto& nt : in) {
    auto t = f.get(nt.first);
    EXPECT_EQ(t.scalar_type(), nt.second.scalar_type()) << nt.first;
    EXPECT_EQ(t.sizes(), nt.second.sizes()) << nt.first;
    EXPECT_TRUE(torch::equal(t, nt.second)) << nt.first;
  }
}

TEST(Safetensors, LayoutFollowsThePublishedFormat) {
  TempDir dir;
  rlaif::write_safetensors(dir / "x.safetensors",
                           {{"w", torch::tensor({1.0f, 2.0f})}, {"h", torch::tensor({1.0f}).to(torch::kFloat16)}});
  std::string bytes = rlaif::read_file(dir / "x.safetensors");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(bytes[i]);
  EXPECT_EQ(n % 8, 0u) << "header padded to 8 bytes";
  auto header = nlohmann::json::parse(bytes.substr(8, n));
  EXPECT_EQ(header["w"]["dtype"], "F32");
  EXPECT_EQ(header["w"]["data_offsets"], nlohmann::json({0, 8}));  // larger elements first, so aligned
  EXPECT_EQ(header["h"]["data_offsets"], nlohmann::json({8, 10}));
  EXPECT_EQ(bytes.size(), 8 + n + 10);
  float w1;
  std::memcpy(&w1, bytes.data() + 8 + n + 4, 4);
  EXPECT_EQ(w1, 2.0f);
}

TEST(Safetensors, MissingFile) {
  TempDir dir;
  expect_error([&] { rlaif::SafetensorsFile f(dir / "nope.safetensors"); }, {"nope.safetensors", "cannot open"});
}

TEST(Safetensors, FileShorterThanLengthField) {
  TempDir dir;
  rlaif_test::write_text(dir / "t.safetensors", "abc");
  expect_error([&] { rlaif::SafetensorsFile f(dir / "t.safetensors"); }, {"t.safetensors", "truncated"});
}

TEST(Safetensors, TruncatedHeader) {
  TempDir dir;
  write_raw(dir / "t.safetensors", R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", "", 500);
  expect_error([&] { rlaif::SafetensorsFile f(dir / "t.safetensors"); }, {"t.safetensors", "truncated"});
}

TEST(Safetensors, TruncatedData) {
  TempDir dir;
  write_raw(dir / "t.safetensors", R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", std::string(9, '\0'));
  expect_error([&] { rlaif::SafetensorsFile f(dir / "t.safetensors"); }, {"tensor a", "outside the data section"});
}

TEST(Safetensors, AbsurdHeaderLength) {
  TempDir dir;
  write_raw(dir / "t.safetensors", "{}", "", int64_t(1) << 40);
  expect_error([&] { rlaif::SafetensorsFile f(dir / "t.safetensors"); }, {"t.safetensors", "absurd header length"});
}

TEST(Safetensors, HeaderNotJson) {
  TempDir dir;
  write_raw(dir / "t.safetensors", "{not json", "");
  expect_error([&] { rlaif::SafetensorsFile f(dir / "t.safetensors"); }, {"t.safetensors", "not valid JSON"});
}

TEST(Safetensors, UnknownDtype) {
  TempDir dir;
  write_raw(dir / "t.safetensors", R"({"a":{"dtype":"F8_E9","shape":[1],"data_offsets":[0,1]}})", "x");
  expect_error([&] { rlaif::SafetensorsFile f(dir / "t.safetensors"); }, {"tensor a", "unknown dtype \"F8_E9\""});
}

TEST(Safetensors, ByteCountDisagreesWithShape) {
  TempDir dir;
  write_raw(dir / "t.safetensors", R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", std::string(8, '\0'));
  expect_error([&] { rlaif::SafetensorsFile f(dir / "t.safetensors"); }, {"tensor a", "disagrees with dtype F32"});
}

TEST(Safetensors, OverlappingTensors) {
  TempDir dir;
  write_raw(
      dir / "t.safetensors",
      R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
      std::string(12, '\0'));
  expect_error([&] { rlaif::SafetensorsFile f(dir / "t.safetensors"); }, {"overlap", "tensor b"});
}

TEST(Safetensors, HoleInData) {
  TempDir dir;
  write_raw(
      dir / "t.safetensors",
      R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
      std::string(12, '\0'));
  expect_error([&] { rlaif::SafetensorsFile f(dir / "t.safetensors"); }, {"hole"});
}

TEST(Safetensors, NegativeOffsetsAndBadShape) {
  TempDir dir;
  write_raw(dir / "t.safetensors", R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", std::string(4, '\0'));
  expect_error([&] { rlaif::SafetensorsFile f(dir / "t.safetensors"); }, {"tensor a", "shape"});
  write_raw(dir / "u.safetensors", R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}})", std::string(4, '\0'));
  expect_error([&] { rlaif::SafetensorsFile f(dir / "u.safetensors"); }, {"tensor a", "data_offsets"});
}

TEST(Safetensors, MissingTensorByName) {
  TempDir dir;
  rlaif::write_safetensors(dir / "x.safetensors", {{"w", torch::ones({2})}});
  rlaif::SafetensorsFile f(dir / "x.safetensors");
  expect_error([&] { f.get("v"); }, {"tensor v", "not found"});
}

TEST(Safetensors, TensorOutlivesTheFileObject) {
  TempDir dir;
  rlaif::write_safetensors(dir / "x.safetensors", {{"w", torch::arange(6, torch::kFloat32)}});
  torch::Tensor t;
  { t = rlaif::SafetensorsFile(dir / "x.safetensors").get("w"); }
  EXPECT_FLOAT_EQ(t[5].item<float>(), 5.0f);  // the mapping is kept alive by the tensor
}
