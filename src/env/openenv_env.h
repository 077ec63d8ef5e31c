// The "openenv" environment client (internal; see rlaif/environment.h).
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <thread>

#include "env/env_replies.h"

namespace rlaif {

class OpenEnvEnvironment : public Environment {
 public:
  explicit OpenEnvEnvironment(EnvConfig config);
  ~OpenEnvEnvironment() override;
  void reset(int64_t episode, const nlohmann::json& row, uint64_t seed) override;
  void step(int64_t episode, const std::string& action) override;
  void close(int64_t episode) override;
  std::vector<EnvReply> poll(double wait_s) override;
  int64_t outstanding() const override;
  int capacity() const override { return static_cast<int>(servers_.size()); }
  EnvStats stats() const override { return replies_.stats(); }

 private:
  struct Job {
    int64_t episode = 0;
    bool reset = false;
    std::string path;  // "/reset" or "/step"
    std::string body;
  };
  struct Server {
    std::string url;       // base URL without a trailing slash
    int64_t episode = -1;  // the episode it holds; -1 = free
    bool busy = false;     // a request is running (a busy server is not given a new episode)
    std::deque<Job> jobs;  // its episode's requests, in order
  };
  void work(size_t index);                                            // server `index`'s worker thread
  void assign_free_servers();                                         // under mu_: waiting resets go to free servers
  EnvReply send(void* curl, const std::string& url, const Job& job);  // with the retries the job allows

  EnvConfig config_;
  EnvReplies replies_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Server> servers_;
  std::deque<Job> waiting_;  // resets waiting for a free server
  std::atomic<bool> stopping_{false};
  std::vector<std::thread> workers_;
};

}  // namespace rlaif
