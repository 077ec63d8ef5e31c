// The job's environment and process group (include/rlaif/distributed.h) on c10d: TCPStore + ProcessGroupGloo.
#include "rlaif/distributed.h"

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <cstdlib>
#include <cstring>

#include "rlaif/error.h"

namespace rlaif {
namespace {

using Clock = std::chrono::steady_clock;

// An integer variable, or `fallback` when unset; a value that is not an integer in [lo, hi] names the variable.
int int_var(const std::function<const char*(const char*)>& getenv, const char* name, int fallback, int lo, int hi) {
  const char* v = getenv(name);
  if (!v) return fallback;
  char* end = nullptr;
  errno = 0;
  long x = std::strtol(v, &end, 10);
  if (*v == '\0' || *end != '\0' || errno != 0 || x < lo || x > hi)
    throw Error("environment variable " + std::string(name) + "=\"" + v + "\" is not an integer in [" +
                    std::to_string(lo) + ", " + std::to_string(hi) + "]",
                name, "the launcher sets it; check the job script");
  return static_cast<int>(x);
}

struct VarNames {
  const char* launcher;
  const char* rank;
  const char* world;
  const char* local_rank;
  const char* local_world;
};

// Slurm's SLURM_TASKS_PER_NODE is "2(x3),1": the tasks on the first node are enough for an even layout.
int slurm_tasks_per_node(const std::function<const char*(const char*)>& getenv) {
  if (getenv("SLURM_NTASKS_PER_NODE")) return int_var(getenv, "SLURM_NTASKS_PER_NODE", 1, 1, 1 << 20);
  const char* v = getenv("SLURM_TASKS_PER_NODE");
  return v && std::atoi(v) > 0 ? std::atoi(v) : 1;
}

}  // namespace

DistEnv read_dist_env(const std::function<const char*(const char*)>& getenv) {
  static const VarNames kSets[] = {
      {"torchrun", "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"},
      {"slurm", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", nullptr},
      {"mpi", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK",
       "OMPI_COMM_WORLD_LOCAL_SIZE"},
  };
  DistEnv e;
  for (const auto& s : kSets) {
    const bool has_rank = getenv(s.rank) != nullptr, has_world = getenv(s.world) != nullptr;
    if (!has_rank && !has_world) continue;
    if (has_rank != has_world) {
      const char* missing = has_rank ? s.world : s.rank;
      throw Error(std::string(has_rank ? s.rank : s.world) + " is set but " + missing + " is not", missing,
                  std::string("a ") + s.launcher + " job sets both; run under the launcher, or unset the other");
    }
    e.launcher = s.launcher;
    e.world_size = int_var(getenv, s.world, 1, 1, 1 << 20);
    e.rank = int_var(getenv, s.rank, 0, 0, e.world_size - 1);
    e.local_rank = int_var(getenv, s.local_rank, e.rank, 0, e.world_size - 1);
    e.local_world_size = s.local_world ? int_var(getenv, s.local_world, e.world_size, 1, e.world_size)
                                       : std::min(e.world_size, slurm_tasks_per_node(getenv));
    if (e.local_rank >= e.local_world_size)
      throw Error(std::string(s.local_rank) + " = " + std::to_string(e.local_rank) +
                      " is not below the ranks on this "
                      "machine (" +
                      std::to_string(e.local_world_size) + ")",
                  s.local_rank, "check the job script");
    break;
  }
  if (e.world_size == 1) return e;  // one process: no store, no group
  const char* addr = getenv("MASTER_ADDR");
  if (!addr || !*addr)
    throw Error("MASTER_ADDR is not set: the ranks cannot find each other", "MASTER_ADDR",
                "set it to rank 0's host (torchrun sets it; a Slurm script takes the first host of "
                "SLURM_JOB_NODELIST, see docs/distributed.md)");
  if (!getenv("MASTER_PORT"))
    throw Error("MASTER_PORT is not set: the ranks cannot find each other", "MASTER_PORT",
                "set it to a free TCP port on rank 0's host, e.g. 29500");
  e.master_addr = addr;
  e.master_port = int_var(getenv, "MASTER_PORT", 0, 1, 65535);
  const char* agent = getenv("TORCHELASTIC_USE_AGENT_STORE");
  e.agent_store = agent && std::string(agent) == "True";
  if (e.agent_store) {
    const char* restarts = getenv("TORCHELASTIC_RESTART_COUNT");
    e.store_prefix = std::string("/worker/attempt_") + (restarts ? restarts : "0");
  }
  return e;
}

DistEnv read_dist_env() {
  return read_dist_env([](const char* name) { return static_cast<const char*>(std::getenv(name)); });
}

struct Dist::Group {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg;
};

Dist::~Dist() = default;

std::unique_ptr<Dist> Dist::connect(const DistEnv& env, std::chrono::milliseconds timeout) {
  std::unique_ptr<Dist> d(new Dist());
  d->env_ = env;
  if (env.world_size == 1) return d;
  const std::string where = "MASTER_ADDR:MASTER_PORT = " + env.master_addr + ":" + std::to_string(env.master_port);
  d->group_ = std::make_unique<Group>();
  try {
    c10d::TCPStoreOptions o;
    o.port = static_cast<uint16_t>(env.master_port);
    o.isServer = env.rank == 0 && !env.agent_store;
    o.numWorkers = env.world_size;
    o.waitWorkers = true;  // every process counts itself in; the host waits until all numWorkers have
    o.timeout = timeout;
    c10::intrusive_ptr<c10d::Store> store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, o);
    if (!env.store_prefix.empty()) store = c10::make_intrusive<c10d::PrefixStore>(env.store_prefix, store);
    d->group_->store = store;
  } catch (const std::exception& e) {
    throw Error("rank " + std::to_string(env.rank) + " of " + std::to_string(env.world_size) +
                    " could not reach the job's store within " + std::to_string(timeout.count() / 1000) +
                    " s: " + std::string(e.what()).substr(0, 300),
                where, "is rank 0 running, and is the address and port reachable from this machine?");
  }
  try {
    auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
    const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
    const bool loopback = env.master_addr == "localhost" || env.master_addr.rfind("127.", 0) == 0;
    if (ifname && *ifname)
      opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
    else if (loopback)
      opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
    else
      opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    d->group_->pg = c10::make_intrusive<c10d::ProcessGroupGloo>(d->group_->store, env.rank, env.world_size, opts);
  } catch (const std::exception& e) {
    throw Error("rank " + std::to_string(env.rank) +
                    " could not join the process group: " + std::string(e.what()).substr(0, 300),
                where, "every rank must start within the timeout; GLOO_SOCKET_IFNAME picks the network interface");
  }
  return d;
}

namespace {

// Runs one collective and waits for it; a failure (a rank died, a timeout) becomes an error that says so.
void wait_for(const c10::intrusive_ptr<c10d::Work>& work, const char* what, int rank, double& wait_s) {
  auto t0 = Clock::now();
  try {
    work->wait();
  } catch (const std::exception& e) {
    throw Error(std::string("rank ") + std::to_string(rank) + ": the collective " + what +
                    " failed — another rank stopped or timed out: " + std::string(e.what()).substr(0, 300),
                "distributed job", "see the other ranks' messages; resume with --resume from the last checkpoint");
  }
  wait_s += std::chrono::duration<double>(Clock::now() - t0).count();
}

}  // namespace

void Dist::all_reduce_sum(torch::Tensor& t) {
  if (!group_) return;
  std::vector<at::Tensor> ts = {t.is_contiguous() ? t : t.contiguous()};
  c10d::AllreduceOptions o;
  o.reduceOp = c10d::ReduceOp::SUM;
  wait_for(group_->pg->allreduce(ts, o), "all_reduce", rank(), wait_s_);
  if (!ts[0].is_same(t)) t.copy_(ts[0]);
}

std::function<void()> Dist::start_sum(torch::Tensor t) {
  if (!group_) return [] {};
  TORCH_CHECK(t.is_contiguous(), "start_sum needs a contiguous tensor");
  std::vector<at::Tensor> ts = {t};
  c10d::AllreduceOptions o;
  o.reduceOp = c10d::ReduceOp::SUM;
  auto work = group_->pg->allreduce(ts, o);
  return [this, work, t] { wait_for(work, "all_reduce", rank(), wait_s_); };
}

void Dist::broadcast(torch::Tensor& t, int root) {
  if (!group_) return;
  std::vector<at::Tensor> ts = {t.is_contiguous() ? t : t.contiguous()};
  c10d::BroadcastOptions o;
  o.rootRank = root;
  wait_for(group_->pg->broadcast(ts, o), "broadcast", rank(), wait_s_);
  if (!ts[0].is_same(t)) t.copy_(ts[0]);
}

double Dist::sum(double x) { return sum(std::vector<double>{x})[0]; }

std::vector<double> Dist::sum(std::vector<double> x) {
  if (!group_ || x.empty()) return x;
  auto t = torch::tensor(x, torch::kFloat64);
  all_reduce_sum(t);
  return std::vector<double>(t.data_ptr<double>(), t.data_ptr<double>() + t.numel());
}

std::vector<double> Dist::max(std::vector<double> x) {
  if (!group_ || x.empty()) return x;
  std::vector<at::Tensor> ts = {torch::tensor(x, torch::kFloat64)};
  c10d::AllreduceOptions o;
  o.reduceOp = c10d::ReduceOp::MAX;
  wait_for(group_->pg->allreduce(ts, o), "all_reduce", rank(), wait_s_);
  return std::vector<double>(ts[0].data_ptr<double>(), ts[0].data_ptr<double>() + ts[0].numel());
}

std::vector<int64_t> Dist::all_gather(int64_t x) {
  if (!group_) return {x};
  std::vector<at::Tensor> in = {torch::full({1}, x, torch::kInt64)};
  std::vector<std::vector<at::Tensor>> out(1);
  for (int r = 0; r < world_size(); ++r) out[0].push_back(torch::empty({1}, torch::kInt64));
  wait_for(group_->pg->allgather(out, in), "all_gather", rank(), wait_s_);
  std::vector<int64_t> v;
  for (const auto& t : out[0]) v.push_back(t.item<int64_t>());
  return v;
}

std::vector<std::string> Dist::all_gather(const std::string& bytes) {
  if (!group_) return {bytes};
  auto sizes = all_gather(static_cast<int64_t>(bytes.size()));
  int64_t longest = 1;
  for (auto s : sizes) longest = std::max(longest, s);
  auto mine = torch::zeros({longest}, torch::kUInt8);
  std::memcpy(mine.data_ptr<uint8_t>(), bytes.data(), bytes.size());
  std::vector<at::Tensor> in = {mine};
  std::vector<std::vector<at::Tensor>> out(1);
  for (int r = 0; r < world_size(); ++r) out[0].push_back(torch::empty({longest}, torch::kUInt8));
  wait_for(group_->pg->allgather(out, in), "all_gather", rank(), wait_s_);
  std::vector<std::string> v;
  for (int r = 0; r < world_size(); ++r)
    v.emplace_back(reinterpret_cast<const char*>(out[0][r].data_ptr<uint8_t>()), static_cast<size_t>(sizes[r]));
  return v;
}

void Dist::barrier() {
  if (!group_) return;
  wait_for(group_->pg->barrier(), "barrier", rank(), wait_s_);
}

double Dist::take_wait_seconds() {
  double w = wait_s_;
  wait_s_ = 0;
  return w;
}

}  // namespace rlaif
