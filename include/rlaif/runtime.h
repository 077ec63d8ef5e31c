// Process-wide numeric runtime settings: threads and the environment that OpenMP and OpenBLAS read when they load.
#pragma once

namespace rlaif {

// Call first in main(). OpenMP and OpenBLAS read their settings from the environment once, when they load, so this
// sets what is unset and re-executes the program once (the user never needs to know):
//   OMP_WAIT_POLICY=PASSIVE  — libtorch's OpenMP pool and OpenBLAS otherwise spin against each other (measured: up to
//                              3x slower batched decode on 2 cores).
// Anything the user already set is respected. RLAIF_NO_REEXEC=1 turns this off.
void ensure_runtime_env(int argc, char** argv);

// Training allocates and frees the same large activation tensors every micro-batch. glibc serves blocks over 32 MiB
// with fresh mappings and unmaps them on free, so every micro-batch paid for zeroed pages again (measured: a quarter
// of a training step in the kernel's clear_page, docs/perf.md). This keeps freed memory in the process for reuse:
// no mmap'd blocks and no trimming of the heap's top (a 1 GiB trim threshold still gave back each micro-batch's
// activations: a 2-prompt bf16 step took 9.8 s instead of 7.7). Call once, before training; peak memory is
// unchanged, the resident size stays near the peak.
void keep_freed_memory();

// Sets libtorch's intra-op threads (0 = number of cores). Returns the number in use.
int set_num_threads(int n);

}  // namespace rlaif

