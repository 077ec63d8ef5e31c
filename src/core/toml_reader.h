// Reading TOML tables with every key's type checked and unknown keys reported (a typo must not be silently ignored),
// naming file, key and line. Shared by judge.toml and run.toml. Internal to the library.
#pragma once

#include <toml++/toml.h>

#include <set>
#include <string>
#include <vector>

#include "rlaif/choices.h"
#include "rlaif/error.h"

namespace rlaif {

class TomlReader {
 public:
  TomlReader(const toml::table& t, std::string where) : t_(t), where_(std::move(where)) {}

  template <class T>
  void get(const char* key, T& out) {
    seen_.insert(key);
    const toml::node* n = t_.get(key);
    if (!n) return;
    if constexpr (std::is_same_v<T, std::string>) {
      if (!n->is_string()) fail(key, "a string");
      out = **n->as_string();
    } else if constexpr (std::is_same_v<T, bool>) {
      if (!n->is_boolean()) fail(key, "true or false");
      out = **n->as_boolean();
    } else if constexpr (std::is_integral_v<T>) {
      if (!n->is_integer()) fail(key, "an integer");
      out = static_cast<T>(**n->as_integer());
    } else {
      if (n->is_integer())
        out = static_cast<T>(**n->as_integer());
      else if (n->is_floating_point())
        out = static_cast<T>(**n->as_floating_point());
      else
        fail(key, "a number");
    }
  }
  // Reads one of the names in `choices` into its enum value.
  template <class E>
  void get_choice(const char* key, E& out, const Choices<E>& choices) {
    std::string name;
    get(key, name);
    if (const toml::node* n = t_.get(key)) out = parse_choice(name, choices, at(key, *n));
  }
  const toml::table* table(const char* key) {
    seen_.insert(key);
    const toml::node* n = t_.get(key);
    if (n && !n->is_table()) fail(key, "a table");
    return n ? n->as_table() : nullptr;
  }
  const toml::array* array(const char* key) {
    seen_.insert(key);
    const toml::node* n = t_.get(key);
    if (n && !n->is_array()) fail(key, "an array");
    return n ? n->as_array() : nullptr;
  }
  // Any key that was never asked for is a typo or an option that does not exist. `valid` defaults to every key
  // asked for.
  void check_unknown(std::string valid = "") const {
    if (valid.empty())
      for (const auto& k : seen_) valid += (valid.empty() ? "" : ", ") + k;
    for (const auto& [k, v] : t_)
      if (!seen_.count(std::string(k.str())))
        throw Error("unknown key \"" + std::string(k.str()) + "\"", at(std::string(k.str()), v),
                    "valid keys: " + valid);
  }
  // Reads a string or a list of strings.
  void get_strings(const char* key, std::vector<std::string>& out) {
    seen_.insert(key);
    const toml::node* n = t_.get(key);
    if (!n) return;
    out.clear();
    if (n->is_string()) {
      out.push_back(**n->as_string());
      return;
    }
    if (!n->is_array()) fail(key, "a string or a list of strings");
    for (const auto& e : *n->as_array()) {
      if (!e.is_string()) fail(key, "a string or a list of strings");
      out.push_back(**e.as_string());
    }
  }

 private:
  std::string at(const std::string& key, const toml::node& n) const {
    const auto line = n.source().begin.line;  // 0: the value came from --set
    return where_ + "." + key + (line ? " (line " + std::to_string(line) + ")" : " (--set)");
  }
  [[noreturn]] void fail(const char* key, const char* what) {
    throw Error(std::string("must be ") + what, at(key, *t_.get(key)), "see docs/config.md");
  }
  const toml::table& t_;
  std::string where_;
  std::set<std::string> seen_;
};

// Parses a TOML file; a syntax error names file and line.
toml::table parse_toml_file(const std::string& path);

}  // namespace rlaif
