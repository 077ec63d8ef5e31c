// The process-wide runtime: the library's kernels really run on the intra-op threads, and the OpenMP wait policy is
// changed only for a BLAS with its own thread pool.
#include "rlaif/runtime.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

TEST(Runtime, LibraryKernelsRunOnEveryIntraOpThread) {
  // Built without OpenMP, at::parallel_for in the library's own code runs on one thread whatever is set (it did:
  // every packed, fused and training kernel of rlaif ran single-threaded until CMakeLists.txt added OpenMP).
  const int before = torch::get_num_threads();
  rlaif::set_num_threads(2);
  EXPECT_EQ(rlaif::intra_op_threads_used(), 2);
  rlaif::set_num_threads(1);
  EXPECT_EQ(rlaif::intra_op_threads_used(), 1);
  rlaif::set_num_threads(before);
}

TEST(Runtime, PassiveWaitOnlyForABlasWithItsOwnPool) {
  const std::string lib = "/usr/lib/x86_64-linux-gnu/";
  EXPECT_TRUE(rlaif::blas_has_own_thread_pool({lib + "libc.so.6", lib + "openblas-pthread/libblas.so.3"}));
  EXPECT_TRUE(rlaif::blas_has_own_thread_pool({lib + "openblas-pthread/libopenblas.so.0"}));
  EXPECT_TRUE(rlaif::blas_has_own_thread_pool({lib + "blis-pthread/libblas.so.3"}));
  EXPECT_FALSE(rlaif::blas_has_own_thread_pool({lib + "openblas-openmp/libblas.so.3", lib + "libpthread.so.0"}));
  EXPECT_FALSE(rlaif::blas_has_own_thread_pool({lib + "blas/libblas.so.3.11.0"}));  // netlib: no threads at all
  EXPECT_FALSE(rlaif::blas_has_own_thread_pool({lib + "libgomp.so.1", lib + "libpthread.so.0"}));
  EXPECT_FALSE(rlaif::blas_has_own_thread_pool({}));
}
