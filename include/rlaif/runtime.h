// Process-wide numeric runtime settings: threads and the environment that OpenMP and OpenBLAS read when they load.
#pragma once

namespace rlaif {

// Call first in main(). OpenMP and OpenBLAS read their settings from the environment once, when they load, so this
// sets what is unset and re-executes the program once (the user never needs to know):
//   OMP_WAIT_POLICY=PASSIVE  — libtorch's OpenMP pool and OpenBLAS otherwise spin against each other (measured: up to
//                              3x slower batched decode on 2 cores).
// Anything the user already set is respected. RLAIF_NO_REEXEC=1 turns this off.
void ensure_runtime_env(int argc, char** argv);

// Sets libtorch's intra-op threads (0 = number of cores). Returns the number in use.
int set_num_threads(int n);

}  // namespace rlaif

