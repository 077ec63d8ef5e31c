#include "rlaif/http_client.h"

#include <curl/curl.h>

#include <strings.h>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <deque>
#include <mutex>
#include <queue>
#include <random>
#include <stdexcept>
#include <thread>

namespace rlaif {
namespace {

using Clock = std::chrono::steady_clock;
double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }
Clock::duration dur(double s) { return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s)); }

void global_init() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct Transfer {
  size_t index = 0;
  size_t endpoint = 0;
  Clock::time_point start{};
  CURL* easy = nullptr;
  curl_slist* headers = nullptr;
  std::string body, retry_after;
};

size_t on_body(char* data, size_t size, size_t n, void* user) {
  static_cast<Transfer*>(user)->body.append(data, size * n);
  return size * n;
}

size_t on_header(char* data, size_t size, size_t n, void* user) {
  std::string line(data, size * n);
  if (line.size() > 12 && strncasecmp(line.c_str(), "retry-after:", 12) == 0) {
    std::string v = line.substr(12);
    v.erase(0, v.find_first_not_of(" \t"));
    v.erase(v.find_last_not_of(" \t\r\n") + 1);
    static_cast<Transfer*>(user)->retry_after = v;
  }
  return size * n;
}

// Seconds from a Retry-After value (delta-seconds or an HTTP date); negative if absent or unreadable.
double retry_after_seconds(const std::string& v) {
  if (v.empty()) return -1;
  char* end = nullptr;
  double s = std::strtod(v.c_str(), &end);
  if (end && *end == '\0') return std::max(0.0, s);
  time_t t = curl_getdate(v.c_str(), nullptr);
  return t < 0 ? -1 : std::max(0.0, static_cast<double>(t - time(nullptr)));
}

struct Request {  // the state of one request across its attempts
  int attempts = 0;
  int failed_attempts = 0;   // attempts that failed in transport or with an HTTP error (max_retries counts these)
  int rejected_replies = 0;  // 2xx replies the caller's check refused (max_reply_retries counts these)
  Clock::time_point first_start{};
  bool started = false;
  int avoid = -1;  // the endpoint its last attempt failed on: the next goes elsewhere when it can
};

// One endpoint's load and circuit breaker during a run.
struct Endpoint {
  std::string base;  // prepended to each request's url
  int in_flight = 0;
  int consecutive_failures = 0;
  bool open = false, probe_in_flight = false;  // open: ejected until open_until, then one probe decides
  Clock::time_point open_until{};
};

// What one run() leaves to the next.
struct Carried {
  Clock::time_point next_start{};  // requests_per_minute: the earliest next start
  double bucket = 0;               // tokens_per_minute: tokens left, refilled continuously
  Clock::time_point bucket_time{};
  std::vector<Endpoint> endpoints;  // one without a pool
};

// One call of HttpClient::run: the requests' queues, the transfers, the rate limits, the endpoints with their circuit
// breakers, and the steps of the event loop as methods. Lives for the call only.
class Run {
 public:
  Run(CURLM* multi, const HttpClientOptions& options, HttpStats& stats, Carried& shared,
      const std::vector<HttpRequest>& requests, const std::function<void(size_t, HttpResponse&&)>& on_done,
      const std::function<bool()>& keep_sending, const HttpClient::ReplyCheck& check_reply)
      : multi_(multi),
        o_(options),
        stats_(stats),
        requests_(requests),
        on_done_(on_done),
        keep_sending_(keep_sending),
        check_reply_(check_reply),
        t0_(Clock::now()),
        has_deadline_(o_.deadline_s > 0),
        deadline_(t0_ + dur(o_.deadline_s)),
        rng_(o_.seed),
        state_(requests.size()),
        remaining_(requests.size()),
        next_start_(shared.next_start),
        bucket_(shared.bucket),
        bucket_time_(shared.bucket_time),
        endpoints_(shared.endpoints) {
    for (size_t i = 0; i < requests.size(); ++i) ready_.push_back(i);
    stats_.requests += static_cast<int64_t>(requests.size());
    for (auto& e : endpoints_) e.in_flight = 0, e.probe_in_flight = false;
  }
  ~Run() {  // also when on_done throws: no transfer stays attached to the client's multi handle
    for (auto& t : all_transfers_) {
      curl_multi_remove_handle(multi_, t->easy);
      curl_slist_free_all(t->headers);
      curl_easy_cleanup(t->easy);
    }
  }

  void loop() {
    while (remaining_ > 0) {
      auto now = Clock::now();
      if (has_deadline_ && now >= deadline_) {  // the deadline ends everything still open
        end_at_deadline();
        break;
      }
      while (!delayed_.empty() && delayed_.top().first <= now) {
        ready_.push_front(delayed_.top().second);  // retries go first
        delayed_.pop();
      }
      refill_bucket(now);
      // A caller that stopped sending (budget reached) ends what is still waiting.
      if (keep_sending_ && (!ready_.empty() || !delayed_.empty()) && !keep_sending_()) {
        end_waiting("stopped", "not sent: the caller stopped sending (budget reached)");
        if (remaining_ == 0) break;
      }
      Clock::time_point wake = now + std::chrono::seconds(1);  // curl_multi_poll also honours curl's own timers
      const bool limited = start_allowed(now, wake);
      if (!delayed_.empty()) wake = std::min(wake, delayed_.top().first);
      if (has_deadline_) wake = std::min(wake, deadline_);
      const int completed = collect_completed();
      if (remaining_ == 0) break;
      // A finished transfer freed a slot: start the next request now rather than after the next socket event.
      if (completed > 0 && !ready_.empty() && !limited) continue;
      wait_until(wake);
    }
  }

 private:
  using Timed = std::pair<Clock::time_point, size_t>;

  void finish(size_t i, HttpResponse&& r) {
    r.attempts = state_[i].attempts;
    r.latency_s = state_[i].started ? seconds(Clock::now() - state_[i].first_start) : 0;
    if (r.failure.empty())
      ++stats_.succeeded;
    else
      ++stats_.failed, ++stats_.failures[r.failure];
    --remaining_;
    on_done_(i, std::move(r));
  }

  // Ends every request not yet sent (ready or waiting to retry) with `failure`.
  void end_waiting(const std::string& failure, const std::string& detail) {
    auto end = [&](size_t i) {
      HttpResponse r;
      r.failure = failure;
      r.detail = detail;
      finish(i, std::move(r));
    };
    while (!ready_.empty()) end(ready_.front()), ready_.pop_front();
    while (!delayed_.empty()) end(delayed_.top().second), delayed_.pop();
  }

  void end_at_deadline() {
    CURLMsg* msg;
    int left;
    while ((msg = curl_multi_info_read(multi_, &left))) (void)msg;
    for (auto& t : all_transfers_) {
      Transfer* tp = t.get();
      if (std::find(free_transfers_.begin(), free_transfers_.end(), tp) != free_transfers_.end()) continue;
      curl_multi_remove_handle(multi_, tp->easy);
      free_transfers_.push_back(tp);
      endpoints_[tp->endpoint].in_flight = 0;
      HttpResponse r;
      r.failure = "deadline";
      r.detail = "the overall deadline passed while the request was in flight";
      finish(tp->index, std::move(r));
    }
    in_flight_ = 0;
    end_waiting("deadline", "the overall deadline passed before the request could be sent");
  }

  // Rate limits: starts are paced 60/rpm apart; tokens come from a bucket refilled at tpm/60 per second.
  void refill_bucket(Clock::time_point now) {
    if (o_.tokens_per_minute <= 0) return;
    bucket_ = std::min(o_.tokens_per_minute, bucket_ + seconds(now - bucket_time_) * o_.tokens_per_minute / 60);
    bucket_time_ = now;
  }

  // Whether an attempt may go to endpoint e now: its circuit is closed, or its cooldown is over and nothing is in
  // flight there (the attempt is then the probe).
  bool usable(const Endpoint& e, Clock::time_point now) const {
    return !e.open || (now >= e.open_until && !e.probe_in_flight && e.in_flight == 0);
  }

  // The endpoint for request i's next attempt: of the usable ones, the fewest in flight (then the fewest attempts so
  // far, then the first), other than the one its last attempt failed on when another is usable. -1 when none is
  // usable; `wake` then moves to the earliest end of a cooldown.
  int pick_endpoint(size_t i, Clock::time_point now, Clock::time_point& wake) const {
    int best = -1;
    for (int pass = 0; pass < 2 && best < 0; ++pass)
      for (size_t e = 0; e < endpoints_.size(); ++e) {
        if (!usable(endpoints_[e], now) || (pass == 0 && static_cast<int>(e) == state_[i].avoid)) continue;
        if (best < 0 || endpoints_[e].in_flight < endpoints_[best].in_flight ||
            (endpoints_[e].in_flight == endpoints_[best].in_flight &&
             stats_.endpoints[e].attempts < stats_.endpoints[best].attempts))
          best = static_cast<int>(e);
      }
    if (best < 0) {
      Clock::time_point soonest = Clock::time_point::max();
      for (const auto& e : endpoints_) soonest = std::min(soonest, e.open_until);
      wake = std::min(wake, std::max(soonest, now + std::chrono::milliseconds(5)));
    }
    return best;
  }

  // Whether another endpoint than e has its circuit closed (a failed attempt then moves there at once).
  bool other_closed(size_t e) const {
    for (size_t k = 0; k < endpoints_.size(); ++k)
      if (k != e && !endpoints_[k].open) return true;
    return false;
  }

  // Starts what the limits and the circuits allow; returns whether one of them held back a ready request (and moves
  // `wake` to when it may go).
  bool start_allowed(Clock::time_point now, Clock::time_point& wake) {
    while (!ready_.empty() && in_flight_ < o_.max_in_flight) {
      size_t i = ready_.front();
      const int e = pick_endpoint(i, now, wake);
      if (e < 0) return true;
      if (o_.requests_per_minute > 0 && now < next_start_) {
        wake = std::min(wake, next_start_);
        return true;
      }
      // A request larger than the whole budget waits for a full bucket, then goes.
      double need = std::min(requests_[i].tokens, o_.tokens_per_minute);
      if (o_.tokens_per_minute > 0 && bucket_ < need) {
        wake = std::min(wake, now + dur((need - bucket_) * 60 / o_.tokens_per_minute));
        return true;
      }
      ready_.pop_front();
      start(i, static_cast<size_t>(e), now);
    }
    return false;
  }

  Transfer* transfer() {
    if (free_transfers_.empty()) {
      all_transfers_.push_back(std::make_unique<Transfer>());
      all_transfers_.back()->easy = curl_easy_init();
      return all_transfers_.back().get();
    }
    Transfer* t = free_transfers_.back();
    free_transfers_.pop_back();
    curl_easy_reset(t->easy);
    return t;
  }

  void start(size_t i, size_t k, Clock::time_point now) {
    Transfer* t = transfer();
    const HttpRequest& q = requests_[i];
    Endpoint& ep = endpoints_[k];
    const std::string url = ep.base + q.url;
    t->index = i;
    t->endpoint = k;
    t->start = now;
    t->body.clear();
    t->retry_after.clear();
    curl_slist_free_all(t->headers);
    t->headers = curl_slist_append(nullptr, "Content-Type: application/json");
    // No "Expect: 100-continue" (curl's default above 1 KB): it costs a round trip per request.
    t->headers = curl_slist_append(t->headers, "Expect:");
    for (const auto& h : q.headers) t->headers = curl_slist_append(t->headers, h.c_str());
    double timeout = o_.timeout_s;
    if (has_deadline_) timeout = std::min(timeout, seconds(deadline_ - now));
    CURL* e = t->easy;
    curl_easy_setopt(e, CURLOPT_URL, url.c_str());
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, q.body.data());
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(q.body.size()));
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, t);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, std::max(1L, static_cast<long>(timeout * 1000)));
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, std::max(1L, static_cast<long>(std::min(timeout, 10.0) * 1000)));
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_PRIVATE, t);
    if (!state_[i].started) {
      state_[i].started = true;
      state_[i].first_start = now;
    }
    ++state_[i].attempts;
    ++stats_.attempts;
    if (state_[i].attempts > 1) ++stats_.retries;
    if (o_.requests_per_minute > 0) next_start_ = std::max(next_start_, now) + dur(60.0 / o_.requests_per_minute);
    if (o_.tokens_per_minute > 0) bucket_ -= q.tokens;
    if (ep.open) ep.probe_in_flight = true;  // half-open: this attempt decides
    ++ep.in_flight;
    ++stats_.endpoints[k].attempts;
    curl_multi_add_handle(multi_, e);
    ++in_flight_;
  }

  // Runs curl and handles every transfer that ended: a success finishes its request, a failure goes to
  // failed_attempt. Returns how many ended.
  int collect_completed() {
    int running = 0;
    curl_multi_perform(multi_, &running);
    CURLMsg* msg;
    int left, completed = 0;
    while ((msg = curl_multi_info_read(multi_, &left))) {
      if (msg->msg != CURLMSG_DONE) continue;
      ++completed;
      Transfer* t = nullptr;
      curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &t);
      CURLcode code = msg->data.result;
      curl_multi_remove_handle(multi_, msg->easy_handle);
      --in_flight_;
      free_transfers_.push_back(t);
      size_t i = t->index;
      const size_t k = t->endpoint;
      Endpoint& ep = endpoints_[k];
      --ep.in_flight;
      EndpointStats& es = stats_.endpoints[k];
      ++es.ended;
      es.latency_s += seconds(Clock::now() - t->start);
      long status = 0;
      curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
      HttpResponse r;
      r.status = static_cast<int>(status);
      r.body = std::move(t->body);
      const bool probe = ep.open && ep.probe_in_flight;
      ep.probe_in_flight = false;
      if (code == CURLE_OK && status >= 200 && status < 300) {
        ep.consecutive_failures = 0;
        if (probe) ep.open = false;  // the probe succeeded: the endpoint is back
        if (!reply_accepted(i, r)) continue;
        finish(i, std::move(r));
        continue;
      }
      ++es.failures;
      bool retryable = true;
      double retry_after = -1;
      if (code == CURLE_OK) {
        retry_after = retry_after_seconds(t->retry_after);
        if (status == 429)
          r.failure = "http_429";
        else if (status >= 500)
          r.failure = "http_5xx";
        else if (status == 408)
          r.failure = "timeout";
        else
          r.failure = "http_4xx", retryable = false;
        r.detail = "HTTP " + std::to_string(status) + ": " + r.body.substr(0, 200);
      } else {
        r.failure = code == CURLE_OPERATION_TIMEDOUT ? "timeout"
                    : (code == CURLE_PARTIAL_FILE || code == CURLE_GOT_NOTHING || code == CURLE_RECV_ERROR)
                        ? "truncated"
                        : "connection";
        r.detail = curl_easy_strerror(code);
      }
      failed_attempt(i, k, std::move(r), retryable, retry_after);
    }
    return completed;
  }

  // A 2xx reply the caller's check refuses (not JSON, no verdict: a sampling judge's usual transient slip) is sent
  // again at once, up to max_reply_retries times; the endpoint is healthy, so its circuit is not fed. The last
  // reply is delivered whatever the check says, and the caller decides what it is.
  bool reply_accepted(size_t i, const HttpResponse& r) {
    if (!check_reply_ || state_[i].rejected_replies >= o_.max_reply_retries) return true;
    const std::string cause = check_reply_(i, r.body);
    if (cause.empty()) return true;
    ++state_[i].rejected_replies;
    ++stats_.reply_retries;
    ++stats_.retried_causes[cause];
    ready_.push_front(i);
    return false;
  }

  // Decides what happens after an attempt failed on endpoint k: a retry (at once on another endpoint whose circuit is
  // closed, else after the backoff), or the end of the request. Feeds k's circuit breaker.
  void failed_attempt(size_t i, size_t k, HttpResponse&& r, bool retryable, double retry_after) {
    auto now = Clock::now();
    Endpoint& ep = endpoints_[k];
    ++ep.consecutive_failures;
    if (o_.circuit_failures > 0 && ep.consecutive_failures >= o_.circuit_failures && !ep.open) {
      ep.open = true;
      ep.open_until = now + dur(o_.circuit_cooldown_s);
      ++stats_.circuit_opened;
      ++stats_.endpoints[k].circuit_opened;
    } else if (ep.open) {
      ep.open_until = now + dur(o_.circuit_cooldown_s);  // a failed probe keeps it open
    }
    if (!retryable || ++state_[i].failed_attempts > o_.max_retries) {
      finish(i, std::move(r));
      return;
    }
    state_[i].avoid = static_cast<int>(k);
    if (other_closed(k)) {  // a pool: another endpoint takes it now
      ++stats_.retried_causes[r.failure];
      ready_.push_front(i);
      return;
    }
    int n = state_[i].failed_attempts;
    double wait = std::min(o_.backoff_max_s, o_.backoff_base_s * std::pow(2.0, n - 1)) * jitter_(rng_);
    if (retry_after >= 0) wait = std::min(retry_after, o_.max_retry_after_s);
    auto when = now + dur(wait);
    if (has_deadline_ && when >= deadline_) {
      r.detail += " (no time left before the deadline for a retry)";
      finish(i, std::move(r));
      return;
    }
    ++stats_.retried_causes[r.failure];
    delayed_.emplace(when, i);
  }

  void wait_until(Clock::time_point wake) {
    long wait_ms = std::max(0L, static_cast<long>(seconds(wake - Clock::now()) * 1000));
    if (in_flight_ > 0)
      curl_multi_poll(multi_, nullptr, 0, static_cast<int>(std::min(wait_ms, 1000L)), nullptr);
    else if (wait_ms > 0)
      std::this_thread::sleep_for(std::chrono::milliseconds(std::min(wait_ms, 1000L)));
  }

  CURLM* multi_;
  const HttpClientOptions& o_;
  HttpStats& stats_;
  const std::vector<HttpRequest>& requests_;
  const std::function<void(size_t, HttpResponse&&)>& on_done_;
  const std::function<bool()>& keep_sending_;
  const HttpClient::ReplyCheck& check_reply_;
  const Clock::time_point t0_;
  const bool has_deadline_;
  const Clock::time_point deadline_;
  std::mt19937_64 rng_;
  std::uniform_real_distribution<double> jitter_{0.5, 1.0};
  std::vector<Request> state_;
  std::deque<size_t> ready_;
  std::priority_queue<Timed, std::vector<Timed>, std::greater<Timed>> delayed_;  // retries waiting for their time
  std::vector<Transfer*> free_transfers_;
  std::vector<std::unique_ptr<Transfer>> all_transfers_;
  int in_flight_ = 0;
  size_t remaining_;
  Clock::time_point& next_start_;  // rate limits (HttpClient::Shared)
  double& bucket_;
  Clock::time_point& bucket_time_;
  std::vector<Endpoint>& endpoints_;  // with their circuit breakers
};

}  // namespace

struct HttpClient::Shared : Carried {};

HttpClient::HttpClient(HttpClientOptions options) : options_(std::move(options)), shared_(std::make_unique<Shared>()) {
  shared_->bucket = options_.tokens_per_minute;
  shared_->bucket_time = Clock::now();
  for (const auto& base : options_.endpoints.empty() ? std::vector<std::string>{""} : options_.endpoints) {
    shared_->endpoints.push_back(Endpoint{base});
    stats_.endpoints.push_back(EndpointStats());
    stats_.endpoints.back().url = base;
  }
  global_init();
  multi_ = curl_multi_init();
  if (!multi_) throw std::runtime_error("curl_multi_init failed");
  // Connections are kept per endpoint: enough for all requests in flight to reach any endpoint of the pool.
  const size_t pool = std::max<size_t>(options_.endpoints.size(), 1);
  curl_multi_setopt(static_cast<CURLM*>(multi_), CURLMOPT_MAXCONNECTS,
                    static_cast<long>(std::max(options_.max_in_flight, 1) * pool));
}

HttpClient::~HttpClient() { curl_multi_cleanup(static_cast<CURLM*>(multi_)); }

void HttpClient::run(const std::vector<HttpRequest>& requests,
                     const std::function<void(size_t, HttpResponse&&)>& on_done,
                     const std::function<bool()>& keep_sending, const ReplyCheck& check_reply) {
  Run(static_cast<CURLM*>(multi_), options_, stats_, *shared_, requests, on_done, keep_sending, check_reply).loop();
}

}  // namespace rlaif
