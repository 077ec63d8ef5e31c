// SIGTERM and SIGINT while a trainer runs: what Slurm, Kubernetes and spot instances send before SIGKILL (Slurm waits
// 30 s by default), and Ctrl-C. The first asks the run to stop: the trainer ends the step in progress, writes a
// checkpoint of it and returns RunOutcome::stopped (exit code 5). A second signal a second or more after the first
// ends the process at once (exit 128 + signal). Signals within a second of the first are the same request: Ctrl-C
// under torchrun reaches every rank from the terminal and again from the launcher. The handlers are installed for
// the object's lifetime; the previous ones come back after. Internal to the trainers.
#pragma once

#include <csignal>
#include <cstdint>
#include <string>

#include "rlaif/distributed.h"

namespace rlaif {

class StopSignals {
 public:
  StopSignals();
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

  // The signal that asked the run to stop (SIGTERM or SIGINT); 0 while none has.
  int received() const;
  // The same over the job: a signal any rank received (a collective, called by every rank once per step), so that
  // every rank stops after the same step.
  int agreed(Dist& dist) const;
  // Rank 0's last words: which signal, after which step, where the checkpoint is, how to continue.
  static void report(const char* trainer, int signal, int64_t step, const std::string& output_dir);

 private:
  struct sigaction old_term_ {
  }, old_int_{};
};

}  // namespace rlaif
