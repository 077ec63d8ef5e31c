#include "rlaif/graders.h"

#include <algorithm>
#include <cctype>
#include <set>

#include "core/regex.h"
#include "core/text.h"
#include "core/unicode.h"
#include "rlaif/content_check.h"
#include "rlaif/error.h"
#include "rlaif/tokenizer.h"

namespace rlaif {
namespace {

bool fail(std::string* why, const std::string& w) {
  if (why) *why = w;
  return false;
}

}  // namespace

bool json_matches_schema(const nlohmann::json& v, const nlohmann::json& s, std::string* why) {
  if (s.is_null() || (s.is_object() && s.empty())) return true;
  if (s.contains("enum") && std::find(s["enum"].begin(), s["enum"].end(), v) == s["enum"].end())
    return fail(why, v.dump() + " is not one of " + s["enum"].dump());
  if (s.contains("type")) {
    std::string t = s["type"];
    bool ok = (t == "object" && v.is_object()) || (t == "array" && v.is_array()) || (t == "string" && v.is_string()) ||
              (t == "number" && v.is_number()) || (t == "integer" && v.is_number_integer()) ||
              (t == "boolean" && v.is_boolean()) || (t == "null" && v.is_null());
    if (!ok) return fail(why, v.dump() + " is not of type " + t);
  }
  if (v.is_number()) {
    if (s.contains("minimum") && v.get<double>() < s["minimum"].get<double>())
      return fail(why, v.dump() + " < minimum");
    if (s.contains("maximum") && v.get<double>() > s["maximum"].get<double>())
      return fail(why, v.dump() + " > maximum");
  }
  if (v.is_string()) {
    size_t n = 0;
    const std::string& str = v.get_ref<const std::string&>();
    for (size_t i = 0; i < str.size(); i += unicode::cp_len(static_cast<unsigned char>(str[i]))) ++n;
    if (s.contains("minLength") && n < s["minLength"].get<size_t>()) return fail(why, "string shorter than minLength");
    if (s.contains("maxLength") && n > s["maxLength"].get<size_t>()) return fail(why, "string longer than maxLength");
  }
  if (v.is_object()) {
    for (const auto& r : s.value("required", nlohmann::json::array()))
      if (!v.contains(r.get<std::string>())) return fail(why, "missing required key \"" + r.get<std::string>() + "\"");
    const auto props = s.value("properties", nlohmann::json::object());
    for (auto it = v.begin(); it != v.end(); ++it) {
      if (props.contains(it.key())) {
        if (!json_matches_schema(it.value(), props[it.key()], why)) return false;
      } else if (s.contains("additionalProperties") && s["additionalProperties"] == false) {
        return fail(why, "unexpected key \"" + it.key() + "\"");
      }
    }
  }
  if (v.is_array() && s.contains("items"))
    for (const auto& e : v)
      if (!json_matches_schema(e, s["items"], why)) return false;
  return true;
}

std::string schema_error(const nlohmann::json& s, const std::string& path) {
  if (!s.is_object()) return path + ": must be a JSON object";
  auto at = [&](const char* k) { return path + "." + k + ": "; };
  if (s.contains("type")) {
    static const std::set<std::string> types = {"object", "array", "string", "number", "integer", "boolean", "null"};
    if (!s["type"].is_string() || !types.count(s["type"].get<std::string>()))
      return at("type") + "must be one of object, array, string, number, integer, boolean, null";
  }
  if (s.contains("enum") && !s["enum"].is_array()) return at("enum") + "must be a list";
  for (const char* k : {"minimum", "maximum"})
    if (s.contains(k) && !s[k].is_number()) return at(k) + "must be a number";
  for (const char* k : {"minLength", "maxLength"})
    if (s.contains(k) && !s[k].is_number_unsigned()) return at(k) + "must be an integer >= 0";
  if (s.contains("required")) {
    if (!s["required"].is_array()) return at("required") + "must be a list of key names";
    for (const auto& r : s["required"])
      if (!r.is_string()) return at("required") + "must be a list of key names";
  }
  if (s.contains("additionalProperties") && !s["additionalProperties"].is_boolean())
    return at("additionalProperties") + "must be true or false";
  if (s.contains("properties")) {
    if (!s["properties"].is_object()) return at("properties") + "must be an object of schemas";
    for (auto it = s["properties"].begin(); it != s["properties"].end(); ++it) {
      std::string e = schema_error(it.value(), path + ".properties." + it.key());
      if (!e.empty()) return e;
    }
  }
  if (s.contains("items")) return schema_error(s["items"], path + ".items");
  return "";
}

namespace {

// `pattern` with each "{reference}" replaced by `reference` as a literal (\Q...\E, with any "\E" in it split) and each
// "{reference_regex}" by `reference` as a pattern.
std::string with_reference(const std::string& pattern, const std::string& reference) {
  std::string quoted = "\\Q";
  for (size_t i = 0; i < reference.size(); ++i) {
    if (reference.compare(i, 2, "\\E") == 0)
      quoted += "\\E\\\\E\\Q", ++i;
    else
      quoted += reference[i];
  }
  quoted += "\\E";
  std::string out = pattern;
  for (size_t at = out.find("{reference}"); at != std::string::npos; at = out.find("{reference}", at + quoted.size()))
    out.replace(at, 11, quoted);
  for (size_t at = out.find("{reference_regex}"); at != std::string::npos;
       at = out.find("{reference_regex}", at + reference.size()))
    out.replace(at, 17, reference);
  return out;
}

}  // namespace

void Grader::validate(const std::string& where) {
  if (name.empty()) name = type;
  if (type == "regex") {
    // With {reference} or {reference_regex} the pattern is compiled per row; check the rest compiles now.
    regex_ = std::make_shared<Regex>(with_reference(value, "x"), where + ".value");
    if (value.find("{reference") != std::string::npos) regex_.reset();
  } else if (type == "exact" || type == "contains") {
    if (value.empty()) throw Error("needs a value (a text, or \"{reference}\")", where + ".value");
  } else if (type == "length") {
    if (min_chars < 0 || max_chars < 0 || (max_chars > 0 && max_chars < min_chars))
      throw Error("needs 0 <= min_chars <= max_chars (max_chars 0 = no maximum)", where);
  } else if (type == "content") {
    if (min_words < 1) throw Error("must be >= 1", where + ".min_words");
  } else if (type == "json") {
    const std::string bad = schema.is_null() ? "" : schema_error(schema, where + ".schema");
    if (!bad.empty()) throw Error("the schema is not one rlaif can check", bad, "see docs/config.md ([[graders]])");
  } else {
    throw Error("unknown grader type \"" + type + "\"", where + ".type",
                "use exact, contains, regex, json, length or content");
  }
  if (!(weight >= 0))
    throw Error("weight must be >= 0", where + ".weight",
                "0 = checked and reported (e.g. as a verifier), not rewarded");
}

double Grader::grade(const std::string& completion, const std::string& reference, const std::string& prompt) const {
  if (type == "content") return !is_content_free(completion, prompt, min_words);
  std::string want = value == "{reference}" ? reference : value;
  if (type == "exact")
    return ignore_case ? ascii_lower(trim(completion)) == ascii_lower(trim(want)) : trim(completion) == trim(want);
  if (type == "contains")
    return ignore_case ? ascii_lower(completion).find(ascii_lower(want)) != std::string::npos
                       : completion.find(want) != std::string::npos;
  if (type == "regex") {
    // The matcher needs valid UTF-8; a policy can write any bytes (each invalid sequence becomes U+FFFD).
    const std::string text = unicode::is_valid_utf8(completion) ? completion : utf8_lossy(completion);
    std::vector<std::pair<size_t, size_t>> m;
    if (regex_)
      regex_->find_all(text, m);
    else
      Regex(with_reference(value, reference), "grader " + name + " (pattern with the row's reference)")
          .find_all(text, m);
    return !m.empty();
  }
  if (type == "json") {
    auto j = nlohmann::json::parse(trim(completion), nullptr, false);
    return !j.is_discarded() && json_matches_schema(j, schema);
  }
  int64_t n = 0;  // length, in characters
  for (size_t i = 0; i < completion.size(); i += unicode::cp_len(static_cast<unsigned char>(completion[i]))) ++n;
  return n >= min_chars && (max_chars == 0 || n <= max_chars);
}

}  // namespace rlaif
