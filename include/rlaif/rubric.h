// What a good answer is: criteria with scales and weights, or one pass/fail check, plus an optional reference answer.
#pragma once

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
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
  bool checklist = false;  // a data row's checklist: yes/no items, each on the scale 0..1 (1 = yes)
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

// A data row's own rubric ("Rubrics as Rewards"): its "rubric" (items scored 1..10) or its "checklist" (yes/no items,
// 0..1). Each is a non-empty list of strings (weight 1) or objects {"criterion": "...", "weight": w, "name": "..."}
// ("weight" and "name" optional). Items are named item1, item2, ... unless they name themselves. The judge grades the
// row's completions on these items instead of its own rubric; the reward is their weighted share. Returns null when
// the row has neither key; throws rlaif::Error naming `where` and the item for a bad list, or for both keys at once.
constexpr double kRowRubricMin = 1, kRowRubricMax = 10;  // the scale of a row rubric's items
std::shared_ptr<const Rubric> read_row_rubric(const nlohmann::json& row, const std::string& where);

// The items of a row's rubric with their scores, for outputs: [{"name", "criterion", "weight", "score"}, ...]
// (score absent when `scores` has none for the item).
nlohmann::json rubric_items(const Rubric& rubric, const std::map<std::string, double>& scores);

// Which rubric a result was graded on: "" (the judge's), "rubric" or "checklist" (the data row's own).
std::string rubric_kind(const Rubric* own);

}  // namespace rlaif
