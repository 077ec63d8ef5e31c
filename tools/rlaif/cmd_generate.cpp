#include <unistd.h>

#include <cstdio>

#include "commands.h"
#include "rlaif/atomic_file.h"
#include "rlaif/chat_template.h"
#include "rlaif/error.h"
#include "rlaif/generator.h"
#include "rlaif/jsonl.h"
#include "rlaif/model_folder.h"
#include "rlaif/model_source.h"
#include "rlaif/progress.h"
#include "rlaif/runtime.h"

namespace rlaif_cli {
namespace {

struct GenerateArgs {
  std::string model, adapter, prompts, out, on_error = "stop", dtype = "auto";
  int64_t num_generations = 1, max_new_tokens = 128, batch_size = 32;
  float temperature = 1.0f, top_p = 1.0f, min_p = 0.0f;
  int64_t top_k = 0;
  uint64_t seed = 0;
  int threads = 0;
  std::vector<std::string> stop;
  bool quiet = false;
};

int run_generate(const GenerateArgs& a) {
  if (a.on_error != "stop" && a.on_error != "skip") throw rlaif::Error("--on-error must be stop or skip", "--on-error");
  if (a.num_generations < 1) throw rlaif::Error("must be >= 1", "--num-generations");
  rlaif::GenerationParams params;
  params.sampling.temperature = a.temperature;
  params.sampling.top_k = a.top_k;
  params.sampling.top_p = a.top_p;
  params.sampling.min_p = a.min_p;
  params.max_new_tokens = a.max_new_tokens;
  params.stop = a.stop;
  rlaif::validate(params.sampling);
  if (params.max_new_tokens < 1) throw rlaif::Error("must be >= 1", "--max-new-tokens");

  rlaif::set_num_threads(a.threads);
  const auto source = rlaif::resolve_model_source(a.model, a.adapter);
  auto model = rlaif::load_merged_model(source);
  std::string precision = rlaif::set_inference_precision(model, a.dtype);
  if (!a.quiet)
    std::fprintf(stderr, "generate: %s, compute %s, %d threads\n", a.model.c_str(), precision.c_str(),
                 torch::get_num_threads());
  auto tokenizer = rlaif::Tokenizer::load(source.model_dir);
  auto eos = rlaif::load_eos_token_ids(source.model_dir, model->config());
  rlaif::GeneratorOptions go;
  go.max_batch = a.batch_size;
  rlaif::Generator gen(model, tokenizer, eos, go);
  // The model folder's chat template (tokenizer_config.json), or ChatML when it has none.
  auto chat = rlaif::ChatTemplate::for_tokenizer(tokenizer);

  // Rows -> requests. A bad row is an error (--on-error stop) or an error row in the output (skip).
  auto rows = rlaif::read_jsonl(a.prompts);
  std::vector<rlaif::GenerationRequest> requests;
  std::vector<size_t> request_row;  // index into rows
  std::vector<std::string> row_error(rows.size());
  std::vector<std::string> prompt_text(rows.size());
  const int64_t ctx = model->config().max_position_embeddings;
  size_t bad = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    const auto& r = rows[i];
    std::string where = a.prompts + ":" + std::to_string(r.line);
    try {
      if (!r.error.empty()) throw rlaif::Error(r.error, where, "each line must be one JSON object");
      if (!r.value.is_object()) throw rlaif::Error("row is not a JSON object", where);
      bool from_messages = false;
      if (r.value.contains("prompt")) {
        if (!r.value["prompt"].is_string()) throw rlaif::Error("\"prompt\" must be a string", where);
        prompt_text[i] = r.value["prompt"].get<std::string>();
      } else if (r.value.contains("messages")) {
        const auto& messages = r.value["messages"];
        if (!messages.is_array() || messages.empty())
          throw rlaif::Error("\"messages\" must be a non-empty list", where);
        try {
          prompt_text[i] = chat.render_for(tokenizer, messages, /*add_generation_prompt=*/true);
        } catch (const rlaif::Error& e) {
          throw rlaif::Error(e.what_part() + " (at " + e.where() + ")", where, e.hint());
        }
        from_messages = true;
      } else {
        throw rlaif::Error(
            "row has neither \"prompt\" nor \"messages\"", where,
            "rows look like {\"prompt\": \"...\"} or {\"messages\": [{\"role\": \"user\", \"content\": \"...\"}]}");
      }
      rlaif::GenerationRequest q;
      // A rendered chat template already holds its special tokens (transformers' apply_chat_template does the same).
      q.prompt_ids = tokenizer.encode(prompt_text[i], /*add_special_tokens=*/!from_messages);
      if (q.prompt_ids.empty()) throw rlaif::Error("empty prompt", where);
      if (static_cast<int64_t>(q.prompt_ids.size()) >= ctx)
        throw rlaif::Error("prompt has " + std::to_string(q.prompt_ids.size()) + " tokens, the model's context is " +
                               std::to_string(ctx),
                           where, "shorten the prompt");
      q.num_samples = a.num_generations;
      q.seed = r.value.contains("seed") && r.value["seed"].is_number_unsigned() ? r.value["seed"].get<uint64_t>()
                                                                                : rlaif::sample_seed(a.seed, r.line);
      q.params = params;
      requests.push_back(std::move(q));
      request_row.push_back(i);
    } catch (const rlaif::Error& e) {
      if (a.on_error == "stop")
        throw rlaif::Error(e.what_part(), e.where(),
                           "fix the row, or pass --on-error skip to report bad rows and go on");
      row_error[i] = e.what_part();
      ++bad;
      std::fprintf(stderr, "rlaif: skipped %s: %s\n", e.where().c_str(), e.what_part().c_str());
    }
  }

  rlaif::Progress progress("generate", static_cast<int64_t>(requests.size()) * a.num_generations, "samples", !a.quiet);
  auto results = gen.generate(requests, [&](size_t, size_t, const rlaif::Sample&) {
    const auto& st = gen.stats();
    double t = st.decode_seconds + st.prefill_seconds + st.sample_seconds;
    char extra[64];
    std::snprintf(extra, sizeof extra, "%.0f tok/s", t > 0 ? st.decode_tokens / t : 0.0);
    progress.set_extra(extra);
    progress.advance();
  });
  progress.finish();

  // Output: one row per sample, in input order; bad rows as error rows so nothing is dropped silently.
  std::string out;
  size_t next = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    if (!row_error[i].empty()) {
      out += nlohmann::json({{"line", rows[i].line}, {"error", row_error[i]}}).dump() + "\n";
      continue;
    }
    const auto& res = results[next++];
    for (size_t j = 0; j < res.samples.size(); ++j) {
      const auto& s = res.samples[j];
      nlohmann::json o = {{"line", rows[i].line},
                          {"prompt", prompt_text[i]},
                          {"sample", j},
                          {"completion", s.text},
                          {"finish_reason", rlaif::to_string(s.finish_reason)},
                          {"token_ids", s.token_ids},
                          {"logprobs", s.logprobs}};
      out += o.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    }
  }
  rlaif::write_file_atomic(a.out, out);
  const auto& st = gen.stats();
  std::fprintf(
      stderr,
      "generate: %zu prompts x %lld samples -> %s (%zu bad rows); prefill %lld tok (%.1f tok/s), decode %lld tok "
      "(%.1f tok/s)\n",
      requests.size(), (long long)a.num_generations, a.out.c_str(), bad, (long long)st.prefill_tokens,
      st.prefill_seconds > 0 ? st.prefill_tokens / st.prefill_seconds : 0.0, (long long)st.decode_tokens,
      st.decode_seconds + st.sample_seconds > 0 ? st.decode_tokens / (st.decode_seconds + st.sample_seconds) : 0.0);
  return bad > 0 ? 4 : 0;
}

}  // namespace

Run add_generate(CLI::App& app) {
  auto a = std::make_shared<GenerateArgs>();
  app.add_option("--model", a->model,
                 "Hugging Face model folder (config.json, safetensors, tokenizer.json), or a LoRA run's final/ or "
                 "checkpoint-N/ (its adapter on the base model adapter_config.json names)")
      ->required();
  app.add_option("--adapter", a->adapter, "a PEFT LoRA adapter folder to merge into --model's weights");
  app.add_option("--prompts", a->prompts,
                 "JSONL input: rows {\"prompt\": \"...\"} or {\"messages\": [...]} (rendered with the model's chat "
                 "template; ChatML if it has none)")
      ->required();
  app.add_option("--out", a->out, "JSONL output, one row per sample; written atomically")->required();
  app.add_option("--num-generations", a->num_generations, "samples per prompt (they share one prefill)")
      ->capture_default_str();
  app.add_option("--temperature", a->temperature, "sampling temperature; 0 = greedy")->capture_default_str();
  app.add_option("--top-k", a->top_k, "keep the k most likely tokens; 0 = off")->capture_default_str();
  app.add_option("--top-p", a->top_p, "nucleus sampling mass; 1 = off")->capture_default_str();
  app.add_option("--min-p", a->min_p, "drop tokens below min_p x the top probability; 0 = off")->capture_default_str();
  app.add_option("--max-new-tokens", a->max_new_tokens, "most tokens generated per sample")->capture_default_str();
  app.add_option("--stop", a->stop, "stop string (repeatable); the completion is cut before it");
  app.add_option("--seed", a->seed,
                 "seed; a row's samples depend only on it, the row's line and the row's own \"seed\"")
      ->capture_default_str();
  app.add_option("--threads", a->threads, "CPU threads; 0 = all cores")->capture_default_str();
  app.add_option("--batch-size", a->batch_size, "sequences decoded together (continuous batching)")
      ->capture_default_str();
  app.add_option("--dtype", a->dtype,
                 "compute dtype: auto (the fastest measured: see docs/perf.md), float32 or bfloat16")
      ->capture_default_str();
  app.add_option("--on-error", a->on_error, "on a malformed row: stop (exit 1) or skip (write an error row, exit 4)")
      ->capture_default_str();
  app.add_flag("--quiet", a->quiet, "no progress output");
  return [a]() { return run_generate(*a); };
}

}  // namespace rlaif_cli
