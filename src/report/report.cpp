#include "rlaif/report.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "report/svg_chart.h"
#include "rlaif/atomic_file.h"
#include "rlaif/error.h"
#include "rlaif/jsonl.h"
#include "rlaif/train_config.h"

namespace fs = std::filesystem;

namespace rlaif {
namespace {

// What the report reads from a run folder.
struct RunData {
  std::string dir;
  std::vector<nlohmann::json> train, eval;  // metrics.jsonl rows: training steps, evaluations (eval/* keys)
  std::vector<nlohmann::json> eval_samples;
  nlohmann::json validation;      // judge_validation.json, or null
  std::string config_text;        // run_config.toml, or ""
  std::string verifier;           // train.integrity_verifier
  std::set<std::string> graders;  // [[graders]] names: their rewards/<name>/mean are not judge criteria
  std::map<std::string, std::vector<std::string>> pools;  // metric prefix (judge/, judge/<panel name>/) -> base URLs
};

std::vector<nlohmann::json> read_rows(const std::string& path, bool required) {
  std::vector<nlohmann::json> rows;
  if (!fs::exists(path)) {
    if (required) throw Error("not found", path, "pass the output_dir of an `rlaif train` run");
    return rows;
  }
  for (const auto& r : read_jsonl(path)) {
    if (!r.error.empty())
      throw Error(r.error, path + ":" + std::to_string(r.line), "the log is damaged; rerun or fix that line");
    rows.push_back(nlohmann::json::parse(r.value.dump()));
  }
  return rows;
}

RunData load_run(const std::string& dir) {
  RunData d;
  d.dir = dir;
  for (auto& row : read_rows(dir + "/metrics.jsonl", true))
    (row.contains("eval/reward") ? d.eval : d.train).push_back(row);
  d.eval_samples = read_rows(dir + "/eval_samples.jsonl", false);
  if (fs::exists(dir + "/judge_validation.json")) {
    d.validation = nlohmann::json::parse(read_file(dir + "/judge_validation.json"), nullptr, false);
    if (d.validation.is_discarded())
      throw Error("not valid JSON", dir + "/judge_validation.json", "rerun the training's pre-flight check");
  }
  if (fs::exists(dir + "/run_config.toml")) {
    d.config_text = read_file(dir + "/run_config.toml");
    auto c = TrainConfig::from_toml(dir + "/run_config.toml");
    d.verifier = c.integrity_verifier;
    for (const auto& g : c.judge.graders) d.graders.insert(g.name.empty() ? g.type : g.name);
    d.pools["judge/"] = c.judge.base_urls;
    for (const auto& p : c.judge.panel) d.pools["judge/" + p.name + "/"] = p.base_urls;
  }
  return d;
}

std::vector<std::pair<double, double>> series(const std::vector<nlohmann::json>& rows, const std::string& key) {
  std::vector<std::pair<double, double>> out;
  for (const auto& r : rows)
    if (r.contains(key) && r[key].is_number() && r.contains("step"))
      out.emplace_back(r["step"].get<double>(), r[key].get<double>());
  return out;
}

// Names <c> of the "rewards/<c>/mean" keys in `rows`, in first-seen order.
std::vector<std::string> reward_names(const std::vector<nlohmann::json>& rows) {
  std::vector<std::string> names;
  for (const auto& r : rows)
    for (auto it = r.begin(); it != r.end(); ++it) {
      const std::string& k = it.key();
      if (k.rfind("rewards/", 0) == 0 && k.size() > 13 && k.compare(k.size() - 5, 5, "/mean") == 0) {
        std::string name = k.substr(8, k.size() - 13);
        if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
      }
    }
  return names;
}

std::string num(double v, int digits = 3) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

std::vector<Chart> charts(const RunData& d) {
  std::vector<Chart> out;
  out.push_back({"Reward (judge + graders, weighted)",
                 "step",
                 "reward",
                 {{"train", series(d.train, "reward")}, {"eval (held-out)", series(d.eval, "eval/reward"), true}}});
  Chart crit{"Judge score per criterion", "step", "score (criterion scale)", {}};
  for (const auto& name : reward_names(d.train))
    if (!d.graders.count(name)) crit.series.push_back({name, series(d.train, "rewards/" + name + "/mean")});
  for (const auto& name : reward_names(d.eval))
    if (!d.graders.count(name))
      crit.series.push_back({name + " (eval)", series(d.eval, "eval/rewards/" + name + "/mean"), true});
  out.push_back(crit);
  Chart truth{"Ground truth: verifier vs judge success", "step", "success rate", {}};
  if (!d.verifier.empty()) {
    truth.series.push_back({"verifier (train)", series(d.train, "integrity/verifier_success_rate")});
    truth.series.push_back({"judge (train)", series(d.train, "integrity/judge_success_rate")});
    truth.series.push_back({"verifier (eval)", series(d.eval, "eval/rewards/" + d.verifier + "/mean"), true});
  } else {
    for (const auto& g : d.graders) truth.series.push_back({g, series(d.train, "rewards/" + g + "/mean")});
  }
  out.push_back(truth);
  out.push_back({"KL to the reference", "step", "KL (nats/token)", {{"kl", series(d.train, "kl")}}});
  out.push_back({"Entropy of the policy", "step", "nats/token", {{"entropy", series(d.train, "entropy")}}});
  out.push_back({"Completion length", "step", "tokens", {{"mean length", series(d.train, "completions/mean_length")}}});
  out.push_back({"Judge latency",
                 "step",
                 "seconds",
                 {{"p50", series(d.train, "judge/latency_p50")}, {"timing/judge", series(d.train, "timing/judge")}}});
  out.push_back({"Judge failures", "step", "failed judgments", {{"failures", series(d.train, "judge/failures")}}});
  return out;
}

// Summary figures: first and last evaluation, last KL, steps and wall time.
std::string summary(const RunData& d) {
  auto card = [](const std::string& label, const std::string& value, const std::string& note) {
    return "<div class=\"card\"><div class=\"label\">" + html_escape(label) + "</div><div class=\"value\">" + value +
           "</div><div class=\"note\">" + html_escape(note) + "</div></div>";
  };
  std::string html = "<div class=\"cards\">";
  auto first_last = [&](const std::string& key) -> std::string {
    auto s = series(d.eval, key);
    if (s.empty()) return "";
    return num(s.front().second) + " &rarr; " + num(s.back().second);
  };
  if (auto v = first_last("eval/reward"); !v.empty())
    html += card("Judge reward (held-out)", v, "first vs last evaluation");
  if (!d.verifier.empty())
    if (auto v = first_last("eval/rewards/" + d.verifier + "/mean"); !v.empty())
      html += card("Ground truth: " + d.verifier, v, "verifier success, first vs last evaluation");
  if (auto kl = series(d.train, "kl"); !kl.empty())
    html += card("KL to the reference", num(kl.back().second, 4), "last step");
  double wall = 0;
  for (const auto& r : d.train) wall += r.value("timing/step", 0.0);
  html += card("Steps", std::to_string(d.train.size()), num(wall / 60, 1) + " min of training");
  if (d.validation.is_object() && d.validation.contains("agreement"))
    html += card("Judge agreement", num(d.validation["agreement"].get<double>()),
                 d.validation.value("metric", std::string("accuracy")) + " on " +
                     std::to_string(d.validation.value("samples", 0)) + " labelled samples");
  return html + "</div>";
}

std::string sample_cell(const nlohmann::json& s) {
  std::string html =
      "<div class=\"completion\">" + html_escape(s.value("completion", std::string())) + "</div><div class=\"scores\">";
  if (!s.value("ok", false))
    return html + "judge failed: " + html_escape(s.value("failure", std::string("?"))) + "</div>";
  html += "reward " + num(s.value("reward", 0.0));
  for (const char* key : {"scores", "grades"})
    if (s.contains(key) && s[key].is_object())
      for (auto it = s[key].begin(); it != s[key].end(); ++it)
        if (it.value().is_number())
          html += " &middot; " + html_escape(it.key()) + " " + num(it.value().get<double>(), 2);
  html += "</div>";
  std::string why = s.value("rationale", std::string());
  if (!why.empty()) html += "<div class=\"rationale\">" + html_escape(why) + "</div>";
  return html;
}

// Held-out samples at the first and the last evaluation, side by side (the same prompts, in the same order).
std::string samples_table(const RunData& d, size_t limit) {
  if (d.eval_samples.empty()) return "<p class=\"none\">No evaluation samples (set data.eval_prompts).</p>";
  const int64_t first = d.eval_samples.front().value("step", 0), last = d.eval_samples.back().value("step", 0);
  std::vector<const nlohmann::json*> before, after;
  for (const auto& s : d.eval_samples) {
    if (s.value("step", -1) == first) before.push_back(&s);
    if (s.value("step", -1) == last) after.push_back(&s);
  }
  std::string html = "<table class=\"samples\"><thead><tr><th>prompt</th><th>before (step " + std::to_string(first) +
                     ")</th><th>after (step " + std::to_string(last) + ")</th></tr></thead><tbody>";
  for (size_t i = 0; i < std::min({before.size(), after.size(), limit}); ++i) {
    html += "<tr><td class=\"prompt\">" + html_escape(before[i]->value("prompt", std::string())) + "</td><td>" +
            sample_cell(*before[i]) + "</td><td>" + sample_cell(*after[i]) + "</td></tr>";
  }
  return html + "</tbody></table>";
}

std::string validation_table(const RunData& d) {
  if (!d.validation.is_object())
    return "<p class=\"none\">No pre-flight judge check in this run (set train.judge_eval_labels).</p>";
  std::string html = "<table class=\"kv\"><tbody>";
  for (auto it = d.validation.begin(); it != d.validation.end(); ++it) {
    std::string v = it.value().is_number_float() ? num(it.value().get<double>())
                    : it.value().is_string()     ? it.value().get<std::string>()
                                                 : it.value().dump();
    std::string cls = it.key() == "passed" ? (it.value() == true ? " class=\"pass\"" : " class=\"fail\"") : "";
    html += "<tr><th>" + html_escape(it.key()) + "</th><td" + cls + ">" + html_escape(v) + "</td></tr>";
  }
  return html + "</tbody></table>";
}

// A judge pool's servers (judge/endpoint_<k>/* metrics, summed over the run): requests, failures, mean latency and
// circuit openings, with each server's URL from the run's config.
std::string endpoints_table(const RunData& d) {
  struct Row {
    double requests = 0, failures = 0, latency = 0, ejections = 0;
  };
  std::map<std::pair<std::string, int>, Row> rows;  // (prefix, k)
  for (const auto& r : d.train)
    for (auto it = r.begin(); it != r.end(); ++it) {
      const std::string& key = it.key();
      const size_t at = key.find("endpoint_");
      if (key.rfind("judge/", 0) != 0 || at == std::string::npos || !it.value().is_number()) continue;
      const size_t slash = key.find('/', at);
      if (slash == std::string::npos) continue;
      Row& row = rows[{key.substr(0, at), std::atoi(key.c_str() + at + 9)}];
      const std::string what = key.substr(slash + 1);
      const double v = it.value().get<double>();
      if (what == "requests") row.requests += v;
      if (what == "failures") row.failures += v;
      if (what == "ejections") row.ejections += v;
      if (what == "latency_mean") row.latency += v * r.value(key.substr(0, slash) + "/requests", 0.0);
    }
  if (rows.empty()) return "";
  std::string html =
      "<h2>Judge servers (pool)</h2>\n<table class=\"kv\"><thead><tr><th>judge</th><th>server</th><th>requests</th>"
      "<th>failed</th><th>mean latency (s)</th><th>times ejected</th></tr></thead><tbody>";
  for (const auto& [at, row] : rows) {
    auto pool = d.pools.find(at.first);
    const std::string url = pool != d.pools.end() && at.second < static_cast<int>(pool->second.size())
                                ? pool->second[at.second]
                                : "#" + std::to_string(at.second);
    const std::string judge = at.first == "judge/" ? "judge" : at.first.substr(6, at.first.size() - 7);
    html += "<tr><td>" + html_escape(judge) + "</td><td>" + html_escape(url) + "</td><td>" + num(row.requests, 0) +
            "</td><td>" + num(row.failures, 0) + "</td><td>" + num(row.requests ? row.latency / row.requests : 0.0) +
            "</td><td>" + num(row.ejections, 0) + "</td></tr>";
  }
  return html + "</tbody></table>\n";
}

const char* kStyle = R"(
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px auto; max-width: 1180px; color: #1b1b1b; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 17px; margin-top: 28px; border-bottom: 1px solid #ddd; }
.sub { color: #666; font-size: 13px; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 16px 0; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: 10px 14px; min-width: 170px; }
.card .label { font-size: 12px; color: #555; } .card .value { font-size: 22px; font-weight: 600; }
.card .note { font-size: 11px; color: #777; }
.charts { display: flex; flex-wrap: wrap; gap: 8px; }
svg.chart { border: 1px solid #eee; background: #fff; font-size: 11px; }
svg.chart .chart-title { font-size: 13px; font-weight: 600; } svg.chart .grid line { stroke: #eee; }
svg.chart .axis line { stroke: #999; } svg.chart .no-data { fill: #999; font-size: 13px; }
table { border-collapse: collapse; font-size: 13px; } th, td { border: 1px solid #ddd; padding: 6px 8px; vertical-align: top; text-align: left; }
table.samples td { width: 36%; } table.samples td.prompt { width: 28%; white-space: pre-wrap; }
.completion { white-space: pre-wrap; font-family: ui-monospace, monospace; font-size: 12px; }
.scores { color: #0b5; font-size: 12px; margin-top: 4px; } .rationale { color: #555; font-style: italic; font-size: 12px; }
.pass { color: #0a0; font-weight: 600; } .fail { color: #c00; font-weight: 600; } .none { color: #777; }
pre.config { background: #f7f7f7; padding: 10px; font-size: 12px; overflow-x: auto; }
)";

// Runs in the browser after layout: counts the charts that have a non-empty drawing, for tests and for a reader who
// wants to know the page is whole (shown in the footer).
const char* kCheckScript = R"(
(function () {
  var n = 0, charts = document.querySelectorAll('svg.chart');
  for (var i = 0; i < charts.length; i++) { var b = charts[i].getBBox(); if (b.width > 0 && b.height > 0) n++; }
  document.body.setAttribute('data-charts-rendered', String(n));
  document.getElementById('rendered').textContent = n + ' of ' + charts.length + ' charts rendered';
})();
)";

}  // namespace

std::string render_report(const std::string& run_dir) {
  auto d = load_run(run_dir);
  std::string html =
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>rlaif report: " + html_escape(run_dir) +
      "</title><style>" + kStyle + "</style></head><body>\n";
  html +=
      "<h1>rlaif training report</h1><div class=\"sub\">" + html_escape(fs::absolute(run_dir).string()) + "</div>\n";
  html += summary(d) + "\n<h2>Over the run</h2><div class=\"charts\">\n";
  for (const auto& c : charts(d)) html += render_chart_svg(c) + "\n";
  html += "</div>\n<h2>Samples before and after training (held-out prompts)</h2>\n" + samples_table(d, 12) + "\n";
  html += "<h2>Judge validation (pre-flight check)</h2>\n" + validation_table(d) + "\n";
  html += endpoints_table(d);
  html += "<h2>Configuration</h2>\n";
  html += d.config_text.empty() ? "<p class=\"none\">run_config.toml not found.</p>"
                                : "<pre class=\"config\">" + html_escape(d.config_text) + "</pre>";
  html +=
      "\n<p class=\"sub\" id=\"rendered\"></p>\n<script>" + std::string(kCheckScript) + "</script>\n</body></html>\n";
  return html;
}

std::string write_report(const std::string& run_dir, const std::string& out) {
  std::string path = out.empty() ? run_dir + "/report.html" : out;
  write_file_atomic(path, render_report(run_dir));
  return path;
}

}  // namespace rlaif
