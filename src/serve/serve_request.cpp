#include "serve/serve_request.h"

#include <algorithm>
#include <chrono>

namespace rlaif {
namespace {

using json = nlohmann::json;

// The text of a message's content: a string, or OpenAI's list of parts (text parts joined).
std::string content_text(const json& content, const std::string& param) {
  if (content.is_string()) return content;
  if (content.is_null()) return "";
  if (content.is_array()) {
    std::string text;
    for (const auto& part : content)
      if (part.is_object() && part.contains("type") && part["type"] == "text" && part.contains("text") &&
          part["text"].is_string())
        text += part["text"].get<std::string>();
      else
        throw BadRequest{"only text content parts are supported", param};
    return text;
  }
  throw BadRequest{"content must be a string or a list of text parts", param};
}

template <typename T>
T number(const json& body, const std::string& key, T fallback, double lo, double hi) {
  if (!body.contains(key) || body[key].is_null()) return fallback;
  if (!body[key].is_number()) throw BadRequest{"'" + key + "' must be a number", key};
  double v = body[key].get<double>();
  if (!(v >= lo && v <= hi))
    throw BadRequest{
        "'" + key + "' must be in [" + json(lo).dump() + ", " + json(hi).dump() + "], got " + body[key].dump(), key};
  return static_cast<T>(v);
}

bool flag(const json& body, const std::string& key) {
  if (!body.contains(key) || body[key].is_null()) return false;
  if (!body[key].is_boolean()) throw BadRequest{"'" + key + "' must be true or false", key};
  return body[key].get<bool>();
}

}  // namespace

ServeRequest parse_serve_request(const std::string& text, bool chat, const ServeOptions& limits) {
  const json body = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded()) throw BadRequest{"the body is not valid JSON", ""};
  if (!body.is_object()) throw BadRequest{"the body must be a JSON object", ""};
  ServeRequest p;
  p.chat = chat;
  auto& q = p.request;
  if (chat) {
    if (!body.contains("messages") || !body["messages"].is_array() || body["messages"].empty())
      throw BadRequest{"'messages' must be a non-empty list", "messages"};
    p.messages = nlohmann::ordered_json::array();
    for (size_t i = 0; i < body["messages"].size(); ++i) {
      const auto& m = body["messages"][i];
      std::string where = "messages[" + std::to_string(i) + "]";
      if (!m.is_object() || !m.contains("role") || !m["role"].is_string())
        throw BadRequest{where + " needs a string 'role'", where};
      p.messages.push_back(
          {{"role", m["role"].get<std::string>()},
           {"content", content_text(m.contains("content") ? m["content"] : json(), where + ".content")}});
    }
  } else {
    json prompt = body.contains("prompt") ? body["prompt"] : json();
    if (prompt.is_array() && prompt.size() == 1) prompt = prompt[0];
    if (!prompt.is_string() || prompt.get<std::string>().empty())
      throw BadRequest{"'prompt' must be a non-empty string", "prompt"};
    p.prompt = prompt.get<std::string>();
  }
  q.num_samples = number<int64_t>(body, "n", 1, 1, static_cast<double>(limits.max_n));
  q.seed = body.contains("seed") && !body["seed"].is_null()
               ? number<uint64_t>(body, "seed", 0, 0, 9007199254740991.0)
               : static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  auto& g = q.params;
  g.sampling.temperature = number<float>(body, "temperature", 1.0f, 0, 2);
  g.sampling.top_p = number<float>(body, "top_p", 1.0f, 0, 1);
  if (g.sampling.top_p <= 0) throw BadRequest{"'top_p' must be > 0", "top_p"};
  g.sampling.top_k = number<int64_t>(body, "top_k", 0, 0, 1e9);
  g.sampling.min_p = number<float>(body, "min_p", 0.0f, 0, 1);
  const char* max_key = chat && body.contains("max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
  g.max_new_tokens = number<int64_t>(body, max_key, std::min<int64_t>(256, limits.max_tokens_limit), 1,
                                     static_cast<double>(limits.max_tokens_limit));
  if (body.contains("stop") && !body["stop"].is_null()) {
    const auto& stop = body["stop"];
    if (stop.is_string() && !stop.get<std::string>().empty())
      g.stop.push_back(stop);
    else if (stop.is_array() && stop.size() <= 4) {
      for (const auto& s : stop) {
        if (!s.is_string() || s.get<std::string>().empty())
          throw BadRequest{"'stop' entries must be non-empty strings", "stop"};
        g.stop.push_back(s);
      }
    } else {
      throw BadRequest{"'stop' must be a string or a list of up to 4 strings", "stop"};
    }
  }
  if (body.contains("response_format") && !body["response_format"].is_null()) {
    const auto& rf = body["response_format"];
    const json type = rf.is_object() && rf.contains("type") ? rf["type"] : json();
    if (type != "text" && type != "json_object" && type != "json_schema")
      throw BadRequest{"'response_format.type' must be text, json_object or json_schema", "response_format"};
    g.json_object = type != "text";  // constrained decoding to one JSON object
    if (type == "json_schema") {
      const json& js = rf.contains("json_schema") ? rf["json_schema"] : json();
      if (!js.is_object() || !js.contains("schema"))
        throw BadRequest{"'response_format.json_schema' must be an object with a 'schema'", "response_format"};
      try {
        auto schema =
            std::make_shared<JsonSchema>(JsonSchema::parse(js["schema"], "response_format.json_schema.schema"));
        if (schema->type != JsonSchema::kObject)
          throw JsonSchemaError{"the top level must be an object (type object)", "response_format.json_schema.schema"};
        g.json_schema = std::move(schema);
      } catch (const JsonSchemaError& e) {
        throw BadRequest{e.path + ": " + e.message, "response_format"};
      }
    }
  }
  p.stream = flag(body, "stream");
  g.ignore_eos = flag(body, "ignore_eos");  // vLLM's extra parameter: generate max_tokens whatever the model says
  if (chat) {
    if (flag(body, "logprobs"))
      p.logprobs = number<int64_t>(body, "top_logprobs", 0, 0, 20);
    else if (body.contains("top_logprobs") && !body["top_logprobs"].is_null())
      throw BadRequest{"'top_logprobs' needs 'logprobs': true", "top_logprobs"};
  } else if (body.contains("logprobs") && !body["logprobs"].is_null()) {
    p.logprobs = number<int64_t>(body, "logprobs", 0, 0, 5);
  }
  g.top_logprobs = std::max<int64_t>(0, p.logprobs);
  return p;
}

}  // namespace rlaif
