// Running a program to completion with its stdin fed and its stdout and stderr read concurrently (no pipe can fill up
// and block it), under a wall-clock timeout after which it is killed. Internal to the library; used by the command
// judge and the tools environment.
#pragma once

#include <string>
#include <vector>

namespace rlaif {

struct ProcessResult {
  std::string out, err;    // what it wrote
  int exit_status = -1;    // its exit status; -1 when a signal ended it (or it was killed at the timeout)
  bool timed_out = false;  // it ran past the timeout and was killed
  std::string failure;     // "" when it ran; else why it could not start (pipe() failed)
  double latency_s = 0;
};

// Runs argv (argv[0] looked up on PATH) with `input` on its stdin. A program that cannot be executed exits with status
// 127 and says why on its stderr.
ProcessResult run_process(const std::vector<std::string>& argv, const std::string& input, double timeout_s);

// The last `n` bytes of `text` (the end of a program's stderr, for a message).
inline std::string tail_of(const std::string& text, size_t n = 300) {
  return text.size() > n ? text.substr(text.size() - n) : text;
}

}  // namespace rlaif
