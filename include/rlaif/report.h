// `rlaif report RUN_DIR`: one self-contained HTML page about a training run — charts of the reward per criterion,
// the ground truth where a verifier is configured, KL, entropy, completion length, judge latency and failures over
// steps (inline SVG, no external script, style or font); samples before vs after training with the judge's scores and
// rationale; the judge-validation table; the run's configuration.
#pragma once

#include <string>

namespace rlaif {

// Reads RUN_DIR/metrics.jsonl (required), eval_samples.jsonl, judge_validation.json and run_config.toml (each
// optional) and returns the page. Throws rlaif::Error naming the file for a missing or unreadable metrics log.
std::string render_report(const std::string& run_dir);

// Writes render_report(run_dir) atomically to `out` (default RUN_DIR/report.html) and returns that path.
std::string write_report(const std::string& run_dir, const std::string& out = "");

}  // namespace rlaif
