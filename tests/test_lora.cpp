// LoRA: zero-initialised adapters leave the model unchanged; adapters applied at run time equal the merged weights,
// the packed inference path and an independent plain-PyTorch implementation of PEFT's LoRA layer
// (tests/reference/llama_ref.py with ADAPTER_DIR) reading the PEFT folder rlaif writes; tolerance 1e-4 absolute on
// fp32 logits (different summation orders). Bad adapter folders are errors naming file and key.
#include <torch/torch.h>
#include "rlaif/init_model.h"
#include "rlaif/lora.h"
#include "rlaif/model_folder.h"
#include "rlaif/safetensors.h"

#include "test_util.h"

using rlaif_test::TempDir;

namespace {

std::string tiny_model(const TempDir& dir, const std::string& arch = "qwen2") {
  rlaif::InitModelOptions o;
  o.arch = arch;
  o.seed = 3;
  rlaif::init_model(o, dir / "model");
  return dir / "model";
}

torch::Tensor logits(rlaif::CausalLM& model, const torch::Tensor& ids) {
  torch::NoGradGuard g;
  return model->forward(ids);
}

// Gives every adapter random, non-zero B so the adapters change the output.
void randomize_b(rlaif::CausalLM& model) {
  torch::NoGradGuard g;
  torch::manual_seed(11);
  for (const auto& kv : model->lora()) kv.second.B.normal_(0, 0.05);
}

TEST(Lora, ZeroInitialisedAdaptersEqualTheBaseModel) {
  TempDir dir;
  auto model = rlaif::load_model(tiny_model(dir));
  auto ids = torch::randint(0, 250, {2, 12});
  auto base = logits(model, ids);
  rlaif::LoraConfig c;
  c.target_modules = {"all-linear"};
  rlaif::add_lora(model, c, 1);
  EXPECT_EQ(model->lora().size(), 7u * model->config().num_hidden_layers);
  EXPECT_TRUE(torch::equal(logits(model, ids), base));
  EXPECT_EQ(rlaif::lora_parameters(model).size(), 2 * model->lora().size());
  // PEFT's initialisation: A ~ U(-1/sqrt(in), 1/sqrt(in)), B = 0.
  const auto& a = model->lora().begin()->second;
  EXPECT_LE(a.A.abs().max().item<double>(), 1 / std::sqrt(double(a.A.size(1))));
  EXPECT_EQ(a.B.abs().max().item<double>(), 0.0);
}

TEST(Lora, RuntimeMergedPackedAndReferenceAgree) {
  TempDir dir;
  auto path = tiny_model(dir, "qwen3");
  auto model = rlaif::load_model(path);
  rlaif::LoraConfig c;
  c.r = 4;
  c.lora_alpha = 8;
  c.target_modules = {"q_proj", "v_proj", "down_proj"};
  rlaif::add_lora(model, c, 2);
  randomize_b(model);
  torch::manual_seed(4);
  auto ids = torch::randint(0, 250, {2, 10});
  auto adapted = logits(model, ids);
  model->set_lora_enabled(false);
  auto base = logits(model, ids);
  model->set_lora_enabled(true);
  EXPECT_GT((adapted - base).abs().max().item<double>(), 1e-3);  // the adapters matter

  // PEFT format on disk, read by the independent reference.
  rlaif::save_lora(model, c, dir / "adapter", path);
  rlaif::SafetensorsFile f(dir / "adapter/adapter_model.safetensors");
  EXPECT_TRUE(f.contains("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"));
  EXPECT_TRUE(f.contains("base_model.model.model.layers.1.mlp.down_proj.lora_B.weight"));
  EXPECT_EQ(f.entries().size(), 2u * 3 * model->config().num_hidden_layers);
  auto cfg = nlohmann::json::parse(rlaif::read_file(dir / "adapter/adapter_config.json"));
  EXPECT_EQ(cfg["peft_type"], "LORA");
  EXPECT_EQ(cfg["r"], 4);
  std::vector<std::vector<int64_t>> rows;
  for (int i = 0; i < 2; ++i) rows.emplace_back(ids[i].data_ptr<int64_t>(), ids[i].data_ptr<int64_t>() + 10);
  rlaif_test::write_text(dir / "ids.json", nlohmann::json(rows).dump());
  auto r = rlaif_test::run_command(std::string("/usr/bin/python3 ") + RLAIF_REFERENCE_PY + " logits " + path + " " +
                                   (dir / "ids.json") + " " + (dir / "ref.json") + " " + (dir / "adapter"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto j = nlohmann::json::parse(rlaif::read_file(dir / "ref.json"));
  for (int i = 0; i < 2; ++i)
    for (int t = 0; t < 10; ++t) {
      auto want = torch::tensor(j[i][t].get<std::vector<float>>());
      EXPECT_LE((adapted[i][t] - want).abs().max().item<double>(), 1e-4) << i << "," << t;
    }

  // Reloaded adapters give identical outputs.
  auto reloaded = rlaif::load_model(path);
  auto c2 = rlaif::load_lora(reloaded, dir / "adapter");
  EXPECT_EQ(c2.r, 4);
  EXPECT_TRUE(torch::equal(logits(reloaded, ids), adapted));

  // The packed inference path packs W + scale B A.
  if (reloaded->set_packed_inference(true, /*bf16=*/false)) {
    EXPECT_LE((logits(reloaded, ids) - adapted).abs().max().item<double>(), 1e-4);
  }

  // Merged into the base weights: the same function without adapters.
  rlaif::merge_lora(model);
  EXPECT_TRUE(model->lora().empty());
  EXPECT_LE((logits(model, ids) - adapted).abs().max().item<double>(), 1e-4);
}

TEST(Lora, PackedPathFollowsAdapterUpdates) {
  TempDir dir;
  auto model = rlaif::load_model(tiny_model(dir));
  if (!model->set_packed_inference(true, false)) GTEST_SKIP() << "no AVX-512";
  rlaif::LoraConfig c;
  c.target_modules = {"all-linear"};
  rlaif::add_lora(model, c, 1);
  auto ids = torch::randint(0, 250, {1, 8});
  auto before = logits(model, ids);
  randomize_b(model);  // an optimizer step changes B in place
  auto after = logits(model, ids);
  EXPECT_GT((after - before).abs().max().item<double>(), 1e-3);
  model->set_packed_inference(false, false);
  EXPECT_LE((logits(model, ids) - after).abs().max().item<double>(), 1e-4);
}

TEST(Lora, BadAdapterFoldersAreErrors) {
  TempDir dir;
  auto path = tiny_model(dir);
  auto model = rlaif::load_model(path);
  rlaif::LoraConfig c;
  rlaif::add_lora(model, c, 1);
  rlaif::save_lora(model, c, dir / "a", path);
  auto cfg = nlohmann::json::parse(rlaif::read_file(dir / "a/adapter_config.json"));

  auto fresh = rlaif::load_model(path);
  auto with = [&](nlohmann::json changed) {
    rlaif_test::write_text(dir / "a/adapter_config.json", changed.dump());
    return [&, changed] { rlaif::load_lora(fresh, dir / "a"); };
  };
  auto no_r = cfg;
  no_r.erase("r");
  rlaif_test::expect_error(with(no_r), {"adapter_config.json", "missing key \"r\""});
  auto dora = cfg;
  dora["use_dora"] = true;
  rlaif_test::expect_error(with(dora), {"adapter_config.json", "DoRA"});
  auto rank = cfg;
  rank["r"] = 8;
  rlaif_test::expect_error(with(rank), {"adapter_model.safetensors", "lora_A.weight", "rank 16"});
  auto target = cfg;
  target["target_modules"] = {"qkv"};
  rlaif_test::expect_error(with(target), {"target_modules", "qkv"});
  rlaif_test::write_text(dir / "a/adapter_config.json", cfg.dump());

  // A tensor whose shape does not fit the base model, and a missing half of a pair.
  auto state = rlaif::lora_state(model);
  state[0].second = torch::zeros({16, 7});
  rlaif::write_safetensors(dir / "a/adapter_model.safetensors", state);
  rlaif_test::expect_error([&] { rlaif::load_lora(fresh, dir / "a"); },
                           {"adapter_model.safetensors", "q_proj", "do not fit"});
  state = rlaif::lora_state(model);
  state.erase(state.begin() + 1);
  rlaif::write_safetensors(dir / "a/adapter_model.safetensors", state);
  rlaif_test::expect_error([&] { rlaif::load_lora(fresh, dir / "a"); }, {"lora_B.weight is missing"});
}

}  // namespace
