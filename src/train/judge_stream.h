// Judging that overlaps generation: completions are pushed as the generator finishes them, and a worker thread sends
// whatever has arrived to the judge in one concurrent batch, again and again, until the step's last one is judged.
// Internal to the trainer.
#pragma once

#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "rlaif/judge.h"

namespace rlaif {

class JudgeStream {
 public:
  explicit JudgeStream(Judge& judge);
  ~JudgeStream();
  // Queues sample `id` (ids are 0..n-1 within a round).
  void push(size_t id, JudgeSample sample);
  // Waits until ids 0..n-1 are all judged and returns their results (rethrowing a judge error), then resets for the
  // next round.
  std::vector<JudgeResult> collect(size_t n);

 private:
  void work();
  Judge& judge_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::pair<size_t, JudgeSample>> pending_;
  std::vector<JudgeResult> results_;
  std::vector<bool> done_;
  size_t done_count_ = 0;
  bool closing_ = false;
  std::exception_ptr error_;
  std::thread worker_;
};

}  // namespace rlaif
