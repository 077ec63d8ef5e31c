// `rlaif serve` under load. C client threads each send R completions (short prompts, --max-tokens tokens each,
// ignore_eos so every request does the same work) one after another over a kept-alive connection, while a probe
// sends a 1-token request every 100 ms: its latency is the time to first token of a request that arrives under that
// load (waiting, prefill and one decode step). Beside it, in the same process and run, `Generator::generate` on the
// same requests at batch 32 gives the summed decode rate the server is compared with.
// Prints one row per C: requests, seconds, completion tokens/s, that rate over generate's, probe p50 / p99, and the
// mean sequences per decode step (from /health).
// Usage: bench_serve [--model DIR] [--size smollm2-135m] [--clients 1,8,32,64] [--requests 2] [--max-tokens 128]
#include <httplib.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "../tests/serve_process.h"
#include "bench_args.h"
#include "rlaif/generator.h"
#include "rlaif/init_model.h"
#include "rlaif/model_folder.h"
#include "rlaif/model_source.h"
#include "rlaif/runtime.h"

namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::vector<int> list(const std::string& s) {
  std::vector<int> out;
  std::stringstream ss(s);
  for (std::string x; std::getline(ss, x, ',');) out.push_back(std::stoi(x));
  return out;
}

std::string prompt(int i) { return "Request " + std::to_string(i) + ":"; }

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * (v.size() - 1) + 0.5))];
}

// Summed completion tokens/s of Generator::generate on 32 such requests at batch 32, in this process.
double generate_rate(const std::string& model_dir, int max_tokens) {
  const auto source = rlaif::resolve_model_source(model_dir, "");
  auto model = rlaif::load_merged_model(source);
  rlaif::set_inference_precision(model, "auto");
  auto tokenizer = rlaif::Tokenizer::load(source.model_dir);
  rlaif::GeneratorOptions go;
  go.max_batch = 32;
  rlaif::Generator gen(model, tokenizer, rlaif::load_eos_token_ids(source.model_dir, model->config()), go);
  std::vector<rlaif::GenerationRequest> requests(32);
  for (int i = 0; i < 32; ++i) {
    requests[i].prompt_ids = tokenizer.encode(prompt(i), true);
    requests[i].seed = static_cast<uint64_t>(i);
    requests[i].params.max_new_tokens = max_tokens;
    requests[i].params.ignore_eos = true;
  }
  gen.generate({requests[0]});  // warm: packs the weights
  double best = 0;
  for (int run = 0; run < 3; ++run) {  // the best of three: the machine is shared
    const auto t0 = Clock::now();
    gen.generate(requests);
    best = std::max(best, 32.0 * max_tokens / since(t0));
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  rlaif::ensure_runtime_env(argc, argv);  // as the CLI: OpenMP threads sleep when idle (see src/core/runtime.cpp)
  std::string model, size = "smollm2-135m", extra = "--max-batch 64";
  int requests = 2, max_tokens = 128;
  std::vector<int> clients = {1, 8, 32, 64};
  bench::Args args(
      "usage: bench_serve [--model DIR] [--size smollm2-135m] [--clients 1,8,32,64] [--requests 2] "
      "[--max-tokens 128] [--serve-args '--max-batch 64']\n"
      "rlaif serve's throughput and time to first token with C concurrent clients, beside generate() at batch 32; "
      "without --model, a fresh init-model of --size is served. The server's default --max-batch 64 leaves room for "
      "the probe beside 32 clients.\n");
  args.value("--model", model);
  args.value("--size", size);
  args.value("--clients", [&](const std::string& v) { clients = list(v); });
  args.value("--requests", requests);
  args.value("--max-tokens", max_tokens);
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
  rlaif::set_num_threads(0);
  const double gen_before = generate_rate(model, max_tokens);
  rlaif_test::ServeProcess server(model, extra);
  const int port = server.port();
  auto health = [&] {
    httplib::Client h("127.0.0.1", port);
    auto r = h.Get("/health");
    return r ? json::parse(r->body, nullptr, false) : json();
  };
  {
    httplib::Client warm("127.0.0.1", port);  // the server's first request allocates what later ones reuse
    warm.set_read_timeout(300, 0);
    warm.Post("/v1/completions", json({{"prompt", prompt(0)}, {"max_tokens", 8}}).dump(), "application/json");
  }
  std::printf("rlaif serve %s, %s, completions of %d tokens, on %s\n", extra.c_str(), model.c_str(), max_tokens,
              bench::cpu_name().c_str());
  std::printf("generate() at batch 32 in this process: %.1f tok/s (best of 3) before the server runs\n", gen_before);
  std::printf("%8s %9s %9s %10s %12s %10s %10s %10s\n", "clients", "requests", "seconds", "tok/s", "/ generate",
              "TTFT p50", "TTFT p99", "seqs/step");
  std::fflush(stdout);
  for (int c : clients) {
    const json before = health();
    std::atomic<int> failed{0};
    std::atomic<bool> done{false};
    std::vector<double> probes;
    std::thread probe([&] {
      httplib::Client h("127.0.0.1", port);
      h.set_read_timeout(300, 0);
      int k = 0;
      while (!done) {
        const auto t0 = Clock::now();
        auto r =
            h.Post("/v1/completions", json({{"prompt", prompt(100000 + k++)}, {"max_tokens", 1}, {"seed", k}}).dump(),
                   "application/json");
        if (r && r->status == 200 && !done) probes.push_back(since(t0));
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    });
    const auto t0 = Clock::now();
    std::vector<std::thread> threads;
    for (int t = 0; t < c; ++t)
      threads.emplace_back([&, t] {
        httplib::Client h("127.0.0.1", port);
        h.set_read_timeout(600, 0);
        for (int i = 0; i < requests; ++i) {
          json body = {{"prompt", prompt(t * requests + i)},
                       {"max_tokens", max_tokens},
                       {"seed", t * requests + i},
                       {"ignore_eos", true}};
          auto r = h.Post("/v1/completions", body.dump(), "application/json");
          if (!r || r->status != 200) failed += 1;
        }
      });
    for (auto& t : threads) t.join();
    const double s = since(t0);
    done = true;
    probe.join();
    const json after = health();
    const double tokens = after["decode_tokens"].get<double>() - before["decode_tokens"].get<double>();
    const double steps = after["decode_steps"].get<double>() - before["decode_steps"].get<double>();
    const double rate = 1.0 * c * requests * max_tokens / s;
    std::printf("%8d %9d %9.2f %10.1f %12.2f %9.3fs %9.3fs %10.1f%s\n", c, c * requests, s, rate, rate / gen_before,
                percentile(probes, 0.5), percentile(probes, 0.99), steps > 0 ? tokens / steps : 0.0,
                failed ? "  (failed requests!)" : "");
    std::fflush(stdout);
  }
  server.stop();
  std::printf("generate() at batch 32 after the server stopped: %.1f tok/s (best of 3)\n",
              generate_rate(model, max_tokens));
  std::system(("rm -rf " + tmp).c_str());
  return 0;
}
