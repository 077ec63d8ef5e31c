#include "core/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>

namespace rlaif {

ProcessResult run_process(const std::vector<std::string>& argv, const std::string& input, double timeout_s) {
  using Clock = std::chrono::steady_clock;
  ProcessResult res;
  // The child of a multithreaded process may only call async-signal-safe functions before exec: no allocation (another
  // thread may have held the allocator's lock at fork, and the child would wait for it forever). So argv is built here.
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const std::string cannot_run = "cannot run " + argv.at(0) + ": ";
  int in_pipe[2], out_pipe[2], err_pipe[2];
  if (pipe2(in_pipe, O_CLOEXEC) || pipe2(out_pipe, O_CLOEXEC) || pipe2(err_pipe, O_CLOEXEC)) {
    res.failure = std::string("pipe() failed: ") + std::strerror(errno);
    return res;
  }
  const auto t0 = Clock::now();
  pid_t pid = fork();
  if (pid == 0) {
    dup2(in_pipe[0], 0);
    dup2(out_pipe[1], 1);
    dup2(err_pipe[1], 2);
    execvp(args[0], args.data());
    const char* why = std::strerror(errno);  // (glibc: a static text for known errors)
    if (write(2, cannot_run.data(), cannot_run.size()) < 0 || write(2, why, std::strlen(why)) < 0 ||
        write(2, "\n", 1) < 0)
      _exit(127);
    _exit(127);
  }
  close(in_pipe[0]);
  close(out_pipe[1]);
  close(err_pipe[1]);
  for (int fd : {in_pipe[1], out_pipe[0], err_pipe[0]}) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  signal(SIGPIPE, SIG_IGN);
  size_t written = 0;
  bool in_open = true, out_open = true, err_open = true;
  if (input.empty()) close(in_pipe[1]), in_open = false;
  while (out_open || err_open) {
    const double left = timeout_s - std::chrono::duration<double>(Clock::now() - t0).count();
    if (left <= 0) {
      res.timed_out = true;
      break;
    }
    pollfd fds[3] = {{in_open ? in_pipe[1] : -1, POLLOUT, 0},
                     {out_open ? out_pipe[0] : -1, POLLIN, 0},
                     {err_open ? err_pipe[0] : -1, POLLIN, 0}};
    poll(fds, 3, static_cast<int>(std::min(left, 1.0) * 1000) + 1);
    if (in_open && (fds[0].revents & (POLLOUT | POLLERR | POLLHUP))) {
      ssize_t n = write(in_pipe[1], input.data() + written, input.size() - written);
      if (n > 0) written += static_cast<size_t>(n);
      if (n < 0 || written == input.size()) close(in_pipe[1]), in_open = false;
    }
    char buf[65536];
    for (int k : {1, 2}) {
      if (!(fds[k].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      int fd = k == 1 ? out_pipe[0] : err_pipe[0];
      ssize_t n = read(fd, buf, sizeof(buf));
      if (n > 0)
        (k == 1 ? res.out : res.err).append(buf, static_cast<size_t>(n));
      else if (n == 0)
        close(fd), (k == 1 ? out_open : err_open) = false;
    }
  }
  if (in_open) close(in_pipe[1]);
  if (out_open) close(out_pipe[0]);
  if (err_open) close(err_pipe[0]);
  if (res.timed_out) kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  res.exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  res.latency_s = std::chrono::duration<double>(Clock::now() - t0).count();
  return res;
}

}  // namespace rlaif
