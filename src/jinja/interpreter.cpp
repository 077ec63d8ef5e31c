// The chat-template interpreter, with @huggingface/jinja's semantics (the reference transformers.js uses).
#include "jinja/interpreter.h"

#include <utf8proc.h>
#include <algorithm>
#include <cmath>
#include <ctime>
#include <unordered_map>

#include "core/unicode.h"
#include "rlaif/error.h"

namespace rlaif::jinja {
namespace {

using K = Value::Kind;

struct BreakSignal {};
struct ContinueSignal {};

struct Scope {
  std::unordered_map<std::string, Value> vars;
  const Scope* parent = nullptr;
  Value lookup(const std::string& name) const {
    for (const Scope* s = this; s; s = s->parent) {
      auto it = s->vars.find(name);
      if (it != s->vars.end()) return it->second;
    }
    return Value();
  }
};

std::vector<char32_t> cps(const std::string& s) {
  std::vector<char32_t> out;
  for (size_t i = 0; i < s.size();) out.push_back(unicode::next_cp(s, i));
  return out;
}
std::string utf8(const std::vector<char32_t>& v, size_t a, size_t b) {
  std::string out;
  for (size_t i = a; i < b; ++i) unicode::append_utf8(out, v[i]);
  return out;
}

std::string js_trim(const std::string& s, bool left, bool right) {
  auto v = cps(s);
  size_t a = 0, b = v.size();
  while (left && a < b && js_space(v[a])) ++a;
  while (right && b > a && js_space(v[b - 1])) --b;
  return utf8(v, a, b);
}

std::string map_case(const std::string& s, bool upper) {
  std::string out;
  for (char32_t c : cps(s))
    unicode::append_utf8(out, static_cast<char32_t>(upper ? utf8proc_toupper(static_cast<utf8proc_int32_t>(c))
                                                          : utf8proc_tolower(static_cast<utf8proc_int32_t>(c))));
  return out;
}

bool ascii_word(char32_t c) { return c < 0x80 && (std::isalnum(static_cast<int>(c)) || c == '_'); }

std::string title_case(const std::string& s) {  // /\b\w/g -> upper (JavaScript's \w is ASCII)
  auto v = cps(s);
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) {
    bool start = ascii_word(v[i]) && (i == 0 || !ascii_word(v[i - 1]));
    unicode::append_utf8(out, start ? static_cast<char32_t>(std::toupper(static_cast<int>(v[i]))) : v[i]);
  }
  return out;
}

std::string replace_all(const std::string& s, const std::string& from, const std::string& to, int64_t count) {
  if (count == 0) return s;
  int64_t left = count < 0 ? INT64_MAX : count;
  std::string out;
  if (from.empty()) {  // inserts between characters, as (?=) does
    auto v = cps(s);
    for (size_t i = 0; i <= v.size(); ++i) {
      if (left > 0) {
        out += to;
        --left;
      }
      if (i < v.size()) unicode::append_utf8(out, v[i]);
    }
    return out;
  }
  size_t pos = 0;
  while (left > 0) {
    size_t at = s.find(from, pos);
    if (at == std::string::npos) break;
    out.append(s, pos, at - pos);
    out += to;
    pos = at + from.size();
    --left;
  }
  return out + s.substr(pos);
}

std::vector<Value> slice_items(const std::vector<Value>& items, const Value& start, const Value& stop,
                               const Value& step_v) {
  int64_t n = static_cast<int64_t>(items.size());
  int64_t step = step_v.is(K::Int) ? step_v.i : 1;
  if (step == 0) throw std::runtime_error("slice step cannot be zero");
  int64_t a, b;
  if (step > 0) {
    a = start.is(K::Int) ? (start.i < 0 ? std::max(n + start.i, int64_t{0}) : std::min(start.i, n)) : 0;
    b = stop.is(K::Int) ? (stop.i < 0 ? std::max(n + stop.i, int64_t{0}) : std::min(stop.i, n)) : n;
  } else {
    a = start.is(K::Int) ? (start.i < 0 ? std::max(n + start.i, int64_t{-1}) : std::min(start.i, n - 1)) : n - 1;
    b = stop.is(K::Int) ? (stop.i < -1 ? std::max(n + stop.i, int64_t{-1}) : std::min(stop.i, n - 1)) : -1;
  }
  std::vector<Value> out;
  for (int64_t i = a; step > 0 ? i < b : i > b; i += step) out.push_back(items[static_cast<size_t>(i)]);
  return out;
}

std::string strftime_js(const std::string& fmt) {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  localtime_r(&now, &tm);
  static const char* const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  static const char* const long_months[] = {"January", "February", "March",     "April",   "May",      "June",
                                            "July",    "August",   "September", "October", "November", "December"};
  auto pad2 = [](int n) { return (n < 10 ? "0" : "") + std::to_string(n); };
  std::string out;
  for (size_t i = 0; i < fmt.size(); ++i) {
    if (fmt[i] != '%' || i + 1 >= fmt.size()) {
      out += fmt[i];
      continue;
    }
    char c = fmt[++i];
    switch (c) {
      case 'Y':
        out += std::to_string(tm.tm_year + 1900);
        break;
      case 'm':
        out += pad2(tm.tm_mon + 1);
        break;
      case 'd':
        out += pad2(tm.tm_mday);
        break;
      case 'b':
        out += months[tm.tm_mon];
        break;
      case 'B':
        out += long_months[tm.tm_mon];
        break;
      case 'H':
        out += pad2(tm.tm_hour);
        break;
      case 'M':
        out += pad2(tm.tm_min);
        break;
      case '%':
        out += '%';
        break;
      default:
        out += '%';
        out += c;
    }
  }
  return out;
}

// Compares two values for sorting (numbers, or strings case-insensitively unless case_sensitive).
int compare_values(const Value& a, const Value& b, bool case_sensitive) {
  auto numeric = [](const Value& v) { return v.is_numeric() || v.is(K::Bool); };
  if (numeric(a) && numeric(b)) return a.as_double() < b.as_double() ? -1 : a.as_double() > b.as_double() ? 1 : 0;
  if (a.is(K::String) && b.is(K::String)) {
    std::string x = case_sensitive ? a.s : map_case(a.s, false), y = case_sensitive ? b.s : map_case(b.s, false);
    return x < y ? -1 : x > y ? 1 : 0;
  }
  throw std::runtime_error(std::string("cannot compare ") + a.type_name() + " with " + b.type_name());
}

Value attribute_path(const Value& item, const std::string& path) {
  Value v = item;
  size_t start = 0;
  while (true) {
    size_t dot = path.find('.', start);
    std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (v.obj) {
      const Value* e = v.get(part);
      if (!e) return Value();
      v = *e;
    } else if (v.is(K::Array)) {
      char* end = nullptr;
      long idx = std::strtol(part.c_str(), &end, 10);
      if (!end || *end || idx < 0 || idx >= static_cast<long>(v.arr->size())) return Value();
      v = (*v.arr)[static_cast<size_t>(idx)];
    } else {
      return Value();
    }
    if (dot == std::string::npos) return v;
    start = dot + 1;
  }
}

class Interpreter {
 public:
  static constexpr size_t kMaxStringBytes = size_t{64} << 20, kMaxListItems = 1000000;
  static constexpr int kMaxCallDepth = 64, kMaxValueNesting = 100;
  explicit Interpreter(std::string where) : where_(std::move(where)) {}
  [[noreturn]] void fail(const std::string& what) {
    throw Error("chat template error: " + what, where_ + ":" + std::to_string(line_),
                "the template or the messages given to it do not fit together");
  }

  std::string block(const Nodes& nodes, Scope& scope) {
    std::string out;
    for (const auto& n : nodes) {
      line_ = n->line;
      switch (n->type) {
        case Node::Type::Text:
          out += n->name;
          break;
        case Node::Type::Output:
          out += to_output(eval(*n->a, scope));
          break;
        case Node::Type::If:
          out += block(eval(*n->a, scope).truthy() ? n->body : n->other, scope);
          break;
        case Node::Type::For:
          out += run_for(*n, scope);
          break;
        case Node::Type::Set:
          run_set(*n, scope);
          break;
        case Node::Type::Macro:
          define_macro(*n, scope);
          break;
        case Node::Type::Break:
          throw BreakSignal();
        case Node::Type::Continue:
          throw ContinueSignal();
        case Node::Type::FilterBlock: {
          Value body = Value::string(block(n->body, scope));
          out += to_output(apply_filter(body, *n->a, scope));
          break;
        }
        default:
          out += to_output(eval(*n, scope));
      }
    }
    return out;
  }

 private:
  std::string run_for(const Node& n, Scope& outer) {
    Scope scope;
    scope.parent = &outer;
    const Node* iter_node = n.b.get();
    const Node* cond = nullptr;
    if (iter_node->type == Node::Type::Select) {
      cond = iter_node->b.get();
      iter_node = iter_node->a.get();
    }
    Value iterable = eval(*iter_node, scope);
    std::vector<Value> all;
    if (iterable.is(K::Array))
      all = *iterable.arr;
    else if (iterable.is(K::Object))
      for (const auto& [k, v] : *iterable.obj) all.push_back(Value::string(k));
    else
      fail(std::string("for loop over ") + iterable.type_name() + ": expected a list or an object");
    auto bind = [&](Scope& s, const Value& item) {
      if (n.a->type == Node::Type::Identifier) {
        s.vars[n.a->name] = item;
        return;
      }
      if (!item.is(K::Array)) fail(std::string("cannot unpack ") + item.type_name() + " into the loop variables");
      if (item.arr->size() != n.a->items.size()) fail("wrong number of items to unpack in the for loop");
      for (size_t k = 0; k < n.a->items.size(); ++k) {
        if (n.a->items[k]->type != Node::Type::Identifier) fail("loop variables must be names");
        s.vars[n.a->items[k]->name] = (*item.arr)[k];
      }
    };
    std::vector<Value> items;
    for (const auto& item : all) {
      if (cond) {
        Scope test_scope;
        test_scope.parent = &scope;
        bind(test_scope, item);
        if (!eval(*cond, test_scope).truthy()) continue;
      }
      items.push_back(item);
    }
    std::string out;
    bool iterated = false;
    for (size_t i = 0; i < items.size(); ++i) {
      int64_t len = static_cast<int64_t>(items.size()), k = static_cast<int64_t>(i);
      scope.vars["loop"] = Value::object({{"index", Value::integer(k + 1)},
                                          {"index0", Value::integer(k)},
                                          {"revindex", Value::integer(len - k)},
                                          {"revindex0", Value::integer(len - k - 1)},
                                          {"first", Value::boolean(i == 0)},
                                          {"last", Value::boolean(i + 1 == items.size())},
                                          {"length", Value::integer(len)},
                                          {"previtem", i > 0 ? items[i - 1] : Value()},
                                          {"nextitem", i + 1 < items.size() ? items[i + 1] : Value()}});
      bind(scope, items[i]);
      try {
        out += block(n.body, scope);
      } catch (const ContinueSignal&) {
        continue;
      } catch (const BreakSignal&) {
        break;
      }
      iterated = true;
    }
    if (!iterated) out += block(n.other, scope);
    return out;
  }

  void run_set(const Node& n, Scope& scope) {
    Value rhs = n.b ? eval(*n.b, scope) : Value::string(block(n.body, scope));
    const Node& target = *n.a;
    if (target.type == Node::Type::Identifier) {
      scope.vars[target.name] = rhs;
    } else if (target.type == Node::Type::TupleLit) {
      if (!rhs.is(K::Array)) fail(std::string("cannot unpack ") + rhs.type_name() + " in set");
      if (rhs.arr->size() != target.items.size()) fail("wrong number of items to unpack in set");
      for (size_t k = 0; k < target.items.size(); ++k) scope.vars[target.items[k]->name] = (*rhs.arr)[k];
    } else if (target.type == Node::Type::Member && !target.computed) {
      Value object = eval(*target.a, scope);
      if (!object.is(K::Namespace)) fail("attributes can only be assigned on a namespace()");
      check_nesting(rhs, object.obj.get());
      object.set(target.b->name, rhs);
    } else {
      fail("invalid target of set");
    }
  }

  void define_macro(const Node& n, Scope& scope) {
    const Node* macro = &n;
    Scope* defined_in = &scope;
    scope.vars[n.name] = Value::function([this, macro, defined_in](std::vector<Value>& args, Kwargs& kwargs) {
      struct Depth {  // macro calls nest a bounded depth: one that calls itself without end is an error, not a crash
        int& d;
        ~Depth() { --d; }
      } depth{++call_depth_};
      if (call_depth_ > kMaxCallDepth) fail("macro calls nest deeper than " + std::to_string(kMaxCallDepth));
      Scope s;
      s.parent = defined_in;
      for (size_t k = 0; k < macro->items.size(); ++k) {
        const Node& p = *macro->items[k];
        const std::string& name = p.name;
        Value v;
        bool given = false;
        for (const auto& [key, val] : kwargs)
          if (key == name) v = val, given = true;
        if (!given && k < args.size()) v = args[k], given = true;
        if (!given && p.type == Node::Type::Kwarg) v = eval(*p.a, s);
        s.vars[name] = v;
      }
      return Value::string(block(macro->body, s));
    });
  }

  Value eval(const Node& n, Scope& scope) {
    switch (n.type) {
      case Node::Type::Literal:
        return n.literal;
      case Node::Type::Identifier:
        return scope.lookup(n.name);
      case Node::Type::ArrayLit:
      case Node::Type::TupleLit: {
        Array a;
        for (const auto& e : n.items) a.push_back(eval(*e, scope));
        return Value::array(std::move(a));
      }
      case Node::Type::ObjectLit: {
        Object o;
        for (size_t k = 0; k + 1 < n.items.size(); k += 2) {
          Value key = eval(*n.items[k], scope);
          if (!key.is(K::String)) fail("object literal keys must be strings");
          o.emplace_back(key.s, eval(*n.items[k + 1], scope));
        }
        return Value::object(std::move(o));
      }
      case Node::Type::Member:
        return member(n, scope);
      case Node::Type::Call:
        return call(n, scope);
      case Node::Type::Filter:
        return apply_filter(eval(*n.a, scope), n, scope);
      case Node::Type::Test:
        return Value::boolean(run_test(n, scope) != n.negate);
      case Node::Type::Unary: {
        Value v = eval(*n.a, scope);
        if (n.name == "not") return Value::boolean(!v.truthy());
        double sign = n.name == "-" ? -1 : 1;
        if (v.is(K::Float)) return Value::number(sign * v.f);
        if (v.is(K::Int) || v.is(K::Bool))
          return Value::integer(static_cast<int64_t>(sign) * (v.is(K::Int) ? v.i : v.b));
        fail("unary " + n.name + " on " + v.type_name());
      }
      case Node::Type::Binary:
        return binary(n, scope);
      case Node::Type::Ternary:
        return eval(*n.a, scope).truthy() ? eval(*n.b, scope) : eval(*n.c, scope);
      case Node::Type::Select:
        return eval(*n.b, scope).truthy() ? eval(*n.a, scope) : Value();
      default:
        fail("this construct cannot be used as a value");
    }
  }

  // Values a template builds out of namespaces nest a bounded depth and never hold themselves (which would make a
  // reference cycle, an endless tojson and a destructor that recurses past the stack): `v` must not reach `holder`.
  // Walked with a stack of its own, not recursion.
  void check_nesting(const Value& v, const Object* holder) {
    std::vector<std::pair<const Value*, int>> todo = {{&v, 1}};
    while (!todo.empty()) {
      auto [x, depth] = todo.back();
      todo.pop_back();
      if (depth > kMaxValueNesting) fail("a value nests deeper than " + std::to_string(kMaxValueNesting) + " levels");
      if (x->is(K::Array))
        for (const auto& e : *x->arr) todo.push_back({&e, depth + 1});
      if (x->is(K::Object) || x->is(K::Namespace)) {
        if (x->obj.get() == holder) fail("a namespace cannot hold itself");
        for (const auto& [k, e] : *x->obj) todo.push_back({&e, depth + 1});
      }
    }
  }

  // An integral double as an integer when it fits in 64 bits, else as a number.
  static Value whole(double x) {
    return std::isfinite(x) && std::abs(x) < 9.2e18 ? Value::integer(static_cast<int64_t>(x)) : Value::number(x);
  }

  // Strings and lists a template builds are bounded, so that a hostile one cannot exhaust memory.
  Value bounded_string(std::string s) {
    if (s.size() > kMaxStringBytes) fail("a string grew past " + std::to_string(kMaxStringBytes >> 20) + " MiB");
    return Value::string(std::move(s));
  }

  Value binary(const Node& n, Scope& scope) {
    Value l = eval(*n.a, scope);
    const std::string& op = n.name;
    if (op == "and") return l.truthy() ? eval(*n.b, scope) : l;
    if (op == "or") return l.truthy() ? l : eval(*n.b, scope);
    Value r = eval(*n.b, scope);
    if (op == "==") return Value::boolean(loose_equal(l, r));
    if (op == "!=") return Value::boolean(!loose_equal(l, r));
    if (l.is(K::Undefined) || r.is(K::Undefined)) {
      if (r.is(K::Undefined) && (op == "in" || op == "not in")) return Value::boolean(op == "not in");
      fail("operation " + op + " on an undefined value");
    }
    if (l.is(K::None) || r.is(K::None)) fail("operation " + op + " on none");
    if (op == "~") return bounded_string(to_output_plain(l) + to_output_plain(r));
    if (l.is_numeric() && r.is_numeric()) {
      bool is_float = l.is(K::Float) || r.is(K::Float);
      double a = l.as_double(), b = r.as_double();
      if (op == "+" || op == "-" || op == "*") {
        int64_t k = 0;  // integers past 64 bits become numbers, as in JavaScript's Jinja (never overflow)
        if (!is_float && !(op == "+"   ? __builtin_add_overflow(l.i, r.i, &k)
                           : op == "-" ? __builtin_sub_overflow(l.i, r.i, &k)
                                       : __builtin_mul_overflow(l.i, r.i, &k)))
          return Value::integer(k);
        return Value::number(op == "+" ? a + b : op == "-" ? a - b : a * b);
      }
      if (op == "/") return Value::number(a / b);
      if (op == "//") return is_float ? Value::number(std::floor(a / b)) : whole(std::floor(a / b));
      if (op == "%")
        return is_float ? Value::number(std::fmod(a, b)) : Value::integer(r.i == 0 || r.i == -1 ? 0 : l.i % r.i);
      if (op == "**") return is_float || b < 0 ? Value::number(std::pow(a, b)) : whole(std::pow(a, b));
      if (op == "<") return Value::boolean(a < b);
      if (op == ">") return Value::boolean(a > b);
      if (op == "<=") return Value::boolean(a <= b);
      if (op == ">=") return Value::boolean(a >= b);
    } else if (l.is(K::Array) && r.is(K::Array) && op == "+") {
      if (l.arr->size() + r.arr->size() > kMaxListItems)
        fail("a list grew past " + std::to_string(kMaxListItems) + " items");
      Array a = *l.arr;
      a.insert(a.end(), r.arr->begin(), r.arr->end());
      return Value::array(std::move(a));
    } else if (r.is(K::Array) && (op == "in" || op == "not in")) {
      bool found = std::any_of(r.arr->begin(), r.arr->end(), [&](const Value& x) { return strict_equal(x, l); });
      return Value::boolean(found == (op == "in"));
    }
    if ((l.is(K::String) || r.is(K::String)) && op == "+")
      return bounded_string(to_output_plain(l) + to_output_plain(r));
    if (l.is(K::String) && r.is(K::String) && (op == "in" || op == "not in"))
      return Value::boolean((r.s.find(l.s) != std::string::npos) == (op == "in"));
    if (l.is(K::String) && r.is(K::Object) && (op == "in" || op == "not in"))
      return Value::boolean((r.get(l.s) != nullptr) == (op == "in"));
    fail("unsupported operator " + op + " between " + l.type_name() + " and " + r.type_name());
  }

  // JavaScript's value.toString() as `+` and `~` use it.
  static std::string to_output_plain(const Value& v) {
    if (v.is(K::Int)) return std::to_string(v.i);
    if (v.is(K::Float)) return js_number(v.f);
    if (v.is(K::Bool)) return v.b ? "true" : "false";
    if (v.is(K::String)) return v.s;
    if (v.is(K::Array) || v.obj) {  // JavaScript joins arrays with "," and prints Maps as [object Map]
      if (v.is(K::Array)) {
        std::string out;
        for (size_t k = 0; k < v.arr->size(); ++k) out += (k ? "," : "") + to_output_plain((*v.arr)[k]);
        return out;
      }
      return "[object Map]";
    }
    return "";
  }

  Value string_method(const std::string& s, const std::string& name) {
    if (name == "length") return Value::integer(static_cast<int64_t>(cps(s).size()));
    auto fn = [&](Function f) { return Value::function(std::move(f)); };
    if (name == "upper") return fn([s](auto&, auto&) { return Value::string(map_case(s, true)); });
    if (name == "lower") return fn([s](auto&, auto&) { return Value::string(map_case(s, false)); });
    if (name == "strip") return fn([s](auto&, auto&) { return Value::string(js_trim(s, true, true)); });
    if (name == "lstrip") return fn([s](auto&, auto&) { return Value::string(js_trim(s, true, false)); });
    if (name == "rstrip") return fn([s](auto&, auto&) { return Value::string(js_trim(s, false, true)); });
    if (name == "title") return fn([s](auto&, auto&) { return Value::string(title_case(s)); });
    if (name == "capitalize")
      return fn([s](auto&, auto&) {
        auto v = cps(s);
        if (v.empty()) return Value::string("");
        return Value::string(map_case(utf8(v, 0, 1), true) + utf8(v, 1, v.size()));
      });
    if (name == "startswith" || name == "endswith") {
      bool start = name == "startswith";
      return fn([this, s, start](std::vector<Value>& args, Kwargs&) {
        if (args.empty()) fail("startswith()/endswith() needs an argument");
        auto check = [&](const std::string& p) {
          return p.size() <= s.size() &&
                 (start ? s.compare(0, p.size(), p) == 0 : s.compare(s.size() - p.size(), p.size(), p) == 0);
        };
        if (args[0].is(K::String)) return Value::boolean(check(args[0].s));
        if (args[0].is(K::Array)) {
          for (const auto& p : *args[0].arr) {
            if (!p.is(K::String)) fail("startswith()/endswith() tuple elements must be strings");
            if (check(p.s)) return Value::boolean(true);
          }
          return Value::boolean(false);
        }
        fail("startswith()/endswith() argument must be a string or a tuple of strings");
      });
    }
    if (name == "split")
      return fn([this, s](std::vector<Value>& args, Kwargs&) {
        Value sep = args.size() > 0 ? args[0] : Value::none();
        int64_t maxsplit = args.size() > 1 && args[1].is(K::Int) ? args[1].i : -1;
        Array out;
        if (sep.is(K::None)) {
          auto v = cps(js_trim(s, true, false));
          size_t i = 0;
          while (i < v.size()) {
            size_t a = i;
            while (i < v.size() && !js_space(v[i])) ++i;
            if (maxsplit != -1 && static_cast<int64_t>(out.size()) >= maxsplit) {
              out.push_back(Value::string(utf8(v, a, v.size())));
              break;
            }
            out.push_back(Value::string(utf8(v, a, i)));
            while (i < v.size() && js_space(v[i])) ++i;
          }
          return Value::array(std::move(out));
        }
        if (!sep.is(K::String)) fail("split() separator must be a string or none");
        if (sep.s.empty()) fail("split() with an empty separator");
        size_t pos = 0;
        while (true) {
          size_t at = s.find(sep.s, pos);
          if (at == std::string::npos || (maxsplit != -1 && static_cast<int64_t>(out.size()) >= maxsplit)) {
            out.push_back(Value::string(s.substr(pos)));
            break;
          }
          out.push_back(Value::string(s.substr(pos, at - pos)));
          pos = at + sep.s.size();
        }
        return Value::array(std::move(out));
      });
    if (name == "replace")
      return fn([this, s](std::vector<Value>& args, Kwargs& kwargs) {
        if (args.size() < 2 || !args[0].is(K::String) || !args[1].is(K::String)) fail("replace() needs two strings");
        int64_t count = -1;
        if (args.size() > 2 && args[2].is(K::Int)) count = args[2].i;
        for (const auto& [k, v] : kwargs)
          if (k == "count" && v.is(K::Int)) count = v.i;
        return Value::string(replace_all(s, args[0].s, args[1].s, count));
      });
    return Value();
  }

  Value object_method(const Value& object, const std::string& name) {
    auto o = object;
    if (name == "items" || name == "keys" || name == "values")
      return Value::function([o, name](auto&, auto&) {
        Array a;
        for (const auto& [k, v] : *o.obj)
          a.push_back(name == "items" ? Value::array({Value::string(k), v}) : name == "keys" ? Value::string(k) : v);
        return Value::array(std::move(a));
      });
    if (name == "get")
      return Value::function([this, o](std::vector<Value>& args, Kwargs&) {
        if (args.empty() || !args[0].is(K::String)) fail("get() needs a string key");
        const Value* v = o.get(args[0].s);
        return v ? *v : args.size() > 1 ? args[1] : Value::none();
      });
    return Value();
  }

  Value member(const Node& n, Scope& scope) {
    Value object = eval(*n.a, scope);
    if (n.computed && n.b->type == Node::Type::Slice) {
      const Node& sl = *n.b;
      Value a = sl.a ? eval(*sl.a, scope) : Value(), b = sl.b ? eval(*sl.b, scope) : Value(),
            c = sl.c ? eval(*sl.c, scope) : Value();
      for (const Value* v : {&a, &b, &c})
        if (!v->is(K::Int) && !v->is(K::Undefined)) fail("slice bounds must be integers");
      if (object.is(K::Array)) return Value::array(slice_items(*object.arr, a, b, c));
      if (object.is(K::String)) {
        std::vector<Value> chars;
        for (char32_t cp : cps(object.s)) {
          std::string ch;
          unicode::append_utf8(ch, cp);
          chars.push_back(Value::string(ch));
        }
        std::string out;
        for (const auto& ch : slice_items(chars, a, b, c)) out += ch.s;
        return Value::string(out);
      }
      fail(std::string("slice of ") + object.type_name());
    }
    Value property =
        n.computed ? eval(*n.b, scope) : (n.b->type == Node::Type::Literal ? n.b->literal : Value::string(n.b->name));
    if (object.obj) {
      if (!property.is(K::String)) fail(std::string("object key must be a string, got ") + property.type_name());
      if (const Value* v = object.get(property.s)) return *v;
      return object.is(K::Object) ? object_method(object, property.s) : Value();
    }
    if (object.is(K::Array) || object.is(K::String)) {
      if (property.is(K::Int)) {
        if (object.is(K::Array)) {
          int64_t size = static_cast<int64_t>(object.arr->size()), i = property.i < 0 ? property.i + size : property.i;
          return i >= 0 && i < size ? (*object.arr)[static_cast<size_t>(i)] : Value();
        }
        auto v = cps(object.s);
        int64_t size = static_cast<int64_t>(v.size()), i = property.i < 0 ? property.i + size : property.i;
        return i >= 0 && i < size ? Value::string(utf8(v, static_cast<size_t>(i), static_cast<size_t>(i) + 1))
                                  : Value();
      }
      if (property.is(K::String)) {
        if (object.is(K::Array))
          return property.s == "length" ? Value::integer(static_cast<int64_t>(object.arr->size())) : Value();
        return string_method(object.s, property.s);
      }
      fail(std::string("index of type ") + property.type_name());
    }
    return Value();
  }

  void arguments(const Nodes& nodes, Scope& scope, std::vector<Value>& args, Kwargs& kwargs) {
    for (const auto& a : nodes) {
      if (a->type == Node::Type::Kwarg)
        kwargs.emplace_back(a->name, eval(*a->a, scope));
      else
        args.push_back(eval(*a, scope));
    }
  }

  Value call(const Node& n, Scope& scope) {
    std::vector<Value> args;
    Kwargs kwargs;
    arguments(n.items, scope, args, kwargs);
    Value f = eval(*n.a, scope);
    if (!f.is(K::Function)) {
      std::string what = n.a->type == Node::Type::Identifier                 ? "function '" + n.a->name + "'"
                         : n.a->type == Node::Type::Member && !n.a->computed ? "method '." + n.a->b->name + "()'"
                                                                             : "call";
      fail("unknown " + what + " (on " + f.type_name() + ")");
    }
    return (*f.fn)(args, kwargs);
  }

 public:
  // raise_exception, namespace, range and strftime_now, as the reference defines them.
  void install_globals(Scope& globals) {
    globals.vars["raise_exception"] = Value::function([this](std::vector<Value>& args, Kwargs&) -> Value {
      std::string msg = args.empty() ? "" : to_output_plain(args[0]);
      throw Error("chat template raised an exception: " + msg, where_ + ":" + std::to_string(line_),
                  "the conversation does not have the shape this template accepts");
    });
    globals.vars["namespace"] =
        Value::function([this](std::vector<Value>& a, Kwargs& k) { return make_namespace(a, k); });
    globals.vars["range"] = Value::function([this](std::vector<Value>& a, Kwargs&) { return make_range(a); });
    globals.vars["strftime_now"] = Value::function([this](std::vector<Value>& a, Kwargs&) {
      if (a.empty() || !a[0].is(K::String)) fail("strftime_now() needs a format string");
      return Value::string(strftime_js(a[0].s));
    });
  }

 private:
  Value make_namespace(std::vector<Value>& args, Kwargs& kwargs) {
    Object entries;
    if (args.size() > 1) fail("namespace() takes at most one positional argument");
    if (args.size() == 1) {
      if (args[0].is(K::Object))
        entries = *args[0].obj;
      else
        fail("namespace() argument must be an object");
    }
    Value ns = Value::namespace_(std::move(entries));
    for (auto& [k, v] : kwargs) ns.set(k, v);
    check_nesting(ns, nullptr);
    return ns;
  }

  Value make_range(std::vector<Value>& args) {
    for (const auto& a : args)
      if (!a.is(K::Int)) fail("range() arguments must be integers");
    int64_t start = 0, stop = 0, step = 1;
    if (args.size() == 1)
      stop = args[0].i;
    else if (args.size() >= 2)
      start = args[0].i, stop = args[1].i;
    if (args.size() >= 3) step = args[2].i;
    if (step == 0) fail("range() step must not be zero");
    const double count =
        std::ceil((static_cast<double>(stop) - static_cast<double>(start)) / static_cast<double>(step));
    if (count > kMaxListItems) fail("range() of more than " + std::to_string(kMaxListItems) + " numbers");
    Array out;
    for (int64_t i = start, k = 0; k < count; ++k, i += step) out.push_back(Value::integer(i));
    return Value::array(std::move(out));
  }

  bool run_test(const Node& n, Scope& scope) {
    Value v = eval(*n.a, scope);
    const std::string& t = n.name;
    if (t == "defined") return !v.is(K::Undefined);
    if (t == "undefined") return v.is(K::Undefined);
    if (t == "none") return v.is(K::None);
    if (t == "boolean") return v.is(K::Bool);
    if (t == "true") return v.is(K::Bool) && v.b;
    if (t == "false") return v.is(K::Bool) && !v.b;
    if (t == "string") return v.is(K::String);
    if (t == "number") return v.is_numeric();
    if (t == "integer") return v.is(K::Int);
    if (t == "iterable") return v.is(K::Array) || v.is(K::String);
    if (t == "mapping") return v.is(K::Object);
    if (t == "sequence") return v.is(K::Array) || v.is(K::Object) || v.is(K::String);
    if (t == "callable") return v.is(K::Function);
    if (t == "odd" || t == "even") {
      if (!v.is(K::Int)) fail("test '" + t + "' on " + v.type_name());
      return (v.i % 2 != 0) == (t == "odd");
    }
    if (t == "lower") return v.is(K::String) && v.s == map_case(v.s, false);
    if (t == "upper") return v.is(K::String) && v.s == map_case(v.s, true);
    if (t == "equalto" || t == "eq") {
      std::vector<Value> args;
      Kwargs kw;
      arguments(n.items, scope, args, kw);
      return !args.empty() && strict_equal(v, args[0]);
    }
    fail("unsupported test 'is " + t + "'");
  }

  bool named_test(const std::string& t, const Value& v, const Value& arg) {
    if (t == "defined") return !v.is(K::Undefined);
    if (t == "none") return v.is(K::None);
    if (t == "string") return v.is(K::String);
    if (t == "equalto" || t == "eq") return strict_equal(v, arg);
    if (t == "true") return v.is(K::Bool) && v.b;
    if (t == "false") return v.is(K::Bool) && !v.b;
    fail("unsupported test '" + t + "' in selectattr/rejectattr");
  }

  Value apply_filter(const Value& v, const Node& f, Scope& scope) {
    const std::string& name = f.name;
    std::vector<Value> args;
    Kwargs kwargs;
    arguments(f.items, scope, args, kwargs);
    auto kw = [&](const char* key, size_t pos, Value dflt) {
      if (pos < args.size()) return args[pos];
      for (const auto& [k, val] : kwargs)
        if (k == key) return val;
      return dflt;
    };
    if (name == "safe") return v;
    if (name == "tojson") {
      Value indent = kw("indent", 99, Value::none());
      return Value::string(to_json(v, indent.is(K::Int) ? static_cast<int>(indent.i) : -1));
    }
    if (name == "default") {
      Value dflt = args.empty() ? Value::string("") : args[0];
      Value boolean = kw("boolean", 1, Value::boolean(false));
      return v.is(K::Undefined) || (boolean.truthy() && !v.truthy()) ? dflt : v;
    }
    if (name == "join" && (v.is(K::Array) || v.is(K::String))) {
      std::string sep = kw("separator", 0, Value::string("")).s, out;
      if (v.is(K::String)) {
        auto c = cps(v.s);
        for (size_t k = 0; k < c.size(); ++k) out += (k ? sep : "") + utf8(c, k, k + 1);
      } else {
        for (size_t k = 0; k < v.arr->size(); ++k) out += (k ? sep : "") + to_output_plain((*v.arr)[k]);
      }
      return Value::string(out);
    }
    if (v.is(K::Array)) {
      const Array& a = *v.arr;
      if (name == "list") return v;
      if (name == "first") return a.empty() ? Value() : a.front();
      if (name == "last") return a.empty() ? Value() : a.back();
      if (name == "length") return Value::integer(static_cast<int64_t>(a.size()));
      if (name == "reverse") return Value::array(Array(a.rbegin(), a.rend()));
      if (name == "string") return Value::string(to_json(v, -1, false));
      if (name == "unique") {
        Array out;
        for (const auto& x : a)
          if (std::none_of(out.begin(), out.end(), [&](const Value& y) { return strict_equal(x, y); }))
            out.push_back(x);
        return Value::array(std::move(out));
      }
      if (name == "sort") {
        bool reverse = kw("reverse", 0, Value::boolean(false)).truthy();
        bool cs = kw("case_sensitive", 1, Value::boolean(false)).truthy();
        Value attr = kw("attribute", 2, Value::none());
        Array out = a;
        auto key = [&](const Value& x) {
          return attr.is(K::None) ? x : attribute_path(x, attr.is(K::Int) ? std::to_string(attr.i) : attr.s);
        };
        try {
          std::stable_sort(out.begin(), out.end(), [&](const Value& x, const Value& y) {
            int c = compare_values(key(x), key(y), cs);
            return reverse ? c > 0 : c < 0;
          });
        } catch (const std::runtime_error& e) {
          fail(e.what());
        }
        return Value::array(std::move(out));
      }
      if (name == "selectattr" || name == "rejectattr") {
        bool select = name == "selectattr";
        if (args.empty() || !args[0].is(K::String)) fail(name + " needs an attribute name");
        Array out;
        for (const auto& item : a) {
          if (!item.obj) fail(name + " can only be applied to a list of objects");
          const Value* attr = item.get(args[0].s);
          bool r = attr && (args.size() > 1 ? named_test(args[1].s, *attr, args.size() > 2 ? args[2] : Value())
                                            : attr->truthy());
          if (r == select) out.push_back(item);
        }
        return Value::array(std::move(out));
      }
      if (name == "map") {
        Value attr = kw("attribute", 99, Value());
        if (!attr.is(K::String)) fail("map is only supported with attribute=...");
        Value dflt = kw("default", 99, Value());
        Array out;
        for (const auto& item : a) {
          if (!item.obj) fail("map(attribute=...) needs a list of objects");
          Value x = attribute_path(item, attr.s);
          out.push_back(x.is(K::Undefined) ? dflt : x);
        }
        return Value::array(std::move(out));
      }
    } else if (v.is(K::String)) {
      if (name == "length" || name == "upper" || name == "lower" || name == "title" || name == "capitalize") {
        Value m = string_method(v.s, name);
        if (m.is(K::Function)) {
          std::vector<Value> none;
          Kwargs nkw;
          return (*m.fn)(none, nkw);
        }
        return m;
      }
      if (name == "trim") return Value::string(js_trim(v.s, true, true));
      if (name == "string") return v;
      if (name == "int") {
        char* end = nullptr;
        long long x = std::strtoll(v.s.c_str(), &end, 10);
        return end == v.s.c_str() ? kw("default", 0, Value::integer(0)) : Value::integer(x);
      }
      if (name == "float") {
        char* end = nullptr;
        double x = std::strtod(v.s.c_str(), &end);
        return end == v.s.c_str() ? kw("default", 0, Value::number(0)) : Value::number(x);
      }
      if (name == "indent") {
        Value width = kw("width", 0, Value::integer(4));
        bool first = kw("first", 1, Value::boolean(false)).truthy(),
             blank = kw("blank", 2, Value::boolean(false)).truthy();
        std::string pad(static_cast<size_t>(width.is(K::Int) ? width.i : 4), ' '), out;
        size_t start = 0, k = 0;
        while (true) {
          size_t nl = v.s.find('\n', start);
          std::string line = v.s.substr(start, nl == std::string::npos ? std::string::npos : nl - start);
          out += ((!first && k == 0) || (!blank && line.empty()) ? "" : pad) + line;
          if (nl == std::string::npos) break;
          out += '\n';
          start = nl + 1;
          ++k;
        }
        return Value::string(out);
      }
      if (name == "replace") {
        Value m = string_method(v.s, "replace");
        return (*m.fn)(args, kwargs);
      }
    } else if (v.is_numeric()) {
      if (name == "abs") return v.is(K::Int) ? Value::integer(std::llabs(v.i)) : Value::number(std::fabs(v.f));
      if (name == "int") return v.is(K::Int) ? v : Value::integer(static_cast<int64_t>(std::floor(v.f)));
      if (name == "float") return Value::number(v.as_double());
      if (name == "string") return Value::string(to_output(v));
    } else if (v.is(K::Object)) {
      if (name == "items") return (*object_method(v, "items").fn)(args, kwargs);
      if (name == "length") return Value::integer(static_cast<int64_t>(v.obj->size()));
      Value m = object_method(v, name);
      if (m.is(K::Function)) return (*m.fn)(args, kwargs);
    } else if (v.is(K::Bool)) {
      if (name == "bool") return v;
      if (name == "int") return Value::integer(v.b ? 1 : 0);
      if (name == "float") return Value::number(v.b ? 1 : 0);
      if (name == "string") return Value::string(v.b ? "true" : "false");
    }
    fail("unsupported filter '|" + name + "' on " + v.type_name());
  }

  std::string where_;
  int line_ = 0;
  int call_depth_ = 0;
};

}  // namespace

std::string render(const Nodes& program, const Value& context, const std::string& where) {
  Scope globals;
  globals.vars["true"] = Value::boolean(true);
  globals.vars["false"] = Value::boolean(false);
  globals.vars["none"] = Value::none();
  globals.vars["True"] = Value::boolean(true);
  globals.vars["False"] = Value::boolean(false);
  globals.vars["None"] = Value::none();
  Interpreter interp(where);
  interp.install_globals(globals);
  Scope scope;
  scope.parent = &globals;
  for (const auto& [k, v] : *context.obj) scope.vars[k] = v;
  try {
    return interp.block(program, scope);
  } catch (const BreakSignal&) {
    interp.fail("{% break %} outside a loop");
  } catch (const ContinueSignal&) {
    interp.fail("{% continue %} outside a loop");
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {  // the value helpers' own errors (a function to JSON, a zero slice step, ...)
    interp.fail(e.what());
  }
}

}  // namespace rlaif::jinja
