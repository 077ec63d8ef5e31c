// JSON Lines files: one JSON value per line, read with line numbers so errors can say where.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace rlaif {

struct JsonlRow {
  size_t line = 0;               // 1-based line number in the file
  nlohmann::ordered_json value;  // parsed value, keys in file order (null when `error` is set)
  std::string error;             // "" or why the line is not valid JSON
};

// Reads every non-blank line. A line that is not valid JSON is returned with `error` set, never dropped.
// Throws rlaif::Error if the file cannot be read.
std::vector<JsonlRow> read_jsonl(const std::string& path);

}  // namespace rlaif
