// Atomic file writes: write to a temporary name in the same folder, fsync, rename. A reader never sees a partial file.
#pragma once

#include <cstdio>
#include <string>

namespace rlaif {

// Writes `data` to `path` atomically. Throws rlaif::Error naming the path on any failure; the temporary is removed.
void write_file_atomic(const std::string& path, const std::string& data);

// A file being written under a temporary name; commit() makes it visible at `path`. Destroying an uncommitted
// AtomicFile removes the temporary, so an interrupted write leaves nothing that looks complete.
class AtomicFile {
 public:
  explicit AtomicFile(std::string path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t n);
  void write(const std::string& s) { write(s.data(), s.size()); }
  void commit();  // flush, fsync, rename; throws rlaif::Error
  const std::string& path() const { return path_; }

 private:
  std::string path_, tmp_;
  std::FILE* f_ = nullptr;
};

// Reads a whole file; throws rlaif::Error naming the path if it cannot.
std::string read_file(const std::string& path);

}  // namespace rlaif
