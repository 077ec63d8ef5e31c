#include "serve/serve_engine.h"

#include <algorithm>

#include "rlaif/runtime.h"

namespace rlaif {

ServeEngine::ServeEngine(Generator& generator, int threads) : gen_(generator) {
  thread_ = std::thread([this, threads] { loop(threads); });
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return stats_.threads > 0; });
}

ServeEngine::~ServeEngine() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

size_t ServeEngine::submit(GenerationRequest request, Hooks hooks) {
  std::lock_guard<std::mutex> lock(mu_);
  const size_t id = next_id_++;
  incoming_.emplace_back(id, std::move(request));
  hooks_[id] = std::make_shared<Hooks>(std::move(hooks));
  stats_.submitted += 1;
  cv_.notify_all();
  return id;
}

void ServeEngine::cancel(size_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!hooks_.erase(id)) return;  // already finished or failed
  stats_.cancelled += 1;
  auto waiting = std::find_if(incoming_.begin(), incoming_.end(), [&](const auto& r) { return r.first == id; });
  if (waiting != incoming_.end())
    incoming_.erase(waiting);
  else
    cancelled_.push_back(id);
  cv_.notify_all();
}

ServeEngine::Stats ServeEngine::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

// Between two decode steps: hands over what was submitted and cancelled; waits while there is nothing to do.
Generator::Incoming ServeEngine::poll(const Generator::ContinuousStatus& status) {
  std::unique_lock<std::mutex> lock(mu_);
  const auto& g = gen_.stats();  // written by this thread only
  stats_.running = status.running;
  stats_.waiting = status.waiting;
  stats_.decode_steps = g.decode_steps;
  stats_.decode_tokens = g.decode_tokens;
  stats_.prefill_tokens = g.prefill_tokens;
  if (status.idle) cv_.wait(lock, [&] { return stopping_ || !incoming_.empty() || !cancelled_.empty(); });
  Generator::Incoming in;
  in.stop = stopping_;
  in.requests.swap(incoming_);
  in.cancelled.swap(cancelled_);
  return in;
}

void ServeEngine::loop(int threads) {
  set_num_threads(threads);
  const int used = intra_op_threads_used();
  {
    std::lock_guard<std::mutex> lock(mu_);
    stats_.threads = std::max(1, used);
  }
  cv_.notify_all();
  // Looks up a request's hooks under the lock, then runs `call` on them without it (a hook may submit or cancel).
  auto with_hooks = [this](size_t id, bool last, const std::function<void(Hooks&)>& call) {
    std::shared_ptr<Hooks> h;  // held: a cancel may erase the entry while the hook runs
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = hooks_.find(id);
      if (it == hooks_.end()) return;  // cancelled
      h = it->second;
      if (last) hooks_.erase(it);
    }
    call(*h);
  };
  gen_.run_continuous([this](const Generator::ContinuousStatus& s) { return poll(s); },
                      [&](size_t id, size_t sample, const Sample& out) {
                        with_hooks(id, false, [&](Hooks& h) {
                          if (h.on_sample) h.on_sample(sample, out);
                        });
                      },
                      [&](size_t id, size_t sample, int64_t token) {
                        with_hooks(id, false, [&](Hooks& h) {
                          if (h.on_token) h.on_token(sample, token);
                        });
                      },
                      [&](size_t id, GenerationResult& result) {
                        with_hooks(id, true, [&](Hooks& h) {
                          {
                            std::lock_guard<std::mutex> lock(mu_);
                            stats_.finished += 1;
                          }
                          if (h.on_done) h.on_done(result);
                        });
                      },
                      [&](size_t id, const std::string& error) {
                        with_hooks(id, true, [&](Hooks& h) {
                          {
                            std::lock_guard<std::mutex> lock(mu_);
                            stats_.failed += 1;
                          }
                          if (h.on_error) h.on_error(error);
                        });
                      });
}

}  // namespace rlaif
