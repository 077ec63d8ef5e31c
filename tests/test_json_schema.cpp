// The json_schema subset constrained decoding enforces: JsonSchema::parse (every keyword it cannot enforce is an error
// naming its path) and JsonSchemaPrefix (a text is accepted exactly when some completion of it is a valid document).
// Valid documents are checked with a validator written here over nlohmann's parse, independent of the prefix check.
#include <random>

#include "generate/json_schema_prefix.h"
#include "test_util.h"

using nlohmann::json;
using rlaif::JsonSchema;
using rlaif::JsonSchemaPrefix;

namespace {

// A judge's verdict schema, with an enum, a bounded number array and no extra keys.
const json kVerdict = json::parse(R"({
  "type": "object",
  "properties": {
    "rationale": {"type": "string"},
    "scores": {"type": "object",
               "properties": {"relevance": {"type": "integer", "minimum": 1, "maximum": 10},
                              "tone": {"enum": ["calm", "harsh"]}},
               "required": ["relevance"]},
    "tags": {"type": "array", "items": {"type": "number", "minimum": -1.5, "maximum": 2}}
  },
  "required": ["rationale", "scores"],
  "additionalProperties": false
})");

char check(const std::string& text) { return JsonSchemaPrefix::check(JsonSchema::parse(kVerdict, "schema"), text); }

// The verdict schema's rules, checked on a parsed document.
bool valid_verdict(const json& j) {
  if (!j.is_object() || !j.contains("rationale") || !j.contains("scores") || !j["rationale"].is_string()) return false;
  for (const auto& [k, v] : j.items())
    if (k != "rationale" && k != "scores" && k != "tags") return false;
  const json& s = j["scores"];
  if (!s.is_object() || !s.contains("relevance") || !s["relevance"].is_number_integer()) return false;
  if (s["relevance"].get<int64_t>() < 1 || s["relevance"].get<int64_t>() > 10) return false;
  for (const auto& [k, v] : s.items())
    if (k != "relevance" && k != "tone") return false;
  if (s.contains("tone") && s["tone"] != "calm" && s["tone"] != "harsh") return false;
  if (j.contains("tags")) {
    if (!j["tags"].is_array()) return false;
    for (const auto& t : j["tags"])
      if (!t.is_number() || t.get<double>() < -1.5 || t.get<double>() > 2) return false;
  }
  return true;
}

TEST(JsonSchemaPrefix, AcceptsExactlyThePrefixesOfValidDocuments) {
  const std::string head = R"({"rationale": "ok", "scores": {"relevance": )";
  const std::vector<std::pair<std::string, char>> cases = {
      {"", 'p'},
      {" {", 'p'},
      {"[", 'x'},  // the top level is an object
      {R"({")", 'p'},
      {R"({"ra)", 'p'},
      {R"({"x)", 'x'},  // no such property, and additionalProperties is false
      {R"({"rationale")", 'p'},
      {R"({"rationale": 3)", 'x'},
      {R"({"rationale": "a\)", 'p'},
      {R"({"rationale": "a\q)", 'x'},
      {R"({"rationale": "\ud83d\ude00 \u00e9\u20AC")", 'p'},  // a surrogate pair, then two plain escapes
      {R"({"rationale": "\ude00)", 'x'},                      // a low surrogate alone
      {R"({"rationale": "\udc)", 'x'},
      {R"({"rationale": "\ud83d")", 'x'},  // a high surrogate alone
      {R"({"rationale": "\ud83d\u00e9)", 'x'},
      {R"({"rationale": "\ud83d\ud)", 'p'},  // \udc00..\udfff may follow
      {R"({"rationale": "\ud83d\ud8)", 'x'},
      {R"({"rationale": "a"})", 'x'},  // "scores" is required
      {R"({"rationale": "a", "rationale")", 'x'},
      {head, 'p'},
      {head + "1", 'p'},  // 1 or 10
      {head + "10", 'p'},
      {head + "11", 'x'},
      {head + "0", 'x'},
      {head + "-", 'x'},
      {head + "7.", 'x'},  // an integer
      {head + "7e", 'x'},
      {head + "7}", 'p'},
      {head + "7}}", 'c'},
      {head + "7}} \n ", 'c'},
      {head + "7}}x", 'x'},
      {head + R"(7, "tone": "c)", 'p'},
      {head + R"(7, "tone": "x)", 'x'},
      {head + R"(7, "tone": "calmer)", 'x'},
      {head + R"(7, "tone": "calm", )", 'x'},  // a comma no key may follow
      {head + R"(7, "tone": "calm"}, "tags": [)", 'p'},
      {head + R"(7}, "tags": [-1.5, 2, 0.25, -0, 1.)", 'p'},
      {head + R"(7}, "tags": [-1.6)", 'x'},
      {head + R"(7}, "tags": [-2)", 'x'},
      {head + R"(7}, "tags": [2.1)", 'x'},
      {head + R"(7}, "tags": [3)", 'x'},
      {head + R"(7}, "tags": [1e3)", 'x'},  // bounded numbers are plain decimals
      {head + R"(7}, "tags": [1, "a")", 'x'},
      {head + R"(7}, "tags": []})", 'c'},
      {"{" + std::string(21, ' '), 'p'},
      {"{" + std::string(22, ' '), 'x'},  // whitespace is bounded, as in json_object mode
      {"{\n  \n", 'x'},
  };
  for (const auto& [text, want] : cases) EXPECT_EQ(check(text), want) << text;
}

TEST(JsonSchemaPrefix, AnyObjectAcceptsExactlyThePrefixesOfOneObject) {
  // response_format json_object's schema.
  auto prefix_ok = [](const std::string& text) {
    return JsonSchemaPrefix::check(*JsonSchema::any_object(), text) != 'x';
  };
  auto complete = [](const std::string& text) {
    return JsonSchemaPrefix::check(*JsonSchema::any_object(), text) == 'c';
  };
  // Every prefix of valid objects is accepted; the whole text completes (and then only whitespace may follow).
  for (const std::string text : {R"({})", R"( {"a": 1})", R"({"rationale": "x \"y\" \u00e9", "scores": {"pass": 1}})",
                                 R"({"a": [1, -2.5e+3, 0, 0.25E-1, true, false, null, {"b": []}, "s"]})"}) {
    ASSERT_TRUE(nlohmann::json::parse(text).is_object()) << text;
    for (size_t n = 0; n <= text.size(); ++n) EXPECT_TRUE(prefix_ok(text.substr(0, n))) << text.substr(0, n);
    EXPECT_TRUE(complete(text)) << text;
    EXPECT_TRUE(prefix_ok(text + " \n"));
    EXPECT_FALSE(prefix_ok(text + "x"));
    EXPECT_FALSE(complete(text.substr(0, text.size() - 1)));
  }
  // Not an object, or not JSON: rejected at the first impossible byte.
  for (const std::string bad : {"[1]", "1", "\"s\"", "{a", "{\"a\" 1", "{\"a\": 01", "{\"a\": 1.}", "{\"a\": -}",
                                "{\"a\": tru }", "{\"a\": \"\\q\"}", "{\"a\": \"\\u12g\"}", "{\"a\": 1,}", "{,}",
                                "{\"a\": [1 2]}", "{\"a\": 1]", "{\"a\": \"\x01\"}"})
    EXPECT_FALSE(prefix_ok(bad)) << bad;
  // Whitespace between tokens is bounded (a run of 21 bytes, one newline); inside strings it is not.
  const std::string run(JsonSchemaPrefix::kMaxWhitespaceRun, ' ');
  EXPECT_TRUE(prefix_ok(run + "{"));
  EXPECT_FALSE(prefix_ok(run + " "));
  EXPECT_TRUE(prefix_ok("{\n" + std::string(20, ' ') + "\"a\":" + run + "1," + run + "\"b\": \"" + run + run + "\"}"));
  EXPECT_FALSE(prefix_ok("{\"a\": 1\n\n}"));
  EXPECT_FALSE(prefix_ok("{\"a\": 1" + run + " }"));
  EXPECT_TRUE(prefix_ok("{\"a\": 1\r\n  }"));
  // A rejected byte leaves the state as it was.
  JsonSchemaPrefix p(JsonSchema::any_object());
  ASSERT_TRUE(p.feed("{\"a\": "));
  EXPECT_FALSE(p.feed("}"));
  EXPECT_TRUE(p.feed("1}"));
  EXPECT_TRUE(p.complete());
}

TEST(JsonSchemaPrefix, RandomWalksEndOnlyInDocumentsAnIndependentValidatorAccepts) {
  const auto schema = std::make_shared<const JsonSchema>(JsonSchema::parse(kVerdict, "schema"));
  const std::vector<std::string> pieces = {
      "{",        "}",           "[",      "]",      ",",      ":",       " ", "\n", "\"",    "rationale\"",
      "scores\"", "relevance\"", "tone\"", "tags\"", "calm\"", "harsh\"", "1", "0",  "-",     ".",
      "5",        "e",           "true",   "null",   "a",      "\\",      "u", "x",  "\"rel", "ti"};
  std::mt19937 rng(7);
  int complete = 0;
  for (int walk = 0; walk < 3000; ++walk) {
    JsonSchemaPrefix p(schema);
    std::string text;
    for (int step = 0; step < 400 && !p.complete(); ++step) {
      const std::string& piece = pieces[rng() % pieces.size()];
      if (p.feed(piece)) text += piece;
    }
    if (!p.complete()) continue;
    ++complete;
    const json j = json::parse(text, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << text;
    EXPECT_TRUE(valid_verdict(j)) << text;
  }
  EXPECT_GT(complete, 50);  // 80 of these 3000 seeded walks end in a document
}

TEST(JsonSchema, KeywordsItCannotEnforceAreErrorsNamingThem) {
  auto expect_error = [](const std::string& schema, const std::string& path, const std::string& words) {
    try {
      JsonSchema::parse(json::parse(schema), "schema");
      ADD_FAILURE() << "accepted " << schema;
    } catch (const rlaif::JsonSchemaError& e) {
      EXPECT_EQ(e.path, path) << schema;
      EXPECT_NE(e.message.find(words), std::string::npos) << e.message;
    }
  };
  expect_error(R"({"type": "object", "properties": {"a": {"anyOf": [{"type": "string"}]}}})",
               "schema.properties.a.anyOf", "not enforced");
  expect_error(R"({"type": "string", "pattern": "^a"})", "schema.pattern", "not enforced");
  expect_error(R"({"type": ["string", "null"]})", "schema.type", "one name");
  expect_error(R"({"type": "integer", "minimum": 3, "maximum": 2})", "schema", "between");
  expect_error(R"({"type": "integer", "minimum": 2.2, "maximum": 2.8})", "schema", "between");
  expect_error(R"({"type": "string", "minimum": 1})", "schema", "number or integer");
  expect_error(R"({"type": "object", "properties": {"a": {}}, "required": ["b"]})", "schema.required", "'b'");
  expect_error(R"({"enum": [{"a": 1}]})", "schema.enum", "strings, numbers");
  // Annotations are skipped; an object without properties is any object.
  const JsonSchema any = JsonSchema::parse(json::parse(R"({"type": "object", "title": "t", "description": "d"})"), "s");
  EXPECT_EQ(JsonSchemaPrefix::check(any, R"({"anything": [1, {"b": null}]})"), 'c');
}

}  // namespace
