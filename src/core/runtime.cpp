#include "rlaif/runtime.h"
#include <malloc.h>

#include <ATen/Parallel.h>
#include <link.h>
#include <torch/torch.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <mutex>
#include <set>
#include <thread>

namespace rlaif {
namespace {

// The real paths of the shared objects loaded in this process (Debian's BLAS is chosen by an alternatives symlink,
// e.g. libblas.so.3 -> .../openblas-pthread/libblas.so.3).
std::vector<std::string> loaded_library_paths() {
  std::vector<std::string> paths;
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* out) {
        if (!info->dlpi_name || !*info->dlpi_name) return 0;
        char real[PATH_MAX];
        const char* path = ::realpath(info->dlpi_name, real) ? real : info->dlpi_name;
        static_cast<std::vector<std::string>*>(out)->push_back(path);
        return 0;
      },
      &paths);
  return paths;
}

}  // namespace

bool blas_has_own_thread_pool(const std::vector<std::string>& library_paths) {
  for (const auto& p : library_paths) {
    const std::string file = p.substr(p.find_last_of('/') + 1);  // the whole path when it has no '/'
    const bool blas = file.find("blas") != std::string::npos || file.find("blis") != std::string::npos;
    if (blas && p.find("pthread") != std::string::npos) return true;  // in the folder's name or the file's
  }
  return false;
}

void ensure_runtime_env(int argc, char** argv) {
  if (std::getenv("RLAIF_NO_REEXEC") || std::getenv("RLAIF_REEXECED")) return;
  if (std::getenv("OMP_WAIT_POLICY") || !blas_has_own_thread_pool(loaded_library_paths())) return;
  ::setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
  ::setenv("RLAIF_REEXECED", "1", 1);
  ::execv("/proc/self/exe", argv);
  // If exec fails we simply carry on with the settings the process started with.
}

void keep_freed_memory() {
  mallopt(M_MMAP_MAX, 0);         // large blocks from the heap, not fresh mappings
  mallopt(M_TRIM_THRESHOLD, -1);  // and freed heap memory stays ours: never trimmed (mallopt(3))
  mallopt(M_TOP_PAD, 64 << 20);
}

int set_num_threads(int n) {
  if (n <= 0) n = static_cast<int>(std::thread::hardware_concurrency());
  if (n <= 0) n = 1;
  torch::set_num_threads(n);
  return n;
}

int intra_op_threads_used() {
  std::mutex mu;
  std::set<std::thread::id> seen;
  at::parallel_for(0, 1024, 1, [&](int64_t, int64_t) {
    std::lock_guard<std::mutex> lock(mu);
    seen.insert(std::this_thread::get_id());
  });
  return static_cast<int>(seen.size());
}

}  // namespace rlaif
