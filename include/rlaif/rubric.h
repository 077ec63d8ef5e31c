// What a good answer is: criteria with scales and weights, or one pass/fail check, plus an optional reference answer.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace rlaif {

struct Criterion {
  std::string name;          // a key of the judge's JSON verdict: letters, digits, '_' and '-'
  std::string description;   // what the judge is asked to assess
  double min = 1, max = 10;  // the integer scale the judge answers on
  double weight = 1;         // share in the aggregate (weights are normalised)
};

struct Rubric {
  std::vector<Criterion> criteria;
  bool pass_fail = false;  // one criterion named "pass" on the scale 0..1
  std::string reference;   // optional reference answer shown to the judge (per-row references override it)

  // Relevance, coherence and safety/ethics on 1..10, equal weights.
  static Rubric default_rubric();
  // A binary check: the judge answers 1 (pass) or 0 (fail) to `question`.
  static Rubric pass_fail_check(const std::string& question);
  // Throws rlaif::Error naming `where` and the criterion for an empty rubric, a bad name, min >= max, weight <= 0,
  // or duplicate names.
  void validate(const std::string& where) const;
  // Weighted mean of the scores, each first mapped to [0, 1] by its scale. Every criterion must be present.
  double aggregate(const std::map<std::string, double>& scores) const;
};

}  // namespace rlaif
