// Multi-turn episodes against an environment that answers after a fixed latency, beside single-turn generation of
// the same policy tokens at the same batch size: how much of the environment's latency the continuous batch hides,
// and what re-prefilling each turn's sequence costs (the KV cache is not yet kept between turns).
// Usage: bench_episodes [--size smollm2-135m] [--episodes 32] [--turns 4] [--turn-tokens 32] [--latency-ms 50]
#include <chrono>
#include <cstdio>
#include <fstream>

#include "bench_args.h"
#include "rlaif/episodes.h"
#include "rlaif/init_model.h"
#include "rlaif/model_folder.h"
#include "rlaif/model_source.h"
#include "rlaif/runtime.h"

namespace {

using Clock = std::chrono::steady_clock;

// A command environment that answers every request after `latency` seconds, each on its own timer (so that the
// latency overlaps between episodes, as a real environment's would), and never ends an episode itself.
const char* kSlowEnv = R"PY(
import json, sys, threading
latency = float(sys.argv[1])
lock = threading.Lock()
def answer(i, turn):
    with lock:
        print(json.dumps({"id": i, "observation": "Observation %d." % turn, "reward": 0, "done": False}), flush=True)
turns = {}
for line in sys.stdin:
    m = json.loads(line)
    if m["op"] == "close":
        continue
    i = m["id"]
    turns[i] = turns.get(i, -1) + 1
    threading.Timer(latency, answer, (i, turns[i])).start()
)PY";

double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

}  // namespace

int main(int argc, char** argv) {
  rlaif::ensure_runtime_env(argc, argv);
  std::string size = "smollm2-135m";
  int64_t episodes = 32, turns = 4, turn_tokens = 32;
  double latency_ms = 50;
  bench::Args args(
      "usage: bench_episodes [--size smollm2-135m] [--episodes 32] [--turns 4] [--turn-tokens 32] "
      "[--latency-ms 50]\n"
      "E episodes of T turns of N tokens against a command environment answering after --latency-ms, at batch E, "
      "beside generate() of E sequences of T x N tokens at batch E.\n");
  args.value("--size", size);
  args.value("--episodes", episodes);
  args.value("--turns", turns);
  args.value("--turn-tokens", turn_tokens);
  args.value("--latency-ms", latency_ms);
  args.parse(argc, argv);

  char tmpl[] = "/tmp/bench_episodes.XXXXXX";
  const std::string tmp = mkdtemp(tmpl);
  rlaif::InitModelOptions o;
  o.size = size;
  o.seed = 1;
  rlaif::init_model(o, tmp + "/model");
  std::ofstream(tmp + "/env.py") << kSlowEnv;
  rlaif::set_num_threads(0);
  const auto source = rlaif::resolve_model_source(tmp + "/model", "");
  auto model = rlaif::load_merged_model(source);
  const std::string precision = rlaif::set_inference_precision(model, "auto");
  auto tokenizer = rlaif::Tokenizer::load(source.model_dir);
  rlaif::GeneratorOptions go;
  go.max_batch = episodes;
  rlaif::Generator gen(model, tokenizer, rlaif::load_eos_token_ids(source.model_dir, model->config()), go);
  const auto chat = rlaif::ChatTemplate::for_tokenizer(tokenizer);

  // Single turn: E sequences of T x N tokens from the first turn's prompt.
  const std::string first =
      chat.render_for(tokenizer, {{{"role", "user"}, {"content", "Task 0.\n\nObservation 0."}}}, true);
  std::vector<rlaif::GenerationRequest> single(static_cast<size_t>(episodes));
  for (int64_t i = 0; i < episodes; ++i) {
    single[i].prompt_ids = tokenizer.encode(first, false);
    single[i].seed = static_cast<uint64_t>(i);
    single[i].params.max_new_tokens = turns * turn_tokens;
    single[i].params.ignore_eos = true;
  }
  gen.generate({single[0]});  // warm: packs the weights
  const auto before = gen.stats();
  auto t0 = Clock::now();
  gen.generate(single);
  const double single_s = since(t0);
  const int64_t single_prefill = gen.stats().prefill_tokens - before.prefill_tokens;

  // Episodes: the same policy tokens in T turns, the environment answering after the latency.
  rlaif::EnvConfig ec;
  ec.type = "command";
  ec.command = {"/usr/bin/python3", tmp + "/env.py", std::to_string(latency_ms / 1000)};
  auto env = rlaif::make_environment(ec);
  std::vector<rlaif::EpisodeRequest> requests(static_cast<size_t>(episodes));
  for (int64_t i = 0; i < episodes; ++i) {
    requests[i].messages = nlohmann::ordered_json::array({{{"role", "user"}, {"content", "Task 0."}}});
    requests[i].seed = static_cast<uint64_t>(i);
  }
  rlaif::EpisodeOptions options;
  options.params.ignore_eos = true;
  options.max_turns = static_cast<int>(turns);
  options.max_turn_tokens = static_cast<int>(turn_tokens);
  options.max_episode_tokens = static_cast<int>(turns * turn_tokens);
  rlaif::EpisodeStats stats;
  const auto mid = gen.stats();
  t0 = Clock::now();
  rlaif::run_episodes(gen, chat, *env, requests, options, &stats);
  const double episodes_s = since(t0);
  const int64_t episode_prefill = gen.stats().prefill_tokens - mid.prefill_tokens;

  std::printf("%s model (%s), %lld episodes x %lld turns x %lld tokens, environment latency %.0f ms, on %s\n",
              size.c_str(), precision.c_str(), (long long)episodes, (long long)turns, (long long)turn_tokens,
              latency_ms, bench::cpu_name().c_str());
  std::printf("%-34s %10s %14s %16s\n", "", "seconds", "policy tok/s", "prefill tokens");
  const double total = static_cast<double>(episodes * turns * turn_tokens);
  std::printf("%-34s %10.2f %14.1f %16lld\n", "single turn (generate)", single_s, total / single_s,
              (long long)single_prefill);
  std::printf("%-34s %10.2f %14.1f %16lld\n", "episodes (run_episodes)", episodes_s, stats.policy_tokens / episodes_s,
              (long long)episode_prefill);
  std::printf(
      "episodes / single turn: %.2fx; %lld failed; %.2f s with nothing to decode, waiting for the environment\n",
      (stats.policy_tokens / episodes_s) / (total / single_s), (long long)stats.failed, stats.env_wait_s);
  return stats.failed == 0 && stats.policy_tokens == episodes * turns * turn_tokens ? 0 : 1;
}
