// `rlaif serve` as a child process for tests, and a raw TCP client for what HTTP libraries will not send (half
// requests, slow bytes, garbage).
#pragma once

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <stdexcept>
#include <string>

namespace rlaif_test {

// `rlaif serve` in a child process; the port comes from its first stdout line.
class ServeProcess {
 public:
  // `shell` runs in the child's shell before the server (e.g. "ulimit -n 64;").
  ServeProcess(const std::string& model, const std::string& extra, const std::string& shell = "") {
    int fds[2];
    if (pipe(fds) != 0) throw std::runtime_error("pipe");
    pid_ = fork();
    if (pid_ == 0) {
      dup2(fds[1], 1);
      close(fds[0]);
      std::string cmd = std::string(RLAIF_BIN) + " serve --model " + model + " --port 0 " + extra;
      execl("/bin/sh", "sh", "-c", (shell + "exec " + cmd).c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    close(fds[1]);
    FILE* out = fdopen(fds[0], "r");
    char line[512] = {0};
    if (!fgets(line, sizeof line, out)) throw std::runtime_error("rlaif serve printed nothing");
    fclose(out);
    std::string s(line);
    auto colon = s.rfind(':');
    port_ = std::stoi(s.substr(colon + 1));
  }
  ~ServeProcess() {
    if (pid_ > 0 && !stopped_) kill(pid_, SIGKILL), waitpid(pid_, nullptr, 0);
  }
  int port() const { return port_; }
  // SIGTERM, then the exit status (-1 when it did not exit within 10 s).
  int stop() {
    kill(pid_, SIGTERM);
    for (int i = 0; i < 100; ++i) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        stopped_ = true;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      usleep(100000);
    }
    return -1;
  }

  pid_t pid() const { return pid_; }
  // How many file descriptors the server holds open.
  int open_fds() const {
    int n = 0;
    if (DIR* d = opendir(("/proc/" + std::to_string(pid_) + "/fd").c_str())) {
      while (dirent* e = readdir(d)) n += e->d_name[0] != '.';
      closedir(d);
    }
    return n;
  }
  // The server's resident memory in KiB (VmRSS of /proc/PID/status).
  long rss_kib() const {
    std::ifstream f("/proc/" + std::to_string(pid_) + "/status");
    for (std::string line; std::getline(f, line);)
      if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
    return -1;
  }

 private:
  pid_t pid_ = -1;
  int port_ = 0;
  bool stopped_ = false;
};

// The bytes of an HTTP/1.1 POST with a JSON body (and a bearer token when `key` is not empty).
inline std::string http_post(const std::string& path, const std::string& body, const std::string& key = "") {
  std::string r = "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n";
  if (!key.empty()) r += "Authorization: Bearer " + key + "\r\n";
  return r + "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

// A plain TCP connection to 127.0.0.1:port.
class RawConnection {
 public:
  explicit RawConnection(int port) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd_ < 0 || connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
      throw std::runtime_error("cannot connect to port " + std::to_string(port));
  }
  ~RawConnection() { close(); }
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;
  // Sends all of `data`; false once the server has closed the connection.
  bool send_all(const std::string& data) {
    for (size_t at = 0; at < data.size();) {
      ssize_t n = ::send(fd_, data.data() + at, data.size() - at, MSG_NOSIGNAL);
      if (n <= 0) return false;
      at += static_cast<size_t>(n);
    }
    return true;
  }
  // Reads until the server closes, `until` appears in what was read, or `seconds` pass; returns all read so far.
  std::string read(double seconds, const std::string& until = "") {
    const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (!closed_ && std::chrono::steady_clock::now() < end &&
           (until.empty() || got_.find(until) == std::string::npos)) {
      pollfd p{fd_, POLLIN, 0};
      const int ms =
          static_cast<int>(std::chrono::duration<double, std::milli>(end - std::chrono::steady_clock::now()).count());
      if (poll(&p, 1, std::max(1, ms)) <= 0) continue;
      char buf[65536];
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) {
        closed_ = true;
        break;
      }
      got_.append(buf, static_cast<size_t>(n));
    }
    return got_;
  }
  bool closed_by_server() const { return closed_; }
  void close() {
    if (fd_ >= 0) ::close(fd_), fd_ = -1;
  }

 private:
  int fd_ = -1;
  std::string got_;
  bool closed_ = false;
};

}  // namespace rlaif_test
