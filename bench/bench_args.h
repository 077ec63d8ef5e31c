// Command-line options of the benchmarks: `--name value` pairs and bare `--flag`s. `--help` (or `-h`) prints the
// usage and exits 0; an unknown option, a missing value or a value that does not parse says which and exits 2.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>

namespace bench {

// The CPU's model name from /proc/cpuinfo, to print beside every figure.
inline std::string cpu_name() {
  std::ifstream f("/proc/cpuinfo");
  for (std::string line; std::getline(f, line);)
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown CPU";
}

class Args {
 public:
  explicit Args(std::string usage) : usage_(std::move(usage)) {}

  // `--name VALUE`, read by `set` (which may throw std::exception on a bad value).
  void value(const std::string& name, std::function<void(const std::string&)> set) { values_[name] = std::move(set); }
  void value(const std::string& name, std::string& out) {
    value(name, [&out](const std::string& v) { out = v; });
  }
  void value(const std::string& name, int& out) {
    value(name, [&out](const std::string& v) { out = static_cast<int>(whole(v)); });
  }
  void value(const std::string& name, int64_t& out) {
    value(name, [&out](const std::string& v) { out = whole(v); });
  }
  void value(const std::string& name, double& out) {
    value(name, [&out](const std::string& v) {
      size_t used = 0;
      out = std::stod(v, &used);
      if (used != v.size()) throw std::invalid_argument("not a number");
    });
  }
  // `--name` alone sets `out`.
  void flag(const std::string& name, bool& out) { flags_[name] = &out; }

  void parse(int argc, char** argv) const {
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      if (a == "--help" || a == "-h") {
        std::printf("%s", usage_.c_str());
        std::exit(0);
      }
      if (auto f = flags_.find(a); f != flags_.end()) {
        *f->second = true;
        continue;
      }
      auto v = values_.find(a);
      if (v == values_.end()) fail("unknown option " + a);
      if (i + 1 >= argc) fail(a + " needs a value");
      const std::string text = argv[++i];
      try {
        v->second(text);
      } catch (const std::exception&) {
        fail(a + ": cannot read '" + text + "'");
      }
    }
  }

 private:
  static int64_t whole(const std::string& v) {
    size_t used = 0;
    const long long n = std::stoll(v, &used);
    if (used != v.size()) throw std::invalid_argument("not a whole number");
    return n;
  }
  [[noreturn]] void fail(const std::string& what) const {
    std::fprintf(stderr, "%s\n%s", what.c_str(), usage_.c_str());
    std::exit(2);
  }

  std::string usage_;
  std::map<std::string, std::function<void(const std::string&)>> values_;
  std::map<std::string, bool*> flags_;
};

}  // namespace bench
