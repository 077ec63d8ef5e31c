// Atomic, resumable checkpoints (see include/rlaif/checkpoint.h).
#include "rlaif/checkpoint.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>

#include <ATen/CPUGeneratorImpl.h>

#include "rlaif/atomic_file.h"
#include "rlaif/error.h"
#include "rlaif/model_folder.h"
#include "rlaif/safetensors.h"

namespace fs = std::filesystem;

namespace rlaif {
namespace {

const std::string kPrefix = "checkpoint-";

void fsync_dir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

// checkpoint-N folders by step, ascending.
std::vector<std::pair<int64_t, std::string>> checkpoints(const std::string& output_dir) {
  std::vector<std::pair<int64_t, std::string>> out;
  if (!fs::is_directory(output_dir)) return out;
  for (const auto& e : fs::directory_iterator(output_dir)) {
    auto name = e.path().filename().string();
    if (!e.is_directory() || name.rfind(kPrefix, 0) != 0) continue;
    auto num = name.substr(kPrefix.size());
    if (num.empty() || num.find_first_not_of("0123456789") != std::string::npos) continue;
    out.emplace_back(std::stoll(num), e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

std::string save_checkpoint(const std::string& output_dir, const TrainerState& state, const CheckpointContents& c,
                            int64_t keep) {
  const std::string final_dir = output_dir + "/" + kPrefix + std::to_string(state.step);
  const std::string tmp = output_dir + "/." + kPrefix + std::to_string(state.step) + ".tmp";
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  if (c.lora) {
    save_lora(c.model, *c.lora, tmp, c.base_model);
  } else {
    SaveOptions so;
    so.tokenizer_from = c.base_model;
    CausalLM model = c.model;  // the holder shares the module
    save_model(model, tmp, so);
  }
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  nlohmann::json steps = nlohmann::json::array();
  auto& st = c.optimizer->state();
  for (size_t i = 0; i < c.params.size(); ++i) {
    auto it = st.find(c10::guts::to_string(c.params[i].unsafeGetTensorImpl()));
    if (it == st.end()) {
      steps.push_back(0);
      continue;
    }
    auto& s = static_cast<torch::optim::AdamWParamState&>(*it->second);
    steps.push_back(s.step());
    tensors.emplace_back("state." + std::to_string(i) + ".exp_avg", s.exp_avg());
    tensors.emplace_back("state." + std::to_string(i) + ".exp_avg_sq", s.exp_avg_sq());
  }
  tensors.emplace_back("rng.torch_cpu", at::detail::getDefaultCPUGenerator().get_state());  // RNG of LoRA dropout
  write_safetensors(tmp + "/optimizer.safetensors", tensors);
  // Test hook: RLAIF_TEST_KILL_IN_CHECKPOINT=STEP kills the process (SIGKILL) in the middle of writing that
  // checkpoint, after the weights and before the state, so the tests can prove such a kill loses nothing.
  if (const char* k = std::getenv("RLAIF_TEST_KILL_IN_CHECKPOINT"))
    if (std::to_string(state.step) == k) ::kill(::getpid(), SIGKILL);
  nlohmann::json j = {{"global_step", state.step},
                      {"data_epoch", state.data_epoch},
                      {"data_position", state.data_position},
                      {"config_fingerprint", state.config_fingerprint},
                      {"optimizer_steps", steps},
                      {"num_params", c.params.size()},
                      {"extra", state.extra}};
  write_file_atomic(tmp + "/trainer_state.json", j.dump(2) + "\n");
  fsync_dir(tmp);
  fs::remove_all(final_dir);
  fs::rename(tmp, final_dir);
  fsync_dir(output_dir);
  auto all = checkpoints(output_dir);
  for (size_t i = 0; i + static_cast<size_t>(keep) < all.size(); ++i) fs::remove_all(all[i].second);
  return final_dir;
}

std::string latest_checkpoint(const std::string& output_dir) {
  if (fs::is_directory(output_dir))
    for (const auto& e : fs::directory_iterator(output_dir)) {
      auto name = e.path().filename().string();
      if (name.rfind("." + kPrefix, 0) == 0) fs::remove_all(e.path());  // an interrupted write
    }
  auto all = checkpoints(output_dir);
  for (auto it = all.rbegin(); it != all.rend(); ++it)
    if (fs::exists(it->second + "/trainer_state.json")) return it->second;
  return "";
}

TrainerState load_checkpoint(const std::string& dir, const CheckpointContents& c) {
  const std::string spath = dir + "/trainer_state.json";
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(spath));
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string("not valid JSON: ") + e.what(), spath);
  }
  TrainerState s;
  try {
    s.step = j.at("global_step").get<int64_t>();
    s.data_epoch = j.at("data_epoch").get<int64_t>();
    s.data_position = j.at("data_position").get<int64_t>();
    s.config_fingerprint = j.at("config_fingerprint").get<std::string>();
    s.extra = j.value("extra", nlohmann::json::object());
    if (j.at("num_params").get<size_t>() != c.params.size())
      throw Error("the checkpoint has " + j["num_params"].dump() + " trainable tensors, this run " +
                      std::to_string(c.params.size()),
                  spath, "resume with the same model and [lora] settings");
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string("missing or malformed key: ") + e.what(), spath);
  }
  // Weights.
  {
    torch::NoGradGuard no_grad;
    if (c.lora) {  // copied into the adapters in place: the optimizer holds these very tensors
      SafetensorsFile a(dir + "/adapter_model.safetensors");
      for (auto& [key, t] : lora_state(c.model)) {
        auto src = a.get(key);
        if (src.sizes() != t.sizes()) throw Error("tensor " + key + " does not fit this run's adapters", a.path());
        t.copy_(src);
      }
    } else {
      auto weights = load_weights(dir);
      for (auto& kv : c.model->named_parameters()) {
        auto it = weights.find(kv.key());
        if (it == weights.end()) throw Error("tensor " + kv.key() + " is missing", dir + "/model.safetensors");
        kv.value().copy_(it->second);
      }
    }
  }
  // Optimizer moments and RNG.
  SafetensorsFile f(dir + "/optimizer.safetensors");
  auto& st = c.optimizer->state();
  st.clear();
  const auto& steps = j["optimizer_steps"];
  for (size_t i = 0; i < c.params.size(); ++i) {
    int64_t step = steps.at(i).get<int64_t>();
    if (step == 0) continue;
    auto state = std::make_unique<torch::optim::AdamWParamState>();
    state->step(step);
    state->exp_avg(f.get("state." + std::to_string(i) + ".exp_avg").clone());
    state->exp_avg_sq(f.get("state." + std::to_string(i) + ".exp_avg_sq").clone());
    if (state->exp_avg().sizes() != c.params[i].sizes())
      throw Error("optimizer state " + std::to_string(i) + " does not fit its parameter", f.path());
    st[c10::guts::to_string(c.params[i].unsafeGetTensorImpl())] = std::move(state);
  }
  const_cast<at::Generator&>(at::detail::getDefaultCPUGenerator()).set_state(f.get("rng.torch_cpu").clone());
  return s;
}

}  // namespace rlaif
