// The OpenAI-compatible server: an event-driven HTTP front (serve/http_front.h) holds every connection; its handler
// threads parse, check and encode requests and submit them to one decode engine (serve/serve_engine.h), which batches
// all running requests continuously. Replies, and streamed tokens, go back through the request's HttpReply. Errors
// are OpenAI-shaped: {"error": {"message", "type", "param", "code"}}.
#include "rlaif/openai_server.h"

#include <atomic>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/unicode.h"
#include "rlaif/chat_template.h"
#include "rlaif/error.h"
#include "rlaif/generator.h"
#include "rlaif/model.h"
#include "rlaif/model_folder.h"
#include "rlaif/model_source.h"
#include "serve/http_front.h"
#include "serve/serve_engine.h"
#include "serve/serve_request.h"

namespace rlaif {
namespace {

using json = nlohmann::json;

std::atomic<HttpFront*> g_front{nullptr};

void send_error(HttpReply& reply, int status, const std::string& message, const std::string& param = "",
                const std::string& code = "") {
  reply.send(status, "application/json", openai_error_body(status, message, param, code));
}

class Server {
 public:
  explicit Server(const ServeOptions& o) : o_(o) {
    const ModelSource source = resolve_model_source(o.model_dir, o.adapter);
    CausalLM model = load_merged_model(source);  // the packed fast path serves the merged weights
    set_inference_precision(model, o.dtype);
    tokenizer_ = std::make_unique<Tokenizer>(Tokenizer::load(source.model_dir));
    auto eos = load_eos_token_ids(source.model_dir, model->config());
    GeneratorOptions go;
    go.max_batch = o.max_batch;
    gen_ = std::make_unique<Generator>(model, *tokenizer_, eos, go);
    chat_ = std::make_unique<ChatTemplate>(ChatTemplate::for_tokenizer(*tokenizer_));
    name_ = o.model_name.empty() ? std::filesystem::path(o.model_dir).filename().string() : o.model_name;
    if (name_.empty()) name_ = std::filesystem::path(o.model_dir).parent_path().filename().string();
    engine_ = std::make_unique<ServeEngine>(*gen_, o.threads);
  }

  void run(const std::function<void(int)>& on_listening) {
    HttpLimits limits;
    limits.max_body_bytes = o_.max_request_bytes;
    limits.max_connections = o_.max_connections;
    limits.header_timeout_s = o_.header_timeout_s;
    limits.body_timeout_s = o_.body_timeout_s;
    limits.idle_timeout_s = o_.idle_timeout_s;
    HttpFront front(o_.host, o_.port, limits,
                    [this](IncomingRequest& req, const std::shared_ptr<HttpReply>& reply) { route(req, reply); });
    front_ = &front;
    g_front = &front;
    if (on_listening) on_listening(front.port());
    front.run();
    g_front = nullptr;
    front_ = nullptr;
  }

 private:
  // The prompt's tokens: the chat template renders the messages, or the completion prompt is encoded as it is.
  void encode_prompt(ServeRequest& p) const {
    auto& ids = p.request.prompt_ids;
    if (p.chat) {
      std::string text;
      try {
        text = chat_->render_for(*tokenizer_, p.messages, /*add_generation_prompt=*/true);
      } catch (const Error& e) {
        throw BadRequest{std::string("the chat template cannot render these messages: ") + e.what(), "messages"};
      }
      ids = tokenizer_->encode(text, false);
    } else {
      ids = tokenizer_->encode(p.prompt, /*add_special_tokens=*/true);
    }
    if (ids.empty()) throw BadRequest{"the prompt encodes to no tokens", p.chat ? "messages" : "prompt"};
  }

  json token_json(int64_t id, float logprob) const {
    std::string t = tokenizer_->decode({id}, false);
    json bytes = json::array();
    for (unsigned char c : t) bytes.push_back(c);
    return {{"token", t}, {"logprob", logprob}, {"bytes", bytes}};
  }

  // OpenAI's logprobs object of one choice: chat {"content": [...]}, completions {tokens, token_logprobs, ...}.
  json logprobs_json(const Sample& s, bool chat) const {
    if (chat) {
      json content = json::array();
      for (size_t i = 0; i < s.token_ids.size(); ++i) {
        json t = token_json(s.token_ids[i], s.logprobs[i]);
        json top = json::array();
        if (i < s.top_logprobs.size())
          for (const auto& [id, lp] : s.top_logprobs[i]) top.push_back(token_json(id, lp));
        t["top_logprobs"] = top;
        content.push_back(t);
      }
      return {{"content", content}};
    }
    json tokens = json::array(), lps = json::array(), tops = json::array(), offsets = json::array();
    size_t offset = 0;
    for (size_t i = 0; i < s.token_ids.size(); ++i) {
      std::string t = tokenizer_->decode({s.token_ids[i]}, false);
      tokens.push_back(t);
      lps.push_back(s.logprobs[i]);
      offsets.push_back(offset);
      offset += t.size();
      json top = json::object();
      if (i < s.top_logprobs.size())
        for (const auto& [id, lp] : s.top_logprobs[i]) top[tokenizer_->decode({id}, false)] = lp;
      tops.push_back(top);
    }
    return {{"tokens", tokens}, {"token_logprobs", lps}, {"top_logprobs", tops}, {"text_offset", offsets}};
  }

  json health() const {
    const auto e = engine_->stats();
    const auto f = front_ ? front_->stats() : HttpFront::Stats();
    return {{"status", "ok"},
            {"model", name_},
            {"requests", e.finished + e.failed},
            {"cancelled", e.cancelled},
            {"running", e.running},
            {"waiting", e.waiting},
            {"decode_steps", e.decode_steps},
            {"decode_tokens", e.decode_tokens},
            {"prefill_tokens", e.prefill_tokens},
            {"threads", e.threads},
            {"connections", f.connections},
            {"refused", f.refused},
            {"timed_out", f.timed_out}};
  }

  // Runs on the front's handler threads: authentication, then the route.
  void route(IncomingRequest& req, const std::shared_ptr<HttpReply>& reply) {
    if (!o_.api_key.empty() && req.path != "/health" && req.header("Authorization") != "Bearer " + o_.api_key)
      return send_error(*reply, 401, "invalid or missing API key (send Authorization: Bearer <key>)", "",
                        "invalid_api_key");
    const bool get = req.method == "GET" || req.method == "HEAD", post = req.method == "POST";
    if (req.path == "/health" && get) return reply->send(200, "application/json", health().dump());
    if (req.path == "/v1/models" && get) {
      json m = {{"id", name_}, {"object", "model"}, {"created", created_}, {"owned_by", "rlaif"}};
      return reply->send(200, "application/json", json({{"object", "list"}, {"data", json::array({m})}}).dump());
    }
    if (req.path == "/v1/chat/completions" && post) return handle(req, reply, true);
    if (req.path == "/v1/completions" && post) return handle(req, reply, false);
    const bool known = req.path == "/health" || req.path == "/v1/models" || req.path == "/v1/chat/completions" ||
                       req.path == "/v1/completions";
    if (known) return send_error(*reply, 405, "method " + req.method + " not allowed on " + req.path);
    send_error(*reply, 404, "no route " + req.method + " " + req.path, "", "not_found");
  }

  void handle(IncomingRequest& req, const std::shared_ptr<HttpReply>& reply, bool chat) {
    ServeRequest p;
    try {
      p = parse_serve_request(req.body, chat, o_);
      encode_prompt(p);
      gen_->check(p.request);
    } catch (const BadRequest& e) {
      return send_error(*reply, 400, e.message, e.param, "invalid_request");
    } catch (const Error& e) {  // the generator refuses it (e.g. no room in the context): the request's fault
      return send_error(*reply, 400, e.what(), "", "invalid_request");
    }
    if (p.stream) return stream(std::move(p), reply, chat);
    auto shared = std::make_shared<ServeRequest>(std::move(p));
    ServeEngine::Hooks hooks;
    hooks.on_done = [this, shared, reply, chat](GenerationResult& result) {
      reply->send(200, "application/json", reply_json(*shared, result, chat));
    };
    hooks.on_error = [reply](const std::string& error) { send_error(*reply, 500, "generation failed: " + error); };
    const size_t id = engine_->submit(shared->request, std::move(hooks));
    ServeEngine* engine = engine_.get();
    reply->on_close([engine, id] { engine->cancel(id); });  // the client went away: free its slots
  }

  static json usage_json(int64_t prompt_tokens, int64_t completion_tokens) {
    return {{"prompt_tokens", prompt_tokens},
            {"completion_tokens", completion_tokens},
            {"total_tokens", prompt_tokens + completion_tokens}};
  }

  std::string reply_json(const ServeRequest& p, const GenerationResult& result, bool chat) {
    const auto& samples = result.samples;
    int64_t completion_tokens = 0;
    json choices = json::array();
    for (size_t i = 0; i < samples.size(); ++i) {
      const auto& s = samples[i];
      completion_tokens += static_cast<int64_t>(s.token_ids.size());
      json c = {{"index", i}, {"finish_reason", to_string(s.finish_reason)}};
      if (chat)
        c["message"] = {{"role", "assistant"}, {"content", s.text}};
      else
        c["text"] = s.text;
      c["logprobs"] = p.logprobs >= 0 ? logprobs_json(s, chat) : json(nullptr);
      choices.push_back(c);
    }
    json reply = {{"id", std::string(chat ? "chatcmpl-" : "cmpl-") + std::to_string(++next_id_)},
                  {"object", chat ? "chat.completion" : "text_completion"},
                  {"created", static_cast<int64_t>(std::time(nullptr))},
                  {"model", name_},
                  {"choices", choices},
                  {"usage", usage_json(static_cast<int64_t>(p.request.prompt_ids.size()), completion_tokens)}};
    return reply.dump(-1, ' ', false, json::error_handler_t::replace);
  }

  // Server-sent events, live: each token's text is sent as it is drawn. Text that could still turn out to be the
  // start of a stop string, or an incomplete UTF-8 character, is held back until it is settled, so the deltas always
  // concatenate to exactly the non-streamed text. The hooks run on the engine thread, one at a time.
  void stream(ServeRequest p, const std::shared_ptr<HttpReply>& reply, bool chat) {
    struct SampleState {
      std::string bytes;  // the sample's bytes so far
      size_t sent = 0;    // bytes already sent
      int64_t tokens = 0;
    };
    struct State {
      std::vector<SampleState> samples;
      int64_t finished = 0;
    };
    auto st = std::make_shared<State>();
    st->samples.resize(static_cast<size_t>(p.request.num_samples));
    // Bytes held back: a stop string's length (on_token runs before the engine looks for stop strings in this token).
    size_t hold = 0;
    for (const auto& stop : p.request.params.stop) hold = std::max(hold, stop.size());
    const std::string id = std::string(chat ? "chatcmpl-" : "cmpl-") + std::to_string(++next_id_);
    const int64_t created = static_cast<int64_t>(std::time(nullptr));
    const std::string object = chat ? "chat.completion.chunk" : "text_completion";
    const std::string model = name_;
    auto event = [=](const json& choice, const json& usage = json()) {
      json chunk = {{"id", id}, {"object", object}, {"created", created}, {"model", model}, {"choices", {choice}}};
      if (!usage.is_null()) chunk["usage"] = usage;
      return "data: " + chunk.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n";
    };
    auto delta = [=](size_t i, const std::string& text) {
      json c = {{"index", i}, {"finish_reason", nullptr}};
      if (chat)
        c["delta"] = {{"content", text}};
      else
        c["text"] = text;
      return event(c);
    };
    reply->start_stream("text/event-stream");
    if (chat)
      for (size_t i = 0; i < st->samples.size(); ++i)
        reply->write(
            event({{"index", i}, {"delta", {{"role", "assistant"}, {"content", ""}}}, {"finish_reason", nullptr}}));
    ServeEngine::Hooks hooks;
    const Tokenizer* tok = tokenizer_.get();
    hooks.on_token = [=](size_t i, int64_t token) {
      auto& s = st->samples[i];
      ++s.tokens;
      if (tok->is_special(token)) return;
      s.bytes += tok->token_bytes(token);
      size_t upto = s.bytes.size() > hold ? s.bytes.size() - hold : 0;
      while (upto > s.sent && upto < s.bytes.size() && (static_cast<unsigned char>(s.bytes[upto]) & 0xC0) == 0x80)
        --upto;  // never inside a character
      // An incomplete character waits for its next bytes; invalid bytes wait for the end (the final text replaces
      // them).
      if (upto <= s.sent || !unicode::is_valid_utf8(s.bytes.substr(0, upto))) return;
      reply->write(delta(i, s.bytes.substr(s.sent, upto - s.sent)));
      s.sent = upto;
    };
    const int64_t prompt_tokens = static_cast<int64_t>(p.request.prompt_ids.size());
    hooks.on_sample = [=](size_t i, const Sample& out) {
      auto& s = st->samples[i];
      if (out.text.size() > s.sent && out.text.compare(0, s.sent, s.bytes, 0, s.sent) == 0)
        reply->write(delta(i, out.text.substr(s.sent)));
      json last = {{"index", i}, {"finish_reason", to_string(out.finish_reason)}};
      if (chat)
        last["delta"] = json::object();
      else
        last["text"] = "";
      int64_t total = 0;
      for (const auto& x : st->samples) total += x.tokens;
      const bool all = ++st->finished == static_cast<int64_t>(st->samples.size());
      reply->write(event(last, all ? usage_json(prompt_tokens, total) : json()));
    };
    hooks.on_done = [reply](GenerationResult&) {
      reply->write("data: [DONE]\n\n");
      reply->end();
    };
    hooks.on_error = [reply](const std::string& error) {
      json e = {{"error",
                 {{"message", "generation failed: " + error},
                  {"type", "server_error"},
                  {"param", nullptr},
                  {"code", nullptr}}}};
      reply->write("data: " + e.dump() + "\n\n");
      reply->write("data: [DONE]\n\n");
      reply->end();
    };
    const size_t job = engine_->submit(p.request, std::move(hooks));
    ServeEngine* engine = engine_.get();
    reply->on_close([engine, job] { engine->cancel(job); });
  }

  const ServeOptions& o_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::unique_ptr<Generator> gen_;
  std::unique_ptr<ChatTemplate> chat_;
  std::unique_ptr<ServeEngine> engine_;
  HttpFront* front_ = nullptr;
  std::string name_;
  int64_t created_ = static_cast<int64_t>(std::time(nullptr));
  std::atomic<int64_t> next_id_{0};
};

}  // namespace

void serve(const ServeOptions& options, const std::function<void(int port)>& on_listening) {
  Server server(options);
  server.run(on_listening);
}

void stop_serving() {
  if (auto* f = g_front.load()) f->stop();
}

}  // namespace rlaif
