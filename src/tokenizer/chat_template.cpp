#include "rlaif/chat_template.h"

#include "jinja/ast.h"
#include "jinja/interpreter.h"
#include "rlaif/error.h"
#include "rlaif/tokenizer.h"

namespace rlaif {

const char* const kChatMLTemplate =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + "
    "'\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

ChatTemplate::ChatTemplate(const std::string& source, const std::string& where)
    : source_(source),
      where_(where),
      program_(std::make_shared<const jinja::Nodes>(jinja::parse_template(source, where))) {}

ChatTemplate ChatTemplate::for_tokenizer(const Tokenizer& tokenizer) {
  if (tokenizer.chat_template().empty()) return ChatTemplate(kChatMLTemplate, "default ChatML template");
  return ChatTemplate(tokenizer.chat_template(), "tokenizer_config.json: chat_template");
}

std::string ChatTemplate::render(const nlohmann::ordered_json& messages, bool add_generation_prompt,
                                 const nlohmann::ordered_json& extra) const {
  if (!messages.is_array())
    throw Error("messages must be a JSON list", where_, "pass [{\"role\": ..., \"content\": ...}]");
  for (size_t i = 0; i < messages.size(); ++i)
    if (!messages[i].is_object() || !messages[i].contains("role") || !messages[i]["role"].is_string())
      throw Error("message " + std::to_string(i) + " has no \"role\" string", where_,
                  "each message is {\"role\": \"system|user|assistant\", \"content\": \"...\"}");
  nlohmann::ordered_json ctx = nlohmann::ordered_json::object();
  ctx["messages"] = messages;
  ctx["add_generation_prompt"] = add_generation_prompt;
  for (auto it = extra.begin(); it != extra.end(); ++it) ctx[it.key()] = it.value();
  return jinja::render(*program_, jinja::Value::from_json(ctx), where_);
}

std::string ChatTemplate::render_for(const Tokenizer& tokenizer, const nlohmann::ordered_json& messages,
                                     bool add_generation_prompt, const nlohmann::ordered_json& extra) const {
  nlohmann::ordered_json ctx = extra;
  if (!ctx.is_object()) ctx = nlohmann::ordered_json::object();
  // Like transformers' special_tokens_map: a token the tokenizer does not have stays undefined.
  if (!ctx.contains("bos_token") && !tokenizer.bos_token().empty()) ctx["bos_token"] = tokenizer.bos_token();
  if (!ctx.contains("eos_token") && !tokenizer.eos_token().empty()) ctx["eos_token"] = tokenizer.eos_token();
  return render(messages, add_generation_prompt, ctx);
}

}  // namespace rlaif
