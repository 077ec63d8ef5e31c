// The HTTP/1.1 side of `rlaif serve`: one event loop (epoll) owns every connection, so a connection costs a buffer,
// never a thread. Reading a request is bounded in size and time (header and body limits and deadlines); a complete
// request goes to a small pool of handler threads, which answer it through an HttpReply, now or later and from any
// thread (the decode engine streams into it). Keep-alive, pipelined requests (answered in order, one at a time),
// `Expect: 100-continue`, and chunked replies for server-sent events. A client that goes away mid-request cancels it.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace rlaif {

struct HttpLimits {
  size_t max_header_bytes = 16 << 10;  // request line and headers; more is 431
  size_t max_body_bytes = 1 << 20;     // a larger Content-Length is 413
  double header_timeout_s = 10;        // from a request's first byte to the end of its headers (then 408)
  double body_timeout_s = 30;          // from the end of the headers to the end of the body (then 408)
  double idle_timeout_s = 60;          // a kept-alive connection with no request is closed
  double write_timeout_s = 60;         // a reply the client does not read for this long closes the connection
  int max_connections = 1024;          // more are answered 503 and closed at once
  int handler_threads = 2;             // threads that parse and route complete requests
};

struct IncomingRequest {
  std::string method, path;  // path without the query string
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // The value of a header (case-insensitive name), "" when absent.
  std::string header(const std::string& name) const;
};

// Answers one request, from any thread, exactly once: send() a whole reply, or start_stream(), write() chunks and
// end(). Calls after the connection closed are dropped. on_close runs (once, on the event loop) when the client goes
// away before the reply is complete — set it before handing the request to other threads.
class HttpReply {
 public:
  virtual ~HttpReply() = default;
  virtual void send(int status, const std::string& content_type, std::string body,
                    const std::vector<std::pair<std::string, std::string>>& headers = {}) = 0;
  virtual void start_stream(const std::string& content_type) = 0;
  virtual void write(std::string data) = 0;
  virtual void end() = 0;
  virtual void on_close(std::function<void()> callback) = 0;
};

using HttpHandler = std::function<void(IncomingRequest& request, const std::shared_ptr<HttpReply>& reply)>;

class HttpFront {
 public:
  // Binds host:port (0 = any free port); throws rlaif::Error when it cannot.
  HttpFront(const std::string& host, int port, HttpLimits limits, HttpHandler handler);
  ~HttpFront();
  int port() const;
  // Serves until stop(); the handler threads run while it does.
  void run();
  // Makes run() return; async-signal-safe.
  void stop();

  struct Stats {
    int64_t connections = 0, requests = 0;  // open now; answered or refused since the start
    int64_t refused = 0, timed_out = 0;     // 4xx/503 from the HTTP layer itself; deadlines missed
  };
  Stats stats() const;

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// The OpenAI-shaped error body every error of `rlaif serve` carries ({"error": {"message", "type", "param", "code"}};
// type from the status: authentication_error, server_error or invalid_request_error). The message may quote the
// client's invalid bytes: they are replaced, never an exception.
std::string openai_error_body(int status, const std::string& message, const std::string& param = "",
                              const std::string& code = "");

}  // namespace rlaif
