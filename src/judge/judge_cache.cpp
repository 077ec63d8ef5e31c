#include "judge/judge_cache.h"

#include <sqlite3.h>

#include "rlaif/error.h"

namespace rlaif {

JudgeCache::JudgeCache(const std::string& path) : path_(path) {
  if (sqlite3_open(path.c_str(), &db_) != SQLITE_OK) {
    std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    db_ = nullptr;
    throw Error("cannot open the judge cache: " + msg, path, "check the path and its permissions");
  }
  sqlite3_busy_timeout(db_, 30000);  // ranks of a data-parallel job share one cache: wait for each other's writes
  char* err = nullptr;
  const char* schema =
      "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
      "CREATE TABLE IF NOT EXISTS judgments (key TEXT PRIMARY KEY, result TEXT NOT NULL, created REAL NOT NULL);";
  if (sqlite3_exec(db_, schema, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "unknown";
    sqlite3_free(err);
    sqlite3_close(db_);
    db_ = nullptr;
    throw Error("the judge cache is not a usable SQLite database: " + msg, path,
                "delete it (it is only a cache) or point cache to another file");
  }
}

JudgeCache::~JudgeCache() { sqlite3_close(db_); }

std::optional<std::string> JudgeCache::get(const std::string& key) {
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(db_, "SELECT result FROM judgments WHERE key = ?", -1, &st, nullptr);
  sqlite3_bind_text(st, 1, key.c_str(), static_cast<int>(key.size()), SQLITE_TRANSIENT);
  std::optional<std::string> out;
  if (sqlite3_step(st) == SQLITE_ROW) out = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
  sqlite3_finalize(st);
  return out;
}

void JudgeCache::put(const std::string& key, const std::string& value) {
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(db_, "INSERT OR REPLACE INTO judgments (key, result, created) VALUES (?, ?, julianday('now'))", -1,
                     &st, nullptr);
  sqlite3_bind_text(st, 1, key.c_str(), static_cast<int>(key.size()), SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 2, value.c_str(), static_cast<int>(value.size()), SQLITE_TRANSIENT);
  int rc = sqlite3_step(st);
  sqlite3_finalize(st);
  if (rc != SQLITE_DONE) throw Error(std::string("cannot write the judge cache: ") + sqlite3_errmsg(db_), path_);
}

}  // namespace rlaif
