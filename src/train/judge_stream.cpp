#include "train/judge_stream.h"

namespace rlaif {

JudgeStream::JudgeStream(Judge& judge) : judge_(judge), worker_([this] { work(); }) {}

JudgeStream::~JudgeStream() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    closing_ = true;
  }
  cv_.notify_all();
  worker_.join();
}

void JudgeStream::push(size_t id, JudgeSample sample) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    pending_.emplace_back(id, std::move(sample));
  }
  cv_.notify_all();
}

void JudgeStream::work() {
  for (;;) {
    std::vector<std::pair<size_t, JudgeSample>> batch;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return closing_ || !pending_.empty(); });
      if (closing_ && pending_.empty()) return;
      batch.swap(pending_);
    }
    std::vector<JudgeSample> samples;
    for (auto& p : batch) samples.push_back(std::move(p.second));
    std::vector<JudgeResult> results;
    std::exception_ptr error;
    try {
      results = judge_.judge(samples);
    } catch (...) {
      error = std::current_exception();
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (error && !error_) error_ = error;
      for (size_t k = 0; k < batch.size(); ++k) {
        size_t id = batch[k].first;
        if (id >= results_.size()) results_.resize(id + 1), done_.resize(id + 1, false);
        if (!error) results_[id] = std::move(results[k]);
        if (!done_[id]) done_[id] = true, ++done_count_;
      }
    }
    cv_.notify_all();
  }
}

std::vector<JudgeResult> JudgeStream::collect(size_t n) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return error_ || done_count_ >= n; });
  if (error_) {
    auto e = error_;
    error_ = nullptr;
    std::rethrow_exception(e);
  }
  std::vector<JudgeResult> out(std::make_move_iterator(results_.begin()),
                               std::make_move_iterator(results_.begin() + n));
  results_.clear();
  done_.clear();
  done_count_ = 0;
  return out;
}

}  // namespace rlaif
