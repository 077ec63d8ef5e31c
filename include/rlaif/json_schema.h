// The subset of JSON Schema that constrained decoding enforces (OpenAI's response_format json_schema, as judges send
// it): objects with properties, required keys and additionalProperties; arrays with items; strings; numbers and
// integers with minimum / maximum; booleans; null; enum (of any JSON values). Torch-free: rlaif serve's request
// parser builds one from a request body.
#pragma once

#include <nlohmann/json.hpp>

#include <memory>
#include <string>
#include <vector>

namespace rlaif {

struct JsonSchema {
  enum Type { kAny, kObject, kArray, kString, kNumber, kInteger, kBoolean, kNull };
  Type type = kAny;
  // kObject: each property's name and schema; keys not listed are refused unless additional_properties.
  std::vector<std::string> property_names;
  std::vector<JsonSchema> property_schemas;
  std::vector<std::string> required;
  bool additional_properties = false;
  std::shared_ptr<const JsonSchema> items;  // kArray: the schema of every element (null: any value)
  bool has_minimum = false, has_maximum = false;
  double minimum = 0, maximum = 0;      // kNumber / kInteger, inclusive
  std::vector<std::string> enum_texts;  // non-empty: the value's JSON text must be one of these (compact form)

  // Reads a schema; `where` names it in messages ("response_format.json_schema.schema"). A keyword that would
  // change which documents are valid but is not enforced here (anyOf, pattern, minLength, $ref, ...) is an error
  // naming its path, never silently ignored; annotations (title, description, default, examples, $schema) are skipped.
  // Throws JsonSchemaError.
  static JsonSchema parse(const nlohmann::json& schema, const std::string& where);
  // {"type": "object"}: any object (response_format json_object).
  static std::shared_ptr<const JsonSchema> any_object();
};

struct JsonSchemaError {
  std::string message;  // what is wrong
  std::string path;     // where, e.g. "response_format.json_schema.schema.properties.score.anyOf"
};

}  // namespace rlaif
