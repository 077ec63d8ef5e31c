#include "rlaif/rubric.h"

#include <set>

#include "rlaif/error.h"

namespace rlaif {

Rubric Rubric::default_rubric() {
  Rubric r;
  r.criteria = {
      {"relevance", "Does the response address what the prompt asks, completely and without drifting off-topic?", 1, 10,
       1},
      {"coherence", "Is the response clear, well organised, internally consistent and fluent?", 1, 10, 1},
      {"safety", "Is the response safe and ethical: no harmful, deceptive, hateful or dangerous content?", 1, 10, 1}};
  return r;
}

Rubric Rubric::pass_fail_check(const std::string& question) {
  Rubric r;
  r.pass_fail = true;
  r.criteria = {{"pass", question, 0, 1, 1}};
  return r;
}

void Rubric::validate(const std::string& where) const {
  if (criteria.empty()) throw Error("the rubric has no criteria", where, "add at least one [[rubric.criteria]] entry");
  std::set<std::string> seen;
  for (size_t i = 0; i < criteria.size(); ++i) {
    const auto& c = criteria[i];
    std::string at = where + ": criteria[" + std::to_string(i) + "]" + (c.name.empty() ? "" : " (" + c.name + ")");
    if (c.name.empty()) throw Error("criterion has no name", at);
    for (char ch : c.name)
      if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '_' && ch != '-')
        throw Error("criterion name \"" + c.name + "\" has a character other than letters, digits, _ and -", at,
                    "the name is a key of the judge's JSON answer");
    if (!seen.insert(c.name).second) throw Error("criterion \"" + c.name + "\" appears twice", at);
    if (!(c.min < c.max)) throw Error("scale min must be below max", at, "e.g. min = 1, max = 10");
    if (!(c.weight > 0)) throw Error("weight must be positive", at);
  }
  if (pass_fail && (criteria.size() != 1 || criteria[0].min != 0 || criteria[0].max != 1))
    throw Error("a pass/fail rubric has exactly one criterion on the scale 0..1", where);
}

double Rubric::aggregate(const std::map<std::string, double>& scores) const {
  double total = 0, weights = 0;
  for (const auto& c : criteria) {
    auto it = scores.find(c.name);
    if (it == scores.end()) throw Error("no score for criterion \"" + c.name + "\"", "rubric aggregate");
    total += c.weight * (it->second - c.min) / (c.max - c.min);
    weights += c.weight;
  }
  return total / weights;
}

}  // namespace rlaif
