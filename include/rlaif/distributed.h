// Several processes training one model (data parallel) over torch's own c10d: a TCPStore for the rendezvous and
// ProcessGroupGloo for the collectives. Processes are started by the launchers clusters use — torchrun, Slurm's srun,
// Open MPI's mpirun — and find their place from the environment those set (read_dist_env). Without any of them a
// process is rank 0 of 1 and every collective is the identity: the trainers call the same code either way.
// docs/distributed.md says how to launch and what is reduced.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

namespace rlaif {

// Where this process stands in the job.
struct DistEnv {
  std::string launcher = "none";  // none | torchrun | slurm | mpi
  int rank = 0, world_size = 1;
  int local_rank = 0, local_world_size = 1;  // on this machine
  std::string master_addr;                   // the TCPStore's host (rank 0's machine)
  int master_port = 0;
  // torchrun's agent hosts the store itself (TORCHELASTIC_USE_AGENT_STORE): every rank is a client, under the prefix
  // /worker/attempt_<restart count>.
  bool agent_store = false;
  std::string store_prefix;
};

// Reads the launcher's variables through `getenv` (name -> value or nullptr):
//   torchrun: RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT
//   Slurm:    SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID, SLURM_NTASKS_PER_NODE (or SLURM_TASKS_PER_NODE),
//             with MASTER_ADDR and MASTER_PORT set by the job script
//   Open MPI: OMPI_COMM_WORLD_RANK, OMPI_COMM_WORLD_SIZE, OMPI_COMM_WORLD_LOCAL_RANK, OMPI_COMM_WORLD_LOCAL_SIZE,
//             with MASTER_ADDR and MASTER_PORT
// torchrun's names win when several sets are present (torchrun inside an allocation). None of them: rank 0 of 1.
// A half-set environment (a rank without a world size, a rank outside the world, no MASTER_ADDR, a port that is not
// a number) throws rlaif::Error naming the variable.
DistEnv read_dist_env(const std::function<const char*(const char*)>& getenv);
DistEnv read_dist_env();  // from the process environment

// The job's process group. With world_size 1 there is none and every collective returns its input.
class Dist {
 public:
  // Joins the job: connects to (or, as rank 0, hosts) the store and builds the Gloo group. Every step that waits on
  // another process gives up after `timeout` with an error naming MASTER_ADDR:MASTER_PORT or the collective, so a
  // missing or dead rank stops the others instead of hanging them.
  static std::unique_ptr<Dist> connect(const DistEnv& env, std::chrono::milliseconds timeout);
  ~Dist();

  const DistEnv& env() const { return env_; }
  int rank() const { return env_.rank; }
  int world_size() const { return env_.world_size; }
  bool is_main() const { return env_.rank == 0; }

  // Sum over ranks, in place (float32, float64 or int64; any shape).
  void all_reduce_sum(torch::Tensor& t);
  // Starts summing the contiguous `t` over ranks in place and returns at once; the returned function waits until it
  // is done. Every rank must start its sums in the same order.
  std::function<void()> start_sum(torch::Tensor t);
  double sum(double x);
  std::vector<double> sum(std::vector<double> x);
  // Element-wise maximum over ranks (the slowest rank's timings).
  std::vector<double> max(std::vector<double> x);
  // Rank `root`'s `t` into every rank's `t` (same shape and type everywhere).
  void broadcast(torch::Tensor& t, int root);
  // Every rank's `x`, in rank order (on every rank).
  std::vector<int64_t> all_gather(int64_t x);
  std::vector<std::string> all_gather(const std::string& bytes);
  // Waits until every rank has arrived.
  void barrier();
  // Seconds spent waiting in collectives since the last call (the `dist/wait` metric).
  double take_wait_seconds();

 private:
  Dist() = default;
  struct Group;
  DistEnv env_;
  std::unique_ptr<Group> group_;
  double wait_s_ = 0;
};

}  // namespace rlaif
