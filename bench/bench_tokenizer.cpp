// Encode throughput of rlaif's tokenizer on a text file, as a fixed table row. The text is split into documents at
// the NUL bytes make_bench_text.py writes between them; encode_batch encodes them on --threads threads.
// Usage: bench_tokenizer --tokenizer DIR --text FILE --threads N [--repeat R]
// Prints: "rlaif <threads> <MB> <best seconds> <MB/s> <tokens>"
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "rlaif/atomic_file.h"
#include "rlaif/error.h"
#include "rlaif/tokenizer.h"

int main(int argc, char** argv) {
  std::string dir, text_path;
  int threads = 1, repeat = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--tokenizer")
      dir = v;
    else if (k == "--text")
      text_path = v;
    else if (k == "--threads")
      threads = std::stoi(v);
    else if (k == "--repeat")
      repeat = std::stoi(v);
  }
  if (dir.empty() || text_path.empty()) {
    std::fprintf(stderr, "usage: bench_tokenizer --tokenizer DIR --text FILE --threads N [--repeat R]\n");
    return 2;
  }
  try {
    auto tok = rlaif::Tokenizer::load(dir);
    std::string all = rlaif::read_file(text_path);
    std::vector<std::string> docs;
    for (size_t start = 0; start < all.size();) {
      size_t end = all.find('\0', start);
      if (end == std::string::npos) end = all.size();
      if (end > start) docs.push_back(all.substr(start, end - start));
      start = end + 1;
    }
    double best = 1e30;
    size_t tokens = 0;
    for (int r = 0; r < repeat; ++r) {
      auto t0 = std::chrono::steady_clock::now();
      auto ids = tok.encode_batch(docs, false, threads);
      double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      best = std::min(best, s);
      tokens = 0;
      for (const auto& v : ids) tokens += v.size();
    }
    double mb = static_cast<double>(all.size()) / 1e6;
    std::printf("rlaif %d %.2f %.3f %.2f %zu\n", threads, mb, best, mb / best, tokens);
    return 0;
  } catch (const rlaif::Error& e) {
    std::fprintf(stderr, "bench_tokenizer: %s\n", e.what());
    return 1;
  }
}
