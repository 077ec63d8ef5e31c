// The persistent judgment cache (internal): SQLite table key -> result JSON. Only successful judgments are stored.
#pragma once

#include <optional>
#include <string>

struct sqlite3;

namespace rlaif {

class JudgeCache {
 public:
  explicit JudgeCache(const std::string& path);  // creates the file and table if needed; throws rlaif::Error
  ~JudgeCache();
  std::optional<std::string> get(const std::string& key);
  void put(const std::string& key, const std::string& value);

 private:
  sqlite3* db_ = nullptr;
  std::string path_;
};

}  // namespace rlaif
