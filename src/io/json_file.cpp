#include "rlaif/json_file.h"

#include <filesystem>

#include "rlaif/atomic_file.h"
#include "rlaif/error.h"

namespace rlaif {

nlohmann::json parse_json_text(const std::string& text, const std::string& path) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    size_t line = 1;  // the byte offset as a line number
    for (size_t i = 0; i < e.byte && i < text.size(); ++i) line += text[i] == '\n';
    throw Error(std::string("invalid JSON: ") + e.what(), path + ":" + std::to_string(line), "fix the JSON syntax");
  } catch (const nlohmann::json::exception& e) {  // out_of_range: a number like 1e999
    throw Error(std::string("invalid JSON: ") + e.what(), path, "fix the number");
  }
}

nlohmann::json read_json_file(const std::string& path, const std::string& missing_hint) {
  if (!std::filesystem::exists(path)) throw Error("file not found", path, missing_hint);
  return parse_json_text(read_file(path), path);
}

}  // namespace rlaif
