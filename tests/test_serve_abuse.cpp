// rlaif serve's HTTP side over real sockets: keep-alive, pipelining, Expect: 100-continue, HTTP/1.0, HEAD, the
// connection limit and the idle timeout; and 200 abusive connections (slow, truncated, oversized, malformed) among
// valid requests, which must be answered within a second of their normal time with the server's memory bounded.
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "rlaif/init_model.h"
#include "serve_process.h"
#include "test_util.h"

using json = nlohmann::json;
using rlaif_test::RawConnection;
using rlaif_test::ServeProcess;
using rlaif_test::TempDir;

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// How much the server's memory may grow under abuse. Built with AddressSanitizer (scripts/sanitize.sh), freed memory
// waits in ASan's quarantine (256 MiB by default) before it is reused, so the bound is raised by that much.
#if defined(__SANITIZE_ADDRESS__)
constexpr long kMaxGrowthKib = (100 + 256) * 1024;
#else
constexpr long kMaxGrowthKib = 100 * 1024;
#endif

// The status codes of every reply in `bytes` (status lines "HTTP/1.1 NNN "), in order.
std::vector<int> statuses(const std::string& bytes) {
  std::vector<int> out;
  for (size_t at = 0; (at = bytes.find("HTTP/1.1 ", at)) != std::string::npos; at += 9) {
    if (at + 13 <= bytes.size() && std::isdigit(static_cast<unsigned char>(bytes[at + 9])) &&
        std::isdigit(static_cast<unsigned char>(bytes[at + 10])) &&
        std::isdigit(static_cast<unsigned char>(bytes[at + 11])) && bytes[at + 12] == ' ')
      out.push_back(std::atoi(bytes.substr(at + 9, 3).c_str()));
  }
  return out;
}

TEST(ServeHttp, KeepAlivePipeliningExpectContinueHttp10HeadAndTheConnectionLimit) {
  TempDir dir;
  rlaif::InitModelOptions o;
  rlaif::init_model(o, dir / "m");
  ServeProcess server(dir / "m", "--max-connections 8 --idle-timeout 1");
  const int port = server.port();
  {
    RawConnection c(port);  // two requests in one write: two replies, in order, on the same connection
    ASSERT_TRUE(c.send_all("GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n"));
    const std::string r = c.read(10, "\"list\"}");
    EXPECT_EQ(statuses(r), (std::vector<int>{200, 200}));
    EXPECT_LT(r.find("\"status\":\"ok\""), r.find("\"object\":\"list\"")) << r;
    EXPECT_FALSE(c.closed_by_server());
  }
  {
    RawConnection c(port);  // Expect: 100-continue: the server asks for the body, then answers it
    const std::string body = json({{"prompt", "Hi"}, {"max_tokens", 3}}).dump();
    ASSERT_TRUE(c.send_all("POST /v1/completions HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: " +
                           std::to_string(body.size()) + "\r\n\r\n"));
    EXPECT_EQ(c.read(10, "\r\n\r\n").rfind("HTTP/1.1 100 Continue\r\n\r\n", 0), 0u);
    ASSERT_TRUE(c.send_all(body));
    EXPECT_EQ(statuses(c.read(10, "\"usage\"")), (std::vector<int>{100, 200}));
  }
  {
    RawConnection c(port);  // HTTP/1.0 without keep-alive: the server closes after the reply
    ASSERT_TRUE(c.send_all("GET /health HTTP/1.0\r\n\r\n"));
    const std::string r = c.read(10);
    EXPECT_TRUE(c.closed_by_server());
    EXPECT_NE(r.find("Connection: close"), std::string::npos) << r;
  }
  {
    RawConnection c(port);  // HEAD: the headers of GET's reply, no body
    ASSERT_TRUE(c.send_all("HEAD /health HTTP/1.1\r\nHost: x\r\n\r\n"));
    const std::string r = c.read(0.5);
    EXPECT_EQ(statuses(r), (std::vector<int>{200}));
    EXPECT_NE(r.find("Content-Length: "), std::string::npos);
    EXPECT_EQ(r.substr(r.find("\r\n\r\n") + 4), "");
  }
  // The connection limit: eight are served, a ninth is answered 503 at once and closed. (After a pause, so that the
  // server has seen the connections above close.)
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  std::vector<std::unique_ptr<RawConnection>> open;
  for (int i = 0; i < 8; ++i) open.push_back(std::make_unique<RawConnection>(port));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // accepted by now
  {
    RawConnection extra(port);
    const std::string r = extra.read(5);
    EXPECT_EQ(statuses(r), (std::vector<int>{503})) << r;
    EXPECT_TRUE(extra.closed_by_server());
  }
  // The idle timeout (1 s) closes the eight; then connections are served again.
  const auto t0 = Clock::now();
  for (auto& c : open) {
    c->read(5);
    EXPECT_TRUE(c->closed_by_server());
  }
  EXPECT_LT(since(t0), 3.0);
  httplib::Client c("127.0.0.1", port);
  auto res = c.Get("/health");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(server.stop(), 0);
}

// 200 connections that misbehave in four ways, kept open (a closed one is replaced at once) while valid requests
// are timed against their time on a quiet server.
class Abuse {
 public:
  explicit Abuse(int port) : port_(port) {
    threads_.emplace_back([this] { slow(); });
    threads_.emplace_back([this] { truncated(); });
    threads_.emplace_back([this] { oversized(); });
    threads_.emplace_back([this] { malformed(); });
  }
  ~Abuse() { stop(); }
  void stop() {
    stop_ = true;
    for (auto& t : threads_)
      if (t.joinable()) t.join();
  }
  std::map<int, int> replies() {
    std::lock_guard<std::mutex> lock(mu_);
    return replies_;
  }
  int64_t connections() const { return connections_; }

 private:
  // Slow and truncated connections stay open until the server's deadlines cut them; oversized and malformed ones
  // are refused at once and opened again: about 200 are open at any moment.
  static constexpr int kSlow = 100, kTruncated = 100, kEach = 20;
  std::unique_ptr<RawConnection> connect() {
    connections_ += 1;
    return std::make_unique<RawConnection>(port_);
  }
  void count(const std::string& reply) {
    std::lock_guard<std::mutex> lock(mu_);
    for (int s : statuses(reply)) replies_[s] += 1;
  }
  // A valid request, one byte a second.
  void slow() {
    const std::string req = rlaif_test::http_post("/v1/completions", R"({"prompt":"slow"})");
    std::vector<std::unique_ptr<RawConnection>> conns(kSlow);
    std::vector<size_t> at(kSlow, 0);
    while (!stop_) {
      for (int i = 0; i < kSlow; ++i) {
        if (!conns[i] || conns[i]->closed_by_server()) {
          if (conns[i]) count(conns[i]->read(0));
          conns[i] = connect(), at[i] = 0;
        }
        conns[i]->send_all(req.substr(at[i]++ % req.size(), 1));
        conns[i]->read(0.001);
      }
      for (int t = 0; t < 10 && !stop_; ++t) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  // Half a request, then nothing.
  void truncated() {
    const std::string req = rlaif_test::http_post("/v1/completions", json({{"prompt", std::string(2000, 'x')}}).dump());
    std::vector<std::unique_ptr<RawConnection>> conns(kTruncated);
    while (!stop_) {
      for (int i = 0; i < kTruncated; ++i) {
        if (conns[i] && !conns[i]->closed_by_server()) {
          conns[i]->read(0.001);
          continue;
        }
        if (conns[i]) count(conns[i]->read(0));
        conns[i] = connect();
        conns[i]->send_all(req.substr(0, i % 2 ? req.size() / 2 : 60));  // within the body, or the headers
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  // A 64 MiB body announced, and sent as fast as the server takes it.
  void oversized() {
    const std::string head =
        "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 67108864\r\nContent-Type: "
        "application/json\r\n\r\n";
    const std::string chunk(1 << 16, 'a');
    while (!stop_) {
      for (int i = 0; i < kEach && !stop_; ++i) {
        auto c = connect();
        c->send_all(head);
        for (int k = 0; k < 16 && c->send_all(chunk); ++k) {}
        count(c->read(2, "}}"));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  // Requests that are not HTTP, or not valid HTTP, or valid HTTP with a body that is not a request.
  void malformed() {
    const std::vector<std::string> kinds = {
        std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11) + "\r\n\r\n",  // a TLS hello
        "GET / HTTP/9.9\r\n\r\n",
        "POST /v1/completions HTTP/1.1\r\nno colon here\r\n\r\n",
        "POST /v1/completions HTTP/1.1\r\nX-Big: " + std::string(20000, 'b') + "\r\n\r\n",
        "POST /v1/completions HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
        "POST /v1/completions HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
        "POST /v1/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        rlaif_test::http_post("/v1/completions", "{\"prompt\": [1, 2"),
        rlaif_test::http_post("/v1/completions", R"({"prompt":"x","max_tokens":1e300})"),
        "\r\n\r\n\r\n",
    };
    size_t n = 0;
    while (!stop_) {
      for (int i = 0; i < kEach && !stop_; ++i) {
        auto c = connect();
        c->send_all(kinds[n++ % kinds.size()]);
        count(c->read(1, "}}"));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }

  int port_;
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> connections_{0};
  std::mutex mu_;
  std::map<int, int> replies_;
  std::vector<std::thread> threads_;
};

// Out of file descriptors (a server started under a small `ulimit -n`): the connections it cannot hold are answered
// 503 with a message naming the limit — the spare descriptor kept for this — instead of waiting unanswered in the
// listen queue, the ones it holds are unaffected, and once they close it serves again.
TEST(ServeHttp, OutOfFileDescriptorsIsA503NamingTheLimitAndTheServerRecovers) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "under AddressSanitizer the server's runtime needs descriptors of its own at the limit";
#endif
  TempDir dir;
  rlaif::InitModelOptions o;
  rlaif::init_model(o, dir / "m");
  int base = 0;
  {
    ServeProcess probe(dir / "m", "");
    base = probe.open_fds();  // what a started server holds with no connection
    EXPECT_EQ(probe.stop(), 0);
  }
  ASSERT_GT(base, 3);
  const int limit = base + 6;
  ServeProcess server(dir / "m", "--max-connections 1000 --idle-timeout 30",
                      "ulimit -n " + std::to_string(limit) + "; ");
  std::vector<std::unique_ptr<RawConnection>> conns;
  for (int i = 0; i < 16; ++i) conns.push_back(std::make_unique<RawConnection>(server.port()));
  int refused = 0, held = 0;
  for (auto& c : conns) {
    const std::string r = c->read(c == conns.front() ? 2.0 : 0.3);
    if (r.empty() && !c->closed_by_server()) {
      ++held;
      continue;
    }
    EXPECT_EQ(statuses(r), (std::vector<int>{503})) << r;
    EXPECT_NE(r.find("out of file descriptors"), std::string::npos) << r;
    EXPECT_NE(r.find("ulimit -n, is " + std::to_string(limit)), std::string::npos) << r;
    EXPECT_TRUE(c->closed_by_server());
    ++refused;
  }
  EXPECT_GE(held, 1);
  EXPECT_GE(refused, 16 - 8);  // about 6 held (the probe's count can differ by a descriptor or two)
  // A held connection still gets its answer.
  ASSERT_TRUE(conns.front()->send_all("GET /health HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_EQ(statuses(conns.front()->read(10, "\"status\"")), (std::vector<int>{200}));
  conns.clear();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the server sees them close
  RawConnection again(server.port());
  ASSERT_TRUE(again.send_all("GET /health HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_EQ(statuses(again.read(10, "\"status\"")), (std::vector<int>{200}));
}

TEST(ServeAbuse, TwoHundredAbusiveConnectionsDoNotDelayValidRequests) {
  TempDir dir;
  rlaif::InitModelOptions o;
  o.seed = 4;
  rlaif::init_model(o, dir / "m");
  ServeProcess server(dir / "m", "--header-timeout 2 --body-timeout 2 --max-request-bytes 100000");
  const int port = server.port();
  // One valid request on a fresh connection: 32 tokens; its seconds.
  auto valid = [&](int i) {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(30, 0);
    const auto t0 = Clock::now();
    auto res = c.Post("/v1/completions",
                      json({{"prompt", "Valid " + std::to_string(i)}, {"max_tokens", 32}, {"ignore_eos", true}}).dump(),
                      "application/json");
    const double s = since(t0);
    EXPECT_TRUE(res && res->status == 200) << i;
    if (res) EXPECT_EQ(json::parse(res->body)["usage"]["completion_tokens"], 32);
    return s;
  };
  double quiet = 0;
  for (int i = 0; i < 5; ++i) quiet = std::max(quiet, valid(i));
  const long rss_before = server.rss_kib();
  double loaded = 0;
  long rss_peak = rss_before;
  int64_t open_peak = 0;  // connections open at the server, from /health
  {
    Abuse abuse(port);
    std::this_thread::sleep_for(std::chrono::seconds(3));  // past the header deadline: slow ones are being cut off
    for (int i = 0; i < 10; ++i) {
      loaded = std::max(loaded, valid(100 + i));
      rss_peak = std::max(rss_peak, server.rss_kib());
      httplib::Client h("127.0.0.1", port);
      if (auto r = h.Get("/health"))
        open_peak = std::max(open_peak, json::parse(r->body)["connections"].get<int64_t>());
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
    }
    abuse.stop();
    const auto replies = abuse.replies();
    std::cout << "abusive connections opened: " << abuse.connections() << "; replies:";
    for (const auto& [status, n] : replies) std::cout << " " << status << " x" << n;
    std::cout << "\nvalid request: " << quiet << " s quiet, " << loaded << " s at worst under abuse; RSS "
              << rss_before / 1024 << " -> " << rss_peak / 1024 << " MiB; up to " << open_peak << " connections open\n";
    EXPECT_GE(open_peak, 150);
    for (int status : {400, 408, 411, 413, 431, 505}) EXPECT_GT(replies.count(status), 0u) << status;
    EXPECT_EQ(replies.count(500), 0u);
  }
  EXPECT_LT(loaded, quiet + 1.0);
  EXPECT_LT(rss_peak - rss_before, kMaxGrowthKib) << "KiB";
  // Still healthy, and it still answers.
  EXPECT_LT(valid(1000), quiet + 1.0);
  EXPECT_EQ(server.stop(), 0);
}

}  // namespace
