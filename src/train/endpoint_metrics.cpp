#include "train/endpoint_metrics.h"

namespace rlaif {

void EndpointMetrics::add(const Judge& judge, Dist& dist, nlohmann::json& m) {
  add_one(judge, "judge/", dist, m);
  for (const auto& member : judge.panel()) add_one(*member, "judge/" + member->config().name + "/", dist, m);
}

void EndpointMetrics::add_one(const Judge& judge, const std::string& prefix, Dist& dist, nlohmann::json& m) {
  const size_t n = judge.config().base_urls.size();
  if (judge.config().backend != "openai" || n < 2) return;  // the same on every rank: the sums below stay matched
  std::vector<EndpointStats> now(n);
  if (const HttpStats* st = judge.http_stats(); st && st->endpoints.size() == n) now = st->endpoints;
  auto& last = last_[prefix];
  last.resize(n);
  std::vector<double> step;  // per endpoint: attempts, failures, latency summed, ended, circuit openings
  for (size_t k = 0; k < n; ++k)
    step.insert(step.end(), {double(now[k].attempts - last[k].attempts), double(now[k].failures - last[k].failures),
                             now[k].latency_s - last[k].latency_s, double(now[k].ended - last[k].ended),
                             double(now[k].circuit_opened - last[k].circuit_opened)});
  step = dist.sum(step);
  for (size_t k = 0; k < n; ++k) {
    const double* s = &step[5 * k];
    const std::string key = prefix + "endpoint_" + std::to_string(k) + "/";
    m[key + "requests"] = s[0];
    m[key + "failures"] = s[1];
    m[key + "latency_mean"] = s[3] > 0 ? s[2] / s[3] : 0.0;
    m[key + "ejections"] = s[4];
  }
  last = now;
}

}  // namespace rlaif
