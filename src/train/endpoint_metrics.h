// Per-endpoint judge metrics of a pool (judge.toml's base_url as a list): how many requests each server got, how many
// failed, their mean latency and how often its circuit opened, per step and summed over the job's ranks.
#pragma once

#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "rlaif/distributed.h"
#include "rlaif/http_client.h"
#include "rlaif/judge.h"

namespace rlaif {

class EndpointMetrics {
 public:
  // Adds judge/endpoint_<k>/{requests, failures, latency_mean, ejections} for the step since the last call, for the
  // judge and each judge of its panel that has a pool (a panel judge's under judge/<name>/endpoint_<k>/). Every rank
  // calls it (the sums are collectives).
  void add(const Judge& judge, Dist& dist, nlohmann::json& m);

 private:
  void add_one(const Judge& judge, const std::string& prefix, Dist& dist, nlohmann::json& m);
  std::map<std::string, std::vector<EndpointStats>> last_;  // by prefix: the totals at the last call
};

}  // namespace rlaif
