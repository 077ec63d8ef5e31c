// JSON documents (config.json, tokenizer.json, adapter_config.json, ...), parsed with errors that say where.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

namespace rlaif {

// Parses `text`, the contents of `path`. Throws rlaif::Error naming path:line for a syntax error, and naming the
// path for a number that does not fit a double (1e999).
nlohmann::json parse_json_text(const std::string& text, const std::string& path);

// Reads and parses the file at `path`; a missing file is an rlaif::Error with `missing_hint` as its hint.
nlohmann::json read_json_file(const std::string& path, const std::string& missing_hint = "");

}  // namespace rlaif
