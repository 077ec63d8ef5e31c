// The "command" environment client (internal; see rlaif/environment.h): one long-running program, JSON lines on its
// stdin and stdout, many episodes interleaved by id. One I/O thread writes the queued lines (the pipe never blocks
// the caller), reads the replies and the program's stderr, and notices when the program exits.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <thread>

#include "env/env_replies.h"

namespace rlaif {

class CommandEnvironment : public Environment {
 public:
  explicit CommandEnvironment(EnvConfig config);
  ~CommandEnvironment() override;
  void reset(int64_t episode, const nlohmann::json& row, uint64_t seed) override;
  void step(int64_t episode, const std::string& action) override;
  void close(int64_t episode) override;
  std::vector<EnvReply> poll(double wait_s) override;
  int64_t outstanding() const override;
  int capacity() const override { return config_.max_concurrent; }
  EnvStats stats() const override { return replies_.stats(); }

 private:
  using Clock = std::chrono::steady_clock;
  struct Pending {
    bool reset = false;
    Clock::time_point start, deadline;
  };
  void start_program();                        // under mu_: starts the program (again)
  void stop_program();                         // under mu_ released: ends the program and joins the I/O thread
  void send_line(const nlohmann::json& line);  // under mu_: queues a line and wakes the I/O thread
  void io_loop(int generation);                // the I/O thread of one run of the program
  void on_line(const std::string& line, int generation);
  void fail_now(int64_t episode, bool reset, const std::string& cause, const std::string& detail);  // under mu_
  Pending pending(bool reset) const;  // a request starting now, with its deadline
  void expire_overdue();              // fails requests past their deadline

  EnvConfig config_;
  EnvReplies replies_;
  mutable std::mutex mu_;
  std::map<int64_t, Pending> pending_;  // requests awaiting their reply, by episode
  std::map<int64_t, int> episodes_;     // open episodes -> the run of the program they started in
  int generation_ = 0;                  // runs of the program so far
  bool running_ = false;                // the current run has not exited
  std::string exit_detail_;             // how the last run ended
  pid_t pid_ = -1;
  int in_fd_ = -1, out_fd_ = -1, err_fd_ = -1, wake_[2] = {-1, -1};
  std::string to_write_;  // lines not yet written to the program's stdin
  std::string err_tail_;  // the end of the program's stderr
  std::thread io_;
};

}  // namespace rlaif
