#include "env/command_env.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "rlaif/error.h"

namespace rlaif {
namespace {

constexpr size_t kErrTail = 2000;  // bytes of the program's stderr kept for failure details

std::string dump(const nlohmann::json& j) { return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); }

}  // namespace

CommandEnvironment::CommandEnvironment(EnvConfig config) : config_(std::move(config)) {
  if (pipe2(wake_, O_CLOEXEC | O_NONBLOCK) != 0) throw Error("pipe2() failed", "env.command", std::strerror(errno));
  signal(SIGPIPE, SIG_IGN);  // a program that exits while we write must not end this process
}

CommandEnvironment::~CommandEnvironment() {
  stop_program();
  ::close(wake_[0]);
  ::close(wake_[1]);
}

void CommandEnvironment::start_program() {
  if (io_.joinable()) io_.join();  // the last run's thread has set running_ = false and takes mu_ no more
  // The child of a multithreaded process may only call async-signal-safe functions before exec, so argv and the
  // message are built here.
  std::vector<char*> args;
  for (const auto& a : config_.command) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const std::string cannot_run = "cannot run " + config_.command[0] + ": ";
  int in[2], out[2], err[2];
  if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC)) {
    exit_detail_ = std::string("pipe2() failed: ") + std::strerror(errno);
    return;
  }
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(in[0], 0);
    dup2(out[1], 1);
    dup2(err[1], 2);
    execvp(args[0], args.data());
    const char* why = std::strerror(errno);
    if (write(2, cannot_run.data(), cannot_run.size()) < 0 || write(2, why, std::strlen(why)) < 0) _exit(127);
    _exit(127);
  }
  ::close(in[0]);
  ::close(out[1]);
  ::close(err[1]);
  if (pid < 0) {
    for (int fd : {in[1], out[0], err[0]}) ::close(fd);
    exit_detail_ = std::string("fork() failed: ") + std::strerror(errno);
    return;
  }
  fcntl(in[1], F_SETFL, fcntl(in[1], F_GETFL) | O_NONBLOCK);
  pid_ = pid;
  in_fd_ = in[1], out_fd_ = out[0], err_fd_ = err[0];
  running_ = true;
  if (++generation_ > 1) replies_.count_restart();
  to_write_.clear();
  err_tail_.clear();
  exit_detail_.clear();
  io_ = std::thread([this, g = generation_] { io_loop(g); });
}

void CommandEnvironment::stop_program() {
  pid_t pid = -1;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (running_) {
      if (in_fd_ >= 0) ::close(in_fd_), in_fd_ = -1;  // end of input: a well-behaved program exits
      pid = pid_;
    }
  }
  for (int i = 0; i < 100 && pid > 0; ++i) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!running_) break;
    }
    if (i == 99) kill(pid, SIGKILL);
    usleep(10000);
  }
  if (io_.joinable()) io_.join();
}

void CommandEnvironment::send_line(const nlohmann::json& line) {
  to_write_ += dump(line) + "\n";
  if (write(wake_[1], "w", 1) < 0) {  // full: the I/O thread is awake anyway
  }
}

void CommandEnvironment::io_loop(int generation) {
  int out_fd, err_fd;
  pid_t pid;
  {
    std::lock_guard<std::mutex> lock(mu_);
    out_fd = out_fd_, err_fd = err_fd_, pid = pid_;
  }
  std::string partial;
  bool err_open = true;
  char buf[65536];
  while (true) {
    int in_fd;
    {
      std::lock_guard<std::mutex> lock(mu_);
      in_fd = to_write_.empty() ? -1 : in_fd_;
    }
    pollfd fds[4] = {
        {out_fd, POLLIN, 0}, {err_open ? err_fd : -1, POLLIN, 0}, {wake_[0], POLLIN, 0}, {in_fd, POLLOUT, 0}};
    ::poll(fds, 4, 200);
    if (fds[2].revents & POLLIN)
      while (read(wake_[0], buf, sizeof(buf)) > 0) {}
    if (in_fd >= 0 && (fds[3].revents & (POLLOUT | POLLERR | POLLHUP))) {
      std::lock_guard<std::mutex> lock(mu_);
      if (in_fd_ >= 0) {
        const ssize_t n = write(in_fd_, to_write_.data(), to_write_.size());
        if (n > 0) to_write_.erase(0, static_cast<size_t>(n));
        if (n < 0 && errno != EAGAIN) to_write_.clear();  // the program closed its stdin; its exit will be noticed
      }
    }
    if (err_open && (fds[1].revents & (POLLIN | POLLHUP | POLLERR))) {
      const ssize_t n = read(err_fd, buf, sizeof(buf));
      if (n <= 0) {
        err_open = false;
      } else {
        std::lock_guard<std::mutex> lock(mu_);
        err_tail_.append(buf, static_cast<size_t>(n));
        if (err_tail_.size() > kErrTail) err_tail_.erase(0, err_tail_.size() - kErrTail);
      }
    }
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      const ssize_t n = read(out_fd, buf, sizeof(buf));
      if (n <= 0) break;  // stdout closed: the program has ended (or will be made to)
      partial.append(buf, static_cast<size_t>(n));
      size_t start = 0;
      for (size_t nl; (nl = partial.find('\n', start)) != std::string::npos; start = nl + 1)
        on_line(partial.substr(start, nl - start), generation);
      partial.erase(0, start);
    }
  }
  // Its stdout is closed: give it a second to exit, then make it.
  int status = 0;
  for (int i = 0; waitpid(pid, &status, WNOHANG) == 0; ++i) {
    if (i == 100) kill(pid, SIGKILL);
    usleep(10000);
  }
  while (err_open) {  // the rest of its stderr (it has exited, so this ends)
    const ssize_t n = read(err_fd, buf, sizeof(buf));
    if (n <= 0) break;
    std::lock_guard<std::mutex> lock(mu_);
    err_tail_.append(buf, static_cast<size_t>(n));
    if (err_tail_.size() > kErrTail) err_tail_.erase(0, err_tail_.size() - kErrTail);
  }
  std::string detail;
  {
    std::lock_guard<std::mutex> lock(mu_);
    detail = "the environment program (" + config_.command[0] + ") " +
             (WIFSIGNALED(status) ? "was killed by signal " + std::to_string(WTERMSIG(status))
                                  : "exited with status " + std::to_string(WEXITSTATUS(status)));
    if (!err_tail_.empty())
      detail += "; its stderr ends: " + err_tail_.substr(err_tail_.size() > 300 ? err_tail_.size() - 300 : 0);
    exit_detail_ = detail;
    for (auto it = pending_.begin(); it != pending_.end();) {
      auto e = episodes_.find(it->first);
      if (e != episodes_.end() && e->second == generation) {
        fail_now(it->first, it->second.reset, "env_died", detail);
        it = pending_.erase(it);
      } else {
        ++it;
      }
    }
    if (in_fd_ >= 0) ::close(in_fd_), in_fd_ = -1;
    ::close(out_fd);
    ::close(err_fd);
    out_fd_ = err_fd_ = -1;
    running_ = false;  // the last time this thread takes mu_
  }
}

void CommandEnvironment::on_line(const std::string& line, int generation) {
  if (line.find_first_not_of(" \t\r") == std::string::npos) return;
  const auto j = nlohmann::json::parse(line, nullptr, false);
  int64_t episode = -1;
  if (j.is_object() && j.contains("id")) {
    const std::string id = j["id"].is_string() ? j["id"].get<std::string>() : j["id"].dump();
    char* end = nullptr;
    const long long v = std::strtoll(id.c_str(), &end, 10);
    if (!id.empty() && end && !*end) episode = v;
  }
  if (episode < 0) return replies_.count_bad_line();  // not a reply: logging on stdout, or a broken line
  EnvReply r;
  r.episode = episode;
  r.attempts = 1;
  read_env_answer(line, config_.observation_field, r);
  std::lock_guard<std::mutex> lock(mu_);
  auto it = pending_.find(episode);
  auto e = episodes_.find(episode);
  if (it == pending_.end() || e == episodes_.end() || e->second != generation) return;  // late: timed out or closed
  r.latency_s = std::chrono::duration<double>(Clock::now() - it->second.start).count();
  replies_.push(std::move(r), it->second.reset);
  pending_.erase(it);
}

void CommandEnvironment::fail_now(int64_t episode, bool reset, const std::string& cause, const std::string& detail) {
  EnvReply r;
  r.episode = episode;
  r.failure = cause;
  r.detail = detail;
  r.attempts = 1;
  replies_.push(std::move(r), reset);
}

CommandEnvironment::Pending CommandEnvironment::pending(bool reset) const {
  const auto now = Clock::now();
  return Pending{reset, now,
                 now + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(config_.timeout_s))};
}

void CommandEnvironment::reset(int64_t episode, const nlohmann::json& row, uint64_t seed) {
  replies_.opened(episode);
  std::unique_lock<std::mutex> lock(mu_);
  if (!running_) start_program();
  if (!running_) return fail_now(episode, true, "env_died", "cannot start the environment program: " + exit_detail_);
  episodes_[episode] = generation_;
  pending_[episode] = pending(true);
  send_line({{"id", std::to_string(episode)}, {"op", "reset"}, {"row", row}, {"seed", seed}});
}

void CommandEnvironment::step(int64_t episode, const std::string& action) {
  std::unique_lock<std::mutex> lock(mu_);
  auto e = episodes_.find(episode);
  std::string cause, detail;
  if (e == episodes_.end())
    cause = "env_error", detail = "episode " + std::to_string(episode) + " was not reset, or is closed";
  else if (e->second != generation_ || !running_)
    cause = "env_died", detail = exit_detail_.empty() ? "the environment program exited" : exit_detail_;
  else if (pending_.count(episode))
    cause = "env_error", detail = "episode " + std::to_string(episode) + " still waits for its last reply";
  if (!cause.empty()) return fail_now(episode, false, cause, detail);
  pending_[episode] = pending(false);
  send_line({{"id", std::to_string(episode)}, {"op", "step"}, {"action", action}});
}

void CommandEnvironment::close(int64_t episode) {
  replies_.closed(episode);
  std::lock_guard<std::mutex> lock(mu_);
  pending_.erase(episode);
  auto e = episodes_.find(episode);
  if (e == episodes_.end()) return;
  if (e->second == generation_ && running_) send_line({{"id", std::to_string(episode)}, {"op", "close"}});
  episodes_.erase(e);
}

void CommandEnvironment::expire_overdue() {
  std::lock_guard<std::mutex> lock(mu_);
  const auto now = Clock::now();
  for (auto it = pending_.begin(); it != pending_.end();)
    if (it->second.deadline <= now) {
      fail_now(it->first, it->second.reset, "env_timeout",
               "no reply within " + std::to_string(config_.timeout_s) + " s (env.timeout_s)");
      it = pending_.erase(it);
    } else {
      ++it;
    }
}

std::vector<EnvReply> CommandEnvironment::poll(double wait_s) {
  const auto end = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(wait_s));
  while (true) {
    expire_overdue();
    double wait = std::chrono::duration<double>(end - Clock::now()).count();
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (const auto& [episode, p] : pending_)
        wait = std::min(wait, std::chrono::duration<double>(p.deadline - Clock::now()).count());
    }
    auto replies = replies_.poll(std::max(wait, 0.0));
    if (!replies.empty() || Clock::now() >= end) return replies;
  }
}

int64_t CommandEnvironment::outstanding() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int64_t>(pending_.size()) + replies_.queued();
}

}  // namespace rlaif
