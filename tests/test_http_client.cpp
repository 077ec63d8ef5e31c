// The HTTP client against a real misbehaving server on 127.0.0.1: every request ends exactly once, as a response or a
// counted failure with its cause, retries honour Retry-After, nothing outlives the deadline, the circuit breaker
// stops hammering a dead endpoint, and the rate limit paces requests. A pool of endpoints spreads the load by the
// requests in flight and loses nothing when one of them dies.
#include <chrono>

#include "fault_server.h"
#include "rlaif/http_client.h"
#include "test_util.h"

namespace {

using Clock = std::chrono::steady_clock;

rlaif::HttpRequest request(const rlaif_test::FaultServer& s, const std::string& fault, const std::string& id) {
  return {s.url(), nlohmann::json{{"fault", fault}, {"id", id}}.dump(), {}, 10};
}

TEST(HttpClient, EveryFaultEndsAsAResponseOrACountedFailure) {
  rlaif_test::FaultServer server;
  rlaif::HttpClientOptions o;
  o.max_in_flight = 16;
  o.timeout_s = 1.0;
  o.max_retries = 3;
  o.backoff_base_s = 0.05;
  o.deadline_s = 30;
  o.circuit_failures = 0;
  rlaif::HttpClient client(o);
  std::vector<std::pair<std::string, std::string>> cases = {
      // fault, expected failure ("" = success)
      {"ok", ""},     {"429x2", ""},       {"500x1", ""},       {"timeoutx1", ""},      {"truncatex1", ""},
      {"dripx1", ""}, {"4xx", "http_4xx"}, {"500", "http_5xx"}, {"timeout", "timeout"}, {"invalid_json", ""}};
  std::vector<rlaif::HttpRequest> reqs;
  for (int rep = 0; rep < 3; ++rep)
    for (size_t k = 0; k < cases.size(); ++k)
      reqs.push_back(request(server, cases[k].first, cases[k].first + "-" + std::to_string(rep)));
  std::vector<int> done(reqs.size(), 0);
  std::vector<rlaif::HttpResponse> out(reqs.size());
  auto t0 = Clock::now();
  client.run(reqs, [&](size_t i, rlaif::HttpResponse&& r) {
    ++done[i];
    out[i] = std::move(r);
  });
  double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
  for (size_t i = 0; i < reqs.size(); ++i) {
    const auto& [fault, want] = cases[i % cases.size()];
    EXPECT_EQ(done[i], 1) << fault;
    EXPECT_EQ(out[i].failure, want) << fault << ": " << out[i].detail;
    if (want.empty()) {
      EXPECT_EQ(out[i].status, 200) << fault;
    }
  }
  // Attempts: 429x2 needs 3 and waited the server's Retry-After of 1 s twice; 4xx is not retried; timeout uses all 4.
  EXPECT_EQ(out[1].attempts, 3);
  EXPECT_GE(out[1].latency_s, 1.9);
  EXPECT_EQ(out[2].attempts, 2);
  EXPECT_EQ(out[3].attempts, 2);
  EXPECT_EQ(out[4].attempts, 2);
  EXPECT_EQ(out[5].attempts, 2);
  EXPECT_EQ(out[6].attempts, 1);
  EXPECT_EQ(out[8].attempts, 4);
  EXPECT_EQ(out[9].body.substr(0, 12), "{\"choices\": ");  // a 200 with a broken body is the caller's to judge
  const auto& st = client.stats();
  EXPECT_EQ(st.requests, 30);
  EXPECT_EQ(st.succeeded + st.failed, 30);
  EXPECT_EQ(st.failures.at("http_4xx"), 3);
  EXPECT_EQ(st.failures.at("http_5xx"), 3);
  EXPECT_EQ(st.failures.at("timeout"), 3);
  EXPECT_GT(st.retried_causes.at("http_429"), 0);
  EXPECT_GT(st.retried_causes.at("truncated"), 0);
  EXPECT_EQ(server.requests(), st.attempts);
  EXPECT_LT(elapsed, 20.0);
}

TEST(HttpClient, NothingOutlivesTheDeadline) {
  rlaif_test::FaultServer server;
  rlaif::HttpClientOptions o;
  o.max_in_flight = 4;
  o.timeout_s = 10;  // longer than the deadline: the deadline must cut it
  o.deadline_s = 1.5;
  o.backoff_base_s = 0.05;
  rlaif::HttpClient client(o);
  std::vector<rlaif::HttpRequest> reqs;
  for (int i = 0; i < 12; ++i) reqs.push_back(request(server, i % 3 == 0 ? "ok" : "timeout", "d" + std::to_string(i)));
  int ended = 0, deadline = 0, ok = 0;
  auto t0 = Clock::now();
  client.run(reqs, [&](size_t, rlaif::HttpResponse&& r) {
    ++ended;
    deadline += r.failure == "deadline" || r.failure == "timeout";
    ok += r.failure.empty();
  });
  double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
  EXPECT_EQ(ended, 12);
  EXPECT_GE(ok, 1);
  EXPECT_EQ(ok + deadline, 12);
  EXPECT_LT(elapsed, 2.5) << "run() outlived its 1.5 s deadline";
}

TEST(HttpClient, CircuitBreakerStopsHammeringADeadEndpoint) {
  rlaif_test::FaultServer server;
  rlaif::HttpClientOptions o;
  o.max_in_flight = 1;
  o.timeout_s = 1;
  o.max_retries = 100;
  o.backoff_base_s = 0.01;
  o.backoff_max_s = 0.01;
  o.deadline_s = 2.0;
  o.circuit_failures = 3;
  o.circuit_cooldown_s = 0.5;
  rlaif::HttpClient client(o);
  std::vector<rlaif::HttpRequest> reqs;
  for (int i = 0; i < 5; ++i) reqs.push_back(request(server, "500", "c" + std::to_string(i)));
  int ended = 0;
  client.run(reqs, [&](size_t, rlaif::HttpResponse&& r) {
    ++ended;
    EXPECT_FALSE(r.failure.empty());
  });
  EXPECT_EQ(ended, 5);
  // Without the breaker, 10 ms backoffs would send ~150 requests in 2 s; with it: 3, then one probe per 0.5 s.
  EXPECT_LE(server.requests(), 8);
  EXPECT_GE(client.stats().circuit_opened, 1);
}

TEST(HttpClient, RateLimitPacesRequests) {
  rlaif_test::FaultServer server;
  rlaif::HttpClientOptions o;
  o.max_in_flight = 8;
  o.requests_per_minute = 1200;  // one start every 50 ms
  rlaif::HttpClient client(o);
  std::vector<rlaif::HttpRequest> reqs;
  for (int i = 0; i < 10; ++i) reqs.push_back(request(server, "ok", "r" + std::to_string(i)));
  auto t0 = Clock::now();
  client.run(reqs, [](size_t, rlaif::HttpResponse&&) {});
  double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
  EXPECT_GE(elapsed, 0.44);
  EXPECT_EQ(client.stats().succeeded, 10);

  rlaif::HttpClientOptions t;
  t.tokens_per_minute = 600;  // the bucket refills 10 tokens per second
  rlaif::HttpClient tokens(t);
  std::string body = nlohmann::json{{"fault", "ok"}, {"id", "t"}}.dump();
  std::vector<rlaif::HttpRequest> two = {{server.url(), body, {}, 600}, {server.url(), body, {}, 10}};
  t0 = Clock::now();
  tokens.run(two, [](size_t, rlaif::HttpResponse&&) {});
  elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
  EXPECT_GE(elapsed, 0.9) << "the second request must wait a second for 10 tokens";
  EXPECT_LT(elapsed, 3.0);
}

// Three servers of 10, 40 and 120 ms; the middle one dies after 100 of 300 requests. Every request still ends as a
// success (its attempts on the dead server moved to the others), each server holds at most its share of the requests
// in flight, the fastest serves the most, and the dead one is ejected instead of being tried again and again.
TEST(HttpClient, APoolSpreadsTheLoadAndLosesNothingWhenAnEndpointDies) {
  rlaif_test::FaultServer fast(10), medium(40), slow(120);
  rlaif::HttpClientOptions o;
  o.endpoints = {fast.base_url(), medium.base_url(), slow.base_url()};
  o.max_in_flight = 6;
  o.timeout_s = 5;
  o.max_retries = 4;
  o.backoff_base_s = 0.05;
  o.circuit_failures = 3;
  o.circuit_cooldown_s = 0.3;
  rlaif::HttpClient client(o);
  std::vector<rlaif::HttpRequest> reqs;
  for (int i = 0; i < 300; ++i)
    reqs.push_back(
        {"/chat/completions", nlohmann::json{{"fault", "ok"}, {"id", "p" + std::to_string(i)}}.dump(), {}, 10});
  std::vector<int> done(reqs.size(), 0);
  int ended = 0, failed = 0;
  auto t0 = Clock::now();
  client.run(reqs, [&](size_t i, rlaif::HttpResponse&& r) {
    ++done[i];
    failed += !r.failure.empty();
    if (++ended == 100) medium.stop();  // dies mid-run, with requests in flight
  });
  const double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
  for (size_t i = 0; i < reqs.size(); ++i) EXPECT_EQ(done[i], 1) << i;
  EXPECT_EQ(failed, 0);
  const auto& st = client.stats();
  ASSERT_EQ(st.endpoints.size(), 3u);
  EXPECT_EQ(st.endpoints[0].url, fast.base_url());
  // Each attempt went where the client says it did; the two live servers saw exactly their attempts.
  EXPECT_EQ(st.endpoints[0].attempts + st.endpoints[1].attempts + st.endpoints[2].attempts, st.attempts);
  EXPECT_EQ(fast.requests(), st.endpoints[0].attempts);
  EXPECT_EQ(slow.requests(), st.endpoints[2].attempts);
  // Balanced by in-flight count: 6 over 3 servers, then over the 2 left, never more than 3 at one server.
  EXPECT_LE(fast.max_concurrent(), 3);
  EXPECT_LE(slow.max_concurrent(), 3);
  EXPECT_GE(slow.requests(), 1);
  EXPECT_GT(fast.requests(), 2 * slow.requests()) << "the fastest server finishes sooner, so it gets more";
  EXPECT_LT(st.endpoints[0].latency_s / st.endpoints[0].ended, st.endpoints[2].latency_s / st.endpoints[2].ended);
  // The dead server was ejected: its failed attempts are the 3 that opened its circuit, those in flight when it died,
  // and one probe per cooldown.
  EXPECT_GE(st.endpoints[1].circuit_opened, 1);
  EXPECT_GE(st.endpoints[1].failures, 3);
  EXPECT_LE(st.endpoints[1].failures, 3 + 6 + static_cast<int64_t>(elapsed / o.circuit_cooldown_s) + 1);
  EXPECT_EQ(st.succeeded, 300);
  std::printf(
      "pool: %lld/%lld/%lld attempts (10/40/120 ms), at most %d/%d in flight at the live ones, %lld failed at "
      "the dead one (%lld at the live ones, retried), %.2f s\n",
      (long long)st.endpoints[0].attempts, (long long)st.endpoints[1].attempts, (long long)st.endpoints[2].attempts,
      fast.max_concurrent(), slow.max_concurrent(), (long long)st.endpoints[1].failures,
      (long long)(st.endpoints[0].failures + st.endpoints[2].failures), elapsed);
}

TEST(HttpClient, APoolHoldsOneRateLimitForAllItsEndpoints) {
  rlaif_test::FaultServer a, b;
  rlaif::HttpClientOptions o;
  o.endpoints = {a.base_url(), b.base_url()};
  o.max_in_flight = 8;
  o.requests_per_minute = 1200;  // one start every 50 ms, whichever server
  rlaif::HttpClient client(o);
  std::vector<rlaif::HttpRequest> reqs;
  for (int i = 0; i < 10; ++i)
    reqs.push_back(
        {"/chat/completions", nlohmann::json{{"fault", "ok"}, {"id", "q" + std::to_string(i)}}.dump(), {}, 10});
  auto t0 = Clock::now();
  client.run(reqs, [](size_t, rlaif::HttpResponse&&) {});
  const double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
  EXPECT_GE(elapsed, 0.44);
  EXPECT_EQ(client.stats().succeeded, 10);
  EXPECT_GE(a.requests(), 1);
  EXPECT_GE(b.requests(), 1);
}

}  // namespace
