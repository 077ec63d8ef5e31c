// An incremental check that text is a prefix of one JSON document valid under a JsonSchema (the subset in
// rlaif/json_schema.h): what constrained decoding for `response_format` json_schema (and json_object, whose schema
// is JsonSchema::any_object()) needs to accept or reject a candidate token. A prefix is accepted only when some
// completion of it is valid: a key must begin a property not yet written, an object closes only once its required keys
// are in, a number's digits must still be able to land within minimum..maximum (and within a double's range), a string
// under enum must begin one of its values, \u escapes pair their surrogates. Whitespace between tokens is bounded as
// JSON grammars for constrained decoding bound it (llama.cpp's json.gbnf: a newline and up to 20 spaces or tabs): a run
// of at most kMaxWhitespaceRun bytes holding at most one newline; without the bound a small model can spend all its
// tokens on whitespace.
//
// The text is re-read from its start on every feed: judges' replies are short (a few hundred bytes), and a
// re-read keeps the check a plain recursive descent.
#pragma once

#include <memory>
#include <string>

#include "rlaif/json_schema.h"

namespace rlaif {

class JsonSchemaPrefix {
 public:
  JsonSchemaPrefix() = default;
  explicit JsonSchemaPrefix(std::shared_ptr<const JsonSchema> schema) : schema_(std::move(schema)) {}

  // Whether `bytes` can extend the text read so far; on false the state is unchanged.
  bool feed(const std::string& bytes);
  // Whether feed(bytes) would succeed, without changing the state.
  bool accepts(const std::string& bytes) const { return check(*schema_, text_ + bytes) != 'x'; }
  // A whole valid document has been read (only whitespace may follow).
  bool complete() const { return complete_; }

  // The verdict on a whole text: 'c' complete and valid, 'p' a valid prefix, 'x' no valid completion.
  static char check(const JsonSchema& schema, const std::string& text);

  static constexpr int kMaxWhitespaceRun = 21;

 private:
  std::shared_ptr<const JsonSchema> schema_;
  std::string text_;
  bool complete_ = false;
};

}  // namespace rlaif
