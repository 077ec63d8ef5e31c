// libFuzzer target for chat templates (tokenizer_config.json's Jinja `chat_template`, which comes with a downloaded
// model): the input is parsed as a template and, when it parses, rendered for a short conversation with tools.
// Invariants checked: no crash, no hang and no exception other than rlaif::Error (a template's own errors, limits
// included, are rlaif::Error naming the template).
// Build and run: bash tests/fuzz/run.sh SECONDS BUILD_DIR chat_template
#include <cstdint>
#include <string>

#include "rlaif/chat_template.h"
#include "rlaif/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const nlohmann::ordered_json messages = nlohmann::ordered_json::parse(R"([
    {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi <b>there</b>"},
    {"role": "assistant", "content": "Hello", "tool_calls": [{"function": {"name": "f", "arguments": {"x": 1}}}]},
    {"role": "tool", "content": "42"}])");
  static const nlohmann::ordered_json extra = nlohmann::ordered_json::parse(
      R"({"tools": [{"type": "function", "function": {"name": "f"}}], "bos_token": "<s>"})");
  try {
    rlaif::ChatTemplate t(std::string(reinterpret_cast<const char*>(data), size), "fuzz");
    (void)t.render(messages, true, extra);
  } catch (const rlaif::Error&) {}
  return 0;
}
