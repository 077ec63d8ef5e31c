// Chat templates: the Jinja `chat_template` of a tokenizer_config.json rendered for a list of messages, producing
// exactly the prompt transformers (Python) and transformers.js produce. The interpreter covers what the templates of
// Qwen2.5, Qwen3, Llama-2/3.x, Mistral, SmolLM2, Gemma and ChatML use; a construct it does not support is an error
// naming it, never a silently different prompt.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

namespace rlaif {

class Tokenizer;
namespace jinja {
struct Node;
}

// ChatML, the documented default for model folders without a chat_template.
extern const char* const kChatMLTemplate;

class ChatTemplate {
 public:
  // Parses the template now, so syntax errors surface before any rendering. `where` names it in errors.
  ChatTemplate(const std::string& source, const std::string& where = "chat_template");
  // The tokenizer's template (tokenizer_config.json), or ChatML when it has none.
  static ChatTemplate for_tokenizer(const Tokenizer& tokenizer);

  // messages: [{"role": ..., "content": ...}, ...] (any extra fields are visible to the template).
  // extra: more variables (tools, enable_thinking, date_string, ...); bos_token and eos_token are set from the
  // tokenizer by render_for.
  std::string render(const nlohmann::ordered_json& messages, bool add_generation_prompt,
                     const nlohmann::ordered_json& extra = nlohmann::ordered_json::object()) const;
  std::string render_for(const Tokenizer& tokenizer, const nlohmann::ordered_json& messages, bool add_generation_prompt,
                         const nlohmann::ordered_json& extra = nlohmann::ordered_json::object()) const;

  const std::string& source() const { return source_; }

 private:
  std::string source_, where_;
  std::shared_ptr<const std::vector<std::unique_ptr<jinja::Node>>> program_;
};

}  // namespace rlaif
