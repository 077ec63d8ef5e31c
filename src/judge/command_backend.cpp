#include "judge/command_backend.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <nlohmann/json.hpp>

namespace rlaif {
namespace {

void fail_all(std::vector<JudgeResult>& results, const std::string& cause, const std::string& detail) {
  for (auto& r : results) {
    r.ok = false;
    r.failure = cause;
    r.detail = detail;
  }
}

}  // namespace

void read_command_output(const std::string& out, std::vector<JudgeResult>& results) {
  nlohmann::json j;
  try {  // a number past a double's range throws out_of_range even without exceptions for syntax errors
    j = nlohmann::json::parse(out, nullptr, false);
    if (j.is_object() && j.contains("body")) j = j["body"];  // a Lambda-style {"statusCode", "body"} wrapper
    if (j.is_string()) j = nlohmann::json::parse(j.get<std::string>(), nullptr, false);
  } catch (const nlohmann::json::exception& e) {
    return fail_all(results, "bad_response", std::string("the command's stdout is not valid JSON: ") + e.what());
  }
  if (!j.is_array())
    return fail_all(results, "bad_response", "the command's stdout is not a JSON list: " + out.substr(0, 200));
  for (auto& r : results) r.failure = "missing_score", r.detail = "the command returned no result for this id";
  std::vector<bool> seen(results.size(), false);
  for (const auto& row : j) {
    if (!row.is_object() || !row.contains("id")) continue;
    std::string id = row["id"].is_string() ? row["id"].get<std::string>() : row["id"].dump();
    char* end = nullptr;
    unsigned long i = std::strtoul(id.c_str(), &end, 10);
    if (id.empty() || !end || *end || i >= results.size()) continue;
    JudgeResult& r = results[i];
    r.reply = row.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    if (seen[i]) {  // two answers for one sample: neither can be trusted
      r.ok = false;
      r.verdict = Verdict();
      r.failure = "bad_response";
      r.detail = "the command returned id " + id + " more than once";
      continue;
    }
    seen[i] = true;
    if (!row.contains("aggregate_reward_score") || !row["aggregate_reward_score"].is_number()) {
      r.failure = "non_numeric_score";
      r.detail = "aggregate_reward_score is missing or not a number";
      continue;
    }
    r.ok = true;
    r.failure.clear();
    r.detail.clear();
    r.verdict.ok = true;
    r.verdict.reward = row["aggregate_reward_score"].get<double>();
    if (row.contains("metrics_list") && row["metrics_list"].is_array())
      for (const auto& m : row["metrics_list"])
        if (m.is_object() && m.contains("name") && m["name"].is_string() && m.contains("value") &&
            m["value"].is_number())
          r.verdict.scores[m["name"].get<std::string>()] = m["value"].get<double>();
  }
}

void run_command_batch(const std::vector<std::string>& argv, double timeout_s, const std::vector<JudgeSample>& samples,
                       std::vector<JudgeResult>& results) {
  using Clock = std::chrono::steady_clock;
  results.assign(samples.size(), JudgeResult());
  nlohmann::json batch = nlohmann::json::array();
  for (size_t i = 0; i < samples.size(); ++i) {
    nlohmann::json row = {{"id", std::to_string(i)},
                          {"messages",
                           {{{"role", "user"}, {"content", samples[i].prompt}},
                            {{"role", "assistant"}, {"content", samples[i].completion}}}},
                          {"metadata", nlohmann::json::object()}};
    if (!samples[i].reference.empty()) row["reference_answer"] = samples[i].reference;
    if (const auto& own = samples[i].rubric) {  // the data row's own items: the command answers per item name
      nlohmann::json items = rubric_items(*own, {});
      for (size_t k = 0; k < items.size(); ++k)
        items[k]["min"] = own->criteria[k].min, items[k]["max"] = own->criteria[k].max;
      row["rubric"] = {{"kind", rubric_kind(own.get())}, {"items", items}};
    }
    batch.push_back(row);
  }
  std::string input = batch.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);

  // The child of a multithreaded process may only call async-signal-safe functions before exec: no allocation (another
  // thread may have held the allocator's lock at fork, and the child would wait for it forever). So argv is built here.
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const std::string cannot_run = "cannot run " + argv[0] + ": ";
  int in_pipe[2], out_pipe[2], err_pipe[2];
  if (pipe(in_pipe) || pipe(out_pipe) || pipe(err_pipe)) return fail_all(results, "command_failed", "pipe() failed");
  auto t0 = Clock::now();
  pid_t pid = fork();
  if (pid == 0) {
    dup2(in_pipe[0], 0);
    dup2(out_pipe[1], 1);
    dup2(err_pipe[1], 2);
    for (int fd : {in_pipe[0], in_pipe[1], out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1]}) close(fd);
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
  std::string out, err;
  size_t written = 0;
  bool in_open = true, out_open = true, err_open = true, timed_out = false;
  while (out_open || err_open) {
    double left = timeout_s - std::chrono::duration<double>(Clock::now() - t0).count();
    if (left <= 0) {
      timed_out = true;
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
        (k == 1 ? out : err).append(buf, static_cast<size_t>(n));
      else if (n == 0)
        close(fd), (k == 1 ? out_open : err_open) = false;
    }
  }
  if (in_open) close(in_pipe[1]);
  if (out_open) close(out_pipe[0]);
  if (err_open) close(err_pipe[0]);
  if (timed_out) kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  double latency = std::chrono::duration<double>(Clock::now() - t0).count();
  for (auto& r : results) r.latency_s = latency, r.attempts = 1;
  if (timed_out)
    return fail_all(results, "command_timeout", "the command ran past " + std::to_string(timeout_s) + " s");
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return fail_all(results, "command_failed",
                    "the command exited with status " + std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : -1) +
                        ": " + err.substr(err.size() > 300 ? err.size() - 300 : 0));
  read_command_output(out, results);
}

void CommandBackend::score(const std::vector<JudgeSample>& samples, const Done& done, const std::function<bool()>&) {
  const size_t per_batch = static_cast<size_t>(config_.command_batch);
  for (size_t start = 0; start < samples.size(); start += per_batch) {
    const size_t end = std::min(samples.size(), start + per_batch);
    std::vector<JudgeSample> batch(samples.begin() + start, samples.begin() + end);
    std::vector<JudgeResult> out;
    run_command_batch(config_.command, config_.command_timeout_s, batch, out);
    for (size_t k = start; k < end; ++k) done(k, std::move(out[k - start]), nlohmann::json());
  }
}

}  // namespace rlaif
