// Hugging Face model folders: write -> read is bit-identical (single file and sharded), the key names are
// transformers', and every broken folder gives one message naming the file and the tensor or key.
#include <filesystem>

#include <torch/torch.h>
#include "rlaif/init_model.h"
#include "rlaif/model_folder.h"
#include "rlaif/safetensors.h"

#include "test_util.h"

namespace fs = std::filesystem;
using rlaif_test::expect_error;
using rlaif_test::TempDir;

namespace {

std::string make_model(const TempDir& dir, const std::string& arch, const std::string& name = "m") {
  rlaif::InitModelOptions o;
  o.arch = arch;
  o.seed = 7;
  rlaif::init_model(o, dir / name);
  return dir / name;
}

void expect_same_parameters(rlaif::CausalLM& a, rlaif::CausalLM& b) {
  auto pa = a->named_parameters(), pb = b->named_parameters();
  ASSERT_EQ(pa.size(), pb.size());
  for (const auto& p : pa) {
    ASSERT_TRUE(pb.contains(p.key())) << p.key();
    EXPECT_TRUE(torch::equal(p.value(), pb[p.key()])) << p.key();
  }
}

nlohmann::json read_json(const std::string& path) { return nlohmann::json::parse(rlaif::read_file(path)); }
void write_json(const std::string& path, const nlohmann::json& j) { rlaif_test::write_text(path, j.dump()); }

}  // namespace

TEST(ModelFolder, ParameterNamesAreTheSafetensorsKeys) {
  TempDir dir;
  for (std::string arch : {"llama", "qwen2", "qwen3", "mistral"}) {
    auto path = make_model(dir, arch, arch);
    auto model = rlaif::load_model(path);
    rlaif::SafetensorsFile f(path + "/model.safetensors");
    std::set<std::string> keys, params;
    for (const auto& e : f.entries()) keys.insert(e.first);
    for (const auto& p : model->named_parameters()) params.insert(p.key());
    EXPECT_EQ(keys, params) << arch;
    EXPECT_TRUE(keys.count("model.layers.1.self_attn.q_proj.weight"));
    EXPECT_EQ(keys.count("model.layers.0.self_attn.q_proj.bias"), arch == "qwen2" ? 1u : 0u) << arch;
    EXPECT_EQ(keys.count("model.layers.0.self_attn.o_proj.bias"), 0u) << arch;
    EXPECT_EQ(keys.count("model.layers.0.self_attn.q_norm.weight"), arch == "qwen3" ? 1u : 0u) << arch;
  }
}

TEST(ModelFolder, SaveLoadRoundTripIsBitIdentical) {
  TempDir dir;
  auto path = make_model(dir, "qwen2");
  auto a = rlaif::load_model(path);
  rlaif::SaveOptions so;
  so.tokenizer_from = path;
  rlaif::save_model(a, dir / "copy", so);
  auto b = rlaif::load_model(dir / "copy");
  expect_same_parameters(a, b);
  EXPECT_TRUE(fs::exists(dir / "copy/tokenizer.json"));
  auto st = rlaif::SafetensorsFile(dir / "copy/model.safetensors");
  EXPECT_EQ(st.metadata().at("format"), "pt");
  EXPECT_EQ(read_json(dir / "copy/config.json")["architectures"][0], "Qwen2ForCausalLM");
  EXPECT_EQ(read_json(dir / "copy/generation_config.json")["eos_token_id"], nlohmann::json({256, 258}));
}

TEST(ModelFolder, ShardedSaveLoadRoundTrip) {
  TempDir dir;
  auto a = rlaif::load_model(make_model(dir, "llama"));
  rlaif::SaveOptions so;
  so.max_shard_bytes = 60000;  // the tiny model is ~440 kB: many shards
  rlaif::save_model(a, dir / "sharded", so);
  EXPECT_FALSE(fs::exists(dir / "sharded/model.safetensors"));
  auto index = read_json(dir / "sharded/model.safetensors.index.json");
  std::set<std::string> files;
  for (auto it = index["weight_map"].begin(); it != index["weight_map"].end(); ++it)
    files.insert(it->get<std::string>());
  EXPECT_GT(files.size(), 3u);
  int64_t total = 0;
  for (const auto& p : a->named_parameters()) total += p.value().numel() * 4;
  EXPECT_EQ(index["metadata"]["total_size"].get<int64_t>(), total);
  auto b = rlaif::load_model(dir / "sharded");
  expect_same_parameters(a, b);
  // Saving again unsharded removes the shards, so the folder never mixes two saves.
  rlaif::save_model(a, dir / "sharded");
  EXPECT_FALSE(fs::exists(dir / "sharded/model.safetensors.index.json"));
  EXPECT_EQ(std::distance(fs::directory_iterator(dir / "sharded"), fs::directory_iterator()), 3);
}

TEST(ModelFolder, Bf16AndF16WeightsLoad) {
  TempDir dir;
  for (std::string dtype : {"bfloat16", "float16"}) {
    rlaif::InitModelOptions o;
    o.dtype = dtype;
    rlaif::init_model(o, dir / dtype);
    auto m = rlaif::load_model(dir / dtype);
    rlaif::SafetensorsFile f(dir / dtype + "/model.safetensors");
    auto stored = f.get("model.embed_tokens.weight");
    EXPECT_EQ(rlaif::safetensors_dtype_name(stored.scalar_type()), dtype == "bfloat16" ? "BF16" : "F16");
    EXPECT_TRUE(torch::equal(m->model->embed_tokens->weight, stored.to(torch::kFloat32)));
    EXPECT_EQ(read_json(dir / dtype + "/config.json")["torch_dtype"], dtype);
  }
}

TEST(ModelFolder, MissingFolderAndConfig) {
  TempDir dir;
  expect_error([&] { rlaif::load_model(dir / "nothing"); }, {"nothing", "model folder not found"});
  fs::create_directories(dir / "empty");
  expect_error([&] { rlaif::load_model(dir / "empty"); }, {"empty/config.json", "file not found"});
}

TEST(ModelFolder, ConfigErrorsNameTheKey) {
  TempDir dir;
  auto path = make_model(dir, "llama");
  auto cfg = read_json(path + "/config.json");
  auto broken = cfg;
  broken.erase("hidden_size");
  write_json(path + "/config.json", broken);
  expect_error([&] { rlaif::load_model(path); }, {"config.json", "missing config key \"hidden_size\""});
  broken = cfg;
  broken["model_type"] = "gpt_neox";
  write_json(path + "/config.json", broken);
  expect_error([&] { rlaif::load_model(path); }, {"config.json", "unsupported model_type \"gpt_neox\"", "llama"});
  broken = cfg;
  broken["num_key_value_heads"] = 3;
  write_json(path + "/config.json", broken);
  expect_error([&] { rlaif::load_model(path); }, {"num_key_value_heads"});
  rlaif_test::write_text(path + "/config.json", "{\n  \"model_type\": \"llama\",\n  oops\n}");
  expect_error([&] { rlaif::load_model(path); }, {"config.json:3", "invalid JSON"});
  rlaif_test::write_text(path + "/config.json", "{\"model_type\": \"llama\", \"rope_theta\": 1e999}");
  expect_error([&] { rlaif::load_model(path); }, {"config.json", "invalid JSON", "overflow"});  // (found by fuzzing)
}

// Values a config.json can hold that no model has: each is an error naming the key (a division by zero, NaN norms
// or an overflowing parameter count before), and keys the architecture's transformers class ignores are ignored.
TEST(ModelFolder, ConfigValuesOutOfRangeAreErrors) {
  TempDir dir;
  auto cfg = read_json(make_model(dir, "llama") + "/config.json");
  auto check = [&](const char* key, const nlohmann::json& value, std::initializer_list<std::string> want) {
    SCOPED_TRACE(std::string(key) + " = " + value.dump());
    auto broken = cfg;
    broken[key] = value;
    if (std::string(key) == "num_attention_heads") broken.erase("head_dim");  // the default, hidden / heads
    expect_error([&] { rlaif::ModelConfig::from_json(broken, "config.json"); }, want);
  };
  check("num_key_value_heads", 0, {"config.json: num_key_value_heads", "at least 1"});
  check("head_dim", -2, {"config.json: head_dim", "at least 1"});
  check("num_attention_heads", 1 << 20, {"smaller than num_attention_heads"});  // head_dim 0
  check("rms_norm_eps", -1e-5, {"config.json: rms_norm_eps", "above 0"});
  check("rope_theta", 0, {"config.json: rope_theta", "above 0"});
  check("max_position_embeddings", 0, {"config.json: max_position_embeddings"});
  check("eos_token_id", -3, {"eos_token_id", "negative"});
  check("vocab_size", int64_t(1) << 50, {"trillion parameters", "vocab_size"});
  check("rope_scaling", {{"rope_type", 3}}, {"rope_scaling", "must be a string"});
  check("rope_scaling", {{"rope_type", "llama3"}, {"factor", -8}}, {"rope_scaling: factor", "above 0"});
  // mistral has no attention_bias (transformers' MistralConfig): the key does not add biases the weights lack.
  auto mistral = cfg;
  mistral["model_type"] = "mistral";
  mistral["attention_bias"] = true;
  mistral["mlp_bias"] = true;
  auto c = rlaif::ModelConfig::from_json(mistral, "config.json");
  EXPECT_FALSE(c.qkv_bias || c.o_bias || c.mlp_bias);
  EXPECT_EQ(rlaif::ModelConfig::from_json(c.to_json(), "again").to_json(), c.to_json());
}

TEST(ModelFolder, MissingTensorIsNamed) {
  TempDir dir;
  auto path = make_model(dir, "llama");
  rlaif::SafetensorsFile f(path + "/model.safetensors");
  std::vector<std::pair<std::string, torch::Tensor>> keep;
  for (const auto& e : f.entries())
    if (e.first != "model.layers.1.mlp.up_proj.weight") keep.emplace_back(e.first, f.get(e.first).clone());
  rlaif::write_safetensors(path + "/model.safetensors", keep);
  expect_error([&] { rlaif::load_model(path); },
               {"model.safetensors", "model.layers.1.mlp.up_proj.weight", "missing tensor"});
}

TEST(ModelFolder, ShapeThatDoesNotFitTheConfig) {
  TempDir dir;
  auto path = make_model(dir, "llama");
  auto cfg = read_json(path + "/config.json");
  cfg["intermediate_size"] = 100;
  write_json(path + "/config.json", cfg);
  expect_error([&] { rlaif::load_model(path); }, {"model.layers.0.mlp.gate_proj.weight", "does not fit the config"});
}

TEST(ModelFolder, MissingWeightsAndBadShards) {
  TempDir dir;
  auto path = make_model(dir, "llama");
  fs::remove(path + "/model.safetensors");
  expect_error([&] { rlaif::load_model(path); }, {"model.safetensors", "no weights found"});
  write_json(path + "/model.safetensors.index.json",
             {{"weight_map", {{"model.norm.weight", "model-00001-of-00002.safetensors"}}}});
  expect_error([&] { rlaif::load_model(path); }, {"model-00001-of-00002.safetensors", "shard file not found"});
  rlaif::write_safetensors(path + "/model-00001-of-00002.safetensors", {{"other", torch::ones({1})}});
  expect_error([&] { rlaif::load_model(path); }, {"model.norm.weight", "missing from its shard"});
}

TEST(ModelFolder, EosTokenIdIntOrList) {
  TempDir dir;
  auto path = make_model(dir, "llama");
  auto cfg = rlaif::load_config(path);
  EXPECT_EQ(rlaif::load_eos_token_ids(path, cfg), (std::vector<int64_t>{256, 258}));
  write_json(path + "/generation_config.json", {{"eos_token_id", 5}});
  EXPECT_EQ(rlaif::load_eos_token_ids(path, cfg), (std::vector<int64_t>{5}));
  write_json(path + "/generation_config.json", {{"eos_token_id", "x"}});
  expect_error([&] { rlaif::load_eos_token_ids(path, cfg); }, {"generation_config.json", "eos_token_id"});
}
