// What both environment clients share (internal): the queue of replies that poll() hands out, the episodes still
// open (a reply for a closed one is dropped), the statistics, and reading an environment's JSON answer.
// A client pushes a reply while holding the lock that guards its own count of requests in flight, so that
// outstanding() (in flight + queued) never misses a request between the two.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <set>

#include "rlaif/environment.h"

namespace rlaif {

class EnvReplies {
 public:
  void opened(int64_t episode);
  void closed(int64_t episode);
  // Queues a reply to a reset (`reset`) or a step, unless its episode was closed meanwhile.
  void push(EnvReply reply, bool reset);
  // Waits up to wait_s for a reply when none is queued; returns all queued.
  std::vector<EnvReply> poll(double wait_s);
  // Replies queued that poll() has not returned yet.
  int64_t queued() const;
  void count_retry();
  void count_restart();
  void count_bad_line();
  void count_tool_call(const std::string& outcome);
  EnvStats stats() const;

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<EnvReply> queue_;
  std::set<int64_t> open_;
  EnvStats stats_;
};

// Reads an environment's answer into `r` (ok, or failure env_bad_reply / env_error). The observation is an object
// (OpenEnv) or a string (command protocol); the text shown to the policy is its `observation_field` (or, with "",
// an object's only string field), else its compact JSON.
void read_env_answer(const std::string& body, const std::string& observation_field, EnvReply& r);

// Seconds since `t0`.
inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace rlaif
