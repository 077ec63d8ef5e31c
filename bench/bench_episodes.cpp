// Multi-turn episodes against an environment that answers after a fixed latency, beside single-turn generation of
// the same policy tokens at the same batch size: how much of the environment's latency the continuous batch hides,
// and the prefill that keeping each episode's KV cache between turns saves (beside re-prefilling every turn's whole
// conversation).
// Usage: bench_episodes [--size smollm2-135m] [--episodes 32] [--turns 4] [--turn-tokens 32] [--latency-ms 50]
//                       [--tokenizer DIR]
#include <chrono>
#include <cstdio>
#include <filesystem>
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
// latency overlaps between episodes, as a real environment's would), and never ends an episode itself. Its
// observations count the episode's turns, so every run sees the same texts.
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
    turns[i] = 0 if m["op"] == "reset" else turns[i] + 1
    threading.Timer(latency, answer, (i, turns[i])).start()
)PY";

double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

}  // namespace

int main(int argc, char** argv) {
  rlaif::ensure_runtime_env(argc, argv);
  std::string size = "smollm2-135m", tokenizer_dir;
  int64_t episodes = 32, turns = 4, turn_tokens = 32;
  double latency_ms = 50;
  bench::Args args(
      "usage: bench_episodes [--size smollm2-135m] [--episodes 32] [--turns 4] [--turn-tokens 32] "
      "[--latency-ms 50] [--tokenizer DIR]\n"
      "E episodes of T turns of N tokens against a command environment answering after --latency-ms, at batch E, "
      "beside generate() of E sequences of T x N tokens at batch E. --tokenizer: a tokenizer folder for the model "
      "(default byte-level, where every byte of an observation is a token).\n");
  args.value("--size", size);
  args.value("--episodes", episodes);
  args.value("--turns", turns);
  args.value("--turn-tokens", turn_tokens);
  args.value("--latency-ms", latency_ms);
  args.value("--tokenizer", tokenizer_dir);
  args.parse(argc, argv);

  char tmpl[] = "/tmp/bench_episodes.XXXXXX";
  const std::string tmp = mkdtemp(tmpl);
  rlaif::InitModelOptions o;
  o.size = size;
  o.seed = 1;
  o.tokenizer = tokenizer_dir;
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
  // The machine is shared: each of single turn and kept runs twice, alternating, and the faster run counts.
  double single_s = 1e300, single_prefill_s = 0, single_decode_s = 0;
  int64_t single_prefill = 0;
  auto run_single = [&] {
    const auto was = gen.stats();
    const auto t = Clock::now();
    gen.generate(single);
    const double s = since(t);
    if (s > single_s) return;
    single_s = s;
    single_prefill = gen.stats().prefill_tokens - was.prefill_tokens;
    single_prefill_s = gen.stats().prefill_seconds - was.prefill_seconds;
    single_decode_s = gen.stats().decode_seconds - was.decode_seconds;
  };

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
  struct Run {
    double seconds = 0;
    rlaif::EpisodeStats stats;
    rlaif::GenerationStats gen;  // this run's share of the generator's counters
  };
  auto play = [&](bool keep_cache) {
    options.keep_cache = keep_cache;
    Run r;
    const auto was = gen.stats();
    const auto t = Clock::now();
    rlaif::run_episodes(gen, chat, *env, requests, options, &r.stats);
    r.seconds = since(t);
    const auto& now = gen.stats();
    r.gen.prefill_seconds = now.prefill_seconds - was.prefill_seconds;
    r.gen.decode_seconds = now.decode_seconds - was.decode_seconds;
    r.gen.sample_seconds = now.sample_seconds - was.sample_seconds;
    r.gen.decode_steps = now.decode_steps - was.decode_steps;
    r.gen.mixed_steps = now.mixed_steps - was.mixed_steps;
    r.gen.prefills = now.prefills - was.prefills;
    return r;
  };
  Run whole = play(false);
  Run kept;
  kept.seconds = 1e300;
  for (int i = 0; i < 2; ++i) {
    run_single();
    const Run r = play(true);
    if (r.seconds < kept.seconds) kept = r;
  }

  std::printf("%s model (%s), %lld episodes x %lld turns x %lld tokens, environment latency %.0f ms, on %s\n",
              size.c_str(), precision.c_str(), (long long)episodes, (long long)turns, (long long)turn_tokens,
              latency_ms, bench::cpu_name().c_str());
  std::printf("%-40s %10s %14s %16s %16s\n", "", "seconds", "policy tok/s", "prefill tokens", "reused tokens");
  const double total = static_cast<double>(episodes * turns * turn_tokens);
  std::printf("%-40s %10.2f %14.1f %16lld %16s\n", "single turn (generate)", single_s, total / single_s,
              (long long)single_prefill, "-");
  auto row = [&](const char* name, const Run& r) {
    std::printf("%-40s %10.2f %14.1f %16lld %16lld\n", name, r.seconds, r.stats.policy_tokens / r.seconds,
                (long long)r.stats.prefill_tokens, (long long)r.stats.reused_tokens);
  };
  row("episodes, each turn prefilled whole", whole);
  row("episodes, KV cache kept between turns", kept);
  for (const auto* r : {&whole, &kept})
    std::printf("%s: %.2fx single turn; %lld failed; %.2f s with nothing to decode, waiting for the environment\n",
                r == &kept ? "kept" : "whole", (r->stats.policy_tokens / r->seconds) / (total / single_s),
                (long long)r->stats.failed, r->stats.env_wait_s);
  std::printf("single: prefill %.2f s, decode %.2f s\n", single_prefill_s, single_decode_s);
  for (const auto* r : {&whole, &kept})
    std::printf(
        "%s: prefill %.2f s, decode %.2f s, sampling %.2f s, other %.2f s; %lld prefills, %lld decode steps "
        "(%lld mixed)\n",
        r == &kept ? "kept" : "whole", r->gen.prefill_seconds, r->gen.decode_seconds, r->gen.sample_seconds,
        r->seconds - r->gen.prefill_seconds - r->gen.decode_seconds - r->gen.sample_seconds, (long long)r->gen.prefills,
        (long long)r->gen.decode_steps, (long long)r->gen.mixed_steps);
  env.reset();
  std::filesystem::remove_all(tmp);
  const int64_t want = episodes * turns * turn_tokens;
  return whole.stats.failed == 0 && kept.stats.failed == 0 && whole.stats.policy_tokens == want &&
                 kept.stats.policy_tokens == want
             ? 0
             : 1;
}
