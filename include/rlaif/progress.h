// Progress reporting for long work: a bar with rate and ETA on a terminal, plain periodic lines otherwise.
// Not thread-safe: call from one thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace rlaif {

class Progress {
 public:
  // label: shown before the bar; total: units of work (0 = unknown); unit: e.g. "samples".
  // Writes to stderr. `enabled` = false makes every call a no-op (for --quiet and tests).
  Progress(std::string label, int64_t total, std::string unit, bool enabled = true);
  void advance(int64_t n = 1);
  void set_extra(std::string extra) { extra_ = std::move(extra); }  // e.g. "412 tok/s"
  void finish();  // prints the final line; called by the destructor if not yet called
  ~Progress();

 private:
  void draw(bool final);
  std::string label_, unit_, extra_;
  int64_t total_, done_ = 0;
  bool enabled_, tty_, finished_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

// "1h02m", "3m05s", "12s".
std::string format_duration(double seconds);

}  // namespace rlaif
