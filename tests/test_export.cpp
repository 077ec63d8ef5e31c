// `rlaif export` and adapters wherever a model folder is loaded. A LoRA checkpoint exported as a Hugging Face folder
// is checked with the independent plain-PyTorch reference (tests/reference/llama_ref.py): the exported folder read
// by the reference gives the logits of the base with the adapter applied as PEFT's LoRA layer does, within 1e-4
// (fp32; different summation orders). Sharding, dtypes, the peft format and every bad input are checked too.
#include <filesystem>

#include <torch/torch.h>
#include "adapter_test_util.h"
#include "rlaif/init_model.h"
#include "rlaif/jsonl.h"
#include "rlaif/lora.h"
#include "rlaif/model_folder.h"
#include "rlaif/safetensors.h"

#include "test_util.h"

namespace fs = std::filesystem;
using nlohmann::json;
using rlaif_test::TempDir;

namespace {

std::string rlaif_cmd(const std::string& args) { return std::string(RLAIF_BIN) + " " + args; }

// Reference logits [rows][T][V] of MODEL_DIR (with ADAPTER_DIR applied, if given), from llama_ref.py.
json reference_logits(const TempDir& dir, const std::string& model, const std::string& adapter,
                      const std::string& name) {
  rlaif_test::write_text(dir / "ids.json", "[[1, 7, 42, 99, 3, 250, 18], [5, 5, 200, 31, 77, 2, 9]]");
  auto r = rlaif_test::run_command(std::string("/usr/bin/python3 ") + RLAIF_REFERENCE_PY + " logits " + model + " " +
                                   (dir / "ids.json") + " " + (dir / name) + " " + adapter);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  return json::parse(rlaif::read_file(dir / name));
}

double max_diff(const json& a, const json& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i)
    for (size_t t = 0; t < a[i].size(); ++t)
      for (size_t v = 0; v < a[i][t].size(); ++v)
        m = std::max(m, std::abs(a[i][t][v].get<double>() - b[i][t][v].get<double>()));
  return m;
}

std::vector<std::string> greedy(const TempDir& dir, const std::string& model_args, const std::string& name) {
  rlaif_test::write_text(dir / "prompts.jsonl", "{\"prompt\": \"Once upon\"}\n{\"prompt\": \"The judge\"}\n");
  auto r =
      rlaif_test::run_command(rlaif_cmd("generate " + model_args + " --prompts " + (dir / "prompts.jsonl") + " --out " +
                                        (dir / name) + " --temperature 0 --max-new-tokens 12 --quiet"));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  std::vector<std::string> out;
  for (const auto& row : rlaif::read_jsonl(dir / name)) out.push_back(row.value["completion"]);
  return out;
}

class Export : public ::testing::Test {
 protected:
  void SetUp() override {
    rlaif::InitModelOptions o;
    o.arch = "qwen3";
    o.seed = 3;
    rlaif::init_model(o, dir / "base");
    auto gen = json::parse(rlaif::read_file(dir / "base/generation_config.json"));
    gen["temperature"] = 0.7;  // a key of the base's generation config that export must carry over
    rlaif_test::write_text(dir / "base/generation_config.json", gen.dump());
    rlaif_test::write_adapter(dir / "base", dir / "run/checkpoint-3");
  }
  TempDir dir;
};

TEST_F(Export, MergedFolderEqualsTheAdapterOnItsBaseInTheReference) {
  auto r = rlaif_test::run_command(
      rlaif_cmd("export --model " + (dir / "run/checkpoint-3") + " --out " + (dir / "hf") + " --dtype float32"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("on " + (dir / "base")), std::string::npos) << r.output;
  const json adapted = reference_logits(dir, dir / "base", dir / "run/checkpoint-3", "adapted.json");
  const json base = reference_logits(dir, dir / "base", "", "base.json");
  const json exported = reference_logits(dir, dir / "hf", "", "exported.json");
  EXPECT_GT(max_diff(adapted, base), 1e-3);      // the adapter matters
  EXPECT_LE(max_diff(exported, adapted), 1e-4);  // and the exported folder is the base with it merged
  for (const char* f : {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json"})
    EXPECT_TRUE(fs::exists(fs::path(dir / "hf") / f)) << f;
  EXPECT_EQ(json::parse(rlaif::read_file(dir / "hf/generation_config.json"))["temperature"], 0.7);
  EXPECT_EQ(json::parse(rlaif::read_file(dir / "hf/config.json"))["torch_dtype"], "float32");
  EXPECT_FALSE(fs::exists(dir / "hf/adapter_config.json"));

  // generate takes the checkpoint directly, or the base with --adapter: the same greedy text as the merged folder.
  const auto merged = greedy(dir, "--model " + (dir / "hf"), "merged.jsonl");
  EXPECT_EQ(greedy(dir, "--model " + (dir / "run/checkpoint-3"), "direct.jsonl"), merged);
  EXPECT_EQ(greedy(dir, "--model " + (dir / "base") + " --adapter " + (dir / "run/checkpoint-3"), "flag.jsonl"),
            merged);
  EXPECT_NE(greedy(dir, "--model " + (dir / "base"), "plain.jsonl"), merged);
}

TEST_F(Export, ShardsAndDtypesReadBackExactly) {
  auto r = rlaif_test::run_command(rlaif_cmd("export --model " + (dir / "run/checkpoint-3") + " --out " +
                                             (dir / "bf16") + " --dtype bfloat16 --max-shard-size 40KB"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  ASSERT_TRUE(fs::exists(dir / "bf16/model.safetensors.index.json"));
  EXPECT_FALSE(fs::exists(dir / "bf16/model.safetensors"));
  auto index = json::parse(rlaif::read_file(dir / "bf16/model.safetensors.index.json"));
  std::set<std::string> shards;
  int64_t bytes = 0;
  for (const auto& [name, shard] : index["weight_map"].items()) {
    shards.insert(shard.get<std::string>());
    rlaif::SafetensorsFile f((fs::path(dir / "bf16") / shard.get<std::string>()).string());
    ASSERT_TRUE(f.contains(name)) << name;
    EXPECT_EQ(rlaif::safetensors_dtype_name(f.get(name).scalar_type()), "BF16");
    bytes += f.get(name).numel() * 2;
  }
  EXPECT_GT(shards.size(), 1u);
  EXPECT_EQ(index["metadata"]["total_size"].get<int64_t>(), bytes);
  for (const auto& s : shards) EXPECT_LE(fs::file_size(fs::path(dir / "bf16") / s), 40000u + 4096u) << s;
  // Every weight is the merged fp32 weight rounded to bf16, bit for bit.
  auto merged = rlaif::load_model(dir / "base");
  rlaif::load_lora(merged, dir / "run/checkpoint-3");
  rlaif::merge_lora(merged);
  auto written = rlaif::load_weights(dir / "bf16");
  EXPECT_EQ(written.size(), merged->named_parameters().size());
  for (const auto& p : merged->named_parameters()) {
    ASSERT_TRUE(written.count(p.key())) << p.key();
    EXPECT_TRUE(torch::equal(written[p.key()], p.value().detach().to(torch::kBFloat16))) << p.key();
  }
  EXPECT_EQ(json::parse(rlaif::read_file(dir / "bf16/config.json"))["torch_dtype"], "bfloat16");
  // The sharded bf16 folder, read by the reference, is within bf16 rounding of the adapted model.
  EXPECT_LE(max_diff(reference_logits(dir, dir / "bf16", "", "bf16.json"),
                     reference_logits(dir, dir / "base", dir / "run/checkpoint-3", "adapted.json")),
            0.05);

  // auto: the base's own dtype (float32 here); float16 where every weight fits.
  r = rlaif_test::run_command(rlaif_cmd("export --model " + (dir / "base") + " --out " + (dir / "same")));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(json::parse(rlaif::read_file(dir / "same/config.json"))["torch_dtype"], "float32");
  EXPECT_TRUE(rlaif_test::run_command(rlaif_cmd("export --model " + (dir / "run/checkpoint-3") + " --out " +
                                                (dir / "f16") + " --dtype float16"))
                  .exit_code == 0);
  EXPECT_EQ(rlaif::SafetensorsFile(dir / "f16/model.safetensors").get("model.norm.weight").scalar_type(),
            torch::kFloat16);
}

TEST_F(Export, PeftFormatIsTheAdapterNamingItsBase) {
  auto r = rlaif_test::run_command(
      rlaif_cmd("export --model " + (dir / "run/checkpoint-3") + " --out " + (dir / "peft") + " --format peft"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto cfg = json::parse(rlaif::read_file(dir / "peft/adapter_config.json"));
  EXPECT_EQ(cfg["base_model_name_or_path"], fs::absolute(dir / "base").lexically_normal().string());
  EXPECT_EQ(rlaif::read_file(dir / "peft/adapter_model.safetensors"),
            rlaif::read_file(dir / "run/checkpoint-3/adapter_model.safetensors"));
  EXPECT_EQ(cfg["r"], 4);
}

TEST_F(Export, BadInputsAreErrorsAndLeaveNoFolder) {
  auto expect_fail = [&](const std::string& args, const std::vector<std::string>& parts) {
    auto r = rlaif_test::run_command(rlaif_cmd("export " + args));
    EXPECT_EQ(r.exit_code, 1) << args << "\n" << r.output;
    for (const auto& p : parts) EXPECT_NE(r.output.find(p), std::string::npos) << p << "\n" << r.output;
  };
  // float16 cannot hold a weight of 1e5.
  {
    auto big = rlaif::load_model(dir / "base");
    torch::NoGradGuard g;
    big->named_parameters()["model.norm.weight"].fill_(1e5);
    rlaif::SaveOptions so;
    so.tokenizer_from = dir / "base";
    rlaif::save_model(big, dir / "big", so);
  }
  expect_fail("--model " + (dir / "big") + " --out " + (dir / "x") + " --dtype float16",
              {"model.norm.weight", "float16", "--dtype bfloat16"});
  EXPECT_FALSE(fs::exists(dir / "x"));
  // An existing folder is never written into.
  fs::create_directories(dir / "taken");
  rlaif_test::write_text(dir / "taken/notes.txt", "mine");
  expect_fail("--model " + (dir / "base") + " --out " + (dir / "taken"), {"taken", "already exists"});
  EXPECT_EQ(rlaif::read_file(dir / "taken/notes.txt"), "mine");
  // Full weights have no adapter to export alone.
  expect_fail("--model " + (dir / "base") + " --out " + (dir / "x") + " --format peft", {"not a LoRA adapter", "hf"});
  // An adapter whose base is gone names the key and the way out, and --base is that way.
  fs::rename(dir / "base", dir / "moved");
  expect_fail("--model " + (dir / "run/checkpoint-3") + " --out " + (dir / "x"), {"base_model_name_or_path", "--base"});
  auto r = rlaif_test::run_command(rlaif_cmd("export --model " + (dir / "run/checkpoint-3") + " --base " +
                                             (dir / "moved") + " --out " + (dir / "x")));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  expect_fail("--model " + (dir / "moved") + " --out " + (dir / "y") + " --max-shard-size lots",
              {"--max-shard-size", "5GB"});
  expect_fail("--model " + (dir / "moved") + " --out " + (dir / "y") + " --dtype int4", {"--dtype", "bfloat16"});
  expect_fail("--model " + (dir / "moved") + " --out " + (dir / "y") + " --format onnx", {"--format", "gguf"});
  expect_fail("--model " + (dir / "moved") + " --adapter " + (dir / "moved") + " --out " + (dir / "y"),
              {"not an adapter folder"});
  for (const auto& e : fs::directory_iterator(dir.path()))
    EXPECT_EQ(e.path().filename().string().find("export-tmp"), std::string::npos) << e.path();
}

}  // namespace
