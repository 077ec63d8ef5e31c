#include "jinja/value.h"

#include <cmath>
#include <cstdio>

#include "core/unicode.h"

namespace rlaif::jinja {

Value Value::none() {
  Value v;
  v.kind = Kind::None;
  return v;
}
Value Value::boolean(bool x) {
  Value v;
  v.kind = Kind::Bool;
  v.b = x;
  return v;
}
Value Value::integer(int64_t x) {
  Value v;
  v.kind = Kind::Int;
  v.i = x;
  return v;
}
Value Value::number(double x) {
  Value v;
  v.kind = Kind::Float;
  v.f = x;
  return v;
}
Value Value::string(std::string x) {
  Value v;
  v.kind = Kind::String;
  v.s = std::move(x);
  return v;
}
Value Value::array(Array x) {
  Value v;
  v.kind = Kind::Array;
  v.arr = std::make_shared<Array>(std::move(x));
  return v;
}
Value Value::object(Object x) {
  Value v;
  v.kind = Kind::Object;
  v.obj = std::make_shared<Object>(std::move(x));
  return v;
}
Value Value::namespace_(Object x) {
  Value v = object(std::move(x));
  v.kind = Kind::Namespace;
  return v;
}
Value Value::function(Function f) {
  Value v;
  v.kind = Kind::Function;
  v.fn = std::make_shared<Function>(std::move(f));
  return v;
}

Value Value::from_json(const nlohmann::ordered_json& j) {
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::null:
      return none();
    case nlohmann::ordered_json::value_t::boolean:
      return boolean(j.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer:
    case nlohmann::ordered_json::value_t::number_unsigned:
      return integer(j.get<int64_t>());
    case nlohmann::ordered_json::value_t::number_float: {
      double d = j.get<double>();  // JavaScript has one number type: an integral double is an integer there
      if (std::floor(d) == d && std::fabs(d) < 9e15) return integer(static_cast<int64_t>(d));
      return number(d);
    }
    case nlohmann::ordered_json::value_t::string:
      return string(j.get<std::string>());
    case nlohmann::ordered_json::value_t::array: {
      Array a;
      for (const auto& e : j) a.push_back(from_json(e));
      return array(std::move(a));
    }
    case nlohmann::ordered_json::value_t::object: {
      Object o;
      for (auto it = j.begin(); it != j.end(); ++it) o.emplace_back(it.key(), from_json(it.value()));
      return object(std::move(o));
    }
    default:
      return Value();
  }
}

bool Value::truthy() const {
  switch (kind) {
    case Kind::Undefined:
    case Kind::None:
      return false;
    case Kind::Bool:
      return b;
    case Kind::Int:
      return i != 0;
    case Kind::Float:
      return f != 0 && !std::isnan(f);
    case Kind::String:
      return !s.empty();
    case Kind::Array:
      return !arr->empty();
    case Kind::Object:
      return !obj->empty();
    default:
      return true;  // namespaces and functions
  }
}

const Value* Value::get(const std::string& key) const {
  if (!obj) return nullptr;
  for (const auto& [k, v] : *obj)
    if (k == key) return &v;
  return nullptr;
}

void Value::set(const std::string& key, Value v) {
  for (auto& [k, old] : *obj)
    if (k == key) {
      old = std::move(v);
      return;
    }
  obj->emplace_back(key, std::move(v));
}

const char* Value::type_name() const {
  static const char* const names[] = {"UndefinedValue", "NullValue",    "BooleanValue", "IntegerValue",
                                      "FloatValue",     "StringValue",  "ArrayValue",   "ObjectValue",
                                      "NamespaceValue", "FunctionValue"};
  return names[static_cast<int>(kind)];
}

bool js_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
         c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000 || c == 0xFEFF;
}

std::string js_number(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "Infinity" : "-Infinity";
  if (v == 0) return "0";
  char buf[40];
  for (int p = 1; p <= 17; ++p) {  // shortest text that reads back as the same double
    std::snprintf(buf, sizeof(buf), "%.*g", p, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  std::string s = buf;
  // %g writes 1e+21 / 1e-07; JavaScript writes 1e+21 / 1e-7 and uses plain digits from 1e-6 to 1e21.
  size_t e = s.find('e');
  if (e != std::string::npos) {
    int exp = std::atoi(s.c_str() + e + 1);
    if (exp >= -6 && exp < 21) {
      std::snprintf(buf, sizeof(buf), "%.*f", exp < 0 ? 17 : 0, v);
      std::string fixed = buf;
      if (fixed.find('.') != std::string::npos) {
        while (fixed.back() == '0') fixed.pop_back();
        if (fixed.back() == '.') fixed.pop_back();
      }
      return fixed;
    }
    std::string mant = s.substr(0, e);
    return mant + "e" + (exp < 0 ? "-" : "+") + std::to_string(std::abs(exp));
  }
  return s;
}

namespace {

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

}  // namespace

std::string to_json(const Value& v, int indent, bool undefined_as_null, int depth) {
  using K = Value::Kind;
  std::string item_sep = indent > 0 ? "," : ", ", key_sep = ": ";
  switch (v.kind) {
    case K::None:
      return "null";
    case K::Undefined:
      return undefined_as_null ? "null" : "undefined";
    case K::Bool:
      return v.b ? "true" : "false";
    case K::Int:
      return std::to_string(v.i);
    case K::Float:
      return js_number(v.f);
    case K::String:
      return json_string(v.s);
    case K::Array:
    case K::Object:
    case K::Namespace: {
      std::string pad = indent > 0 ? std::string(static_cast<size_t>(indent) * depth, ' ') : "";
      std::string base = "\n" + pad, child = base + (indent > 0 ? std::string(indent, ' ') : "");
      std::vector<std::string> parts;
      if (v.kind == K::Array) {
        for (const auto& e : *v.arr) parts.push_back(to_json(e, indent, undefined_as_null, depth + 1));
      } else {
        for (const auto& [k, e] : *v.obj)
          parts.push_back((indent > 0 ? child : "") + json_string(k) + key_sep +
                          to_json(e, indent, undefined_as_null, depth + 1));
      }
      std::string open = v.kind == K::Array ? "[" : "{", close = v.kind == K::Array ? "]" : "}";
      if (indent <= 0 || parts.empty()) {
        std::string out = open;
        for (size_t k = 0; k < parts.size(); ++k) out += (k ? item_sep : "") + parts[k];
        return out + close;
      }
      std::string out = open;
      for (size_t k = 0; k < parts.size(); ++k) {
        if (k) out += item_sep;
        out += v.kind == K::Array ? child + parts[k] : parts[k];
      }
      return out + base + close;
    }
    default:
      throw std::runtime_error(std::string("Cannot convert to JSON: ") + v.type_name());
  }
}

std::string to_output(const Value& v) {
  using K = Value::Kind;
  switch (v.kind) {
    case K::None:
    case K::Undefined:
      return "";
    case K::Bool:
      return v.b ? "true" : "false";
    case K::Int:
      return std::to_string(v.i);
    case K::Float:
      if (v.f == 0 && std::signbit(v.f)) return "-0.0";
      if (std::floor(v.f) == v.f && std::fabs(v.f) < 1e21) {
        char buf[64];
        std::snprintf(buf, sizeof(buf), "%.1f", v.f);
        return buf;
      }
      return js_number(v.f);
    case K::String:
      return v.s;
    case K::Function:
      return "[function]";
    default:
      return to_json(v, -1, false);
  }
}

namespace {

// JavaScript's Number(string) for loose comparisons: trimmed decimal text, "" -> 0, else NaN.
double js_to_number(const std::string& s) {
  size_t a = s.find_first_not_of(" \t\n\r\v\f"), b = s.find_last_not_of(" \t\n\r\v\f");
  if (a == std::string::npos) return 0;
  std::string t = s.substr(a, b - a + 1);
  char* end = nullptr;
  double d = std::strtod(t.c_str(), &end);
  return end && *end == '\0' ? d : std::nan("");
}

}  // namespace

bool loose_equal(const Value& a, const Value& b) {
  using K = Value::Kind;
  bool a_nullish = a.kind == K::None || a.kind == K::Undefined, b_nullish = b.kind == K::None || b.kind == K::Undefined;
  if (a_nullish || b_nullish) return a_nullish && b_nullish;
  if (a.kind == K::String && b.kind == K::String) return a.s == b.s;
  bool a_ref = a.arr || a.obj || a.fn, b_ref = b.arr || b.obj || b.fn;
  if (a_ref || b_ref) {
    if (a_ref && b_ref) return a.arr == b.arr && a.obj == b.obj && a.fn == b.fn;
    return false;  // an object compared with a primitive: its string form rarely matches; treated as unequal
  }
  double x = a.kind == K::String ? js_to_number(a.s) : a.as_double();
  double y = b.kind == K::String ? js_to_number(b.s) : b.as_double();
  return x == y;
}

bool strict_equal(const Value& a, const Value& b) {
  using K = Value::Kind;
  if (a.is_numeric() && b.is_numeric()) return a.as_double() == b.as_double();
  if (a.kind != b.kind) return false;
  switch (a.kind) {
    case K::Undefined:
    case K::None:
      return true;
    case K::Bool:
      return a.b == b.b;
    case K::String:
      return a.s == b.s;
    default:
      return a.arr == b.arr && a.obj == b.obj && a.fn == b.fn;
  }
}

}  // namespace rlaif::jinja
