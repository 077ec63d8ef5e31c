// Data parallel over c10d (include/rlaif/distributed.h): the launchers' environments, the errors of a half-set one,
// a store nobody hosts, and `rlaif train` on two ranks started by torch's own launcher (scripts/torchrun) against the
// same global batch on one rank; a killed rank, resumed; a pool of judge servers under a job-wide rate limit.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>

#include <torch/torch.h>
#include "fault_server.h"
#include "rlaif/atomic_file.h"
#include "rlaif/distributed.h"
#include "rlaif/error.h"

#include "test_util.h"
#include "train_test_util.h"

namespace {

using rlaif_test::TempDir;

rlaif::DistEnv env_of(const std::map<std::string, std::string>& vars) {
  return rlaif::read_dist_env([&](const char* name) -> const char* {
    auto it = vars.find(name);
    return it == vars.end() ? nullptr : it->second.c_str();
  });
}

TEST(DistEnv, NoLauncherIsOneRank) {
  auto e = env_of({{"HOME", "/root"}});
  EXPECT_EQ(e.launcher, "none");
  EXPECT_EQ(e.world_size, 1);
  EXPECT_EQ(e.rank, 0);
  // A world of one needs no store: no MASTER_ADDR asked for.
  EXPECT_EQ(env_of({{"RANK", "0"}, {"WORLD_SIZE", "1"}}).world_size, 1);
}

TEST(DistEnv, TorchrunSlurmAndOpenMpiVariables) {
  auto t = env_of({{"RANK", "3"},
                   {"WORLD_SIZE", "4"},
                   {"LOCAL_RANK", "1"},
                   {"LOCAL_WORLD_SIZE", "2"},
                   {"MASTER_ADDR", "node0"},
                   {"MASTER_PORT", "29500"},
                   {"TORCHELASTIC_USE_AGENT_STORE", "True"},
                   {"TORCHELASTIC_RESTART_COUNT", "2"}});
  EXPECT_EQ(t.launcher, "torchrun");
  EXPECT_EQ(t.rank, 3);
  EXPECT_EQ(t.world_size, 4);
  EXPECT_EQ(t.local_rank, 1);
  EXPECT_EQ(t.local_world_size, 2);
  EXPECT_EQ(t.master_addr, "node0");
  EXPECT_EQ(t.master_port, 29500);
  EXPECT_TRUE(t.agent_store);
  EXPECT_EQ(t.store_prefix, "/worker/attempt_2");  // torchrun's agent hosts the store under this prefix

  auto s = env_of({{"SLURM_PROCID", "5"},
                   {"SLURM_NTASKS", "8"},
                   {"SLURM_LOCALID", "1"},
                   {"SLURM_TASKS_PER_NODE", "4(x2)"},
                   {"MASTER_ADDR", "10.0.0.1"},
                   {"MASTER_PORT", "12345"}});
  EXPECT_EQ(s.launcher, "slurm");
  EXPECT_EQ(s.rank, 5);
  EXPECT_EQ(s.world_size, 8);
  EXPECT_EQ(s.local_rank, 1);
  EXPECT_EQ(s.local_world_size, 4);
  EXPECT_FALSE(s.agent_store);

  auto m = env_of({{"OMPI_COMM_WORLD_RANK", "2"},
                   {"OMPI_COMM_WORLD_SIZE", "3"},
                   {"OMPI_COMM_WORLD_LOCAL_RANK", "0"},
                   {"OMPI_COMM_WORLD_LOCAL_SIZE", "1"},
                   {"MASTER_ADDR", "h"},
                   {"MASTER_PORT", "1"}});
  EXPECT_EQ(m.launcher, "mpi");
  EXPECT_EQ(m.rank, 2);
  EXPECT_EQ(m.world_size, 3);
  EXPECT_EQ(m.local_world_size, 1);

  // torchrun inside a Slurm allocation: torchrun's variables describe this process.
  auto both = env_of({{"RANK", "1"},
                      {"WORLD_SIZE", "2"},
                      {"SLURM_PROCID", "0"},
                      {"SLURM_NTASKS", "1"},
                      {"MASTER_ADDR", "h"},
                      {"MASTER_PORT", "2"}});
  EXPECT_EQ(both.launcher, "torchrun");
  EXPECT_EQ(both.rank, 1);
}

TEST(DistEnv, HalfSetEnvironmentsNameTheVariable) {
  using rlaif_test::expect_error;
  expect_error([] { env_of({{"RANK", "1"}}); }, {"WORLD_SIZE", "RANK is set"});
  expect_error([] { env_of({{"SLURM_NTASKS", "2"}}); }, {"SLURM_PROCID"});
  expect_error(
      [] {
        env_of({{"RANK", "2"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "1"}});
      },
      {"RANK", "\"2\"", "[0, 1]"});
  expect_error([] { env_of({{"RANK", "x"}, {"WORLD_SIZE", "2"}}); }, {"RANK", "not an integer"});
  expect_error([] { env_of({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_PORT", "1"}}); }, {"MASTER_ADDR"});
  expect_error([] { env_of({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}}); }, {"MASTER_PORT"});
  expect_error(
      [] {
        env_of({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "70000"}});
      },
      {"MASTER_PORT", "70000"});
  expect_error(
      [] {
        env_of({{"RANK", "0"}, {"WORLD_SIZE", "4"}, {"LOCAL_RANK", "2"}, {"LOCAL_WORLD_SIZE", "2"}});
      },
      {"LOCAL_RANK", "below"});
}

// A free TCP port on 127.0.0.1 (bound, read, released).
int free_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

TEST(DistConnect, NobodyHostingTheStoreIsAnErrorWithinTheTimeout) {
  rlaif::DistEnv e;
  e.launcher = "torchrun";
  e.rank = 1, e.world_size = 2, e.local_world_size = 2, e.local_rank = 1;
  e.master_addr = "127.0.0.1";
  e.master_port = free_port();  // nobody listens there
  auto t0 = std::chrono::steady_clock::now();
  rlaif_test::expect_error([&] { rlaif::Dist::connect(e, std::chrono::seconds(2)); },
                           {"rank 1 of 2", "MASTER_ADDR:MASTER_PORT = 127.0.0.1:" + std::to_string(e.master_port)});
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(s, 30.0) << "the timeout must bound the wait";
}

TEST(DistConnect, OneRankCollectivesAreTheIdentity) {
  auto d = rlaif::Dist::connect(rlaif::DistEnv{}, std::chrono::seconds(1));
  EXPECT_EQ(d->world_size(), 1);
  EXPECT_DOUBLE_EQ(d->sum(2.5), 2.5);
  EXPECT_EQ(d->all_gather(std::string("abc")), std::vector<std::string>{"abc"});
  auto t = torch::tensor({1.0, 2.0});
  d->all_reduce_sum(t);
  EXPECT_TRUE(torch::equal(t, torch::tensor({1.0, 2.0})));
  d->barrier();
}

// The config of the comparisons: full or LoRA fine-tuning, fp32 everywhere so the two runs' numerics can be
// compared; `batch` completions per rank per step; rewarded by a rule grader unless `judge` says otherwise.
const char* const kRuleJudge = "[judge]\nbackend = \"none\"\n[[graders]]\ntype = \"regex\"\nvalue = \"a\"\n";
std::string dp_config(const TempDir& dir, const std::string& out, int batch, const std::string& extra,
                      const std::string& judge = kRuleJudge) {
  return "[model]\npath = \"" + (dir / "policy") + "\"\ndtype = \"float32\"\n[data]\nprompts = \"" +
         (dir / "prompts.jsonl") + "\"\n[train]\noutput_dir = \"" + (dir / out) +
         "\"\nmax_steps = 3\nper_device_train_batch_size = " + std::to_string(batch / 2) +
         "\ngradient_accumulation_steps = 2\nnum_generations = 4\nmax_completion_length = 12\nlearning_rate = 1e-3\n"
         "num_threads = 1\nbf16 = false\nsave_steps = 2\nddp_timeout = 120\n" +
         extra + "\n" + judge;
}

// `rlaif train` on two ranks started by torchrun.
std::string torchrun_train(const std::string& config, const std::string& args = "") {
  return std::string(RLAIF_TORCHRUN) + " --no_python --nproc_per_node 2 --master_port " + std::to_string(free_port()) +
         " " + RLAIF_BIN + " train --config " + config + " " + args;
}

struct Compared {
  std::vector<nlohmann::json> one, two;
  std::map<std::string, torch::Tensor> w1, w2;
};

// The same global batch on one rank (16 completions) and on two ranks of 8 launched by torchrun.
Compared one_and_two_ranks(const TempDir& dir, const std::string& extra, const std::string& weights_file) {
  rlaif_test::write_text(dir / "one.toml", dp_config(dir, "one", 16, extra));
  rlaif_test::write_text(dir / "two.toml", dp_config(dir, "two", 8, extra));
  auto r = rlaif_test::run_command(std::string(RLAIF_BIN) + " train --quiet --config " + (dir / "one.toml"));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  r = rlaif_test::run_command(torchrun_train(dir / "two.toml", "--quiet"));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  Compared c;
  c.one = rlaif_test::metrics(dir / "one/metrics.jsonl");
  c.two = rlaif_test::metrics(dir / "two/metrics.jsonl");
  c.w1 = rlaif_test::weights(dir / ("one/final/" + weights_file));
  c.w2 = rlaif_test::weights(dir / ("two/final/" + weights_file));
  return c;
}

// Rewards and advantages come from the same samples (seeded by their place in the global batch) and the same
// reductions, so they are equal; the loss and weights differ only by the order of fp32 sums (the gradient of each
// rank's half is summed across ranks instead of accumulated in one pass): within 1e-6 relative / 1e-5 absolute.
void expect_same_training(const Compared& c) {
  ASSERT_EQ(c.one.size(), 3u);
  ASSERT_EQ(c.two.size(), 3u);
  for (size_t s = 0; s < 3; ++s) {
    for (const char* key : {"reward", "reward_std", "frac_reward_zero_std", "completions/mean_length",
                            "completions/clipped_ratio", "groups/kept", "train/tokens"})
      EXPECT_EQ(c.one[s][key], c.two[s][key]) << key << " at step " << s + 1;
    for (const char* key : {"loss", "grad_norm", "entropy"}) {
      const double a = c.one[s][key].get<double>(), b = c.two[s][key].get<double>();
      EXPECT_NEAR(a, b, 1e-6 * std::max(1.0, std::abs(a))) << key << " at step " << s + 1;
    }
    EXPECT_TRUE(c.two[s].contains("dist/wait"));
  }
  ASSERT_EQ(c.w1.size(), c.w2.size());
  double worst = 0;
  for (const auto& [name, t] : c.w1) worst = std::max(worst, (t - c.w2.at(name)).abs().max().item<double>());
  EXPECT_LT(worst, 1e-5);
  // And the weights did move: the comparison is not between two untrained models.
  double moved = 0;
  for (const auto& m : c.one) moved += m["grad_norm"].get<double>();
  EXPECT_GT(moved, 0.0);
}

class DataParallel : public ::testing::Test {
 protected:
  void SetUp() override {
    auto r =
        rlaif_test::run_command(std::string(RLAIF_BIN) + " init-model --arch qwen2 --seed 1 --out " + (dir / "policy"));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    rlaif_test::write_prompts(dir / "prompts.jsonl", 40);
  }
  TempDir dir;
};

TEST_F(DataParallel, TwoRanksTrainAsOneDapoWithBatchScaledRewards) {
  // Buckets of 16 KiB: the gradients are summed in many buckets while backward runs.
  auto c = one_and_two_ranks(
      dir, "loss_type = \"dapo\"\nscale_rewards = \"batch\"\nbeta = 0.04\nddp_bucket_cap_mb = 0.015625",
      "model.safetensors");
  expect_same_training(c);
  // Rank 0 alone wrote the run's files: every completion of the step is in samples.jsonl once.
  EXPECT_EQ(rlaif::read_file(dir / "one/samples.jsonl"), rlaif::read_file(dir / "two/samples.jsonl"));
}

TEST_F(DataParallel, TwoRanksTrainAsOneGrpoLoss) {
  // No overlap: one sum of every gradient after backward.
  expect_same_training(
      one_and_two_ranks(dir, "loss_type = \"grpo\"\nnum_iterations = 2\nddp_bucket_cap_mb = 0", "model.safetensors"));
}

TEST_F(DataParallel, TwoRanksTrainAsOneLora) {
  expect_same_training(one_and_two_ranks(dir,
                                         "[lora]\nr = 4\nlora_dropout = 0.0\ntarget_modules = [\"q_proj\", \"v_proj\"]",
                                         "adapter_model.safetensors"));
}

TEST_F(DataParallel, ResumeOnTwoRanksEndsWhereAnUninterruptedRunEnds) {
  rlaif_test::write_text(dir / "two.toml", dp_config(dir, "two", 8, ""));  // checkpoints after steps 2 and 3
  auto r = rlaif_test::run_command(torchrun_train(dir / "two.toml", "--quiet"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto uninterrupted = rlaif::read_file(dir / "two/final/model.safetensors");
  // Back to the checkpoint of step 2, then resumed by two ranks: the same final weights, bit for bit.
  std::filesystem::remove_all(dir / "two/checkpoint-3");
  std::filesystem::remove_all(dir / "two/final");
  r = rlaif_test::run_command(torchrun_train(dir / "two.toml", "--resume"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("resumed from"), std::string::npos) << r.output;
  EXPECT_EQ(rlaif::read_file(dir / "two/final/model.safetensors"), uninterrupted);
  EXPECT_EQ(rlaif_test::metrics(dir / "two/metrics.jsonl").size(), 3u);
}

TEST_F(DataParallel, AKilledRankStopsTheOtherWithinTheTimeoutAndTheRunResumes) {
  // Rank 1 is killed (SIGKILL) once training runs (the checkpoint of step 2 of 16 is written): rank 0 must stop with
  // an error, not wait in its next collective. The shell prints the milliseconds from the kill to rank 0's exit.
  const std::string settings = " --set train.max_steps=16 --set train.save_steps=1 --set train.ddp_timeout=60";
  rlaif_test::write_text(dir / "two.toml", dp_config(dir, "two", 8, ""));
  const std::string env = "WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(free_port()) + " ";
  const std::string train = std::string(RLAIF_BIN) + " train --quiet --config " + (dir / "two.toml") + settings;
  auto r = rlaif_test::run_command(
      "(RANK=1 " + env + train + " & p1=$!; RANK=0 " + env + train + " & p0=$!; " + "for i in $(seq 1 1200); do [ -d " +
      (dir / "two/checkpoint-2") + " ] && break; sleep 0.1; done; " +
      "kill -9 $p1; t=$(date +%s%N); wait $p0; echo rank0_exit=$?; echo ms=$(( ($(date +%s%N) - t) / 1000000 ))) 2>&1");
  EXPECT_NE(r.output.find("rank0_exit=1"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("another rank stopped"), std::string::npos) << r.output;
  const auto at = r.output.find("ms=");
  ASSERT_NE(at, std::string::npos) << r.output;
  EXPECT_LT(std::atof(r.output.c_str() + at + 3), 30000.0) << r.output;  // the closed connection, not the 60 s timeout
  ASSERT_FALSE(std::filesystem::exists(dir / "two/final")) << "the run ended before the kill";
  // --resume on two ranks continues from the last complete checkpoint and ends bit-identical to a run never killed.
  r = rlaif_test::run_command(torchrun_train(dir / "two.toml", "--quiet --resume" + settings));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  rlaif_test::write_text(dir / "whole.toml", dp_config(dir, "whole", 8, ""));
  r = rlaif_test::run_command(torchrun_train(dir / "whole.toml", "--quiet" + settings));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(rlaif::read_file(dir / "two/final/model.safetensors"),
            rlaif::read_file(dir / "whole/final/model.safetensors"));
}

// Three judge servers of different latency behind one job-wide limit of 600 requests per minute: each of the two ranks
// paces its starts at 300 a minute, so that no second of the run sees more than the job's 10 (and one more per rank
// at the window's edges). Every sample is judged once, and the per-endpoint metrics that rank 0 logs are the job's:
// they add up to what the servers received. (Load by in-flight count and a server dying: test_http_client.)
TEST_F(DataParallel, AJudgePoolHoldsTheRateLimitForTheWholeJob) {
  rlaif_test::FaultServer fast(5), medium(20), slow(60);
  const std::string judge = "[judge]\nbackend = \"openai\"\nmodel = \"m\"\nbase_url = [\"" + fast.base_url() +
                            "\", \"" + medium.base_url() + "\", \"" + slow.base_url() +
                            "\"]\nconcurrency = 4\nrequests_per_minute = 600\n";
  rlaif_test::write_text(dir / "pool.toml", dp_config(dir, "pool", 8, "", judge));
  auto r = rlaif_test::run_command(torchrun_train(dir / "pool.toml", "--quiet"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::vector<double> t;
  for (const auto* s : {&fast, &medium, &slow})
    for (double a : s->arrivals()) t.push_back(a);
  std::sort(t.begin(), t.end());
  ASSERT_EQ(t.size(), 48u);  // 3 steps x 16 completions, each judged once
  size_t most = 0;
  for (size_t i = 0, j = 0; i < t.size(); ++i) {
    while (t[i] - t[j] > 1.0) ++j;
    most = std::max(most, i - j + 1);
  }
  EXPECT_LE(most, 12u) << "requests in one second; without the job-wide share the two ranks would send 20";
  std::printf("job-wide: at most %zu requests in one second; servers got %lld/%lld/%lld\n", most,
              (long long)fast.requests(), (long long)medium.requests(), (long long)slow.requests());
  double requests = 0, failures = 0;
  for (const auto& m : rlaif_test::metrics(dir / "pool/metrics.jsonl"))
    for (int k = 0; k < 3; ++k) {
      const std::string key = "judge/endpoint_" + std::to_string(k) + "/";
      requests += m.at(key + "requests").get<double>();
      failures += m.at(key + "failures").get<double>();
      EXPECT_GE(m.at(key + "latency_mean").get<double>(), 0.0);
    }
  EXPECT_EQ(requests, 48);
  EXPECT_EQ(failures, 0);
  // Paced 200 ms apart, a request finds every server idle: the ties go to the server with the fewest so far.
  for (const auto* s : {&fast, &medium, &slow}) EXPECT_GE(s->requests(), 8);
}

TEST_F(DataParallel, ZeroStageOneGivesTheWeightsOfPlainDataParallelBitForBit) {
  // Each rank updates its share of the tensors with the same arithmetic: weights and the checkpoint's moments (gathered
  // from both ranks) are the same bytes as without sharding.
  rlaif_test::write_text(dir / "plain.toml", dp_config(dir, "plain", 8, ""));
  rlaif_test::write_text(dir / "zero.toml", dp_config(dir, "zero", 8, "zero_stage = 1"));
  for (const char* run : {"plain", "zero"}) {
    auto r = rlaif_test::run_command(torchrun_train(dir / (std::string(run) + ".toml"), "--quiet"));
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  EXPECT_EQ(rlaif::read_file(dir / "zero/final/model.safetensors"),
            rlaif::read_file(dir / "plain/final/model.safetensors"));
  EXPECT_EQ(rlaif::read_file(dir / "zero/checkpoint-2/optimizer.safetensors"),
            rlaif::read_file(dir / "plain/checkpoint-2/optimizer.safetensors"));
}

TEST_F(DataParallel, AZeroCheckpointOfTwoRanksResumesOnOne) {
  rlaif_test::write_text(dir / "zero.toml", dp_config(dir, "zero", 8, "zero_stage = 1"));
  auto r = rlaif_test::run_command(torchrun_train(dir / "zero.toml", "--quiet"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto uninterrupted = rlaif_test::weights(dir / "zero/final/model.safetensors");
  std::filesystem::remove_all(dir / "zero/checkpoint-3");
  std::filesystem::remove_all(dir / "zero/final");
  // One rank with twice the per-rank batch: the same global batch, so the same run continues.
  rlaif_test::write_text(dir / "one.toml", dp_config(dir, "zero", 16, "zero_stage = 1"));
  r = rlaif_test::run_command(std::string(RLAIF_BIN) + " train --resume --config " + (dir / "one.toml"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("written by 2 rank(s); continuing on 1"), std::string::npos) << r.output;
  double worst = 0;
  for (const auto& [name, t] : rlaif_test::weights(dir / "zero/final/model.safetensors"))
    worst = std::max(worst, (t - uninterrupted.at(name)).abs().max().item<double>());
  EXPECT_LT(worst, 1e-5);  // one step on one rank: the order of fp32 gradient sums differs (see above)
  // A different global batch is another run: refused.
  rlaif_test::write_text(dir / "other.toml", dp_config(dir, "zero", 8, "zero_stage = 1"));
  r = rlaif_test::run_command(std::string(RLAIF_BIN) + " train --resume --config " + (dir / "other.toml"));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("differs from the run being resumed"), std::string::npos) << r.output;
}

// `rlaif sft` on two ranks of 8 sequences against one of 16: the same rows per step, the loss normalised by the whole
// step's tokens, the gradients summed — the same losses and weights within the fp32 tolerance of the RL comparison;
// ZeRO-1 included, and a checkpoint of the two ranks resumed by them bit for bit.
TEST_F(DataParallel, SftOnTwoRanksTrainsAsOne) {
  std::string rows;
  for (int i = 0; i < 40; ++i)
    rows += nlohmann::json{{"prompt", "Q" + std::to_string(i) + ":"}, {"completion", " a" + std::string(i % 5, 'b')}}
                .dump() +
            "\n";
  rlaif_test::write_text(dir / "sft.jsonl", rows);
  auto config = [&](const std::string& out, int batch) {
    return "[model]\npath = \"" + (dir / "policy") + "\"\n[data]\nprompts = \"" + (dir / "sft.jsonl") +
           "\"\n[train]\noutput_dir = \"" + (dir / out) + "\"\nmax_steps = 3\nper_device_train_batch_size = 4\n" +
           "gradient_accumulation_steps = " + std::to_string(batch / 4) +
           "\nlearning_rate = 1e-3\nnum_threads = 1\nbf16 = false\nsave_steps = 2\nzero_stage = " +
           (out == "zero" ? "1" : "0") + "\n";
  };
  rlaif_test::write_text(dir / "one.toml", config("one", 16));
  rlaif_test::write_text(dir / "two.toml", config("two", 8));
  rlaif_test::write_text(dir / "zero.toml", config("zero", 8));
  auto r = rlaif_test::run_command(std::string(RLAIF_BIN) + " sft --quiet --config " + (dir / "one.toml"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string sft2 = std::string(RLAIF_TORCHRUN) + " --no_python --nproc_per_node 2 --master_port ";
  for (const char* run : {"two", "zero"}) {
    r = rlaif_test::run_command(sft2 + std::to_string(free_port()) + " " + RLAIF_BIN + " sft --quiet --config " +
                                (dir / (std::string(run) + ".toml")));
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  auto rows_of = [](const std::string& path) {
    std::vector<nlohmann::json> out;
    for (const auto& row : rlaif::read_jsonl(path)) out.push_back(nlohmann::json::parse(row.value.dump()));
    return out;
  };
  auto one = rows_of(dir / "one/metrics.jsonl"), two = rows_of(dir / "two/metrics.jsonl");
  ASSERT_EQ(one.size(), 3u);
  ASSERT_EQ(two.size(), 3u);
  for (size_t s = 0; s < 3; ++s) {
    EXPECT_EQ(one[s]["num_tokens"], two[s]["num_tokens"]) << "step " << s + 1;
    for (const char* key : {"loss", "grad_norm"}) {
      const double a = one[s][key].get<double>(), b = two[s][key].get<double>();
      EXPECT_NEAR(a, b, 1e-6 * std::max(1.0, std::abs(a))) << key << " at step " << s + 1;
    }
  }
  const auto w1 = rlaif_test::weights(dir / "one/final/model.safetensors");
  const auto w2 = rlaif_test::weights(dir / "two/final/model.safetensors");
  double worst = 0;
  for (const auto& [name, t] : w1) worst = std::max(worst, (t - w2.at(name)).abs().max().item<double>());
  EXPECT_LT(worst, 1e-5);
  std::printf("sft: 2 ranks vs 1: largest weight difference %.3g\n", worst);
  EXPECT_GT(one[0]["grad_norm"].get<double>(), 0.0);
  EXPECT_EQ(rlaif::read_file(dir / "zero/final/model.safetensors"),
            rlaif::read_file(dir / "two/final/model.safetensors"));
  // Resumed on two ranks from the step-2 checkpoint: the same bytes as the uninterrupted run.
  std::filesystem::remove_all(dir / "two/checkpoint-3");
  std::filesystem::remove_all(dir / "two/final");
  r = rlaif_test::run_command(sft2 + std::to_string(free_port()) + " " + RLAIF_BIN + " sft --resume --config " +
                              (dir / "two.toml"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(rlaif_test::weights(dir / "two/final/model.safetensors").size(), w2.size());
  double drift = 0;
  for (const auto& [name, t] : rlaif_test::weights(dir / "two/final/model.safetensors"))
    drift = std::max(drift, (t - w2.at(name)).abs().max().item<double>());
  EXPECT_EQ(drift, 0.0);
}

// Preemption: SIGTERM (what Slurm sends before SIGKILL) reaches rank 1 only. Both ranks end the step in progress,
// agree on it, write its checkpoint and exit with code 5; `--resume` then ends bit-identical to a run never stopped.
TEST_F(DataParallel, SigtermToOneRankStopsTheJobWithACheckpointAndTheRunResumes) {
  const std::string settings = " --set train.max_steps=12 --set train.save_steps=100";
  rlaif_test::write_text(dir / "two.toml", dp_config(dir, "two", 8, ""));
  const std::string env = "WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(free_port()) + " ";
  const std::string train = std::string(RLAIF_BIN) + " train --quiet --config " + (dir / "two.toml") + settings;
  const std::string metrics = dir / "two/metrics.jsonl";
  auto r = rlaif_test::run_command("(RANK=1 " + env + train + " & p1=$!; RANK=0 " + env + train + " & p0=$!; " +
                                   "for i in $(seq 1 1200); do [ -s " + metrics + " ] && [ $(wc -l < " + metrics +
                                   ") -ge 2 ] && break; sleep 0.05; done; kill -TERM $p1; wait $p1; " +
                                   "echo rank1_exit=$?; wait $p0; echo rank0_exit=$?) 2>&1");
  EXPECT_NE(r.output.find("rank1_exit=5"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("rank0_exit=5"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("SIGTERM: stopping after this step"), std::string::npos) << r.output;
  ASSERT_FALSE(std::filesystem::exists(dir / "two/final")) << "the run ended before the signal";
  // The checkpoint is of the last step logged: nothing done was lost.
  const auto logged = rlaif_test::metrics(metrics).size();
  EXPECT_TRUE(std::filesystem::exists(dir / ("two/checkpoint-" + std::to_string(logged)))) << r.output;
  r = rlaif_test::run_command(torchrun_train(dir / "two.toml", "--quiet --resume" + settings));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  rlaif_test::write_text(dir / "whole.toml", dp_config(dir, "whole", 8, ""));
  r = rlaif_test::run_command(torchrun_train(dir / "whole.toml", "--quiet" + settings));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(rlaif::read_file(dir / "two/final/model.safetensors"),
            rlaif::read_file(dir / "whole/final/model.safetensors"));
}

// A second signal a second after the first stops at once, even while the step waits on a judge that hangs; `rlaif
// sft` stops after its step on SIGINT, with a checkpoint, like train.
TEST_F(DataParallel, ASecondSignalStopsAtOnceAndSftStopsOnSigint) {
  const std::string hang = "[judge]\nbackend = \"command\"\ncommand = [\"sh\", \"-c\", \"sleep 20\"]\n";
  rlaif_test::write_text(dir / "hang.toml", dp_config(dir, "hang", 8, "", hang));
  auto r = rlaif_test::run_command("(" + std::string(RLAIF_BIN) + " train --quiet --config " + (dir / "hang.toml") +
                                   " & p=$!; sleep 3; kill -TERM $p; sleep 1.5; t=$(date +%s%N); kill -TERM $p; " +
                                   "wait $p; echo exit=$?; echo ms=$(( ($(date +%s%N) - t) / 1000000 ))) 2>&1");
  EXPECT_NE(r.output.find("SIGTERM: stopping after this step"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("second signal: stopping now"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("exit=143"), std::string::npos) << r.output;
  const auto at = r.output.find("ms=");
  ASSERT_NE(at, std::string::npos) << r.output;
  EXPECT_LT(std::atof(r.output.c_str() + at + 3), 2000.0) << r.output;

  std::string rows;
  for (int i = 0; i < 40; ++i) rows += "{\"prompt\": \"Q" + std::to_string(i) + ":\", \"completion\": \" ab\"}\n";
  rlaif_test::write_text(dir / "sft.jsonl", rows);
  rlaif_test::write_text(dir / "sft.toml", "[model]\npath = \"" + (dir / "policy") + "\"\n[data]\nprompts = \"" +
                                               (dir / "sft.jsonl") + "\"\n[train]\noutput_dir = \"" + (dir / "sft") +
                                               "\"\nmax_steps = 100000\nsave_steps = 0\nnum_threads = 1\n");
  const std::string metrics = dir / "sft/metrics.jsonl";
  r = rlaif_test::run_command("(" + std::string(RLAIF_BIN) + " sft --config " + (dir / "sft.toml") + " & p=$!; " +
                              "for i in $(seq 1 1200); do [ -s " + metrics + " ] && break; sleep 0.05; done; " +
                              "kill -INT $p; wait $p; echo exit=$?) 2>&1");
  EXPECT_NE(r.output.find("exit=5"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("stopped by SIGINT after step"), std::string::npos) << r.output;
  size_t logged = 0;
  for (const auto& row : rlaif::read_jsonl(metrics)) logged += row.value.contains("loss");
  EXPECT_TRUE(std::filesystem::exists(dir / ("sft/checkpoint-" + std::to_string(logged)))) << r.output;
}

}  // namespace
