// Options that take one of a few names (loss_type = "dapo"): each is an enum with a table of its names. The name is
// parsed into the enum once, where the configuration is read (an unknown name is an error naming the file, key and line
// with the valid names), and the code branches on the enum.
#pragma once

#include <string>
#include <vector>

#include "rlaif/error.h"

namespace rlaif {

template <class E>
struct Choice {
  const char* name;
  E value;
};

template <class E>
using Choices = std::vector<Choice<E>>;

// "a, b or c".
template <class E>
std::string choice_list(const Choices<E>& choices) {
  std::string s;
  for (size_t i = 0; i < choices.size(); ++i)
    s += std::string(i == 0 ? "" : i + 1 == choices.size() ? " or " : ", ") + choices[i].name;
  return s;
}

// The name of `value` (as written in run.toml and the metrics).
template <class E>
std::string choice_name(E value, const Choices<E>& choices) {
  for (const auto& c : choices)
    if (c.value == value) return c.name;
  throw Error("internal: an option value has no name in its table");
}

// The value named `name`; throws rlaif::Error at `where` listing the valid names.
template <class E>
E parse_choice(const std::string& name, const Choices<E>& choices, const std::string& where) {
  for (const auto& c : choices)
    if (name == c.name) return c.value;
  throw Error("unknown value \"" + name + "\"", where, "use " + choice_list(choices));
}

}  // namespace rlaif
