#include "train/stop_signals.h"

#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>

namespace rlaif {
namespace {

volatile std::sig_atomic_t g_signal = 0;
std::atomic<int64_t> g_first_ns{0};  // lock-free: safe to use in a handler

int64_t monotonic_ns() {  // clock_gettime is async-signal-safe
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

void say(const char* text) {  // write(2) is async-signal-safe; stdio is not
  size_t n = 0;
  while (text[n]) ++n;
  ssize_t ignored = write(STDERR_FILENO, text, n);
  (void)ignored;
}

void on_signal(int sig) {
  const int64_t now = monotonic_ns();
  if (g_signal != 0) {
    if (now - g_first_ns.load() < 1000000000) return;  // the same request, delivered twice
    say("\nrlaif: second signal: stopping now, without a checkpoint\n");
    _exit(128 + sig);
  }
  g_first_ns.store(now);
  g_signal = sig;
  say(sig == SIGINT ? "\nrlaif: SIGINT: stopping after this step with a checkpoint (send it again to stop at once)\n"
                    : "\nrlaif: SIGTERM: stopping after this step with a checkpoint (send it again to stop at once)\n");
}

}  // namespace

StopSignals::StopSignals() {
  g_signal = 0;
  struct sigaction a {};
  a.sa_handler = on_signal;
  sigemptyset(&a.sa_mask);
  a.sa_flags = SA_RESTART;  // blocking calls carry on; the loop looks at the flag between steps
  sigaction(SIGTERM, &a, &old_term_);
  sigaction(SIGINT, &a, &old_int_);
}

StopSignals::~StopSignals() {
  sigaction(SIGTERM, &old_term_, nullptr);
  sigaction(SIGINT, &old_int_, nullptr);
}

int StopSignals::received() const { return g_signal; }

int StopSignals::agreed(Dist& dist) const { return static_cast<int>(dist.max({static_cast<double>(g_signal)})[0]); }

void StopSignals::report(const char* trainer, int signal, int64_t step, const std::string& output_dir) {
  std::fprintf(stderr, "%s: stopped by %s after step %lld; checkpoint in %s/checkpoint-%lld; continue with --resume\n",
               trainer, signal == SIGINT ? "SIGINT" : "SIGTERM", static_cast<long long>(step), output_dir.c_str(),
               static_cast<long long>(step));
}

}  // namespace rlaif
