// Runtime values of the chat-template interpreter (internal). They follow @huggingface/jinja (the implementation
// transformers.js uses), which is the reference the tests compare against: JavaScript-like printing of numbers and
// booleans, JSON printing of lists and objects, reference semantics for lists, objects and namespaces.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace rlaif::jinja {

struct Value;
using Array = std::vector<Value>;
using Object = std::vector<std::pair<std::string, Value>>;  // insertion-ordered
using Kwargs = Object;
using Function = std::function<Value(std::vector<Value>& args, Kwargs& kwargs)>;

struct Value {
  enum class Kind { Undefined, None, Bool, Int, Float, String, Array, Object, Namespace, Function };
  Kind kind = Kind::Undefined;
  bool b = false;
  int64_t i = 0;
  double f = 0;
  std::string s;
  std::shared_ptr<Array> arr;
  std::shared_ptr<Object> obj;  // Object and Namespace
  std::shared_ptr<Function> fn;

  static Value none();
  static Value boolean(bool v);
  static Value integer(int64_t v);
  static Value number(double v);
  static Value string(std::string v);
  static Value array(Array v = {});
  static Value object(Object v = {});
  static Value namespace_(Object v = {});
  static Value function(Function f);
  static Value from_json(const nlohmann::ordered_json& j);

  bool is(Kind k) const { return kind == k; }
  bool is_numeric() const { return kind == Kind::Int || kind == Kind::Float; }
  bool truthy() const;
  double as_double() const {
    return kind == Kind::Float ? f : kind == Kind::Int ? static_cast<double>(i) : (b ? 1 : 0);
  }
  // Object/namespace member, or nullptr.
  const Value* get(const std::string& key) const;
  void set(const std::string& key, Value v);
  const char* type_name() const;
};

// What {{ value }} prints ("" for none and undefined).
std::string to_output(const Value& v);
// JSON text as the reference's toJSON: separators ", " / ": " (or "," with indent); undefined as null (or "undefined").
std::string to_json(const Value& v, int indent = -1, bool undefined_as_null = true, int depth = 0);
// JavaScript's loose equality (==), as the reference uses for == and !=.
bool loose_equal(const Value& a, const Value& b);
// JavaScript's strict equality (===) of the underlying values, used by `in` on lists.
bool strict_equal(const Value& a, const Value& b);
// JavaScript's \s and String.prototype.trim() whitespace (which, unlike Python's, includes U+FEFF and not U+0085).
bool js_space(char32_t c);
// JavaScript's number printing: 3, 0.5, 1e+21.
std::string js_number(double v);

}  // namespace rlaif::jinja
