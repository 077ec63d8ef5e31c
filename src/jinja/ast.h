// The syntax tree of a chat template (internal): statements and expressions, as @huggingface/jinja parses them.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "jinja/value.h"

namespace rlaif::jinja {

struct Node;
using NodePtr = std::unique_ptr<Node>;
using Nodes = std::vector<NodePtr>;

struct Node {
  enum class Type {
    // statements
    Text,
    Output,
    If,
    For,
    Set,
    Macro,
    Break,
    Continue,
    FilterBlock,
    // expressions
    Literal,
    Identifier,
    ArrayLit,
    TupleLit,
    ObjectLit,
    Member,
    Slice,
    Call,
    Filter,
    Test,
    Unary,
    Binary,
    Ternary,
    Select,
    Kwarg
  };
  Type type;
  std::string name;   // identifier, operator, filter/test name, kwarg key
  Value literal;      // Literal
  NodePtr a, b, c;    // operands: object/test/lhs, property/rhs/value, else
  Nodes items;        // list/tuple/object entries (key, value pairs), call arguments
  Nodes body, other;  // statement bodies (other: else / elif branch)
  bool computed = false, negate = false;
  int line = 0;

  explicit Node(Type t, int ln = 0) : type(t), line(ln) {}
};

// Parses a template; throws rlaif::Error naming `where`, the line and what was expected.
Nodes parse_template(const std::string& source, const std::string& where);

}  // namespace rlaif::jinja
