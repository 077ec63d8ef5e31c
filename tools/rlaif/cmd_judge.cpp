// rlaif judge: score a JSONL file of {prompt, completion[, reference]} rows with the judge of judge.toml.
#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "rlaif/atomic_file.h"
#include "rlaif/error.h"
#include "rlaif/judge.h"
#include "rlaif/jsonl.h"
#include "rlaif/progress.h"

namespace rlaif_cli {
namespace {

struct JudgeArgs {
  std::string config, in, out;
  bool quiet = false;
};

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

int run_judge(const JudgeArgs& a) {
  auto config = rlaif::JudgeConfig::from_toml(a.config);
  auto rows = rlaif::read_jsonl(a.in);
  std::vector<rlaif::JudgeSample> samples;
  std::vector<size_t> lines;
  for (const auto& r : rows) {
    std::string where = a.in + ":" + std::to_string(r.line);
    if (!r.error.empty()) throw rlaif::Error(r.error, where, "each line must be one JSON object");
    const auto& v = r.value;
    if (!v.is_object() || !v.contains("prompt") || !v["prompt"].is_string() || !v.contains("completion") ||
        !v["completion"].is_string())
      throw rlaif::Error("row needs string \"prompt\" and \"completion\"", where,
                         "rows look like {\"prompt\": \"...\", \"completion\": \"...\", \"reference\": \"...\"}");
    if (v.contains("reference") && !v["reference"].is_string()) throw rlaif::Error("\"reference\" must be a string", where);
    samples.push_back({v["prompt"], v["completion"], v.value("reference", "")});
    lines.push_back(r.line);
  }
  rlaif::Judge judge(config);
  rlaif::Progress progress("judge", static_cast<int64_t>(samples.size()), "samples", !a.quiet);
  auto results = judge.judge(samples, [&](size_t, const rlaif::JudgeResult&) { progress.advance(); });
  progress.finish();

  std::string out;
  for (size_t i = 0; i < results.size(); ++i) {
    const auto& r = results[i];
    nlohmann::ordered_json row = {{"line", lines[i]}, {"ok", r.ok}};
    if (r.ok) {
      row["reward"] = r.verdict.reward;
      row["scores"] = r.verdict.scores;
      row["rationale"] = r.verdict.rationale;
      if (!r.verdict.clamped.empty()) row["clamped"] = r.verdict.clamped;
    } else {
      row["failure"] = r.failure;
      row["detail"] = r.detail;
    }
    row["cached"] = r.cached;
    row["latency_s"] = r.latency_s;
    out += row.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  }
  rlaif::write_file_atomic(a.out, out);

  // Summary: mean per criterion, failures by cause, cache hits, latency, tokens and cost.
  const auto& st = judge.stats();
  std::map<std::string, std::pair<double, int>> sums;
  for (const auto& r : results)
    if (r.ok)
      for (const auto& [k, v] : r.verdict.scores) sums[k].first += v, ++sums[k].second;
  std::fprintf(stderr, "judge: %lld judged, %lld ok, %lld failed, %lld from cache\n", static_cast<long long>(st.judged),
               static_cast<long long>(st.ok), static_cast<long long>(st.failed), static_cast<long long>(st.cache_hits));
  for (const auto& [k, s] : sums) std::fprintf(stderr, "  mean %-12s %.3f\n", k.c_str(), s.first / s.second);
  for (const auto& [k, n] : st.failures) std::fprintf(stderr, "  failed %-12s %lld\n", k.c_str(), static_cast<long long>(n));
  std::fprintf(stderr, "  latency p50 %.3fs p95 %.3fs; tokens in %lld out %lld; cost %.6f\n", percentile(st.latencies, 0.5),
               percentile(st.latencies, 0.95), static_cast<long long>(st.prompt_tokens),
               static_cast<long long>(st.completion_tokens), st.cost);
  return st.failed > 0 ? 4 : 0;
}

}  // namespace

Run add_judge(CLI::App& app) {
  auto a = std::make_shared<JudgeArgs>();
  app.footer(
      "Input rows: {\"prompt\": ..., \"completion\": ..., \"reference\": ... (optional)}. Output rows: line, ok, reward "
      "(weighted rubric score in [0, 1]), scores, rationale, or failure and detail; cached, latency_s. A failed "
      "judgment is reported as failed, never scored. Exit code 4 when some judgments failed. See docs/config.md for "
      "judge.toml.");
  app.add_option("--config", a->config, "judge.toml: [judge] endpoint and limits, [rubric], [template]")->required();
  app.add_option("--in", a->in, "JSONL rows to judge")->required();
  app.add_option("--out", a->out, "JSONL results, written atomically")->required();
  app.add_flag("--quiet", a->quiet, "no progress bar");
  return [a]() { return run_judge(*a); };
}

}  // namespace rlaif_cli
