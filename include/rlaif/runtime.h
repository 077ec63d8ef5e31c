// Process-wide numeric runtime settings: threads and the environment that OpenMP and OpenBLAS read when they load.
#pragma once

#include <string>
#include <vector>

namespace rlaif {

// Call first in main(). OpenMP reads its settings from the environment once, when it loads, so where one is needed
// this sets it and re-executes the program once (the user never needs to know):
//   OMP_WAIT_POLICY=PASSIVE  — only when the BLAS loaded has its own pthread pool (Debian's openblas-pthread or
//                              blis-pthread): libtorch's OpenMP pool and that one otherwise spin against each other
//                              (measured: up to 3x slower batched decode on 2 cores). With the OpenMP OpenBLAS that
//                              scripts/setup.sh installs there is one pool, and OpenMP's default (spin briefly, then
//                              sleep) is kept: under PASSIVE each of a batch-1 token's ~120 kernels wakes the sleeping
//                              second thread (the kernels streamed 21.5 GB/s against 30.7, docs/perf.md).
// Anything the user already set is respected. RLAIF_NO_REEXEC=1 turns this off.
void ensure_runtime_env(int argc, char** argv);

// Whether one of these shared objects (real paths) is a BLAS built on its own pthread pool.
bool blas_has_own_thread_pool(const std::vector<std::string>& library_paths);

// Training allocates and frees the same large activation tensors every micro-batch. glibc serves blocks over 32 MiB
// with fresh mappings and unmaps them on free, so every micro-batch paid for zeroed pages again (measured: a quarter
// of a training step in the kernel's clear_page, docs/perf.md). This keeps freed memory in the process for reuse:
// no mmap'd blocks and no trimming of the heap's top (a 1 GiB trim threshold still gave back each micro-batch's
// activations: a 2-prompt bf16 step took 9.8 s instead of 7.7). Call once, before training; peak memory is
// unchanged, the resident size stays near the peak.
void keep_freed_memory();

// Sets libtorch's intra-op threads (0 = number of cores). Returns the number in use.
int set_num_threads(int n);

// How many threads took part in an at::parallel_for over 1024 items, run from the library's own code. at::parallel_for
// is a header template that runs in parallel only where the caller was compiled with OpenMP; this is the check that
// the library's kernels were (CMakeLists.txt).
int intra_op_threads_used();

}  // namespace rlaif
