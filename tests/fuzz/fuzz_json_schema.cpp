// libFuzzer target for response_format json_schema: JsonSchema::parse on the input's first line, then JsonSchemaPrefix
// on the rest, fed one byte at a time. Invariants checked: parse throws nothing but JsonSchemaError (with a path);
// the prefix check never accepts a byte after a refusal would have been final (once check() says 'x' for a text, it
// says 'x' for every longer text); a text it calls complete is JSON that nlohmann parses once invalid UTF-8 is
// replaced by U+FFFD (as the server's replies are decoded: a byte-level model may write any byte inside a string),
// and the byte-by-byte feed agrees with check() on the whole text.
// Build and run: bash tests/fuzz/run.sh SECONDS BUILD_DIR json_schema
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "generate/json_schema_prefix.h"
#include "rlaif/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  const size_t newline = input.find('\n');
  if (newline == std::string::npos) return 0;
  const nlohmann::json j = nlohmann::json::parse(input.substr(0, newline), nullptr, false);
  if (j.is_discarded()) return 0;
  std::shared_ptr<const rlaif::JsonSchema> schema;
  try {
    schema = std::make_shared<const rlaif::JsonSchema>(rlaif::JsonSchema::parse(j, "schema"));
  } catch (const rlaif::JsonSchemaError& e) {
    if (e.path.empty() || e.message.empty()) std::abort();
    return 0;
  }
  const std::string text = input.substr(newline + 1, 2000);
  rlaif::JsonSchemaPrefix prefix(schema);
  std::string accepted;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    const char verdict = rlaif::JsonSchemaPrefix::check(*schema, accepted + c);
    const bool fed = prefix.feed(std::string(1, c));
    if (fed != (verdict != 'x')) std::abort();  // feed and check agree
    if (!fed) {
      // A refused text stays refused whatever follows it.
      if (rlaif::JsonSchemaPrefix::check(*schema, accepted + text.substr(i, 64)) != 'x') std::abort();
      continue;  // skip the refused byte, as constrained decoding redraws
    }
    accepted += c;
    if (prefix.complete() != (verdict == 'c')) std::abort();
    if (prefix.complete() && nlohmann::json::parse(rlaif::utf8_lossy(accepted), nullptr, false).is_discarded()) {
      fprintf(stderr, "ACCEPTED[%s]\n", accepted.c_str());
      std::abort();
    }
  }
  return 0;
}
