#include "rlaif/http_client.h"

#include <curl/curl.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <deque>
#include <mutex>
#include <queue>
#include <random>
#include <stdexcept>
#include <strings.h>
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
  Clock::time_point first_start{};
  bool started = false;
};

}  // namespace

HttpClient::HttpClient(HttpClientOptions options) : options_(std::move(options)) {
  global_init();
  multi_ = curl_multi_init();
  if (!multi_) throw std::runtime_error("curl_multi_init failed");
  curl_multi_setopt(static_cast<CURLM*>(multi_), CURLMOPT_MAXCONNECTS, static_cast<long>(std::max(options_.max_in_flight, 1)));
}

HttpClient::~HttpClient() { curl_multi_cleanup(static_cast<CURLM*>(multi_)); }

void HttpClient::run(const std::vector<HttpRequest>& requests,
                     const std::function<void(size_t, HttpResponse&&)>& on_done,
                     const std::function<bool()>& keep_sending) {
  CURLM* multi = static_cast<CURLM*>(multi_);
  const auto t0 = Clock::now();
  const bool has_deadline = options_.deadline_s > 0;
  const auto deadline = t0 + dur(options_.deadline_s);
  std::mt19937_64 rng(options_.seed);
  std::uniform_real_distribution<double> jitter(0.5, 1.0);

  std::vector<Request> state(requests.size());
  std::deque<size_t> ready;
  for (size_t i = 0; i < requests.size(); ++i) ready.push_back(i);
  using Timed = std::pair<Clock::time_point, size_t>;
  std::priority_queue<Timed, std::vector<Timed>, std::greater<Timed>> delayed;  // retries waiting for their time
  std::vector<Transfer*> free_transfers;
  std::vector<std::unique_ptr<Transfer>> all_transfers;
  int in_flight = 0;
  size_t remaining = requests.size();
  stats_.requests += static_cast<int64_t>(requests.size());

  // Rate limits: starts are paced 60/rpm apart; tokens come from a bucket refilled at tpm/60 per second.
  Clock::time_point next_start = t0;
  double bucket = options_.tokens_per_minute;
  Clock::time_point bucket_time = t0;
  // Circuit breaker.
  int consecutive_failures = 0;
  Clock::time_point open_until{};
  bool circuit_open = false, probe_in_flight = false;

  auto finish = [&](size_t i, HttpResponse&& r) {
    r.attempts = state[i].attempts;
    r.latency_s = state[i].started ? seconds(Clock::now() - state[i].first_start) : 0;
    if (r.failure.empty()) ++stats_.succeeded;
    else ++stats_.failed, ++stats_.failures[r.failure];
    --remaining;
    on_done(i, std::move(r));
  };

  auto start = [&](size_t i, Clock::time_point now) {
    Transfer* t;
    if (free_transfers.empty()) {
      all_transfers.push_back(std::make_unique<Transfer>());
      t = all_transfers.back().get();
      t->easy = curl_easy_init();
    } else {
      t = free_transfers.back();
      free_transfers.pop_back();
      curl_easy_reset(t->easy);
    }
    const HttpRequest& q = requests[i];
    t->index = i;
    t->body.clear();
    t->retry_after.clear();
    curl_slist_free_all(t->headers);
    t->headers = curl_slist_append(nullptr, "Content-Type: application/json");
    // No "Expect: 100-continue" (curl's default above 1 KB): it costs a round trip per request.
    t->headers = curl_slist_append(t->headers, "Expect:");
    for (const auto& h : q.headers) t->headers = curl_slist_append(t->headers, h.c_str());
    double timeout = options_.timeout_s;
    if (has_deadline) timeout = std::min(timeout, seconds(deadline - now));
    CURL* e = t->easy;
    curl_easy_setopt(e, CURLOPT_URL, q.url.c_str());
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
    if (!state[i].started) {
      state[i].started = true;
      state[i].first_start = now;
    }
    ++state[i].attempts;
    ++stats_.attempts;
    if (state[i].attempts > 1) ++stats_.retries;
    if (options_.requests_per_minute > 0) next_start = std::max(next_start, now) + dur(60.0 / options_.requests_per_minute);
    if (options_.tokens_per_minute > 0) bucket -= q.tokens;
    curl_multi_add_handle(multi, e);
    ++in_flight;
  };

  // Decides what happens after a failed attempt: a retry later, or the end of the request.
  auto failed_attempt = [&](size_t i, HttpResponse&& r, bool retryable, double retry_after) {
    auto now = Clock::now();
    ++consecutive_failures;
    if (options_.circuit_failures > 0 && consecutive_failures >= options_.circuit_failures && !circuit_open) {
      circuit_open = true;
      open_until = now + dur(options_.circuit_cooldown_s);
      ++stats_.circuit_opened;
    } else if (circuit_open) {
      open_until = now + dur(options_.circuit_cooldown_s);  // a failed probe keeps it open
    }
    if (!retryable || state[i].attempts > options_.max_retries) {
      finish(i, std::move(r));
      return;
    }
    int k = state[i].attempts;
    double wait = std::min(options_.backoff_max_s, options_.backoff_base_s * std::pow(2.0, k - 1)) * jitter(rng);
    if (retry_after >= 0) wait = std::min(retry_after, options_.max_retry_after_s);
    auto when = now + dur(wait);
    if (has_deadline && when >= deadline) {
      r.detail += " (no time left before the deadline for a retry)";
      finish(i, std::move(r));
      return;
    }
    ++stats_.retried_causes[r.failure];
    delayed.emplace(when, i);
  };

  while (remaining > 0) {
    auto now = Clock::now();
    // The deadline ends everything still open.
    if (has_deadline && now >= deadline) {
      CURLMsg* msg;
      int left;
      while ((msg = curl_multi_info_read(multi, &left))) (void)msg;
      for (auto& t : all_transfers) {
        CURL* e = t->easy;
        Transfer* tp = t.get();
        if (std::find(free_transfers.begin(), free_transfers.end(), tp) != free_transfers.end()) continue;
        curl_multi_remove_handle(multi, e);
        free_transfers.push_back(tp);
        HttpResponse r;
        r.failure = "deadline";
        r.detail = "the overall deadline passed while the request was in flight";
        finish(tp->index, std::move(r));
      }
      in_flight = 0;
      auto fail_waiting = [&](size_t i) {
        HttpResponse r;
        r.failure = "deadline";
        r.detail = "the overall deadline passed before the request could be sent";
        finish(i, std::move(r));
      };
      while (!ready.empty()) fail_waiting(ready.front()), ready.pop_front();
      while (!delayed.empty()) fail_waiting(delayed.top().second), delayed.pop();
      break;
    }
    while (!delayed.empty() && delayed.top().first <= now) {
      ready.push_front(delayed.top().second);  // retries go first
      delayed.pop();
    }
    if (options_.tokens_per_minute > 0) {
      bucket = std::min(options_.tokens_per_minute, bucket + seconds(now - bucket_time) * options_.tokens_per_minute / 60);
      bucket_time = now;
    }
    if (circuit_open && now >= open_until && !probe_in_flight && in_flight == 0) probe_in_flight = true;  // half-open
    // A caller that stopped sending (budget reached) ends what is still waiting.
    if (keep_sending && (!ready.empty() || !delayed.empty()) && !keep_sending()) {
      auto stop = [&](size_t i) {
        HttpResponse r;
        r.failure = "stopped";
        r.detail = "not sent: the caller stopped sending (budget reached)";
        finish(i, std::move(r));
      };
      while (!ready.empty()) stop(ready.front()), ready.pop_front();
      while (!delayed.empty()) stop(delayed.top().second), delayed.pop();
      if (remaining == 0) break;
    }
    // Start what the limits allow.
    Clock::time_point wake = now + std::chrono::seconds(1);  // curl_multi_poll also honours curl's own timers
    bool limited = false;  // a limit or the circuit holds back a ready request
    while (!ready.empty() && in_flight < options_.max_in_flight) {
      if (circuit_open && !(probe_in_flight && in_flight == 0)) {
        wake = std::min(wake, std::max(open_until, now + std::chrono::milliseconds(5)));
        limited = true;
        break;
      }
      size_t i = ready.front();
      if (options_.requests_per_minute > 0 && now < next_start) {
        wake = std::min(wake, next_start);
        limited = true;
        break;
      }
      // A request larger than the whole budget waits for a full bucket, then goes.
      double need = std::min(requests[i].tokens, options_.tokens_per_minute);
      if (options_.tokens_per_minute > 0 && bucket < need) {
        wake = std::min(wake, now + dur((need - bucket) * 60 / options_.tokens_per_minute));
        limited = true;
        break;
      }
      ready.pop_front();
      start(i, now);
      if (circuit_open) break;  // the one probe
    }
    if (!delayed.empty()) wake = std::min(wake, delayed.top().first);
    if (has_deadline) wake = std::min(wake, deadline);

    int running = 0;
    curl_multi_perform(multi, &running);
    CURLMsg* msg;
    int left, completed = 0;
    while ((msg = curl_multi_info_read(multi, &left))) {
      if (msg->msg != CURLMSG_DONE) continue;
      ++completed;
      Transfer* t = nullptr;
      curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &t);
      CURLcode code = msg->data.result;
      curl_multi_remove_handle(multi, msg->easy_handle);
      --in_flight;
      free_transfers.push_back(t);
      size_t i = t->index;
      long status = 0;
      curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
      HttpResponse r;
      r.status = static_cast<int>(status);
      r.body = std::move(t->body);
      bool probe = circuit_open && probe_in_flight;
      if (code == CURLE_OK && status >= 200 && status < 300) {
        consecutive_failures = 0;
        if (probe) circuit_open = false;
        probe_in_flight = false;
        finish(i, std::move(r));
        continue;
      }
      if (probe) probe_in_flight = false;
      bool retryable = true;
      double retry_after = -1;
      if (code == CURLE_OK) {
        retry_after = retry_after_seconds(t->retry_after);
        if (status == 429) r.failure = "http_429";
        else if (status >= 500) r.failure = "http_5xx";
        else if (status == 408) r.failure = "timeout";
        else r.failure = "http_4xx", retryable = false;
        r.detail = "HTTP " + std::to_string(status) + ": " + r.body.substr(0, 200);
      } else {
        r.failure = code == CURLE_OPERATION_TIMEDOUT                                      ? "timeout"
                    : (code == CURLE_PARTIAL_FILE || code == CURLE_GOT_NOTHING ||
                       code == CURLE_RECV_ERROR)                                          ? "truncated"
                                                                                          : "connection";
        r.detail = curl_easy_strerror(code);
      }
      failed_attempt(i, std::move(r), retryable, retry_after);
    }
    if (remaining == 0) break;
    // A finished transfer freed a slot: start the next request now rather than after the next socket event.
    if (completed > 0 && !ready.empty() && !limited) continue;
    long wait_ms = std::max(0L, static_cast<long>(seconds(wake - Clock::now()) * 1000));
    if (in_flight > 0) curl_multi_poll(multi, nullptr, 0, static_cast<int>(std::min(wait_ms, 1000L)), nullptr);
    else if (wait_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(std::min(wait_ms, 1000L)));
  }
  for (auto& t : all_transfers) {
    curl_slist_free_all(t->headers);
    curl_easy_cleanup(t->easy);
  }
}

}  // namespace rlaif
