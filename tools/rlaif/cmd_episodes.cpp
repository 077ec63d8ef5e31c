// `rlaif episodes`: the policy plays episodes against an environment ([env] in a TOML file) and the trajectories are
// written as JSONL, without training: to try an environment, or to see what a model does in it.
#include <cstdio>

#include "commands.h"
#include "rlaif/atomic_file.h"
#include "rlaif/episodes.h"
#include "rlaif/error.h"
#include "rlaif/jsonl.h"
#include "rlaif/model_folder.h"
#include "rlaif/model_source.h"
#include "rlaif/progress.h"
#include "rlaif/runtime.h"
#include "rlaif/sampler.h"

namespace rlaif_cli {
namespace {

struct EpisodesArgs {
  std::string model, adapter, prompts, env, out, dtype = "auto";
  int64_t num_episodes = 1, batch_size = 32;
  float temperature = 1.0f, top_p = 1.0f;
  uint64_t seed = 0;
  int threads = 0;
  bool quiet = false;
};

int run_episodes_command(const EpisodesArgs& a) {
  if (a.num_episodes < 1) throw rlaif::Error("must be >= 1", "--num-episodes");
  const auto env_config = rlaif::EnvConfig::from_toml(a.env);
  rlaif::EpisodeOptions options;
  options.params.sampling.temperature = a.temperature;
  options.params.sampling.top_p = a.top_p;
  rlaif::validate(options.params.sampling);
  options.max_turns = env_config.max_turns;
  options.max_turn_tokens = env_config.max_turn_tokens;
  options.max_episode_tokens = env_config.max_episode_tokens;

  // Rows: {"prompt": ...} or {"messages": [...]}; the whole row goes to the environment's reset.
  const auto rows = rlaif::read_jsonl(a.prompts);
  std::vector<rlaif::EpisodeRequest> requests;
  for (const auto& r : rows) {
    const std::string where = a.prompts + ":" + std::to_string(r.line);
    if (!r.error.empty()) throw rlaif::Error(r.error, where, "each line must be one JSON object");
    if (!r.value.is_object()) throw rlaif::Error("row is not a JSON object", where);
    rlaif::EpisodeRequest q;
    if (r.value.contains("messages")) {
      if (!r.value["messages"].is_array()) throw rlaif::Error("\"messages\" must be a list", where);
      q.messages = r.value["messages"];
    } else if (r.value.contains("prompt")) {
      if (!r.value["prompt"].is_string()) throw rlaif::Error("\"prompt\" must be a string", where);
      q.messages = nlohmann::ordered_json::array({{{"role", "user"}, {"content", r.value["prompt"]}}});
    }  // neither: the environment's first observation is the whole prompt
    q.row = r.value;
    q.num_episodes = a.num_episodes;
    q.seed = rlaif::sample_seed(a.seed, r.line);
    requests.push_back(std::move(q));
  }
  if (requests.empty()) throw rlaif::Error("no rows", a.prompts, "one JSON object per line");

  rlaif::set_num_threads(a.threads);
  const auto source = rlaif::resolve_model_source(a.model, a.adapter);
  auto model = rlaif::load_merged_model(source);
  const std::string precision = rlaif::set_inference_precision(model, a.dtype);
  auto tokenizer = rlaif::Tokenizer::load(source.model_dir);
  rlaif::GeneratorOptions go;
  go.max_batch = a.batch_size;
  rlaif::Generator gen(model, tokenizer, rlaif::load_eos_token_ids(source.model_dir, model->config()), go);
  const auto chat = rlaif::ChatTemplate::for_tokenizer(tokenizer);
  auto env = rlaif::make_environment(env_config);
  if (!a.quiet)
    std::fprintf(stderr, "episodes: %s, compute %s; environment %s (%d at once)\n", a.model.c_str(), precision.c_str(),
                 env_config.type.c_str(), env->capacity());

  rlaif::Progress progress("episodes", static_cast<int64_t>(requests.size()) * a.num_episodes, "episodes", !a.quiet);
  options.on_end = [&](const rlaif::Episode&) { progress.advance(); };
  rlaif::EpisodeStats stats;
  const auto episodes = rlaif::run_episodes(gen, chat, *env, requests, options, &stats);
  progress.finish();

  std::string out;
  double reward_sum = 0;
  std::string first_failure;
  for (size_t r = 0; r < episodes.size(); ++r)
    for (size_t j = 0; j < episodes[r].size(); ++j) {
      const auto& ep = episodes[r][j];
      nlohmann::json rewards = nlohmann::json::array();
      for (const auto& w : ep.rewards) rewards.push_back(w ? nlohmann::json(*w) : nlohmann::json(nullptr));
      nlohmann::json o = {{"line", rows[r].line},
                          {"episode", j},
                          {"ended_by", ep.ended_by},
                          {"turns", ep.turns},
                          {"rewards", rewards},
                          {"env_reward", ep.env_reward},
                          {"messages", ep.messages},
                          {"token_ids", ep.token_ids},
                          {"policy_mask", ep.policy_mask},
                          {"logprobs", ep.logprobs},
                          {"prompt_length", ep.prompt_length}};
      if (!ep.detail.empty()) o["detail"] = ep.detail;
      if (ep.failed() && first_failure.empty())
        first_failure = "line " + std::to_string(rows[r].line) + ": " + ep.ended_by + ": " + ep.detail;
      if (!ep.failed()) reward_sum += ep.env_reward;
      out += o.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    }
  rlaif::write_file_atomic(a.out, out);
  const auto es = env->stats();
  const int64_t ok = stats.episodes - stats.failed;
  std::fprintf(
      stderr,
      "episodes: %lld played, %lld failed -> %s; mean environment reward %.4f over the %lld that ended; "
      "%lld turns, %lld policy tokens, %lld prompt and observation tokens; environment: %lld requests, mean %.3f s, "
      "%.1f s waited with nothing to decode\n",
      (long long)stats.episodes, (long long)stats.failed, a.out.c_str(), ok > 0 ? reward_sum / ok : 0.0, (long long)ok,
      (long long)stats.turns, (long long)stats.policy_tokens, (long long)stats.observation_tokens,
      (long long)(es.resets + es.steps), es.resets + es.steps > 0 ? es.latency_s / (es.resets + es.steps) : 0.0,
      stats.env_wait_s);
  if (ok == 0)
    throw rlaif::Error("every episode failed (the first: " + first_failure + ")", a.env,
                       "check that the environment runs: see docs/episodes.md");
  return 0;
}

}  // namespace

Run add_episodes(CLI::App& app) {
  auto a = std::make_shared<EpisodesArgs>();
  app.add_option("--model", a->model, "Hugging Face model folder, or a LoRA run's final/ or checkpoint-N/")->required();
  app.add_option("--adapter", a->adapter, "a PEFT LoRA adapter folder to merge into --model's weights");
  app.add_option("--prompts", a->prompts,
                 "JSONL input: rows {\"prompt\": ...} or {\"messages\": [...]} (or neither: the environment's first "
                 "observation is the prompt); the whole row goes to the environment's reset")
      ->required();
  app.add_option("--env", a->env, "TOML file with the [env] table (docs/episodes.md)")->required();
  app.add_option("--out", a->out,
                 "JSONL output, one row per episode: messages, ended_by, rewards, token_ids, policy_mask, logprobs; "
                 "written atomically")
      ->required();
  app.add_option("--num-episodes", a->num_episodes, "episodes per prompt")->capture_default_str();
  app.add_option("--temperature", a->temperature, "sampling temperature; 0 = greedy")->capture_default_str();
  app.add_option("--top-p", a->top_p, "nucleus sampling mass; 1 = off")->capture_default_str();
  app.add_option("--seed", a->seed, "seed of the episodes' sampling and of the environment's resets")
      ->capture_default_str();
  app.add_option("--threads", a->threads, "CPU threads; 0 = all cores")->capture_default_str();
  app.add_option("--batch-size", a->batch_size, "sequences decoded together (continuous batching)")
      ->capture_default_str();
  app.add_option("--dtype", a->dtype, "compute dtype: auto, float32 or bfloat16")->capture_default_str();
  app.add_flag("--quiet", a->quiet, "no progress output");
  return [a]() { return run_episodes_command(*a); };
}

}  // namespace rlaif_cli
