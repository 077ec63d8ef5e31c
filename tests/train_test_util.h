// What the trainer tests share: a tiny model folder, prompts, a run.toml with a rule-grader reward, the metrics and
// weights a run wrote, and `rlaif train` run in a child process.
#pragma once

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <sstream>
#include <thread>

#include <torch/torch.h>

#include "fault_server.h"
#include "rlaif/init_model.h"
#include "rlaif/jsonl.h"
#include "rlaif/safetensors.h"
#include "rlaif/train_config.h"
#include "test_util.h"

namespace rlaif_test {

namespace fs = std::filesystem;

inline std::string make_model(const TempDir& dir, const std::string& name = "model") {
  if (fs::exists(dir / name)) return dir / name;
  rlaif::InitModelOptions o;
  o.arch = "qwen2";
  o.seed = 1;
  rlaif::init_model(o, dir / name);
  return dir / name;
}

inline void write_prompts(const std::string& path, int n, const std::string& prefix = "Say something") {
  std::string text;
  for (int i = 0; i < n; ++i)
    text += nlohmann::json({{"prompt", prefix + " #" + std::to_string(i) + ":"}}).dump() + "\n";
  rlaif_test::write_text(path, text);
}

// A run.toml with a rule-grader reward (completion contains "a"); `extra` lines ("key = value") override or add to
// [train]; `tail` is appended (e.g. a [lora] table).
inline std::string write_config(const TempDir& dir, const std::string& extra = "", const std::string& tail = "") {
  make_model(dir);
  if (!fs::exists(dir / "prompts.jsonl")) write_prompts(dir / "prompts.jsonl", 20);
  std::map<std::string, std::string> train = {{"output_dir", "\"" + (dir / "out") + "\""},
                                              {"max_steps", "6"},
                                              {"per_device_train_batch_size", "8"},
                                              {"gradient_accumulation_steps", "2"},
                                              {"num_generations", "4"},
                                              {"max_completion_length", "16"},
                                              {"learning_rate", "1e-3"},
                                              {"num_threads", "1"}};
  std::stringstream lines(extra);
  for (std::string line; std::getline(lines, line);) {
    auto eq = line.find(" = ");
    if (eq != std::string::npos) train[line.substr(0, eq)] = line.substr(eq + 3);
  }
  std::string text =
      "[model]\npath = \"" + (dir / "model") + "\"\n[data]\nprompts = \"" + (dir / "prompts.jsonl") + "\"\n[train]\n";
  for (const auto& [k, v] : train) text += k + " = " + v + "\n";
  text += "[judge]\nbackend = \"none\"\n[[graders]]\ntype = \"regex\"\nvalue = \"a\"\n" + tail;
  rlaif_test::write_text(dir / "run.toml", text);
  return dir / "run.toml";
}

// Points the run's judge at a test server (tests/fault_server.h) speaking the OpenAI API.
inline void use_http_judge(rlaif::TrainConfig& c, const rlaif_test::FaultServer& server) {
  c.judge.backend = "openai";
  c.judge.base_urls = {server.base_url()};
  c.judge.model = "judge";
}

inline std::vector<nlohmann::json> metrics(const std::string& path) {
  std::vector<nlohmann::json> out;
  for (const auto& r : rlaif::read_jsonl(path))
    if (r.value.contains("reward")) out.push_back(nlohmann::json::parse(r.value.dump()));
  return out;
}

inline std::map<std::string, torch::Tensor> weights(const std::string& file) {
  rlaif::SafetensorsFile f(file);
  std::map<std::string, torch::Tensor> out;
  for (const auto& kv : f.entries()) out[kv.first] = f.get(kv.first).clone();
  return out;
}

inline bool same_weights(const std::string& a, const std::string& b) {
  auto wa = weights(a), wb = weights(b);
  if (wa.size() != wb.size()) return false;
  for (const auto& [k, t] : wa)
    if (!wb.count(k) || !torch::equal(t, wb[k])) return false;
  return true;
}

inline bool same_weights(const std::map<std::string, torch::Tensor>& wa, const std::string& b) {
  auto wb = weights(b);
  if (wa.size() != wb.size()) return false;
  for (const auto& [k, t] : wa)
    if (!wb.count(k) || !torch::equal(t, wb[k])) return false;
  return true;
}

// Runs `rlaif train` in a child process. With `ready` set, kills it with SIGKILL `delay_ms` after `ready()` first
// returns true (polled every millisecond); with only `delay_ms`, that long after the start.
inline int run_train_killed(const std::string& config, const std::string& extra_env, bool resume,
                            const std::function<bool()>& ready, int delay_ms) {
  pid_t pid = fork();
  if (pid == 0) {
    std::string cmd = extra_env + " exec " + std::string(RLAIF_BIN) + " train --quiet --config " + config +
                      (resume ? " --resume" : "");
    execl("/bin/sh", "sh", "-c", cmd.c_str(), nullptr);
    _exit(127);
  }
  int status = 0;
  if (ready || delay_ms > 0) {
    while (ready && !ready() && waitpid(pid, &status, WNOHANG) == 0)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    kill(pid, SIGKILL);  // (a run that already ended is a zombie until waitpid: its exit status stays)
  }
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

// The same, killed `delay_ms` after the file `kill_when` appears (the run is then mid-training, past the checkpoint
// that file belongs to).
inline int run_train(const std::string& config, const std::string& extra_env, bool resume,
                     const std::string& kill_when = "", int delay_ms = 0) {
  std::function<bool()> ready;
  if (!kill_when.empty()) ready = [&] { return fs::exists(kill_when); };
  return run_train_killed(config, extra_env, resume, ready, delay_ms);
}

}  // namespace rlaif_test
