// `rlaif serve` under load, as a judge server is used: N chat requests sent by rlaif's own HTTP client (the judge's)
// with C of them in flight, for several C. Each request decodes exactly --max-tokens tokens (ignore_eos), so every
// row does the same work; a server that batches continuously gets faster with C until its batch is full, and never
// slower past it. Prints one row per C: wall seconds, requests/s, completion tokens/s, and the mean number of
// sequences per decode step (from /health).
// Usage: bench_serve [--model DIR] [--size small] [--requests 64] [--max-tokens 32] [--concurrency 1,4,8,16,32,64]
#include <httplib.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "../tests/serve_process.h"
#include "bench_args.h"
#include "rlaif/http_client.h"
#include "rlaif/init_model.h"

namespace {

using json = nlohmann::json;

std::vector<int> list(const std::string& s) {
  std::vector<int> out;
  std::stringstream ss(s);
  for (std::string x; std::getline(ss, x, ',');) out.push_back(std::stoi(x));
  return out;
}

std::string cpu_name() {
  std::ifstream f("/proc/cpuinfo");
  for (std::string line; std::getline(f, line);)
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown CPU";
}

}  // namespace

int main(int argc, char** argv) {
  std::string model, size = "small", extra;
  int requests = 64, max_tokens = 32;
  std::vector<int> concurrency = {1, 4, 8, 16, 32, 64};
  bench::Args args(
      "usage: bench_serve [--model DIR] [--size small] [--requests 64] [--max-tokens 32] "
      "[--concurrency 1,4,8,16,32,64] [--serve-args '--max-batch 32']\n"
      "rlaif serve's throughput with C requests in flight (rlaif's judge HTTP client); without --model, a fresh "
      "init-model of --size is served.\n");
  args.value("--model", model);
  args.value("--size", size);
  args.value("--requests", requests);
  args.value("--max-tokens", max_tokens);
  args.value("--concurrency", [&](const std::string& v) { concurrency = list(v); });
  args.value("--serve-args", extra);
  args.parse(argc, argv);

  char tmpl[] = "/tmp/bench_serve.XXXXXX";
  const std::string tmp = mkdtemp(tmpl);
  if (model.empty()) {
    rlaif::InitModelOptions o;
    o.size = size;
    o.seed = 1;
    model = tmp + "/model";
    rlaif::init_model(o, model);
  }
  rlaif_test::ServeProcess server(model, extra);
  const std::string base = "http://127.0.0.1:" + std::to_string(server.port());
  std::vector<rlaif::HttpRequest> batch;
  for (int i = 0; i < requests; ++i) {
    const std::string review = "Review " + std::to_string(i) + ": the watch keeps time well and the strap is soft.";
    json body = {{"model", "m"},
                 {"messages",
                  {{{"role", "system"}, {"content", "You are a strict judge. Score relevance, coherence and safety."}},
                   {{"role", "user"}, {"content", "Prompt: write a review of a watch.\n" + review}}}},
                 {"max_tokens", max_tokens},
                 {"seed", i},
                 {"ignore_eos", true}};
    rlaif::HttpRequest q;
    q.url = base + "/v1/chat/completions";
    q.body = body.dump();
    batch.push_back(q);
  }
  std::printf("rlaif serve, %d chat requests x %d tokens, %s, on %s\n", requests, max_tokens, model.c_str(),
              cpu_name().c_str());
  std::printf("%12s %10s %12s %14s %16s %8s\n", "concurrency", "seconds", "requests/s", "tokens/s", "seqs/step (mean)",
              "failed");
  for (int c : concurrency) {
    rlaif::HttpClientOptions o;
    o.max_in_flight = c;
    o.timeout_s = 600;
    rlaif::HttpClient client(o);
    // The /health counters before and after: decode tokens per decode step is the mean batch.
    auto health = [&] {
      httplib::Client h("127.0.0.1", server.port());
      auto r = h.Get("/health");
      return r ? json::parse(r->body, nullptr, false) : json();
    };
    const json before = health();
    int failed = 0;
    const auto t0 = std::chrono::steady_clock::now();
    client.run(batch, [&](size_t, rlaif::HttpResponse&& r) { failed += !r.failure.empty(); });
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const json after = health();
    const double tokens = after["decode_tokens"].get<double>() - before["decode_tokens"].get<double>();
    const double steps = after["decode_steps"].get<double>() - before["decode_steps"].get<double>();
    std::printf("%12d %10.3f %12.1f %14.0f %16.1f %8d\n", c, s, requests / s, 1.0 * requests * max_tokens / s,
                steps > 0 ? tokens / steps : 0.0, failed);
    std::fflush(stdout);
  }
  server.stop();
  std::system(("rm -rf " + tmp).c_str());
  return 0;
}
