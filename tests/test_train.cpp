// The trainers end to end on real files: run.toml validation, the learning-rate schedules against transformers'
// formulas, a rising reward on a tiny task with a known reward (a rule grader), no movement under a constant reward,
// LoRA leaving the base untouched, SFT memorising its data, judge failures left out of their groups (a real HTTP
// judge that fails on purpose), and SIGKILL at several points (one inside a checkpoint write) then --resume ending
// with bit-identical weights, also at 20 random moments on all cores with an HTTP judge and its cache.
#include <atomic>
#include <cmath>
#include <fstream>
#include <iterator>
#include <random>

#include "rlaif/agreement.h"
#include "rlaif/checkpoint.h"
#include "rlaif/content_check.h"
#include "rlaif/model_folder.h"
#include "rlaif/sequence_batch.h"
#include "rlaif/trainer.h"
#include "train/fused_adamw.h"
#include "train/rollout_metrics.h"
#include "train_test_util.h"

using namespace rlaif_test;

namespace {

TEST(TrainConfig, ValidationSaysHowToFix) {
  TempDir dir;
  auto path = write_config(dir, "per_device_train_batch_size = 5");
  auto c = rlaif::TrainConfig::from_toml(path);
  rlaif_test::expect_error([&] { c.validate(path); },
                           {"train.per_device_train_batch_size", "10 completions", "num_generations = 4", "multiple"});
  rlaif_test::write_text(dir / "typo.toml", "[train]\nlearnig_rate = 1\n");
  rlaif_test::expect_error([&] { rlaif::TrainConfig::from_toml(dir / "typo.toml"); },
                           {"typo.toml: train.learnig_rate (line 2)", "unknown key", "learning_rate"});
  rlaif_test::expect_error(
      [&] {
        rlaif::TrainConfig::from_toml(path, {"train.loss_type=ppo", "train.per_device_train_batch_size=8"})
            .validate(path);
      },
      {"train.loss_type (--set)", "ppo", "grpo, bnpo, dr_grpo or dapo"});
  auto o = rlaif::TrainConfig::from_toml(
      path, {"train.per_device_train_batch_size=4", "lora.r=4", "train.lr_scheduler_type=cosine"});
  EXPECT_EQ(o.per_device_train_batch_size, 4);
  EXPECT_TRUE(o.use_lora);
  EXPECT_EQ(o.lora.r, 4);
  EXPECT_EQ(o.lr_scheduler_type, rlaif::LrSchedule::kCosine);
  o.validate(path);
  rlaif_test::expect_error([&] { rlaif::TrainConfig::from_toml(path, {"oops"}); }, {"--set", "key=value"});
  rlaif_test::write_text(dir / "nojudge.toml",
                         "[model]\npath = \"m\"\n[data]\nprompts = \"p\"\n[train]\noutput_dir = \"o\"\n");
  rlaif_test::expect_error([&] { rlaif::TrainConfig::from_toml(dir / "nojudge.toml").validate("x"); },
                           {"no reward is configured"});
  // Sizes whose product overflows (found by fuzzing run.toml: 2^63-1 completions x 2 micro-batches) are refused.
  rlaif_test::expect_error(
      [&] {
        rlaif::TrainConfig::from_toml(
            path, {"train.per_device_train_batch_size=9223372036854775807", "train.gradient_accumulation_steps=2"})
            .validate(path);
      },
      {"train.per_device_train_batch_size", "2^20"});
}

// What a run saves as run_config.toml (which `rlaif report` reads) reads back to the same strings. Found by fuzzing
// run.toml: toml++ wrote a string holding ''' as a literal string that ended early, and trims the leading newline of
// a multi-line one.
TEST(TrainConfig, TheSavedConfigReadsBackToTheSameStrings) {
  TempDir dir;
  auto path = write_config(dir, "");
  const std::string system = "\nit's '''quoted''' \"twice\" \\ and\ttabbed\n", user = "{prompt}\n'''{completion}'''";
  auto c = rlaif::TrainConfig::from_toml(path, {"template.system=" + system, "template.user=" + user});
  ASSERT_EQ(c.judge.tmpl.system, system);
  rlaif_test::write_text(dir / "saved.toml", c.effective_toml);
  auto again = rlaif::TrainConfig::from_toml(dir / "saved.toml");
  EXPECT_EQ(again.judge.tmpl.system, system);
  EXPECT_EQ(again.judge.tmpl.user, user);
  EXPECT_EQ(again.effective_toml, c.effective_toml);
}

TEST(TrainCli, BadConfigsExitOneNamingTheKey) {
  TempDir dir;
  auto path = write_config(dir);
  auto r = rlaif_test::run_command(std::string(RLAIF_BIN) + " train --quiet --config " + path +
                                   " --set train.num_generations=3");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("train.per_device_train_batch_size"), std::string::npos) << r.output;
  r = rlaif_test::run_command(std::string(RLAIF_BIN) + " train --quiet --config " + (dir / "missing.toml"));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("missing.toml"), std::string::npos) << r.output;
  r = rlaif_test::run_command(std::string(RLAIF_BIN) + " sft --quiet --config " + path + " --set data.prompts=\"" +
                              (dir / "prompts.jsonl") + "\"");
  EXPECT_EQ(r.exit_code, 1) << r.output;  // RL prompts are not SFT rows
  EXPECT_NE(r.output.find("prompts.jsonl:1"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("completion"), std::string::npos) << r.output;
  r = rlaif_test::run_command(std::string(RLAIF_BIN) + " train --help");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.output.find("--resume"), std::string::npos);
}

TEST(TrainSchedule, MatchesTransformersSchedulers) {
  rlaif::TrainConfig c;
  c.learning_rate = 1.0;
  c.warmup_steps = 2;
  c.lr_scheduler_type = rlaif::LrSchedule::kLinear;  // get_linear_schedule_with_warmup: s/w, then (T - s)/(T - w)
  EXPECT_DOUBLE_EQ(rlaif::scheduled_lr(c, 0, 10), 0.0);
  EXPECT_DOUBLE_EQ(rlaif::scheduled_lr(c, 1, 10), 0.5);
  EXPECT_DOUBLE_EQ(rlaif::scheduled_lr(c, 2, 10), 1.0);
  EXPECT_DOUBLE_EQ(rlaif::scheduled_lr(c, 6, 10), 0.5);
  c.lr_scheduler_type = rlaif::LrSchedule::kCosine;  // 0.5 (1 + cos(pi p))
  EXPECT_NEAR(rlaif::scheduled_lr(c, 4, 10), 0.5 * (1 + std::cos(M_PI * 0.25)), 1e-12);
  c.lr_scheduler_type = rlaif::LrSchedule::kConstant;
  EXPECT_DOUBLE_EQ(rlaif::scheduled_lr(c, 9, 10), 1.0);
  c.warmup_steps = 0;
  c.warmup_ratio = 0.1;  // ceil(0.1 * 30) = 3 warmup steps
  EXPECT_DOUBLE_EQ(rlaif::scheduled_lr(c, 1, 30), 1.0 / 3);
}

// bf16 training matmuls (autocast, fp32 master weights) against fp32: log-probs within 0.05 absolute (bf16 keeps
// ~3 significant digits; log-probs here are around -5) and the gradient pointing the same way (cosine > 0.99).
// The trainer's one-pass AdamW against libtorch's own, step by step: two parameter groups (with and without weight
// decay), a learning rate that changes between steps, bias correction over several steps. Tolerance 1e-6 relative.
TEST(TrainOptimizer, FusedAdamWMatchesLibtorchAdamW) {
  torch::manual_seed(3);
  std::vector<torch::Tensor> a = {torch::randn({37, 5}), torch::randn({1000})}, b, start;
  for (const auto& t : a) b.push_back(t.clone()), start.push_back(t.clone());
  for (auto& t : a) t.requires_grad_(true);
  for (auto& t : b) t.requires_grad_(true);
  auto groups = [](const std::vector<torch::Tensor>& p) {
    auto o = torch::optim::AdamWOptions(1e-2).betas({0.9, 0.99}).eps(1e-6).weight_decay(0.1);
    std::vector<torch::optim::OptimizerParamGroup> g;
    g.emplace_back(std::vector<torch::Tensor>{p[0]}, std::make_unique<torch::optim::AdamWOptions>(o));
    auto nd = o;
    nd.weight_decay(0);
    g.emplace_back(std::vector<torch::Tensor>{p[1]}, std::make_unique<torch::optim::AdamWOptions>(nd));
    return g;
  };
  rlaif::FusedAdamW fused(groups(a), torch::optim::AdamWOptions(1e-2));
  torch::optim::AdamW plain(groups(b), torch::optim::AdamWOptions(1e-2));
  for (int step = 0; step < 6; ++step) {
    for (size_t i = 0; i < a.size(); ++i) {
      auto g = torch::randn(a[i].sizes());
      a[i].mutable_grad() = g.clone();
      b[i].mutable_grad() = g.clone();
    }
    for (auto* opt : std::vector<torch::optim::Optimizer*>{&fused, &plain})
      for (auto& group : opt->param_groups())
        static_cast<torch::optim::AdamWOptions&>(group.options()).lr(1e-2 / (step + 1));
    const int64_t version = a[0]._version();
    fused.step();
    plain.step();
    EXPECT_GT(a[0]._version(), version);  // an in-place update, as far as anything keyed on versions can tell
    for (size_t i = 0; i < a.size(); ++i)
      EXPECT_LE((a[i] - b[i]).abs().max().item<double>(), 1e-6 * std::max(1.0, b[i].abs().max().item<double>()))
          << "step " << step << " tensor " << i;
  }
  EXPECT_GT((a[0] - start[0]).abs().max().item<double>(), 1e-3);  // the updates did move the weights
  auto& s =
      static_cast<torch::optim::AdamWParamState&>(*fused.state().at(c10::guts::to_string(a[1].unsafeGetTensorImpl())));
  EXPECT_EQ(s.step(), 6);  // the state a checkpoint saves, in libtorch's own objects
}

TEST(TrainNumerics, Bf16PathWithinToleranceOfFp32) {
  TempDir dir;
  rlaif::InitModelOptions o;
  o.arch = "qwen3";
  o.size = "small";
  o.seed = 2;
  rlaif::init_model(o, dir / "m");
  auto model = rlaif::load_model(dir / "m");
  torch::manual_seed(3);
  std::vector<std::vector<int64_t>> p(4), c(4);
  for (int i = 0; i < 4; ++i) {
    auto a = torch::randint(0, 250, {5 + i}), b = torch::randint(0, 250, {20 - i});
    p[i].assign(a.data_ptr<int64_t>(), a.data_ptr<int64_t>() + a.numel());
    c[i].assign(b.data_ptr<int64_t>(), b.data_ptr<int64_t>() + b.numel());
  }
  std::vector<const std::vector<int64_t>*> pp, cc;
  for (int i = 0; i < 4; ++i) pp.push_back(&p[i]), cc.push_back(&c[i]);
  auto batch = rlaif::make_sequence_batch(pp, cc);
  auto grad_of = [&](bool bf16) {
    model->zero_grad();
    auto lp = rlaif::completion_logprobs(model, batch, 0.9, nullptr, bf16);
    lp.sum().backward();
    std::vector<torch::Tensor> g;
    for (const auto& t : model->parameters()) g.push_back(t.grad().reshape({-1}).to(torch::kFloat64));
    return std::make_pair(lp.detach(), torch::cat(g));
  };
  auto [lp32, g32] = grad_of(false);
  auto [lp16, g16] = grad_of(true);
  EXPECT_LE((lp32 - lp16).abs().max().item<double>(), 0.05);
  EXPECT_GT((lp32 - lp16).abs().max().item<double>(), 0.0);  // the bf16 path really ran
  double cosine = (g32 * g16).sum().item<double>() / (g32.norm() * g16.norm()).item<double>();
  EXPECT_GT(cosine, 0.99);
  std::printf("bf16 vs fp32: max |logp diff| %.4f, gradient cosine %.5f\n", (lp32 - lp16).abs().max().item<double>(),
              cosine);
}

TEST(TrainRl, RewardRisesOnATaskWithAKnownReward) {
  TempDir dir;
  auto c = rlaif::TrainConfig::from_toml(write_config(dir, "beta = 0.04\nsave_steps = 0"), {"train.max_steps=60"});
  rlaif::run_rl(c, {false, true});
  auto m = metrics(dir / "out/metrics.jsonl");
  ASSERT_EQ(m.size(), 60u);
  double first = 0, last = 0;
  for (int i = 0; i < 10; ++i)
    first += m[i]["reward"].get<double>() / 10, last += m[50 + i]["reward"].get<double>() / 10;
  EXPECT_GT(last, first + 0.15) << "reward " << first << " -> " << last;
  for (const char* key : {"reward",
                          "reward_std",
                          "rewards/regex/mean",
                          "frac_reward_zero_std",
                          "kl",
                          "entropy",
                          "clip_ratio/low_mean",
                          "clip_ratio/high_mean",
                          "clip_ratio/region_mean",
                          "completions/mean_length",
                          "completions/clipped_ratio",
                          "judge/latency_p50",
                          "judge/latency_p95",
                          "judge/failures",
                          "judge/cache_hit_rate",
                          "timing/generate",
                          "timing/judge",
                          "timing/train",
                          "tokens_per_s",
                          "lr",
                          "grad_norm"})
    EXPECT_TRUE(m.back().contains(key)) << key;
  EXPECT_GT(m.back()["kl"].get<double>(), 0.0);
  EXPECT_TRUE(fs::exists(dir / "out/final/model.safetensors"));
  EXPECT_TRUE(fs::exists(dir / "out/final/tokenizer.json"));
}

// tests/data/counting_env.py --letter-a as an [env] table: two turns, an action earns 1 when it contains "a".
std::string letter_command_env() {
  return "[env]\ntype = \"command\"\ncommand = [\"/usr/bin/python3\", \"" + std::string(RLAIF_REFERENCE_DIR) +
         "/../data/counting_env.py\", \"--letter-a\"]\n";
}

// The same game over OpenEnv's HTTP protocol: one environment per server, so the run gets a pool of them. A reset
// whose row's "env" says fail answers 400 (env_http_4xx).
class LetterServers {
 public:
  explicit LetterServers(int n) {
    for (int k = 0; k < n; ++k) {
      auto s = std::make_unique<Server>();
      s->http.Post("/reset", [p = s.get()](const httplib::Request& req, httplib::Response& res) {
        if (nlohmann::json::parse(req.body).value("fail", false)) {
          res.status = 400;
          return;
        }
        p->steps = 0;
        res.set_content(R"({"observation": {"text": "Start "}, "done": false})", "application/json");
      });
      s->http.Post("/step", [p = s.get()](const httplib::Request& req, httplib::Response& res) {
        const auto action = nlohmann::json::parse(req.body)["action"]["message"].get<std::string>();
        const nlohmann::json out = {{"observation",
                                     {{"text", "turn " + std::to_string(++p->steps) + ": you wrote " +
                                                   std::to_string(action.size()) + " characters"}}},
                                    {"reward", action.find('a') != std::string::npos ? 1.0 : 0.0},
                                    {"done", p->steps >= 2}};
        res.set_content(out.dump(), "application/json");
      });
      s->port = s->http.bind_to_any_port("127.0.0.1");
      s->thread = std::thread([p = s.get()] { p->http.listen_after_bind(); });
      while (!s->http.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      servers_.push_back(std::move(s));
    }
  }
  ~LetterServers() {
    for (auto& s : servers_) {
      s->http.stop();
      s->thread.join();
    }
  }
  std::string env_table() const {
    std::string urls;
    for (const auto& s : servers_)
      urls += (urls.empty() ? "\"" : ", \"") + std::string("http://127.0.0.1:") + std::to_string(s->port) + "\"";
    return "[env]\ntype = \"openenv\"\nbase_urls = [" + urls + "]\n";
  }

 private:
  struct Server {
    httplib::Server http;
    std::thread thread;
    int port = 0, steps = 0;
  };
  std::vector<std::unique_ptr<Server>> servers_;
};

// A run.toml (write_config's) whose samples are episodes of two turns against `env_table`, with the environment's
// reward alone unless `judge` keeps the rule grader.
std::string write_episode_config(const TempDir& dir, const std::string& extra, const std::string& env_extra = "",
                                 bool judge = false, const std::string& env_table = letter_command_env()) {
  auto text = rlaif::read_file(write_config(dir, extra + "\nmax_completion_length = 40"));
  if (!judge) text = text.substr(0, text.find("[judge]"));
  text += env_table + "max_turns = 2\nmax_turn_tokens = 6\nmax_episode_tokens = 12\n" + env_extra;
  rlaif_test::write_text(dir / "run.toml", text);
  return dir / "run.toml";
}

// Episodes against an environment whose reward is known (an action earns 1 when it contains "a"), as a command
// program and as a pool of OpenEnv HTTP servers: the environment's reward rises; an episode whose reset fails leaves
// its group; samples.jsonl holds the trajectories.
void expect_episodes_raise_the_reward(const std::string& env_table) {
  TempDir dir;
  make_model(dir);
  write_prompts(dir / "prompts.jsonl", 16);
  {
    std::ofstream(dir / "prompts.jsonl", std::ios::app)
        << "{\"prompt\": \"Broken\", \"fail\": true, \"env\": {\"fail\": true}}\n";
  }
  auto c = rlaif::TrainConfig::from_toml(write_episode_config(
      dir, "max_steps = 40\nsave_steps = 0\nbeta = 0.04\nlearning_rate = 2e-3\nlr_scheduler_type = \"constant\"", "",
      false, env_table));
  EXPECT_FALSE(c.has_judge);
  rlaif::run_rl(c, {false, true});
  auto m = metrics(dir / "out/metrics.jsonl");
  ASSERT_EQ(m.size(), 40u);
  double first = 0, last = 0, failures = 0;
  for (int i = 0; i < 10; ++i)
    first += m[i]["env/reward"].get<double>() / 10, last += m[30 + i]["env/reward"].get<double>() / 10;
  for (const auto& x : m) failures += x["env/failures"].get<double>();
  EXPECT_GT(last, first + 0.6) << "environment reward " << first << " -> " << last;
  std::printf("%s: environment reward over steps 1-10: %.3f, 31-40: %.3f (at most 2)\n", c.env.type.c_str(), first,
              last);
  EXPECT_GT(failures, 0.0) << "the failing row was drawn at least once in 40 steps of 4 prompts";
  double failed_share = 0;
  for (const auto& x : m) failed_share += x.value("env/ended_by/failure", 0.0);
  EXPECT_GT(failed_share, 0.0);
  for (const char* key : {"env/turns_mean", "env/policy_token_share", "env/wait_s", "kl", "rewards/env_reward/mean"})
    EXPECT_TRUE(m.back().contains(key)) << key;
  EXPECT_GT(m.back()["env/policy_token_share"].get<double>(), 0.0);
  EXPECT_LT(m.back()["env/policy_token_share"].get<double>(), 1.0);
  double reused = 0;  // later turns continue their episode's kept cache
  for (const auto& x : m) {
    EXPECT_LT(x["env/kv_reused_share"].get<double>(), 1.0);
    reused += x["env/kv_reused_share"].get<double>();
  }
  EXPECT_GT(reused, 0.0);
  for (const auto& x : m)  // an episode's length is the policy's tokens, at most max_episode_tokens
    EXPECT_LE(x["completions/max_length"].get<double>(), 12.0);
  int trajectories = 0;
  for (const auto& r : rlaif::read_jsonl(dir / "out/samples.jsonl")) {
    const auto& ep = r.value["episode"];
    ASSERT_TRUE(ep.is_object()) << r.value.dump();
    ASSERT_FALSE(ep["failed"].get<bool>()) << "a group whose episodes all failed is dropped";
    ++trajectories;
    EXPECT_EQ(ep["turns"], 2);
    EXPECT_EQ(ep["ended_by"], "done");
    EXPECT_DOUBLE_EQ(r.value["reward"].get<double>(), ep["env_reward"].get<double>());
    EXPECT_NE(r.value["completion"].get<std::string>().find("[environment]\nturn 1: you wrote "), std::string::npos);
  }
  EXPECT_GT(trajectories, 0);
}

TEST(TrainRl, EpisodesRaiseACommandEnvironmentsReward) { expect_episodes_raise_the_reward(letter_command_env()); }

TEST(TrainRl, EpisodesRaiseAnOpenEnvServersReward) {
  LetterServers servers(4);
  expect_episodes_raise_the_reward(servers.env_table());
}

// With a judge too, an episode's reward is reward_weight x the environment's + judge_weight x the judge's verdict
// (here a rule grader, which checks the episode's final answer: the policy's last turn contains "b"; a "b" in an
// earlier turn does not count).
TEST(TrainRl, EpisodeRewardMixesTheEnvironmentAndTheJudgeOnTheTrajectory) {
  TempDir dir;
  auto c = rlaif::TrainConfig::from_toml(
      write_episode_config(dir, "max_steps = 3\nsave_steps = 0", "reward_weight = 2.0\njudge_weight = 0.5\n", true));
  c.judge.graders[0].value = "b";
  c.judge.graders[0].validate("test");
  rlaif::run_rl(c, {false, true});
  int with_b = 0, rows = 0;
  for (const auto& r : rlaif::read_jsonl(dir / "out/samples.jsonl")) {
    const auto& v = r.value;
    std::string last_turn;
    for (const auto& msg : v["episode"]["messages"])
      if (msg["role"] == "assistant") last_turn = msg["content"].get<std::string>();
    const bool b = last_turn.find('b') != std::string::npos;
    with_b += b;
    ++rows;
    EXPECT_NEAR(v["reward"].get<double>(), 2.0 * v["episode"]["env_reward"].get<double>() + (b ? 0.5 : 0.0), 1e-9)
        << v.dump();
  }
  EXPECT_GT(rows, 0);
  std::printf("%d of %d trajectories with \"b\"\n", with_b, rows);
}

// Held-out evaluation plays one episode per eval prompt (fixed seeds) and scores it as training does: the environment's
// reward x reward_weight + the judge's x judge_weight, with the graders on the final answer.
TEST(TrainRl, EpisodesAreEvaluatedOnHeldOutPrompts) {
  TempDir dir;
  make_model(dir);
  write_prompts(dir / "eval.jsonl", 6, "Held out");
  auto c = rlaif::TrainConfig::from_toml(
      write_episode_config(dir, "max_steps = 2\nsave_steps = 0\neval_steps = 2\neval_samples = 5",
                           "reward_weight = 2.0\njudge_weight = 0.5\n", true));
  c.eval_prompts = dir / "eval.jsonl";
  c.judge.graders[0].value = "b";
  c.judge.graders[0].validate("test");
  c.validate("run.toml");
  rlaif::run_rl(c, {false, true});
  std::map<int64_t, std::vector<nlohmann::json>> by_step;
  for (const auto& r : rlaif::read_jsonl(dir / "out/eval_samples.jsonl")) by_step[r.value["step"]].push_back(r.value);
  ASSERT_EQ(by_step.size(), 2u);
  for (const auto& [step, lines] : by_step) {
    ASSERT_EQ(lines.size(), 5u) << "eval_samples = 5 of the 6 held-out prompts";
    for (const auto& v : lines) {
      ASSERT_TRUE(v["ok"].get<bool>()) << v.dump();
      const auto& ep = v["episode"];
      EXPECT_EQ(ep["turns"], 2) << "the environment ends an episode after 2 actions";
      EXPECT_EQ(v["prompt"].get<std::string>().rfind("Held out #", 0), 0u) << v["prompt"];
      std::string last_turn;
      for (const auto& msg : ep["messages"])
        if (msg["role"] == "assistant") last_turn = msg["content"].get<std::string>();
      const bool b = last_turn.find('b') != std::string::npos;
      EXPECT_NEAR(v["reward"].get<double>(), 2.0 * ep["env_reward"].get<double>() + (b ? 0.5 : 0.0), 1e-9) << v.dump();
      EXPECT_EQ(v["grades"]["regex"].get<double>(), b ? 1.0 : 0.0);
      EXPECT_NE(v["completion"].get<std::string>().find("[environment]\nturn 1: you wrote "), std::string::npos);
    }
  }
  double env_mean = 0;
  for (const auto& v : by_step[0]) env_mean += v["episode"]["env_reward"].get<double>() / 5;
  bool logged = false;
  for (const auto& r : rlaif::read_jsonl(dir / "out/metrics.jsonl"))
    if (const auto& m = r.value; m.contains("eval/reward") && m["step"] == 0) {
      logged = true;
      EXPECT_NEAR(m["eval/rewards/env_reward/mean"].get<double>(), env_mean, 1e-9);
      EXPECT_EQ(m["eval/failures"], 0);
    }
  EXPECT_TRUE(logged);
}

// Group judging of episodes: a prompt's trajectories go to the judge in one call (the test server scores each 7 of
// 1..10), and its reward joins the environment's.
TEST(TrainRl, GroupJudgingRanksAPromptsTrajectoriesInOneCall) {
  rlaif_test::FaultServer server;
  TempDir dir;
  auto c = rlaif::TrainConfig::from_toml(
      write_episode_config(dir, "max_steps = 2\nsave_steps = 0\njudge_mode = \"group\"", "judge_weight = 0.5\n", true));
  use_http_judge(c, server);
  c.judge.graders.clear();
  rlaif::run_rl(c, {false, true});
  EXPECT_EQ(server.requests(), 2 * c.prompts_per_step());
  auto m = metrics(dir / "out/metrics.jsonl");
  ASSERT_EQ(m.size(), 2u);
  EXPECT_TRUE(m[0].contains("judge/position_corr"));
  int rows = 0;
  for (const auto& r : rlaif::read_jsonl(dir / "out/samples.jsonl")) {
    EXPECT_NEAR(r.value["reward"].get<double>(), r.value["episode"]["env_reward"].get<double>() + 0.5 * 6.0 / 9, 1e-9);
    EXPECT_EQ(r.value["scores"]["group_score"], 7.0);
    ++rows;
  }
  EXPECT_GT(rows, 0);
}

TEST(TrainRl, EpisodeSettingsAreChecked) {
  TempDir dir;
  auto base = rlaif::read_file(write_config(dir));
  const std::string env =
      "[env]\ntype = \"command\"\ncommand = [\"/bin/cat\"]\nmax_turn_tokens = 8\nmax_episode_tokens = 64\n";
  rlaif_test::write_text(dir / "a.toml", base + env);
  rlaif_test::expect_error([&] { rlaif::TrainConfig::from_toml(dir / "a.toml").validate("a.toml"); },
                           {"env.max_episode_tokens", "max_completion_length (16)"});
  rlaif_test::write_text(dir / "b.toml", base + env + "max_turns = 0\n");
  rlaif_test::expect_error(
      [&] { rlaif::TrainConfig::from_toml(dir / "b.toml", {"train.max_completion_length=64"}).validate("b.toml"); },
      {"env.max_turns", ">= 1"});
  rlaif_test::write_text(dir / "c.toml", base + env + "turns = 2\n");
  rlaif_test::expect_error([&] { rlaif::TrainConfig::from_toml(dir / "c.toml"); }, {"unknown key \"turns\"", "line"});
  auto c = rlaif::TrainConfig::from_toml(dir / "a.toml", {"train.max_completion_length=64"});
  c.validate("a.toml");
  c.algorithm = rlaif::Algorithm::kOnlineDpo;
  c.num_generations = 2;
  rlaif_test::expect_error([&] { c.validate("a.toml"); }, {"env", "policy-gradient"});
  auto no_judge = rlaif::TrainConfig::from_toml(dir / "a.toml", {"train.max_completion_length=64"});
  no_judge.has_judge = false;
  no_judge.judge_eval_labels = "labels.jsonl";
  rlaif_test::expect_error([&] { no_judge.validate("a.toml"); }, {"train.judge_eval_labels", "has none"});
  auto tools = rlaif::TrainConfig::from_toml(dir / "a.toml", {"train.max_completion_length=64"});
  tools.env.type = "tools";
  tools.env.tools.resize(1);
  tools.env.tools[0].name = "lookup";
  tools.env.tools[0].command = {"/bin/cat"};
  tools.validate("a.toml");  // with the file's judge
  tools.has_judge = false;
  rlaif_test::expect_error([&] { tools.validate("a.toml"); }, {"env.type", "no reward of its own", "[[graders]]"});
}

TEST(TrainRl, ConstantRewardWithoutKlLeavesWeightsUnchanged) {
  for (bool lora : {false, true}) {
    TempDir dir;
    // The regex "" matches everything: every reward is 1, every advantage 0.
    auto path = write_config(dir, "beta = 0.0\nsave_steps = 0\nweight_decay = 0.0", lora ? "[lora]\nr = 4\n" : "");
    auto c = rlaif::TrainConfig::from_toml(path, {"train.max_steps=3"});
    c.judge.graders[0].value = "";
    c.judge.graders[0].validate("test");
    rlaif::run_rl(c, {false, true});
    auto m = metrics(dir / "out/metrics.jsonl");
    EXPECT_DOUBLE_EQ(m.back()["frac_reward_zero_std"].get<double>(), 1.0);
    if (lora) {
      for (const auto& [k, t] : weights(dir / "out/final/adapter_model.safetensors"))
        if (k.find("lora_B") != std::string::npos) {
          EXPECT_EQ(t.abs().max().item<double>(), 0.0) << k;
        }
    } else {
      EXPECT_TRUE(same_weights(dir / "model/model.safetensors", dir / "out/final/model.safetensors"));
    }
  }
}

TEST(TrainRl, LoraTrainsAdaptersOnlyAndWritesPeftFolders) {
  TempDir dir;
  auto path = write_config(dir, "beta = 0.04\nsave_steps = 2",
                           "[lora]\nr = 4\nlora_alpha = 8\ntarget_modules = \"all-linear\"\n");
  auto c = rlaif::TrainConfig::from_toml(path, {"train.max_steps=4"});
  auto before = weights(dir / "model/model.safetensors");
  rlaif::run_rl(c, {false, true});
  EXPECT_TRUE(same_weights(before, dir / "model/model.safetensors"));
  auto adapter = weights(dir / "out/final/adapter_model.safetensors");
  ASSERT_TRUE(adapter.count("base_model.model.model.layers.0.mlp.down_proj.lora_B.weight"));
  EXPECT_GT(adapter["base_model.model.model.layers.0.mlp.down_proj.lora_B.weight"].abs().max().item<double>(), 0.0);
  EXPECT_TRUE(fs::exists(dir / "out/checkpoint-2/adapter_config.json"));
  EXPECT_TRUE(fs::exists(dir / "out/checkpoint-4/optimizer.safetensors"));
  // The trained adapter loads onto the base and changes it.
  auto model = rlaif::load_model(dir / "model");
  rlaif::load_lora(model, dir / "out/final");
  EXPECT_EQ(model->lora().size(), 7u * model->config().num_hidden_layers);
}

TEST(TrainRl, FailedJudgmentsAreLeftOutOfTheirGroups) {
  rlaif_test::FaultServer server;
  TempDir dir;
  make_model(dir);
  std::string text;  // one id per prompt: the fault server counts attempts per id
  for (int i = 0; i < 8; ++i)
    text += nlohmann::json({{"prompt", "FAULT=500x1 ID=p" + std::to_string(i) + " say:"}}).dump() + "\n";
  rlaif_test::write_text(dir / "prompts.jsonl", text);
  auto path = write_config(dir, "max_steps = 1\nsave_steps = 0");
  auto c = rlaif::TrainConfig::from_toml(path);
  use_http_judge(c, server);
  c.judge.http.max_retries = 0;
  c.judge.graders.clear();
  rlaif::run_rl(c, {false, true});
  auto m = metrics(dir / "out/metrics.jsonl");
  ASSERT_EQ(m.size(), 1u);
  // 4 prompts x 4 samples; per prompt, the first request fails (500, no retries) and the other 3 succeed.
  EXPECT_EQ(m[0]["judge/failures"].get<int64_t>(), 4);
  EXPECT_EQ(m[0]["groups/kept"].get<int64_t>(), 4);
  EXPECT_DOUBLE_EQ(m[0]["reward"].get<double>(),
                   2.0 / 3);  // score 7 on 1..10 for each criterion, failures not scored 0
  int invalid = 0;
  for (const auto& r : rlaif::read_jsonl(dir / "out/samples.jsonl")) invalid += !r.value["valid"].get<bool>();
  EXPECT_EQ(invalid, 4);
}

TEST(TrainRl, GroupJudgingScoresAPromptsCompletionsInOneCall) {
  rlaif_test::FaultServer server;
  TempDir dir;
  make_model(dir);
  std::string text;  // prompts 1 and 3 get a reply with a non-numeric score: their whole group fails
  for (int i = 0; i < 4; ++i)
    text +=
        nlohmann::json({{"prompt", (i % 2 ? "FAULT=non_numeric ID=g" + std::to_string(i) + " " : "") + "say"}}).dump() +
        "\n";
  rlaif_test::write_text(dir / "prompts.jsonl", text);
  auto c = rlaif::TrainConfig::from_toml(write_config(dir, "max_steps = 1\nsave_steps = 0\njudge_mode = \"group\""));
  use_http_judge(c, server);
  c.judge.graders.clear();
  rlaif::run_rl(c, {false, true});
  auto m = metrics(dir / "out/metrics.jsonl");
  ASSERT_EQ(m.size(), 1u);
  // One call per prompt, not per completion; the two replies without a verdict are asked twice more each.
  EXPECT_EQ(server.requests(), 4 + 2 * 2);
  EXPECT_EQ(m[0]["groups/kept"].get<int64_t>(), 2);
  EXPECT_EQ(m[0]["groups/dropped"].get<int64_t>(), 2);
  EXPECT_EQ(m[0]["judge/failures"].get<int64_t>(), 8);
  EXPECT_NEAR(m[0]["reward"].get<double>(), 6.0 / 9, 1e-12);  // the server scores 7 on 1..10
  c.judge.backend = "none";
  rlaif_test::expect_error([&] { c.validate("run.toml"); }, {"train.judge_mode", "openai"});
}

// Group judging has what pointwise judging has: a second run of the same groups is answered by the cache, every
// group is journaled, and the token budget stops new requests (its groups fail as budget_exhausted).
TEST(TrainRl, GroupJudgingIsCachedJournaledAndHeldToTheBudget) {
  rlaif_test::FaultServer server;
  TempDir dir;
  make_model(dir);
  rlaif_test::write_prompts(dir / "prompts.jsonl", 4);
  auto c = rlaif::TrainConfig::from_toml(write_config(dir, "max_steps = 1\nsave_steps = 0\njudge_mode = \"group\""));
  use_http_judge(c, server);
  c.judge.graders.clear();
  c.judge.cache_path = dir / "cache.sqlite";
  c.judge.journal_path = dir / "journal.jsonl";
  rlaif::run_rl(c, {false, true});
  EXPECT_EQ(server.requests(), 4);
  int lines = 0;
  for (const auto& row : rlaif::read_jsonl(dir / "journal.jsonl")) {
    EXPECT_TRUE(row.value.value("group", false));
    EXPECT_EQ(row.value["scores"].size(), 4u);
    ++lines;
  }
  EXPECT_EQ(lines, 4);
  c.output_dir = dir / "again";  // the same seed: the same completions, the same groups
  rlaif::run_rl(c, {false, true});
  EXPECT_EQ(server.requests(), 4) << "the second run's groups come from the cache";
  EXPECT_EQ(metrics(dir / "again/metrics.jsonl")[0]["judge/cache_hit_rate"].get<double>(), 1.0);

  c.output_dir = dir / "budget";
  c.judge.cache_path = "";
  c.judge.http.max_in_flight = 1;
  c.judge.budget_tokens = 240;  // each call uses 120 tokens: two calls, then no more
  rlaif::run_rl(c, {false, true});
  EXPECT_EQ(server.requests(), 6);
  EXPECT_EQ(metrics(dir / "budget/metrics.jsonl")[0]["judge/failures"].get<int64_t>(), 8);
}

// Reward-integrity telemetry: a judge that passes everything (score 7 of 10) against a verifier that almost never
// passes; the verifier (weight 0) is reported, not rewarded, and the gap raises a warning.
TEST(TrainRl, IntegrityTelemetryComparesTheJudgeWithAVerifier) {
  rlaif_test::FaultServer server;
  TempDir dir;
  auto c =
      rlaif::TrainConfig::from_toml(write_config(dir, "max_steps = 2\nsave_steps = 0\nintegrity_verifier = \"has_x\""));
  use_http_judge(c, server);
  c.judge.graders[0].name = "has_x";
  c.judge.graders[0].value = "x";
  c.judge.graders[0].weight = 0;
  c.judge.graders[0].validate("test");
  rlaif::run_rl(c, {false, true});
  auto m = metrics(dir / "out/metrics.jsonl");
  ASSERT_EQ(m.size(), 2u);
  double passed = 0, valid = 0;
  for (const auto& r : rlaif::read_jsonl(dir / "out/samples.jsonl"))
    if (r.value["step"] == 1 && r.value["valid"].get<bool>())
      valid += 1, passed += r.value["grades"]["has_x"].get<double>();
  EXPECT_DOUBLE_EQ(m[0]["integrity/judge_success_rate"].get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(m[0]["integrity/verifier_success_rate"].get<double>(), passed / valid);
  EXPECT_DOUBLE_EQ(m[0]["integrity/judge_verifier_gap"].get<double>(), 1.0 - passed / valid);
  EXPECT_NEAR(m[0]["reward"].get<double>(), 6.0 / 9, 1e-12);  // the weight-0 verifier does not enter the reward
  ASSERT_TRUE(m[0].contains("warnings"));
  EXPECT_NE(m[0]["warnings"][0].get<std::string>().find("judge_verifier_gap"), std::string::npos);
  auto bad = c;
  bad.integrity_verifier = "nope";
  rlaif_test::expect_error([&] { bad.validate("run.toml"); }, {"train.integrity_verifier", "nope", "has_x"});
}

// Two judges in one run: the HTTP judge (score 7 of 10 on everything) and a reward command (1 when the completion
// has an "a", weight 2). Each sample's reward is their weighted mean; the metrics carry each judge's mean and how far
// apart they are.
TEST(TrainRl, APanelOfJudgesCombinesTheirRewardsWithWeights) {
  rlaif_test::FaultServer server;
  TempDir dir;
  rlaif_test::write_text(
      dir / "has_a.py",
      "import json, sys\n"
      "rows = json.load(sys.stdin)\n"
      "out = [{'id': r['id'], 'aggregate_reward_score': 1.0 if 'a' in r['messages'][-1]['content'] else 0.0}"
      " for r in rows]\n"
      "print(json.dumps(out))\n");
  rlaif_test::write_text(dir / "rules.toml",
                         "[judge]\nname = \"rules\"\nbackend = \"command\"\ncommand = [\"/usr/bin/python3\", \"" +
                             (dir / "has_a.py") + "\"]\n");
  auto path = write_config(dir, "max_steps = 1\nsave_steps = 0",
                           "[[panel]]\nconfig = \"" + (dir / "rules.toml") + "\"\nweight = 2\n");
  auto c = rlaif::TrainConfig::from_toml(path);
  use_http_judge(c, server);
  c.judge.graders.clear();
  rlaif::run_rl(c, {false, true});
  auto m = metrics(dir / "out/metrics.jsonl");
  ASSERT_EQ(m.size(), 1u);
  double sum = 0, spread = 0, n = 0, has_a = 0;
  for (const auto& r : rlaif::read_jsonl(dir / "out/samples.jsonl")) {
    if (!r.value["valid"].get<bool>()) continue;
    const double a = r.value["completion"].get<std::string>().find('a') != std::string::npos ? 1.0 : 0.0;
    EXPECT_NEAR(r.value["reward"].get<double>(), (2.0 / 3 + 2 * a) / 3, 1e-12) << r.value.dump();
    EXPECT_EQ(r.value["judges"]["rules"].get<double>(), a);
    sum += r.value["reward"].get<double>(), spread += std::fabs(2.0 / 3 - a) / 2, has_a += a, n += 1;
  }
  ASSERT_EQ(n, 16);
  EXPECT_NEAR(m[0]["reward"].get<double>(), sum / n, 1e-12);
  EXPECT_NEAR(m[0]["rewards/judge/mean"].get<double>(), 2.0 / 3, 1e-12);
  EXPECT_NEAR(m[0]["rewards/rules/mean"].get<double>(), has_a / n, 1e-12);
  EXPECT_NEAR(m[0]["judge/panel_disagreement"].get<double>(), spread / n, 1e-12);
  auto group = c;
  group.judge_mode = rlaif::JudgeMode::kGroup;
  rlaif_test::expect_error([&] { group.validate("run.toml"); }, {"panel", "pointwise"});
}

// The gate with the committed master-key set: this judge passes everything, so it passes every master key and the
// run is refused; a required content grader (the defence) brings the false-positive rate to 0 and the run starts.
TEST(TrainRl, PreflightGateRefusesAJudgeThatMasterKeysFoolAndTheContentGateFixesIt) {
  rlaif_test::FaultServer server;
  TempDir dir;
  rlaif_test::write_text(dir / "labels.jsonl", R"({"prompt": "Review a lamp.", "completion": "Bright", "label": 1}
{"prompt": "Review a desk.", "completion": "Solid", "label": 1}
)");
  const std::string keys = std::string(RLAIF_REFERENCE_DIR) + "/../data/judge_master_keys.jsonl";
  auto c = rlaif::TrainConfig::from_toml(
      write_config(dir, "max_steps = 1\nsave_steps = 0\njudge_eval_labels = \"" + (dir / "labels.jsonl") +
                            "\"\njudge_eval_master_keys = \"" + keys + "\"\njudge_max_false_positive_rate = 0.05"));
  use_http_judge(c, server);
  c.judge.graders.clear();
  rlaif_test::expect_error(
      [&] {
        rlaif::run_rl(c, {false, true});
      },
      {"fooled", "master_key_false_positive_rate is 1.0", "above 0.05", "type = \"content\""});
  auto report = nlohmann::json::parse(rlaif::read_file(dir / "out/judge_validation.json"));
  EXPECT_EQ(report["passed"], false);
  EXPECT_EQ(report["master_key_samples"].get<int64_t>(), 2 * static_cast<int64_t>(rlaif::read_jsonl(keys).size()));
  rlaif::Grader content;
  content.type = "content";
  content.required = true;
  content.weight = 0;
  content.validate("g");
  c.judge.graders = {content};
  rlaif::run_rl(c, {false, true});
  report = nlohmann::json::parse(rlaif::read_file(dir / "out/judge_validation.json"));
  EXPECT_EQ(report["passed"], true);
  EXPECT_EQ(report["master_key_false_positive_rate"], 0.0);
  auto bad = c;
  bad.judge_eval_master_keys = "";
  rlaif_test::expect_error([&] { bad.validate("run.toml"); }, {"train.judge_max_false_positive_rate"});
}

// The formatting and master-key detectors, recomputed from samples.jsonl (every completion is kept: no group
// drops): reward_format_corr is Pearson's r of reward and formatting_kinds, master_key_share the share of
// content-free completions. formatting_kinds itself on texts with each kind.
TEST(TrainRl, FormattingAndMasterKeyDetectorsMatchTheSamples) {
  EXPECT_EQ(rlaif::formatting_kinds("plain text"), 0);
  EXPECT_EQ(rlaif::formatting_kinds("- one\n- two"), 1);
  EXPECT_EQ(rlaif::formatting_kinds("  2. second"), 1);
  EXPECT_EQ(rlaif::formatting_kinds("# Title\n**bold**\n```\ncode\n```\nok \xF0\x9F\x98\x80"), 4);
  EXPECT_EQ(rlaif::formatting_kinds("5.5 is a number, -1 too"), 0);
  TempDir dir;
  write_prompts(dir / "prompts.jsonl", 8, "- a list item? Say");
  auto c = rlaif::TrainConfig::from_toml(write_config(dir, "max_steps = 2\nsave_steps = 0\ntemperature = 1.5"));
  rlaif::run_rl(c, {false, true});
  auto m = metrics(dir / "out/metrics.jsonl");
  ASSERT_EQ(m.size(), 2u);
  for (int64_t step = 1; step <= 2; ++step) {
    std::vector<double> reward, kinds;
    double content_free = 0, n = 0;
    for (const auto& r : rlaif::read_jsonl(dir / "out/samples.jsonl")) {
      if (r.value["step"] != step) continue;
      n += 1;
      content_free += rlaif::is_content_free(r.value["completion"], r.value["prompt"]);
      reward.push_back(r.value["reward"]);
      kinds.push_back(rlaif::formatting_kinds(r.value["completion"]));
    }
    ASSERT_EQ(n, m[step - 1]["groups/kept"].get<double>() * 4);
    double corr = rlaif::pearson(reward, kinds);
    EXPECT_NEAR(m[step - 1]["reward_format_corr"].get<double>(), std::isnan(corr) ? 0.0 : corr, 1e-12);
    EXPECT_NEAR(m[step - 1]["integrity/master_key_share"].get<double>(), content_free / n, 1e-12);
    std::printf("step %lld: reward_format_corr %.4f, master_key_share %.4f\n", static_cast<long long>(step),
                m[step - 1]["reward_format_corr"].get<double>(), content_free / n);
  }
}

TEST(TrainRl, PreflightGateRefusesAJudgeThatDisagreesWithTheLabels) {
  rlaif_test::FaultServer server;  // every reply scores 6/9: a judge that calls everything a pass
  TempDir dir;
  // 3 of 4 labels are passes: the judge's accuracy at threshold 0.5 is exactly 0.75.
  rlaif_test::write_text(dir / "labels.jsonl", R"({"prompt": "p1", "completion": "good", "label": 1}
{"prompt": "p2", "completion": "fine", "label": 1}
{"prompt": "p3", "completion": "ok", "label": 1}
{"prompt": "p4", "completion": "bad", "label": 0}
)");
  auto c =
      rlaif::TrainConfig::from_toml(write_config(dir, "max_steps = 1\nsave_steps = 0\njudge_eval_labels = \"" +
                                                          (dir / "labels.jsonl") + "\"\njudge_min_agreement = 0.8"));
  use_http_judge(c, server);
  rlaif_test::expect_error(
      [&] {
        rlaif::run_rl(c, {false, true});
      },
      {"accuracy", "0.75", "train.judge_min_agreement", "labels.jsonl", "judge_validation.json"});
  auto report = nlohmann::json::parse(rlaif::read_file(dir / "out/judge_validation.json"));
  EXPECT_EQ(report["passed"], false);
  EXPECT_DOUBLE_EQ(report["agreement"].get<double>(), 0.75);
  EXPECT_EQ(report["samples"], 4);
  EXPECT_FALSE(fs::exists(dir / "out/metrics.jsonl"));  // no step ran
  // Below the judge's agreement the run starts, and the report says it passed.
  c.judge_min_agreement = 0.7;
  rlaif::run_rl(c, {false, true});
  report = nlohmann::json::parse(rlaif::read_file(dir / "out/judge_validation.json"));
  EXPECT_EQ(report["passed"], true);
  EXPECT_EQ(metrics(dir / "out/metrics.jsonl").size(), 1u);
  auto bad = c;
  bad.judge_eval_labels = "";
  rlaif_test::expect_error([&] { bad.validate("run.toml"); }, {"train.judge_min_agreement", "judge_eval_labels"});
  rlaif_test::expect_error(
      [&] { rlaif::TrainConfig::from_toml(write_config(dir, "judge_agreement_metric = \"vibes\"")); },
      {"train.judge_agreement_metric (line", "vibes", "accuracy, spearman, kendall or kappa"});
}

TEST(TrainRl, OnlineDpoLearnsTheJudgesPreference) {
  rlaif_test::FaultServer server;  // prefers the response with more letters 'a' (PREFER=a in the prompt)
  TempDir dir;
  make_model(dir);
  write_prompts(dir / "prompts.jsonl", 16, "PREFER=a write");
  auto c = rlaif::TrainConfig::from_toml(
      write_config(dir,
                   "algorithm = \"online_dpo\"\nnum_generations = 2\nbeta = 0.1\nmax_steps = 40\nsave_steps = "
                   "0\nper_device_train_batch_size = 16\nlearning_rate = 5e-3\nlr_scheduler_type = \"constant\""));
  use_http_judge(c, server);
  c.judge.graders.clear();
  rlaif::run_rl(c, {false, true});
  auto m = metrics(dir / "out/metrics.jsonl");
  ASSERT_EQ(m.size(), 40u);
  EXPECT_TRUE(m.back().contains("judge/flip_rate"));
  EXPECT_TRUE(m.back().contains("rewards/margins"));
  // The share of letters 'a' in the completions rises.
  std::map<int, std::pair<double, double>> per_step;  // step -> (a count, characters)
  for (const auto& r : rlaif::read_jsonl(dir / "out/samples.jsonl")) {
    auto text = r.value["completion"].get<std::string>();
    auto& p = per_step[r.value["step"].get<int>()];
    p.first += std::count(text.begin(), text.end(), 'a');
    p.second += text.size();
  }
  auto share = [&](int from, int to) {
    double a = 0, n = 0;
    for (int s = from; s <= to; ++s) a += per_step[s].first, n += per_step[s].second;
    return a / std::max(1.0, n);
  };
  EXPECT_GT(share(31, 40), 2 * share(1, 10)) << share(1, 10) << " -> " << share(31, 40);
}

TEST(TrainRl, DynamicSamplingRefillsTheBatchWithInformativeGroups) {
  TempDir dir;
  make_model(dir);
  // Half the prompts can only ever score 1 (their reference is "", which every completion contains): no signal.
  std::string text;
  for (int i = 0; i < 16; ++i)
    text += nlohmann::json({{"prompt", "Say #" + std::to_string(i)}, {"reference", i % 2 ? "a" : ""}}).dump() + "\n";
  rlaif_test::write_text(dir / "prompts.jsonl", text);
  auto path = write_config(dir,
                           "max_steps = 4\nsave_steps = 0\ndynamic_sampling = true\nmax_dynamic_sampling_rounds = "
                           "8\nmax_completion_length = 64");
  auto c = rlaif::TrainConfig::from_toml(path);
  c.judge.graders[0].type = "contains";
  c.judge.graders[0].value = "{reference}";
  c.judge.graders[0].validate("test");
  rlaif::run_rl(c, {false, true});
  auto m = metrics(dir / "out/metrics.jsonl");
  ASSERT_EQ(m.size(), 4u);
  int full = 0;
  for (const auto& x : m) {
    EXPECT_GT(x["frac_reward_zero_std"].get<double>(), 0.0);  // flat groups were seen ...
    EXPECT_GT(x["reward_std"].get<double>(), 0.0);            // ... and none was kept
    full += x["groups/kept"].get<int64_t>() == c.prompts_per_step();
  }
  EXPECT_GE(full, 3);  // refilled to the full batch of prompts (a step may run out of rounds)
}

TEST(TrainSft, ConversationsTrainOnTheAssistantTurnOnly) {
  TempDir dir;
  make_model(dir);
  rlaif_test::write_text(dir / "chat.jsonl",
                         R"({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
)");
  std::string text = "[model]\npath = \"" + (dir / "model") + "\"\n[data]\nprompts = \"" + (dir / "chat.jsonl") +
                     "\"\n[train]\noutput_dir = \"" + (dir / "out") +
                     "\"\nmax_steps = 1\nper_device_train_batch_size = 1\nsave_steps = 0\n";
  rlaif_test::write_text(dir / "sft.toml", text);
  rlaif::run_sft(rlaif::TrainConfig::from_toml(dir / "sft.toml"), {false, true});
  auto rows = rlaif::read_jsonl(dir / "out/metrics.jsonl");
  ASSERT_EQ(rows.size(), 1u);
  // ChatML: the assistant turn after "<|im_start|>assistant\n" is "hello<|im_end|>\n": 5 bytes, the end token and the
  // newline — the system/user turns and the generation prompt are not in the loss.
  EXPECT_EQ(rows[0].value["num_tokens"].get<double>(), 7);
}

TEST(TrainSft, MemorisesItsDataWithLossOnCompletionsOnly) {
  TempDir dir;
  make_model(dir);
  rlaif_test::write_text(dir / "sft.jsonl", R"({"prompt": "Q: colour of the sky?\nA:", "completion": " blue"}
{"prompt": "Q: two plus two?\nA:", "completion": " four"}
)");
  std::string text = "[model]\npath = \"" + (dir / "model") + "\"\n[data]\nprompts = \"" + (dir / "sft.jsonl") +
                     "\"\neval_prompts = \"" + (dir / "sft.jsonl") + "\"\n[train]\noutput_dir = \"" + (dir / "out") +
                     "\"\nmax_steps = 80\nper_device_train_batch_size = 2\nlearning_rate = 3e-3\nsave_steps = 0\n"
                     "lr_scheduler_type = \"constant\"\n";
  rlaif_test::write_text(dir / "sft.toml", text);
  rlaif::run_sft(rlaif::TrainConfig::from_toml(dir / "sft.toml"), {false, true});
  std::vector<nlohmann::json> m;
  for (const auto& r : rlaif::read_jsonl(dir / "out/metrics.jsonl")) m.push_back(nlohmann::json::parse(r.value.dump()));
  ASSERT_EQ(m.size(), 80u);
  EXPECT_LT(m.back()["loss"].get<double>(), 0.05);
  EXPECT_GT(m.front()["loss"].get<double>(), 3.0);
  EXPECT_LT(m.back()["eval_loss"].get<double>(), 0.05);
  EXPECT_EQ(m.front()["num_tokens"].get<double>(), 5 + 5 + 2);  // " blue", " four" (bytes) + 2 end-of-sequence tokens
  auto r = rlaif_test::run_command(std::string(RLAIF_BIN) + " generate --model " + (dir / "out/final") + " --prompts " +
                                   (dir / "sft.jsonl") + " --out " + (dir / "gen.jsonl") +
                                   " --temperature 0 --max-new-tokens 8 --quiet");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto rows = rlaif::read_jsonl(dir / "gen.jsonl");
  EXPECT_EQ(rows[0].value["completion"], " blue");
  EXPECT_EQ(rows[1].value["completion"], " four");
}

TEST(TrainResume, KilledAnywhereAndResumedEndsBitIdentical) {
  for (bool lora : {false, true}) {
    TempDir ref_dir, dir;
    const std::string extra = "max_steps = 8\nsave_steps = 1\nsave_total_limit = 2\nbeta = 0.04\nnum_iterations = 2";
    const std::string tail = lora ? "[lora]\nr = 4\nlora_dropout = 0.1\n" : "";
    ASSERT_EQ(run_train(write_config(ref_dir, extra, tail), "", false), 0);
    auto config = write_config(dir, extra, tail);
    // A kill inside the write of checkpoint 3 (after the weights, before the state)...
    EXPECT_EQ(run_train(config, "RLAIF_TEST_KILL_IN_CHECKPOINT=3", false), -SIGKILL);
    EXPECT_FALSE(fs::exists(dir / "out/checkpoint-3"));
    EXPECT_TRUE(fs::exists(dir / "out/checkpoint-2/trainer_state.json"));
    // ... then kills at arbitrary moments of later steps (generation, judging, the update, the next checkpoint).
    int step = 3;
    for (int delay : {0, 7, 23}) {
      int rc = run_train(config, "", true, dir / ("out/checkpoint-" + std::to_string(step)), delay);
      EXPECT_EQ(rc, -SIGKILL);
      std::printf("killed %d ms after checkpoint-%d appeared; newest checkpoint now %s\n", delay, step,
                  rlaif::latest_checkpoint(dir / "out").c_str());
      step += 1;
    }
    ASSERT_EQ(run_train(config, "", true), 0);
    const std::string file = lora ? "adapter_model.safetensors" : "model.safetensors";
    EXPECT_TRUE(same_weights(ref_dir / ("out/final/" + file), dir / ("out/final/" + file))) << (lora ? "LoRA" : "full");
    // The metrics log holds each step once.
    auto m = metrics(dir / "out/metrics.jsonl");
    ASSERT_EQ(m.size(), 8u);
    for (int i = 0; i < 8; ++i) EXPECT_EQ(m[i]["step"].get<int>(), i + 1);
  }
}

// Episodes resume like completions: killed mid-episode (the environment's program dies with the run) and resumed, a
// run with a deterministic environment ends with the bytes of one never killed.
TEST(TrainResume, KilledMidEpisodeAndResumedEndsBitIdentical) {
  TempDir ref_dir, dir;
  const std::string extra = "max_steps = 6\nsave_steps = 1\nsave_total_limit = 2\nbeta = 0.04";
  ASSERT_EQ(run_train(write_episode_config(ref_dir, extra), "", false), 0);
  const auto config = write_episode_config(dir, extra);
  int step = 1;
  for (int delay : {0, 5, 20}) {
    EXPECT_EQ(run_train(config, "", step > 1, dir / ("out/checkpoint-" + std::to_string(step)), delay), -SIGKILL);
    std::printf("killed %d ms after checkpoint-%d appeared; newest checkpoint now %s\n", delay, step,
                rlaif::latest_checkpoint(dir / "out").c_str());
    step += 1;
  }
  ASSERT_EQ(run_train(config, "", true), 0);
  EXPECT_TRUE(same_weights(ref_dir / "out/final/model.safetensors", dir / "out/final/model.safetensors"));
  auto m = metrics(dir / "out/metrics.jsonl");
  ASSERT_EQ(m.size(), 6u);
  auto ref = metrics(ref_dir / "out/metrics.jsonl");
  for (int i = 0; i < 6; ++i) EXPECT_EQ(m[i]["env/reward"], ref[i]["env/reward"]) << "step " << i + 1;
}

// Chaos on the real settings: all cores, the default precision, an HTTP judge with a cache, full fine-tuning and LoRA.
// SIGKILL at up to 20 moments drawn at random over the run (while loading, generating, judging, updating, writing),
// each time resumed: the final weights are the bytes of a run never killed.
TEST(TrainResume, TwentyRandomKillsOnAllCoresWithAnHttpJudgeEndBitIdentical) {
  rlaif_test::FaultServer server;
  std::mt19937 rng(2026);
  for (bool lora : {false, true}) {
    TempDir ref_dir, dir;
    auto config = [&](const TempDir& d) {
      std::string text = rlaif::read_file(
          write_config(d, "max_steps = 40\nsave_steps = 1\nsave_total_limit = 2\nbeta = 0.04\nnum_threads = 0",
                       lora ? "[lora]\nr = 4\nlora_dropout = 0.1\n" : ""));
      // The rule grader stays; an HTTP judge (score 7 of 10) with a cache joins it.
      const std::string none = "backend = \"none\"\n";
      text.replace(text.find(none), none.size(),
                   "backend = \"openai\"\nbase_url = \"" + server.base_url() + "\"\nmodel = \"judge\"\ncache = \"" +
                       (d / "cache.sqlite") + "\"\n");
      rlaif_test::write_text(d / "run.toml", text);
      return d / "run.toml";
    };
    // The uninterrupted run sets the pace: `first` ms to its first step's metrics (start-up and one step), `step` ms
    // per step after it. Every fourth life is killed during its start-up (loading, the pre-flight, the first step);
    // the others after the step they log first, within the next step (generating, judging, updating, writing). So on
    // a fast machine and a slow one alike the kills cover the whole run, and no life saves more than two steps.
    const auto start = std::chrono::steady_clock::now();
    std::atomic<double> first{0};
    std::atomic<bool> done{false};
    std::thread watch([&] {
      while (!done && !fs::exists(ref_dir / "out/metrics.jsonl"))
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      first = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    });
    const int ref_rc = run_train(config(ref_dir), "", false);
    done = true;
    watch.join();
    ASSERT_EQ(ref_rc, 0);
    const double total = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    const double step = std::max(1.0, (total - first) / 39);
    std::printf("%s: first step after %.0f ms, then %.0f ms per step\n", lora ? "LoRA" : "full", first.load(), step);
    const std::string run = config(dir), log = dir / "out/metrics.jsonl";
    auto lines = [&] {
      std::ifstream in(log);
      return std::count(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>(), '\n');
    };
    int kills = 0, rc = -SIGKILL;
    for (; kills < 20; ++kills) {
      if (kills % 4 == 0) {
        rc = run_train_killed(run, "", kills > 0, nullptr,
                              std::uniform_int_distribution<int>(1, static_cast<int>(first))(rng));
      } else {
        const auto logged = lines();  // a resumed run keeps the lines up to its checkpoint, then logs the next step
        rc = run_train_killed(
            run, "", true, [&] { return lines() > logged; },
            std::uniform_int_distribution<int>(0, static_cast<int>(step))(rng));
      }
      if (rc != -SIGKILL) break;  // it ended before its kill
    }
    // A life may save more steps than planned when the machine runs faster than during the uninterrupted run (other
    // tests ending beside it): the run may then end before the 20th kill, having still been killed all along it.
    EXPECT_GE(kills, 12) << "the run ended (exit " << rc << ") after only " << kills << " kills";
    std::printf("%s: %d kills, then resumed from %s\n", lora ? "LoRA" : "full", kills,
                rlaif::latest_checkpoint(dir / "out").c_str());
    ASSERT_EQ(run_train(run, "", true), 0);
    const std::string file = lora ? "adapter_model.safetensors" : "model.safetensors";
    EXPECT_TRUE(same_weights(ref_dir / ("out/final/" + file), dir / ("out/final/" + file))) << (lora ? "LoRA" : "full");
    auto m = metrics(dir / "out/metrics.jsonl");
    ASSERT_EQ(m.size(), 40u);
    for (int i = 0; i < 40; ++i) EXPECT_EQ(m[i]["step"].get<int>(), i + 1);
  }
}

// Judge spend is part of the checkpoint: a run resumed from step 2 continues the budget the first two steps used,
// so it sends what the uninterrupted run sent after step 2 — not a fresh budget's worth.
TEST(TrainResume, TheJudgeBudgetContinuesAcrossResume) {
  rlaif_test::FaultServer server;
  TempDir dir;
  auto c = rlaif::TrainConfig::from_toml(write_config(
      dir, "max_steps = 4\nsave_steps = 2\nper_device_train_batch_size = 4\ngradient_accumulation_steps = 2"));
  use_http_judge(c, server);
  c.judge.http.max_in_flight = 1;
  c.judge.budget_tokens = 120 * 20;  // 20 judgments of 120 tokens: steps 1-2 use 16, step 3 four more, then none
  rlaif::run_rl(c, {false, true});
  ASSERT_EQ(server.requests(), 20);
  std::filesystem::remove_all(dir / "out/checkpoint-4");
  std::filesystem::remove_all(dir / "out/final");
  rlaif::run_rl(c, {true, true});
  EXPECT_EQ(server.requests(), 24) << "steps 3-4 again: the 4 requests the budget left after step 2, not 16";
}

TEST(TrainResume, RefusesToOverwriteOrToResumeADifferentRun) {
  TempDir dir;
  auto path = write_config(dir, "save_steps = 1", "");
  auto c = rlaif::TrainConfig::from_toml(path, {"train.max_steps=1"});
  rlaif::run_rl(c, {false, true});
  rlaif_test::expect_error([&] { rlaif::run_rl(c, {false, true}); }, {"already holds checkpoints", "--resume"});
  auto changed = rlaif::TrainConfig::from_toml(path, {"train.max_steps=2", "train.learning_rate=0.5"});
  rlaif_test::expect_error([&] { rlaif::run_rl(changed, {true, true}); }, {"differs from the run being resumed"});
}

}  // namespace
