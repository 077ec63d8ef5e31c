#include "serve/http_front.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include <unordered_map>
#include "core/text.h"

#include "rlaif/error.h"

namespace rlaif {
namespace {

using Clock = std::chrono::steady_clock;
using json = nlohmann::json;

Clock::time_point after(double seconds) {
  return Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

bool is_token(const std::string& s) {  // RFC 9110 token characters
  if (s.empty()) return false;
  for (unsigned char c : s)
    if (c <= 32 || c >= 127 || std::strchr("\"(),/:;<=>?@[\\]{}", c)) return false;
  return true;
}

const char* reason(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 411:
      return "Length Required";
    case 413:
      return "Content Too Large";
    case 417:
      return "Expectation Failed";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Unknown";
  }
}

std::string head(int status, bool keep_alive, const std::vector<std::pair<std::string, std::string>>& headers) {
  std::string h = "HTTP/1.1 " + std::to_string(status) + " " + reason(status) + "\r\n";
  for (const auto& [k, v] : headers) h += k + ": " + v + "\r\n";
  h += keep_alive ? "Connection: keep-alive\r\n\r\n" : "Connection: close\r\n\r\n";
  return h;
}

// A request the HTTP layer refuses: its status and why.
struct Refusal {
  int status;
  std::string message;
};

// What the event loop is told by replies on other threads.
struct Mailbox {
  enum Kind { kSend, kStart, kWrite, kEnd };
  struct Letter {
    uint64_t conn;
    Kind kind;
    int status = 200;
    std::string content_type, data;
    std::vector<std::pair<std::string, std::string>> headers;
  };
  std::mutex mu;
  std::vector<Letter> letters;
  int wake_fd = -1;
  ~Mailbox() {
    if (wake_fd >= 0) close(wake_fd);
  }
  void post(Letter l) {
    {
      std::lock_guard<std::mutex> lock(mu);
      letters.push_back(std::move(l));
    }
    wake();
  }
  void wake() const {
    const uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(wake_fd, &one, sizeof one);
  }
};

class Reply : public HttpReply {
 public:
  Reply(std::shared_ptr<Mailbox> box, uint64_t conn) : box_(std::move(box)), conn_(conn) {}
  void send(int status, const std::string& content_type, std::string body,
            const std::vector<std::pair<std::string, std::string>>& headers) override {
    if (!take_final()) return;
    box_->post({conn_, Mailbox::kSend, status, content_type, std::move(body), headers});
  }
  void start_stream(const std::string& content_type) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (done_ || started_) return;
    started_ = true;
    box_->post({conn_, Mailbox::kStart, 200, content_type, "", {}});
  }
  void write(std::string data) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (done_ || !started_ || data.empty()) return;
    box_->post({conn_, Mailbox::kWrite, 200, "", std::move(data), {}});
  }
  void end() override {
    if (!take_final()) return;
    box_->post({conn_, Mailbox::kEnd, 200, "", "", {}});
  }
  void on_close(std::function<void()> callback) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!gone_) {
        on_close_ = std::move(callback);
        return;
      }
    }
    callback();  // it has already gone
  }
  // The connection closed before the reply was complete (event loop only).
  void closed() {
    std::function<void()> callback;
    {
      std::lock_guard<std::mutex> lock(mu_);
      done_ = gone_ = true;
      callback = std::move(on_close_);
    }
    if (callback) callback();
  }

 private:
  bool take_final() {
    std::lock_guard<std::mutex> lock(mu_);
    if (done_) return false;
    done_ = true;
    return true;
  }
  std::shared_ptr<Mailbox> box_;
  uint64_t conn_;
  std::mutex mu_;
  bool done_ = false, started_ = false, gone_ = false;
  std::function<void()> on_close_;
};

struct Conn {
  enum State { kIdle, kHeaders, kBody, kHandling, kClosing };
  int fd = -1;
  State state = kIdle;
  std::string in;   // bytes read and not yet parsed
  std::string out;  // bytes to send; out_at of them are sent
  size_t out_at = 0;
  Clock::time_point deadline;    // of the current state (idle, headers, body, lingering close)
  Clock::time_point last_write;  // when bytes last went out (or a reply started)
  IncomingRequest request;       // head parsed, body waiting
  size_t body_need = 0;
  bool head_only = false;  // a HEAD request: the reply's body is not sent
  bool keep_alive = true, continue_sent = false, reply_done = false, streaming = false, write_shut = false;
  std::shared_ptr<Reply> reply;  // the request being handled
};

constexpr uint64_t kListener = 0, kWake = 1;

}  // namespace

std::string openai_error_body(int status, const std::string& message, const std::string& param,
                              const std::string& code) {
  const json e = {{"message", message},
                  {"type", status == 401   ? "authentication_error"
                           : status >= 500 ? "server_error"
                                           : "invalid_request_error"},
                  {"param", param.empty() ? json(nullptr) : json(param)},
                  {"code", code.empty() ? json(nullptr) : json(code)}};
  return json({{"error", e}}).dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string IncomingRequest::header(const std::string& name) const {
  const std::string want = ascii_lower(name);
  for (const auto& [k, v] : headers)
    if (ascii_lower(k) == want) return v;
  return "";
}

class HttpFront::Impl {
 public:
  Impl(const std::string& host, int port, HttpLimits limits, HttpHandler handler)
      : limits_(limits), handler_(std::move(handler)), box_(std::make_shared<Mailbox>()) {
    raise_fd_limit();
    addrinfo hints{}, *res = nullptr;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res) != 0 || !res)
      throw Error("cannot resolve " + host, "--host", "give an address such as 127.0.0.1 or 0.0.0.0");
    listen_fd_ = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    const bool bound =
        listen_fd_ >= 0 && bind(listen_fd_, res->ai_addr, res->ai_addrlen) == 0 && listen(listen_fd_, SOMAXCONN) == 0;
    freeaddrinfo(res);
    if (!bound) {
      const std::string why = std::strerror(errno);
      if (listen_fd_ >= 0) close(listen_fd_);
      throw Error("cannot bind " + host + ":" + std::to_string(port) + " (" + why + ")", "--port",
                  "is another server using the port?");
    }
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port
                                             : reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
    epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
    box_->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    spare_fd_ = open("/dev/null", O_RDONLY | O_CLOEXEC);
    watch(listen_fd_, kListener, EPOLLIN, EPOLL_CTL_ADD);
    watch(box_->wake_fd, kWake, EPOLLIN, EPOLL_CTL_ADD);
  }

  ~Impl() {
    for (auto& [id, c] : conns_) close(c.fd);
    close(listen_fd_);
    close(epoll_fd_);
    if (spare_fd_ >= 0) close(spare_fd_);
  }

  int port() const { return port_; }

  void stop() {
    stopping_ = true;
    box_->wake();
  }

  Stats stats() const { return {open_.load(), requests_.load(), refused_.load(), timed_out_.load()}; }

  void run() {
    std::vector<std::thread> workers;
    for (int i = 0; i < std::max(1, limits_.handler_threads); ++i) workers.emplace_back([this] { work(); });
    epoll_event events[128];
    while (!stopping_) {
      const int n = epoll_wait(epoll_fd_, events, 128, 100);  // deadlines are checked at least every 0.1 s
      for (int i = 0; i < n && !stopping_; ++i) {
        const uint64_t id = events[i].data.u64;
        if (id == kListener)
          accept_all();
        else if (id == kWake)
          read_mail();
        else
          try {
            on_event(id, events[i].events);
          } catch (const std::exception&) {
            close_conn(id);  // one connection's failure (e.g. out of memory) must not end the server
          }
      }
      check_deadlines();
    }
    std::vector<uint64_t> ids;
    for (const auto& [id, c] : conns_) ids.push_back(id);
    for (uint64_t id : ids) close_conn(id);
    {
      std::lock_guard<std::mutex> lock(work_mu_);
      work_stop_ = true;
    }
    work_cv_.notify_all();
    for (auto& t : workers) t.join();
  }

 private:
  static void raise_fd_limit() {
    rlimit r{};
    if (getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
      r.rlim_cur = r.rlim_max;
      setrlimit(RLIMIT_NOFILE, &r);
    }
  }

  void watch(int fd, uint64_t id, uint32_t events, int op) {
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = id;
    epoll_ctl(epoll_fd_, op, fd, &ev);
  }

  void update_interest(uint64_t id, Conn& c) {
    uint32_t ev = EPOLLIN | EPOLLRDHUP;
    if (c.out.size() > c.out_at) ev |= EPOLLOUT;
    watch(c.fd, id, ev, EPOLL_CTL_MOD);
  }

  void accept_all() {
    for (;;) {
      int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if ((errno == EMFILE || errno == ENFILE) && spare_fd_ >= 0) {
          // Out of descriptors: take the one waiting, refuse it, and keep a spare for next time. (Linux reports
          // EMFILE before it looks at the queue, so at the limit with none waiting this accept4 says EAGAIN: stop.)
          close(spare_fd_);
          fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (fd >= 0) refuse_at_once(fd, out_of_descriptors());
          spare_fd_ = open("/dev/null", O_RDONLY | O_CLOEXEC);
          if (fd >= 0) continue;
        }
        return;  // EAGAIN, or an error of one connection that has gone
      }
      if (static_cast<int>(conns_.size()) >= limits_.max_connections) {
        refuse_at_once(fd, "too many connections (the server's limit is " + std::to_string(limits_.max_connections) +
                               ", --max-connections); retry later");
        continue;
      }
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      const uint64_t id = next_id_++;
      Conn& c = conns_[id];
      c.fd = fd;
      c.deadline = after(limits_.idle_timeout_s);
      watch(fd, id, EPOLLIN | EPOLLRDHUP, EPOLL_CTL_ADD);
      open_ = static_cast<int64_t>(conns_.size());
    }
  }

  static std::string out_of_descriptors() {
    rlimit r{};
    getrlimit(RLIMIT_NOFILE, &r);
    return "the server is out of file descriptors (its limit, ulimit -n, is " + std::to_string(r.rlim_cur) +
           "; raise it or lower --max-connections); retry later";
  }

  // Answers 503 with `why` and closes, without reading the request.
  void refuse_at_once(int fd, const std::string& why) {
    const std::string body = openai_error_body(503, why);
    const std::string msg = head(503, false,
                                 {{"Content-Type", "application/json"},
                                  {"Content-Length", std::to_string(body.size())},
                                  {"Retry-After", "1"}}) +
                            body;
    [[maybe_unused]] ssize_t n = send(fd, msg.data(), msg.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    close(fd);
    refused_ += 1;
  }

  void on_event(uint64_t id, uint32_t events) {
    auto it = conns_.find(id);
    if (it == conns_.end()) return;
    Conn& c = it->second;
    if (events & (EPOLLERR | EPOLLHUP)) return close_conn(id);
    if (events & EPOLLOUT) {
      if (!flush(id, c)) return;
    }
    if (events & (EPOLLIN | EPOLLRDHUP)) read_from(id, c);
  }

  void read_from(uint64_t id, Conn& c) {
    char buf[65536];
    for (int rounds = 0; rounds < 4; ++rounds) {  // at most 256 KiB per event, so one client cannot hog the loop
      const ssize_t n = recv(c.fd, buf, sizeof buf, 0);
      if (n == 0) return close_conn(id);  // the client went away (a request in flight is cancelled)
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) break;
        return close_conn(id);
      }
      if (c.state == Conn::kClosing) continue;  // lingering close: what the client still sends is dropped
      c.in.append(buf, static_cast<size_t>(n));
      if (c.in.size() > limits_.max_header_bytes + limits_.max_body_bytes) {
        return close_conn(id);  // pipelining past any request's size while one is answered
      }
    }
    parse(id, c);
  }

  // Reads as much of the next request as has arrived; a complete one goes to the handlers.
  void parse(uint64_t id, Conn& c) {
    if (c.state == Conn::kIdle) {
      size_t skip = 0;  // empty lines before a request line are ignored (RFC 9112 section 2.2)
      while (skip < c.in.size() && (c.in[skip] == '\r' || c.in[skip] == '\n')) ++skip;
      c.in.erase(0, skip);
      if (c.in.empty()) return;
      c.state = Conn::kHeaders;
      c.deadline = after(limits_.header_timeout_s);
    }
    if (c.state == Conn::kHeaders) {
      size_t end = c.in.find("\r\n\r\n"), skip = 4;
      const size_t bare = c.in.find("\n\n");
      if (bare != std::string::npos && (end == std::string::npos || bare < end)) end = bare, skip = 2;
      if (end == std::string::npos) {
        if (c.in.size() > limits_.max_header_bytes)
          refuse(id, c, {431, "request headers larger than " + std::to_string(limits_.max_header_bytes) + " bytes"});
        return;
      }
      if (end > limits_.max_header_bytes)
        return refuse(id, c,
                      {431, "request headers larger than " + std::to_string(limits_.max_header_bytes) + " bytes"});
      Refusal r{0, ""};
      c.request = IncomingRequest();
      if (!parse_head(c.in.substr(0, end), c, r)) return refuse(id, c, r);
      c.in.erase(0, end + skip);
      c.state = Conn::kBody;
      c.deadline = after(limits_.body_timeout_s);
      if (c.in.size() < c.body_need && ascii_lower(c.request.header("Expect")) == "100-continue" && !c.continue_sent) {
        c.continue_sent = true;
        queue(c, "HTTP/1.1 100 Continue\r\n\r\n");
        if (!flush(id, c)) return;
      }
    }
    if (c.state == Conn::kBody) {
      if (c.in.size() < c.body_need) return;
      c.request.body = c.in.substr(0, c.body_need);
      c.in.erase(0, c.body_need);
      c.state = Conn::kHandling;
      c.reply_done = false;
      c.streaming = false;
      c.reply = std::make_shared<Reply>(box_, id);
      {
        std::lock_guard<std::mutex> lock(work_mu_);
        work_.push_back({std::move(c.request), c.reply});
      }
      work_cv_.notify_one();
    }
  }

  // The request line and headers (without the blank line): false with a refusal when they are not valid HTTP/1.x.
  bool parse_head(const std::string& text, Conn& c, Refusal& r) {
    std::vector<std::string> lines;
    size_t at = 0;
    while (at <= text.size()) {
      size_t nl = text.find('\n', at);
      if (nl == std::string::npos) nl = text.size();
      std::string line = text.substr(at, nl - at);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      lines.push_back(line);
      at = nl + 1;
    }
    const std::string& first = lines[0];
    const size_t s1 = first.find(' '), s2 = first.rfind(' ');
    if (s1 == std::string::npos || s2 == s1) return r = {400, "malformed request line: " + first.substr(0, 200)}, false;
    IncomingRequest& q = c.request;
    q.method = first.substr(0, s1);
    std::string target = first.substr(s1 + 1, s2 - s1 - 1);
    const std::string version = first.substr(s2 + 1);
    if (!is_token(q.method) || target.empty() || target[0] != '/' || target.find(' ') != std::string::npos)
      return r = {400, "malformed request line: " + first.substr(0, 200)}, false;
    if (version != "HTTP/1.1" && version != "HTTP/1.0")
      return r = {version.rfind("HTTP/", 0) == 0 ? 505 : 400,
                  "unsupported protocol " + version.substr(0, 20) + " (this server speaks HTTP/1.1 and 1.0)"},
             false;
    const size_t qm = target.find('?');
    q.path = target.substr(0, qm);
    for (size_t i = 1; i < lines.size(); ++i) {
      const std::string& line = lines[i];
      const size_t colon = line.find(':');
      if (colon == std::string::npos || !is_token(line.substr(0, colon)))
        return r = {400, "malformed header line: " + line.substr(0, 200)}, false;
      q.headers.emplace_back(line.substr(0, colon), trim(line.substr(colon + 1), " \t"));
    }
    if (!q.header("Transfer-Encoding").empty())
      return r = {411, "request bodies must be sent with Content-Length (Transfer-Encoding is not accepted)"}, false;
    c.body_need = 0;
    bool seen = false;
    for (const auto& [k, v] : q.headers) {
      if (ascii_lower(k) != "content-length") continue;
      if (v.empty() || v.size() > 18 || v.find_first_not_of("0123456789") != std::string::npos)
        return r = {400, "invalid Content-Length: " + v.substr(0, 40)}, false;
      const size_t n = std::stoull(v);
      if (seen && n != c.body_need) return r = {400, "conflicting Content-Length headers"}, false;
      seen = true;
      c.body_need = n;
    }
    if (c.body_need > limits_.max_body_bytes)
      return r = {413, "request body larger than " + std::to_string(limits_.max_body_bytes) + " bytes"}, false;
    const std::string expect = ascii_lower(q.header("Expect"));
    if (!expect.empty() && expect != "100-continue") return r = {417, "unsupported Expect: " + expect}, false;
    c.head_only = q.method == "HEAD";
    const std::string conn = ascii_lower(q.header("Connection"));
    c.keep_alive =
        version == "HTTP/1.1" ? conn.find("close") == std::string::npos : conn.find("keep-alive") != std::string::npos;
    c.continue_sent = false;
    return true;
  }

  // Answers a request the HTTP layer cannot take, then closes the connection (after the reply is read).
  void refuse(uint64_t id, Conn& c, const Refusal& r) {
    const std::string body = openai_error_body(r.status, r.message);
    queue(c, head(r.status, false,
                  {{"Content-Type", "application/json"}, {"Content-Length", std::to_string(body.size())}}) +
                 body);
    c.state = Conn::kClosing;
    c.in.clear();
    c.deadline = after(std::min(limits_.write_timeout_s, 5.0));
    refused_ += 1;
    requests_ += 1;
    flush(id, c);
  }

  // Adds bytes to send; the write deadline counts from when the buffer stops being empty.
  static void queue(Conn& c, const std::string& bytes) {
    if (c.out.size() == c.out_at) c.last_write = Clock::now();
    c.out += bytes;
  }

  // Sends what is buffered; false when the connection was closed.
  bool flush(uint64_t id, Conn& c) {
    while (c.out_at < c.out.size()) {
      const ssize_t n = send(c.fd, c.out.data() + c.out_at, c.out.size() - c.out_at, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) break;
        close_conn(id);
        return false;
      }
      c.out_at += static_cast<size_t>(n);
      c.last_write = Clock::now();
    }
    if (c.out_at == c.out.size()) {
      c.out.clear();
      c.out_at = 0;
    } else if (c.out_at > (1 << 20)) {
      c.out.erase(0, c.out_at);
      c.out_at = 0;
    }
    if (c.out.empty() && c.state == Conn::kClosing && !c.write_shut) {
      // Lingering close: stop sending, read what the client still sends for a moment, so the reply is not lost to
      // a reset.
      shutdown(c.fd, SHUT_WR);
      c.write_shut = true;
      c.deadline = after(2);
    }
    if (c.out.empty() && c.state == Conn::kHandling && c.reply_done) {
      c.reply.reset();
      if (!c.keep_alive) {
        c.state = Conn::kClosing;
        c.in.clear();
        return flush(id, c);
      }
      c.state = Conn::kIdle;
      c.deadline = after(limits_.idle_timeout_s);
      update_interest(id, c);
      parse(id, c);  // a pipelined request may already be here
      return conns_.count(id) > 0;
    }
    update_interest(id, c);
    return true;
  }

  void read_mail() {
    uint64_t count = 0;
    [[maybe_unused]] ssize_t n = ::read(box_->wake_fd, &count, sizeof count);
    std::vector<Mailbox::Letter> letters;
    {
      std::lock_guard<std::mutex> lock(box_->mu);
      letters.swap(box_->letters);
    }
    for (auto& l : letters) {
      auto it = conns_.find(l.conn);
      if (it == conns_.end() || it->second.state != Conn::kHandling) continue;
      Conn& c = it->second;
      switch (l.kind) {
        case Mailbox::kSend: {
          auto headers = l.headers;
          headers.emplace_back("Content-Type", l.content_type);
          headers.emplace_back("Content-Length", std::to_string(l.data.size()));
          queue(c, head(l.status, c.keep_alive, headers) + (c.head_only ? "" : l.data));
          c.reply_done = true;
          requests_ += 1;
          break;
        }
        case Mailbox::kStart:
          queue(c, head(200, c.keep_alive,
                        {{"Content-Type", l.content_type},
                         {"Cache-Control", "no-cache"},
                         {"Transfer-Encoding", "chunked"}}));
          c.streaming = !c.head_only;
          break;
        case Mailbox::kWrite: {
          char size[32];
          std::snprintf(size, sizeof size, "%zx\r\n", l.data.size());
          if (c.streaming) queue(c, size + l.data + "\r\n");
          break;
        }
        case Mailbox::kEnd:
          if (c.streaming) queue(c, "0\r\n\r\n");
          c.reply_done = true;
          requests_ += 1;
          break;
      }
      flush(l.conn, c);
    }
  }

  void check_deadlines() {
    const auto now = Clock::now();
    std::vector<uint64_t> expired;
    for (auto& [id, c] : conns_) {
      const bool writing = c.out.size() > c.out_at;
      if (writing && now - c.last_write > std::chrono::duration<double>(limits_.write_timeout_s))
        expired.push_back(id);
      else if (c.state != Conn::kHandling && now > c.deadline)
        expired.push_back(id);
    }
    for (uint64_t id : expired) {
      auto it = conns_.find(id);
      if (it == conns_.end()) continue;
      Conn& c = it->second;
      if (c.state == Conn::kHeaders || c.state == Conn::kBody) timed_out_ += 1;
      if (c.state == Conn::kHeaders || c.state == Conn::kBody)
        refuse(
            id, c,
            {408, c.state == Conn::kHeaders
                      ? "the request's headers did not arrive within " + std::to_string(limits_.header_timeout_s) + " s"
                      : "the request's body did not arrive within " + std::to_string(limits_.body_timeout_s) + " s"});
      else
        close_conn(id);
    }
  }

  void close_conn(uint64_t id) {
    auto it = conns_.find(id);
    if (it == conns_.end()) return;
    Conn& c = it->second;
    epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, c.fd, nullptr);
    close(c.fd);
    std::shared_ptr<Reply> reply = std::move(c.reply);
    const bool unfinished = c.state == Conn::kHandling && !c.reply_done;
    conns_.erase(it);
    open_ = static_cast<int64_t>(conns_.size());
    if (reply && unfinished) reply->closed();  // cancels the work behind it
  }

  struct Work {
    IncomingRequest request;
    std::shared_ptr<Reply> reply;
  };

  void work() {
    for (;;) {
      Work w;
      {
        std::unique_lock<std::mutex> lock(work_mu_);
        work_cv_.wait(lock, [&] { return work_stop_ || !work_.empty(); });
        if (work_.empty()) return;
        w = std::move(work_.front());
        work_.pop_front();
      }
      try {
        handler_(w.request, w.reply);
      } catch (const std::exception& e) {
        w.reply->send(500, "application/json", openai_error_body(500, std::string("internal error: ") + e.what()), {});
      }
    }
  }

  HttpLimits limits_;
  HttpHandler handler_;
  std::shared_ptr<Mailbox> box_;
  int listen_fd_ = -1, epoll_fd_ = -1, spare_fd_ = -1, port_ = 0;
  std::atomic<bool> stopping_{false};
  std::unordered_map<uint64_t, Conn> conns_;  // event loop only
  uint64_t next_id_ = 2;
  std::atomic<int64_t> open_{0}, requests_{0}, refused_{0}, timed_out_{0};
  std::mutex work_mu_;
  std::condition_variable work_cv_;
  std::deque<Work> work_;
  bool work_stop_ = false;
};

HttpFront::HttpFront(const std::string& host, int port, HttpLimits limits, HttpHandler handler)
    : impl_(std::make_unique<Impl>(host, port, limits, std::move(handler))) {}
HttpFront::~HttpFront() = default;
int HttpFront::port() const { return impl_->port(); }
void HttpFront::run() { impl_->run(); }
void HttpFront::stop() { impl_->stop(); }
HttpFront::Stats HttpFront::stats() const { return impl_->stats(); }

}  // namespace rlaif
