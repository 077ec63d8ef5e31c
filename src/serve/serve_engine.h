// The decode engine behind `rlaif serve`: one thread runs Generator::run_continuous, and requests submitted from any
// thread join its running batch at the next decode step (continuous batching across requests). A cancelled request
// (its client went away) leaves the batch at once.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "rlaif/generator.h"

namespace rlaif {

class ServeEngine {
 public:
  // What happens to one request; every hook runs on the engine thread, so it must be quick.
  struct Hooks {
    std::function<void(size_t sample, int64_t token)> on_token;  // streaming
    std::function<void(size_t sample, const Sample& sample_out)> on_sample;
    std::function<void(GenerationResult& result)> on_done;   // all samples finished
    std::function<void(const std::string& error)> on_error;  // it cannot go on (no more hooks run)
  };
  struct Stats {
    int64_t submitted = 0, finished = 0, failed = 0, cancelled = 0;
    int64_t running = 0, waiting = 0;                                 // samples decoding / waiting for a slot, now
    int64_t decode_steps = 0, decode_tokens = 0, prefill_tokens = 0;  // since the start
    int threads = 0;  // intra-op threads the engine thread decodes with, as measured on it
  };

  // Starts the engine thread with `threads` intra-op threads (0 = all cores) and waits until it runs. The setting is
  // made on the engine thread itself: OpenMP's thread count belongs to the thread that sets it.
  ServeEngine(Generator& generator, int threads);
  ~ServeEngine();  // stops the engine; requests still running get no more hooks

  // Queues a request (checked with Generator::check first) and returns its id.
  size_t submit(GenerationRequest request, Hooks hooks);
  // Drops a request wherever it is (waiting or decoding); no hook of it runs afterwards.
  void cancel(size_t id);
  Stats stats() const;

 private:
  Generator::Incoming poll(const Generator::ContinuousStatus& status);
  void loop(int threads);

  Generator& gen_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::pair<size_t, GenerationRequest>> incoming_;  // submitted, not yet handed to the engine
  std::vector<size_t> cancelled_;
  std::unordered_map<size_t, std::shared_ptr<Hooks>> hooks_;  // of every request not finished, failed or cancelled
  size_t next_id_ = 0;
  bool stopping_ = false;
  Stats stats_;
  std::thread thread_;
};

}  // namespace rlaif
