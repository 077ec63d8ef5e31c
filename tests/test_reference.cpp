// Logits against an independent plain-PyTorch implementation (tests/reference/llama_ref.py, Debian's python3-torch),
// both for folders written by `init-model` and for folders written by the Python script itself.
// Tolerance: 1e-4 absolute on fp32 logits (the two sides sum in different orders).
#include <torch/torch.h>
#include "rlaif/init_model.h"
#include "rlaif/model_folder.h"

#include "test_util.h"

using rlaif_test::TempDir;

namespace {

const char* kPython = "/usr/bin/python3";

torch::Tensor reference_logits(const TempDir& dir, const std::string& model,
                               const std::vector<std::vector<int64_t>>& rows) {
  rlaif_test::write_text(dir / "ids.json", nlohmann::json(rows).dump());
  auto r = rlaif_test::run_command(std::string(kPython) + " " + RLAIF_REFERENCE_PY + " logits " + model + " " +
                                   (dir / "ids.json") + " " + (dir / "ref.json"));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  auto j = nlohmann::json::parse(rlaif::read_file(dir / "ref.json"));
  std::vector<torch::Tensor> out;
  for (const auto& row : j) {
    std::vector<float> flat;
    for (const auto& t : row)
      for (const auto& v : t) flat.push_back(v.get<float>());
    out.push_back(torch::tensor(flat).view({static_cast<int64_t>(row.size()), -1}));
  }
  return torch::stack(out);  // [rows, T, V]
}

void compare(const TempDir& dir, const std::string& model_dir, const std::string& label) {
  auto model = rlaif::load_model(model_dir);
  const int64_t V = model->config().vocab_size;
  torch::manual_seed(5);
  auto ids = torch::randint(0, std::min<int64_t>(V, 259), {2, 40});
  std::vector<std::vector<int64_t>> rows;
  for (int i = 0; i < 2; ++i) rows.emplace_back(ids[i].data_ptr<int64_t>(), ids[i].data_ptr<int64_t>() + 40);
  auto want = reference_logits(dir, model_dir, rows);
  torch::NoGradGuard g;
  auto got = model->forward(ids);
  ASSERT_EQ(got.sizes(), want.sizes()) << label;
  double diff = (got - want).abs().max().item<double>();
  double scale = want.abs().max().item<double>();
  EXPECT_LT(diff, 1e-4) << label << " (logits up to " << scale << ")";
  EXPECT_GT(scale, 0.05) << label << ": logits too small for the comparison to mean anything";
}

}  // namespace

TEST(Reference, InitModelFoldersMatchPlainPyTorch) {
  TempDir dir;
  struct Case {
    std::string arch, size;
  };
  std::vector<Case> cases = {
      {"llama", "hidden=64,layers=2,heads=4,kv_heads=1,intermediate=96,rope_scaling=llama3,max_pos=256"},
      {"llama", "hidden=48,layers=2,heads=6,kv_heads=3,intermediate=80,tied=0,rope_theta=500"},
      {"mistral", "hidden=64,layers=2,heads=8,kv_heads=2,intermediate=96"},
      {"qwen2", "hidden=64,layers=2,heads=4,kv_heads=2,intermediate=96,tied=0"},
      {"qwen3", "hidden=64,layers=2,heads=4,kv_heads=2,intermediate=96,head_dim=24"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    rlaif::InitModelOptions o;
    o.arch = cases[i].arch;
    o.size = cases[i].size;
    o.seed = 100 + i;
    std::string path = dir / ("m" + std::to_string(i));
    rlaif::init_model(o, path);
    {  // scale the weights up so the logits are not all near zero
      auto m = rlaif::load_model(path);
      torch::NoGradGuard g;
      for (auto& p : m->named_parameters())
        if (p.key().find("norm") == std::string::npos) p.value().mul_(12.0);
      rlaif::save_model(m, path);
    }
    compare(dir, path, o.arch + " " + o.size);
  }
}

TEST(Reference, FoldersWrittenByPyTorchLoadAndMatch) {
  TempDir dir;
  for (std::string arch : {"llama", "qwen2", "qwen3"})
    for (std::string dtype : {"F32", "BF16"}) {
      std::string path = dir / (arch + dtype);
      auto r = rlaif_test::run_command(std::string(kPython) + " " + RLAIF_REFERENCE_PY + " write " + path + " " + arch +
                                       " 3 " + dtype);
      ASSERT_EQ(r.exit_code, 0) << r.output;
      compare(dir, path, arch + " " + dtype);
    }
}
