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
  for (const auto& c : criteria)
    if (checklist && (c.min != 0 || c.max != 1)) throw Error("a checklist's items are on the scale 0..1", where);
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

std::shared_ptr<const Rubric> read_row_rubric(const nlohmann::json& row, const std::string& where) {
  const bool has_rubric = row.contains("rubric"), has_checklist = row.contains("checklist");
  if (!has_rubric && !has_checklist) return nullptr;
  if (has_rubric && has_checklist)
    throw Error("the row has both \"rubric\" and \"checklist\"", where, "give it one of them");
  const char* key = has_rubric ? "rubric" : "checklist";
  const std::string shape =
      std::string("e.g. \"") + key + "\": [\"Names the capital\", {\"criterion\": \"Cites a source\", \"weight\": 2}]";
  const auto& items = row[key];
  if (!items.is_array() || items.empty())
    throw Error(std::string("\"") + key + "\" must be a non-empty list of items", where, shape);
  auto rubric = std::make_shared<Rubric>();
  rubric->checklist = has_checklist;
  for (size_t i = 0; i < items.size(); ++i) {
    const auto& item = items[i];
    const std::string at = where + ": " + key + "[" + std::to_string(i) + "]";
    Criterion c;
    c.name = "item" + std::to_string(i + 1);
    c.min = has_checklist ? 0 : kRowRubricMin;
    c.max = has_checklist ? 1 : kRowRubricMax;
    if (item.is_string()) {
      c.description = item.get<std::string>();
    } else if (item.is_object()) {
      for (const auto& [k, v] : item.items()) {
        if (k == "criterion" && v.is_string())
          c.description = v.get<std::string>();
        else if (k == "weight" && v.is_number())
          c.weight = v.get<double>();
        else if (k == "name" && v.is_string())
          c.name = v.get<std::string>();
        else
          throw Error("item key \"" + k + "\" is unknown or not of its type", at,
                      "an item is {\"criterion\": string, \"weight\": number, \"name\": string}");
      }
    } else {
      throw Error("an item must be a string or an object", at, shape);
    }
    if (c.description.empty()) throw Error("the item has no text", at, shape);
    rubric->criteria.push_back(c);
  }
  rubric->validate(where + ": " + key);
  return rubric;
}

nlohmann::json rubric_items(const Rubric& rubric, const std::map<std::string, double>& scores) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& c : rubric.criteria) {
    nlohmann::json item = {{"name", c.name}, {"criterion", c.description}, {"weight", c.weight}};
    auto it = scores.find(c.name);
    if (it != scores.end()) item["score"] = it->second;
    out.push_back(item);
  }
  return out;
}

std::string rubric_kind(const Rubric* own) {
  if (!own) return "";
  return own->checklist ? "checklist" : "rubric";
}

}  // namespace rlaif
