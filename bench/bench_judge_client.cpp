// Judge-client throughput: requests/s and CPU time per request of rlaif's HTTP client against a loopback
// OpenAI-style server (tests/fault_server.h, in a child process) that answers after a fixed added latency.
// Prints one table row per (latency, concurrency), with the server's own CPU per request so that a server
// bottleneck would show. Usage: bench_judge_client [--latencies 0,200] [--concurrency 1,16,64,256] [--seconds 3]
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include "bench_args.h"

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "../tests/fault_server.h"
#include "rlaif/http_client.h"

namespace {

double cpu_self() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_utime.tv_usec / 1e6 + u.ru_stime.tv_sec + u.ru_stime.tv_usec / 1e6;
}

double cpu_of(pid_t pid) {  // utime + stime of another process, from /proc
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::istringstream in(s.substr(s.rfind(')') + 2));
  std::string field;
  double ut = 0, st = 0;
  for (int i = 3; i <= 15 && in >> field; ++i) {
    if (i == 14) ut = std::stod(field);
    if (i == 15) st = std::stod(field);
  }
  return (ut + st) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

std::vector<int> list(const std::string& s) {
  std::vector<int> out;
  std::stringstream ss(s);
  for (std::string x; std::getline(ss, x, ',');) out.push_back(std::stoi(x));
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int> latencies = {0, 200}, concurrency = {1, 16, 64, 256};
  double target_seconds = 3;
  bench::Args args(
      "usage: bench_judge_client [--latencies 0,200] [--concurrency 1,16,64,256] [--seconds 3]\n"
      "Judge requests/s and client CPU per request against a loopback server with a fixed added latency (ms).\n");
  args.value("--latencies", [&](const std::string& v) { latencies = list(v); });
  args.value("--concurrency", [&](const std::string& v) { concurrency = list(v); });
  args.value("--seconds", target_seconds);
  args.parse(argc, argv);
  // A judge-sized request: ~1.5 KB of chat messages.
  std::string content(1400, 'x');
  std::string body = nlohmann::json{
      {"model", "bench"},
      {"messages", {{{"role", "user"}, {"content", content}}}},
      {"temperature", 0},
      {"max_tokens", 64}}.dump();
  std::printf("%-10s %-11s %-9s %-12s %-18s %-18s\n", "latency_ms", "concurrency", "requests", "requests/s",
              "client CPU ms/req", "server CPU ms/req");
  for (int lat : latencies) {
    int fd[2];
    if (pipe(fd) != 0) return 1;
    pid_t pid = fork();
    if (pid == 0) {  // the server, alone in its process
      close(fd[0]);
      rlaif_test::FaultServer server(lat, 320);
      std::string url = server.url();
      if (write(fd[1], url.c_str(), url.size()) < 0) _exit(1);
      close(fd[1]);
      pause();
      _exit(0);
    }
    close(fd[1]);
    char buf[256] = {0};
    ssize_t n = read(fd[0], buf, sizeof(buf) - 1);
    close(fd[0]);
    if (n <= 0) return 1;
    std::string url(buf, static_cast<size_t>(n));
    for (int c : concurrency) {
      double per_second = lat > 0 ? c * 1000.0 / lat : 2000;
      int count = std::max(c * 2, static_cast<int>(per_second * target_seconds));
      std::vector<rlaif::HttpRequest> reqs(static_cast<size_t>(count), rlaif::HttpRequest{url, body, {}, 0});
      rlaif::HttpClientOptions o;
      o.max_in_flight = c;
      o.timeout_s = 30;
      rlaif::HttpClient client(o);
      // Warm up: open the connections once.
      std::vector<rlaif::HttpRequest> warm(static_cast<size_t>(c), reqs[0]);
      client.run(warm, [](size_t, rlaif::HttpResponse&&) {});
      double cpu0 = cpu_self(), srv0 = cpu_of(pid);
      auto t0 = std::chrono::steady_clock::now();
      int ok = 0;
      client.run(reqs, [&](size_t, rlaif::HttpResponse&& r) { ok += r.failure.empty(); });
      double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      double cpu = cpu_self() - cpu0, srv = cpu_of(pid) - srv0;
      std::printf("%-10d %-11d %-9d %-12.1f %-18.3f %-18.3f%s\n", lat, c, count, count / wall, 1000 * cpu / count,
                  1000 * srv / count, ok == count ? "" : "  (some requests failed)");
      std::fflush(stdout);
    }
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
  }
  return 0;
}
