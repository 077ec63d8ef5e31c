// Rule graders, programmatic checks combined with the judge into one reward: exact, contains and regex matches
// (against a fixed text or the row's reference), JSON validity against a schema, length bounds, and content (at least
// min_words content words: no master-key answer, rlaif/content_check.h). Each gives 1 (pass) or 0 (fail). A required
// grader that fails sets the whole reward to 0, whatever the judge said.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace rlaif {

class Regex;

struct Grader {
  std::string name;          // shown in outputs; defaults to the type
  std::string type;          // exact | contains | regex | json | length | content
  std::string value;         // exact/contains: the text, "{reference}" = the row's reference; regex: the pattern,
                             // where "{reference}" stands for the row's reference matched literally and
                             // "{reference_regex}" for the row's reference as a pattern (per-row rules)
  bool ignore_case = false;  // exact and contains
  nlohmann::json schema;     // json: a JSON Schema subset (type, properties, required, additionalProperties, items,
                             // enum, minimum, maximum, minLength, maxLength); null = any valid JSON
  int64_t min_chars = 0, max_chars = 0;  // length: bounds in characters (max 0 = none)
  int64_t min_words = 1;                 // content: the fewest content words that pass
  double weight = 1;      // >= 0; 0 = graded and reported (e.g. as the trainer's integrity verifier), not rewarded
  bool required = false;  // failing it makes the reward 0 (a gate, e.g. content against master-key answers)

  // Throws rlaif::Error naming `where` for an unknown type, a bad regex or bounds.
  void validate(const std::string& where);
  double grade(const std::string& completion, const std::string& reference, const std::string& prompt = "") const;

 private:
  std::shared_ptr<Regex> regex_;
};

// Whether `value` satisfies `schema` (the subset listed above); `why` receives the first violation.
bool json_matches_schema(const nlohmann::json& value, const nlohmann::json& schema, std::string* why = nullptr);
// "" when `schema` is written as that subset expects (each keyword's value of the right type, a known "type"); else
// what is wrong and where, from `path` ("schema.properties.city.type: must be one of ...").
std::string schema_error(const nlohmann::json& schema, const std::string& path = "schema");

}  // namespace rlaif
