// JsonSchema::parse and JsonSchemaPrefix: the schema subset constrained decoding enforces, and the prefix check.
#include <cmath>
#include <cstdlib>
#include <limits>
#include <set>

#include "generate/json_schema_prefix.h"

namespace rlaif {
namespace {

using nlohmann::json;

bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_hex(char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

JsonSchema any_schema() {
  JsonSchema s;
  s.additional_properties = true;
  return s;
}

JsonSchema::Type type_named(const json& t, const std::string& where) {
  static const std::pair<const char*, JsonSchema::Type> names[] = {
      {"object", JsonSchema::kObject}, {"array", JsonSchema::kArray},     {"string", JsonSchema::kString},
      {"number", JsonSchema::kNumber}, {"integer", JsonSchema::kInteger}, {"boolean", JsonSchema::kBoolean},
      {"null", JsonSchema::kNull}};
  if (t.is_string())
    for (const auto& [name, type] : names)
      if (t == name) return type;
  throw JsonSchemaError{
      "'type' must be one of object, array, string, number, integer, boolean, null (one name, not a "
      "list)",
      where + ".type"};
}

// The outcome of reading (part of) a text: a whole value read, the text ended inside one that can still be
// completed, or no completion is valid.
enum Status { kOk, kMore, kBad };

// Recursive descent over a prefix of a JSON document; every function leaves i_ after what it read.
class Reader {
 public:
  explicit Reader(const std::string& s) : s_(s) {}

  Status document(const JsonSchema& root) {
    const Status st = value(root);
    if (st != kOk) return st;
    if (space() == kBad) return kBad;
    return i_ == s_.size() ? kOk : kBad;
  }

 private:
  bool end() const { return i_ >= s_.size(); }

  // One run of whitespace, within the bound.
  Status space() {
    int run = 0, newlines = 0;
    for (; !end() && is_ws(s_[i_]); ++i_)
      if (++run > JsonSchemaPrefix::kMaxWhitespaceRun || (s_[i_] == '\n' && ++newlines > 1)) return kBad;
    return kOk;
  }

  static bool allows(const JsonSchema& sc, JsonSchema::Type t) {
    return sc.type == JsonSchema::kAny || sc.type == t || (t == JsonSchema::kNumber && sc.type == JsonSchema::kInteger);
  }

  Status value(const JsonSchema& sc) {
    if (space() == kBad) return kBad;
    if (end()) return kMore;
    const size_t start = i_;
    const char c = s_[i_];
    Status st = kBad;
    if (c == '{' && allows(sc, JsonSchema::kObject))
      st = object(sc);
    else if (c == '[' && allows(sc, JsonSchema::kArray))
      st = array(sc);
    else if (c == '"' && allows(sc, JsonSchema::kString))
      st = string();
    else if ((c == '-' || is_digit(c)) && allows(sc, JsonSchema::kNumber))
      st = number(sc);
    else if ((c == 't' || c == 'f') && allows(sc, JsonSchema::kBoolean))
      st = literal(c == 't' ? "true" : "false");
    else if (c == 'n' && allows(sc, JsonSchema::kNull))
      st = literal("null");
    if (st == kBad || sc.enum_texts.empty()) return st;
    // enum: the value's text is one of the listed texts, or (cut short) begins one.
    const std::string text = s_.substr(start, i_ - start);
    for (const auto& e : sc.enum_texts)
      if (st == kOk ? text == e : e.compare(0, text.size(), text) == 0) return st;
    return kBad;
  }

  Status object(const JsonSchema& sc) {
    static const JsonSchema any = any_schema();
    std::vector<bool> seen(sc.property_names.size(), false);
    auto required_met = [&]() {
      for (const auto& r : sc.required)
        for (size_t k = 0; k < seen.size(); ++k)
          if (sc.property_names[k] == r && !seen[k]) return false;
      return true;
    };
    auto escaped = [](const std::string& name) {
      const std::string quoted = json(name).dump();
      return quoted.substr(1, quoted.size() - 2);
    };
    ++i_;  // '{'
    if (space() == kBad) return kBad;
    if (end()) return kMore;
    if (s_[i_] == '}') return required_met() ? (++i_, kOk) : kBad;
    for (;;) {
      if (space() == kBad) return kBad;
      if (end()) return kMore;
      if (s_[i_] != '"') return kBad;
      const size_t key_start = i_ + 1;
      Status st = string();
      if (st == kBad) return kBad;
      const std::string key = s_.substr(key_start, i_ - key_start - (st == kOk ? 1 : 0));
      const JsonSchema* vs = nullptr;
      for (size_t k = 0; k < seen.size() && !vs; ++k) {
        const std::string name = escaped(sc.property_names[k]);
        if (st == kMore && !seen[k] && name.compare(0, key.size(), key) == 0) return kMore;
        if (st == kOk && name == key) {
          if (seen[k]) return kBad;  // each key once
          seen[k] = true;
          vs = &sc.property_schemas[k];
        }
      }
      if (!vs && !sc.additional_properties) return kBad;
      if (st == kMore) return kMore;
      if (!vs) vs = &any;
      if (space() == kBad) return kBad;
      if (end()) return kMore;
      if (s_[i_] != ':') return kBad;
      ++i_;
      st = value(*vs);
      if (st != kOk) return st;
      if (space() == kBad) return kBad;
      if (end()) return kMore;
      if (s_[i_] == '}') return required_met() ? (++i_, kOk) : kBad;
      if (s_[i_] != ',') return kBad;
      ++i_;
      bool key_left = sc.additional_properties;
      for (bool b : seen) key_left = key_left || !b;
      if (!key_left) return kBad;  // a comma that no key may follow
    }
  }

  Status array(const JsonSchema& sc) {
    static const JsonSchema any = any_schema();
    const JsonSchema& item = sc.items ? *sc.items : any;
    ++i_;  // '['
    if (space() == kBad) return kBad;
    if (end()) return kMore;
    if (s_[i_] == ']') return ++i_, kOk;
    for (;;) {
      const Status st = value(item);
      if (st != kOk) return st;
      if (space() == kBad) return kBad;
      if (end()) return kMore;
      if (s_[i_] == ']') return ++i_, kOk;
      if (s_[i_] != ',') return kBad;
      ++i_;
    }
  }

  Status string() {
    ++i_;  // '"'
    while (!end()) {
      const char c = s_[i_++];
      if (c == '"') return kOk;
      if (static_cast<unsigned char>(c) < 0x20) return kBad;  // control characters must be escaped
      if (c != '\\') continue;
      if (end()) return kMore;
      const char e = s_[i_++];
      if (e == 'u') {
        // A UTF-16 escape; surrogates only as a pair, high then low, as parsers require.
        const Status st = hex4(0xDC00, 0xDFFF, false);
        if (st != kOk) return st;
        if (last_hex_ >= 0xD800 && last_hex_ <= 0xDBFF) {
          for (char want : {'\\', 'u'}) {
            if (end()) return kMore;
            if (s_[i_++] != want) return kBad;
          }
          const Status low = hex4(0xDC00, 0xDFFF, true);
          if (low != kOk) return low;
        }
      } else if (std::string("\"\\/bfnrt").find(e) == std::string::npos) {
        return kBad;
      }
    }
    return kMore;
  }

  // Four hex digits of a \u escape into last_hex_: within [lo, hi] when `inside`, outside it otherwise (a prefix
  // is checked as far as it goes).
  Status hex4(int lo, int hi, bool inside) {
    int v = 0;
    for (int k = 0; k < 4; ++k) {
      if (end()) {
        // The digits so far must leave some value on the right side of [lo, hi].
        const int shift = 4 * (4 - k), first = v << shift, last = first + (1 << shift) - 1;
        const bool can = inside ? (last >= lo && first <= hi) : (first < lo || last > hi);
        return can ? kMore : kBad;
      }
      const char c = s_[i_++];
      if (!is_hex(c)) return kBad;
      v = v * 16 + (is_digit(c) ? c - '0' : (c | 0x20) - 'a' + 10);
    }
    last_hex_ = v;
    return (v >= lo && v <= hi) == inside ? kOk : kBad;
  }

  Status literal(const char* word) {
    for (const char* w = word; *w; ++w, ++i_) {
      if (end()) return kMore;
      if (s_[i_] != *w) return kBad;
    }
    return kOk;
  }

  Status number(const JsonSchema& sc) {
    const bool integer = sc.type == JsonSchema::kInteger, bounded = sc.has_minimum || sc.has_maximum;
    const size_t start = i_;
    const bool negative = s_[i_] == '-';
    if (negative) ++i_;
    std::string whole, fraction;
    bool dot = false;
    if (!end()) {
      if (!is_digit(s_[i_])) return kBad;
      if (s_[i_] == '0')
        whole = s_[i_++];
      else
        while (!end() && is_digit(s_[i_])) whole += s_[i_++];
    }
    if (!end() && s_[i_] == '.') {
      if (integer) return kBad;
      dot = true;
      ++i_;
      while (!end() && is_digit(s_[i_])) fraction += s_[i_++];
      if (!end() && fraction.empty()) return kBad;
    }
    if (!end() && (s_[i_] == 'e' || s_[i_] == 'E')) {
      if (integer || bounded) return kBad;  // bounds are checked on plain decimals only
      ++i_;
      if (!end() && (s_[i_] == '+' || s_[i_] == '-')) ++i_;
      size_t digits = 0;
      for (; !end() && is_digit(s_[i_]); ++i_) ++digits;
      if (!end() && digits == 0) return kBad;
    }
    // A number past a double's range is refused (parsers reject it or read infinity); more digits never bring it back.
    const double v = std::strtod(s_.substr(start, i_ - start).c_str(), nullptr);
    if (!std::isfinite(v)) return kBad;
    if (end()) return !bounded || reachable(sc, negative, whole, dot, fraction) ? kMore : kBad;
    // The number ended at a byte that cannot continue it: the whole value must be within the bounds.
    if ((sc.has_minimum && v < sc.minimum) || (sc.has_maximum && v > sc.maximum)) return kBad;
    return kOk;
  }

  // Whether some completion of the digits read so far lies within the schema's bounds: the completions' magnitudes
  // form intervals [a, b) (a leading "12" reaches [12, 13), [120, 130), [1200, 1300), ...; "12.3" reaches
  // [12.3, 12.4)), negated for a negative number.
  static bool reachable(const JsonSchema& sc, bool negative, const std::string& whole, bool dot,
                        const std::string& fraction) {
    const double inf = std::numeric_limits<double>::infinity();
    const double lo = sc.has_minimum ? sc.minimum : -inf, hi = sc.has_maximum ? sc.maximum : inf;
    const bool integer = sc.type == JsonSchema::kInteger;
    auto meets = [&](double a, double b) {  // magnitudes [a, b)
      double vlo = negative ? -b : a, vhi = negative ? -a : b;
      if (integer) {  // an integer within [vlo, vhi] (b exclusive) and [lo, hi]
        const double first = std::max(std::ceil(negative ? vlo + 1 : vlo), std::ceil(lo));
        const double last = std::min(std::floor(negative ? vhi : vhi - 1), std::floor(hi));
        return first <= last;
      }
      return negative ? (vlo < hi && vhi >= lo) : (vlo <= hi && vhi > lo);
    };
    if (whole.empty()) return meets(0, inf);
    if (dot) {
      const double m = std::strtod((whole + "." + fraction + "0").c_str(), nullptr);
      return meets(m, m + std::pow(10.0, -static_cast<double>(fraction.size())));
    }
    const double w = std::strtod(whole.c_str(), nullptr);
    if (whole == "0") return meets(0, 1);
    for (double scale = 1; scale < 1e20; scale *= 10)
      if (meets(w * scale, (w + 1) * scale)) return true;
    return false;
  }

  const std::string& s_;
  size_t i_ = 0;
  int last_hex_ = 0;  // the code unit of the last \u escape read
};

}  // namespace

JsonSchema JsonSchema::parse(const json& j, const std::string& where) {
  if (j.is_boolean() && j.get<bool>()) return any_schema();
  if (!j.is_object()) throw JsonSchemaError{"a schema must be an object", where};
  JsonSchema s;
  bool has_type = false, has_additional = false;
  static const std::set<std::string> annotations = {"title", "description", "default",    "examples", "$schema",
                                                    "$id",   "$comment",    "deprecated", "readOnly", "writeOnly"};
  for (const auto& [key, v] : j.items()) {
    const std::string at = where + "." + key;
    if (annotations.count(key)) continue;
    if (key == "type") {
      s.type = type_named(v, where);
      has_type = true;
    } else if (key == "properties") {
      if (!v.is_object()) throw JsonSchemaError{"'properties' must be an object of schemas", at};
      for (const auto& [name, sub] : v.items()) {
        s.property_names.push_back(name);
        s.property_schemas.push_back(parse(sub, at + "." + name));
      }
    } else if (key == "required") {
      if (!v.is_array()) throw JsonSchemaError{"'required' must be a list of property names", at};
      for (const auto& r : v) {
        if (!r.is_string()) throw JsonSchemaError{"'required' must be a list of property names", at};
        s.required.push_back(r);
      }
    } else if (key == "additionalProperties") {
      if (!v.is_boolean())
        throw JsonSchemaError{"'additionalProperties' is enforced as true or false only (a schema is not)", at};
      s.additional_properties = v.get<bool>();
      has_additional = true;
    } else if (key == "items") {
      s.items = std::make_shared<const JsonSchema>(parse(v, at));
    } else if (key == "minimum" || key == "maximum") {
      if (!v.is_number()) throw JsonSchemaError{"'" + key + "' must be a number", at};
      (key == "minimum" ? s.has_minimum : s.has_maximum) = true;
      (key == "minimum" ? s.minimum : s.maximum) = v.get<double>();
    } else if (key == "enum") {
      if (!v.is_array() || v.empty()) throw JsonSchemaError{"'enum' must be a non-empty list", at};
      for (const auto& e : v) {
        if (e.is_object() || e.is_array())
          throw JsonSchemaError{"'enum' values are enforced for strings, numbers, booleans and null only", at};
        s.enum_texts.push_back(e.dump());
      }
    } else {
      throw JsonSchemaError{"'" + key +
                                "' is not enforced by rlaif's constrained decoding (enforced: type, properties, "
                                "required, additionalProperties, items, minimum, maximum, enum)",
                            at};
    }
  }
  if (!has_type && !s.property_names.empty()) s.type = kObject;
  if (!has_type && s.items) s.type = kArray;
  if (!has_type && (s.has_minimum || s.has_maximum)) s.type = kNumber;
  // Keys beyond `properties` are refused unless additionalProperties is true; an object without properties is any
  // object.
  if (!has_additional) s.additional_properties = s.property_names.empty();
  for (const auto& r : s.required) {
    bool listed = false;
    for (const auto& n : s.property_names) listed = listed || n == r;
    if (!listed && !s.additional_properties)
      throw JsonSchemaError{"required key '" + r + "' is not among 'properties'", where + ".required"};
  }
  if ((s.has_minimum || s.has_maximum) && s.type != kNumber && s.type != kInteger)
    throw JsonSchemaError{"'minimum' / 'maximum' need type number or integer", where};
  if (s.has_minimum && s.has_maximum &&
      (s.type == kInteger ? std::ceil(s.minimum) > std::floor(s.maximum) : s.minimum > s.maximum))
    throw JsonSchemaError{"no value lies between 'minimum' and 'maximum'", where};
  return s;
}

std::shared_ptr<const JsonSchema> JsonSchema::any_object() {
  static const auto schema = [] {
    JsonSchema s = any_schema();
    s.type = kObject;
    return std::make_shared<const JsonSchema>(s);
  }();
  return schema;
}

char JsonSchemaPrefix::check(const JsonSchema& schema, const std::string& text) {
  switch (Reader(text).document(schema)) {
    case kOk:
      return 'c';
    case kMore:
      return 'p';
    case kBad:
      return 'x';
  }
  return 'x';
}

bool JsonSchemaPrefix::feed(const std::string& bytes) {
  std::string next = text_ + bytes;
  const char verdict = check(*schema_, next);
  if (verdict == 'x') return false;
  text_ = std::move(next);
  complete_ = verdict == 'c';
  return true;
}

}  // namespace rlaif
