// Data parallel over c10d (include/rlaif/distributed.h): the launchers' environments, the errors of a half-set one,
// a store nobody hosts, and `rlaif train` on two ranks started by torch's own launcher (scripts/torchrun) against the
// same global batch on one rank.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>

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
// compared; `batch` completions per rank per step.
std::string dp_config(const TempDir& dir, const std::string& out, int batch, const std::string& extra) {
  return "[model]\npath = \"" + (dir / "policy") + "\"\ndtype = \"float32\"\n[data]\nprompts = \"" +
         (dir / "prompts.jsonl") + "\"\n[train]\noutput_dir = \"" + (dir / out) +
         "\"\nmax_steps = 3\nper_device_train_batch_size = " + std::to_string(batch / 2) +
         "\ngradient_accumulation_steps = 2\nnum_generations = 4\nmax_completion_length = 12\nlearning_rate = 1e-3\n"
         "num_threads = 1\nbf16 = false\nsave_steps = 2\nddp_timeout = 120\n" +
         extra + "\n[judge]\nbackend = \"none\"\n[[graders]]\ntype = \"regex\"\nvalue = \"a\"\n";
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
  r = rlaif_test::run_command(std::string(RLAIF_TORCHRUN) + " --no_python --nproc_per_node 2 --master_port " +
                              std::to_string(free_port()) + " " + RLAIF_BIN + " train --quiet --config " +
                              (dir / "two.toml"));
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
  const std::string launch = std::string(RLAIF_TORCHRUN) + " --no_python --nproc_per_node 2 --master_port ";
  auto r = rlaif_test::run_command(launch + std::to_string(free_port()) + " " + RLAIF_BIN + " train --quiet --config " +
                                   (dir / "two.toml"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto uninterrupted = rlaif::read_file(dir / "two/final/model.safetensors");
  // Back to the checkpoint of step 2, then resumed by two ranks: the same final weights, bit for bit.
  std::filesystem::remove_all(dir / "two/checkpoint-3");
  std::filesystem::remove_all(dir / "two/final");
  r = rlaif_test::run_command(launch + std::to_string(free_port()) + " " + RLAIF_BIN + " train --config " +
                              (dir / "two.toml") + " --resume");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("resumed from"), std::string::npos) << r.output;
  EXPECT_EQ(rlaif::read_file(dir / "two/final/model.safetensors"), uninterrupted);
  EXPECT_EQ(rlaif_test::metrics(dir / "two/metrics.jsonl").size(), 3u);
}

TEST_F(DataParallel, AKilledRankStopsTheOtherWithinTheTimeout) {
  // Rank 1 is killed (SIGKILL) once training runs (rank 0 has logged a step of a long run): rank 0 must stop with an
  // error, not wait in its next collective. The shell prints the milliseconds from the kill to rank 0's exit.
  rlaif_test::write_text(dir / "two.toml", dp_config(dir, "two", 8, ""));
  const std::string env = "WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(free_port()) + " ";
  const std::string train = std::string(RLAIF_BIN) + " train --quiet --config " + (dir / "two.toml") +
                            " --set train.max_steps=100000 --set train.ddp_timeout=60";
  auto r = rlaif_test::run_command(
      "(RANK=1 " + env + train + " & p1=$!; RANK=0 " + env + train + " & p0=$!; " + "for i in $(seq 1 1200); do [ -s " +
      (dir / "two/metrics.jsonl") + " ] && break; sleep 0.1; done; " +
      "kill -9 $p1; t=$(date +%s%N); wait $p0; echo rank0_exit=$?; echo ms=$(( ($(date +%s%N) - t) / 1000000 ))) 2>&1");
  EXPECT_NE(r.output.find("rank0_exit=1"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("another rank stopped"), std::string::npos) << r.output;
  const auto at = r.output.find("ms=");
  ASSERT_NE(at, std::string::npos) << r.output;
  EXPECT_LT(std::atof(r.output.c_str() + at + 3), 30000.0) << r.output;  // the closed connection, not the 60 s timeout
}

std::string torchrun_train(const std::string& config, const std::string& args = "") {
  return std::string(RLAIF_TORCHRUN) + " --no_python --nproc_per_node 2 --master_port " + std::to_string(free_port()) +
         " " + RLAIF_BIN + " train --config " + config + " " + args;
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

TEST_F(DataParallel, SftUnderALauncherSaysItRunsAsOneProcess) {
  rlaif_test::write_text(dir / "two.toml", dp_config(dir, "two", 8, ""));
  auto r = rlaif_test::run_command("RANK=1 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=1 " + std::string(RLAIF_BIN) +
                                   " sft --quiet --config " + (dir / "two.toml"));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("rank 1 of 2 (torchrun)"), std::string::npos) << r.output;
  EXPECT_FALSE(std::filesystem::exists(dir / "two"));  // nothing written
}

}  // namespace
