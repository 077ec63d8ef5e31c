// Concurrent HTTP POSTs with the fault handling a remote judge needs: many requests in flight over reused connections,
// a per-request timeout and an overall deadline, retries with jittered exponential backoff on timeouts, connection
// errors, truncated replies, 429 and 5xx (honouring Retry-After), client-side rate limits (requests and tokens per
// minute), and a circuit breaker that pauses new requests after consecutive failures. Every request ends either with
// a response or with a failure cause; none is lost and none outlives the deadline.
//
// A pool of endpoints (HttpClientOptions::endpoints, e.g. several servers of one judge model): each attempt goes to the
// endpoint with the fewest requests in flight; each endpoint has its own circuit breaker (ejected while open, probed
// back by one request after the cooldown); a failed attempt is retried at once on another endpoint whose circuit is
// closed (with the backoff only when there is none), so a dead endpoint's requests move to the live ones. Rate limits
// and max_in_flight hold for the pool as a whole. Rate limits and open circuits carry over from one run() to the next.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace rlaif {

struct HttpRequest {
  std::string url;                   // with a pool of endpoints: the path appended to the chosen endpoint
  std::string body;                  // sent as application/json
  std::vector<std::string> headers;  // "Name: value"
  double tokens = 0;                 // estimated tokens, for the tokens-per-minute limit
};

struct HttpResponse {
  int status = 0;  // HTTP status of the last attempt (0 = no HTTP answer)
  std::string body;
  std::string failure;  // "" = a 2xx answer; else timeout, connection, truncated, http_429, http_5xx,
                        // http_4xx, deadline, stopped
  std::string detail;   // human-readable detail of the failure
  int attempts = 0;
  double latency_s = 0;  // from the first attempt's start to the end
};

struct HttpClientOptions {
  int max_in_flight = 16;
  double timeout_s = 60;        // per attempt
  double deadline_s = 0;        // for a whole run(); 0 = none
  int max_retries = 4;          // failed attempts (transport, 429, 5xx) retried before the request fails
  int max_reply_retries = 2;    // 2xx replies refused by run()'s check_reply, sent again at once (not a failure)
  double backoff_base_s = 0.5;  // retry k waits base * 2^(k-1) * U(0.5, 1], capped at backoff_max_s
  double backoff_max_s = 30;
  double max_retry_after_s = 120;  // a longer Retry-After is capped to this
  double requests_per_minute = 0;  // starts are paced 60/rpm seconds apart; 0 = unlimited
  double tokens_per_minute = 0;    // a token bucket refilled continuously (HttpRequest::tokens); 0 = unlimited
  int circuit_failures = 8;        // consecutive failed attempts that open the circuit (0 = never)
  double circuit_cooldown_s = 5;   // then one probe request decides whether it closes again
  uint64_t seed = 0;               // of the backoff jitter
  // A pool: base URLs that each request's url is appended to (the endpoint chosen per attempt). Empty: the requests'
  // urls are complete (one endpoint).
  std::vector<std::string> endpoints;
};

// One endpoint's share of the attempts (retries included).
struct EndpointStats {
  std::string url;  // the pool's base URL ("" without a pool)
  int64_t attempts = 0, failures = 0, circuit_opened = 0;
  double latency_s = 0;  // summed over its ended attempts
  int64_t ended = 0;     // attempts that ended (latency_s / ended is the mean)
};

struct HttpStats {
  int64_t requests = 0, attempts = 0, retries = 0, succeeded = 0, failed = 0, circuit_opened = 0;
  int64_t reply_retries = 0;                      // attempts repeated because check_reply refused a 2xx reply
  std::map<std::string, int64_t> failures;        // final failures by cause
  std::map<std::string, int64_t> retried_causes;  // retried attempts by cause
  std::vector<EndpointStats> endpoints;           // in the order of HttpClientOptions::endpoints (one without a pool)
};

class HttpClient {
 public:
  explicit HttpClient(HttpClientOptions options);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Asked about each 2xx reply body of request `index`: "" accepts it, a cause (e.g. "bad_response") sends the
  // request again, up to max_reply_retries times; the cause is counted in HttpStats::retried_causes.
  using ReplyCheck = std::function<std::string(size_t index, const std::string& body)>;

  // POSTs every request and calls on_done(index, response) as each one ends, on this thread. Returns when all have
  // ended. keep_sending (optional) is asked before each new attempt; once it says false, requests not yet sent end
  // with failure "stopped" (used for budget caps). check_reply (optional): see ReplyCheck. Throws only when libcurl
  // cannot start.
  void run(const std::vector<HttpRequest>& requests, const std::function<void(size_t, HttpResponse&&)>& on_done,
           const std::function<bool()>& keep_sending = {}, const ReplyCheck& check_reply = {});

  const HttpStats& stats() const { return stats_; }

 private:
  HttpClientOptions options_;
  HttpStats stats_;
  void* multi_ = nullptr;  // CURLM*, kept so connections are reused across run() calls
  struct Shared;           // what outlives a run(): the rate limits' state and the endpoints' circuit breakers
  std::unique_ptr<Shared> shared_;
};

}  // namespace rlaif
