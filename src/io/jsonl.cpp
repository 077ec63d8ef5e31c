#include "rlaif/jsonl.h"

#include <cerrno>
#include <cstring>
#include <fstream>

#include "rlaif/error.h"

namespace rlaif {

std::vector<JsonlRow> read_jsonl(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error(std::string("cannot open: ") + std::strerror(errno), path, "check the path");
  std::vector<JsonlRow> rows;
  std::string line;
  size_t n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    JsonlRow row;
    row.line = n;
    try {
      row.value = nlohmann::ordered_json::parse(line);
    } catch (const nlohmann::ordered_json::exception& e) {  // parse_error, or out_of_range for a number like 1e999
      row.error = std::string("invalid JSON: ") + e.what();
    }
    rows.push_back(std::move(row));
  }
  if (in.bad()) throw Error("read error", path);
  return rows;
}

}  // namespace rlaif
