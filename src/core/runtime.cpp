#include <malloc.h>
#include "rlaif/runtime.h"

#include <torch/torch.h>
#include <unistd.h>

#include <cstdlib>
#include <thread>

namespace rlaif {

void ensure_runtime_env(int argc, char** argv) {
  if (std::getenv("RLAIF_NO_REEXEC") || std::getenv("RLAIF_REEXECED")) return;
  bool changed = false;
  if (!std::getenv("OMP_WAIT_POLICY")) {
    ::setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
    changed = true;
  }
  if (!changed) return;
  ::setenv("RLAIF_REEXECED", "1", 1);
  ::execv("/proc/self/exe", argv);
  // If exec fails we simply carry on with the settings the process started with.
}

void keep_freed_memory() {
  mallopt(M_MMAP_MAX, 0);                        // large blocks from the heap, not fresh mappings
  mallopt(M_TRIM_THRESHOLD, -1);                 // and freed heap memory stays ours: never trimmed (mallopt(3))
  mallopt(M_TOP_PAD, 64 << 20);
}

int set_num_threads(int n) {
  if (n <= 0) n = static_cast<int>(std::thread::hardware_concurrency());
  if (n <= 0) n = 1;
  torch::set_num_threads(n);
  return n;
}

}  // namespace rlaif

