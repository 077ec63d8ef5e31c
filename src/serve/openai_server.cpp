// The OpenAI-compatible server. HTTP handler threads (cpp-httplib's pool) turn requests into GenerationRequests and
// wait; one worker thread takes whatever has queued (after a short gathering window) and runs it as one generate()
// call, so concurrent requests share decode steps. Errors are OpenAI-shaped: {"error": {"message", "type", "param",
// "code"}} with 400 / 401 / 404 / 413 / 500.
#include "rlaif/openai_server.h"

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <deque>
#include <filesystem>
#include <future>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/unicode.h"
#include "rlaif/chat_template.h"
#include "rlaif/error.h"
#include "rlaif/generator.h"
#include "rlaif/model.h"
#include "rlaif/model_folder.h"
#include "rlaif/model_source.h"
#include "serve/serve_request.h"

namespace rlaif {
namespace {

using json = nlohmann::json;

std::atomic<httplib::Server*> g_server{nullptr};

void send_error(httplib::Response& res, int status, const std::string& message, const std::string& param = "",
                const std::string& code = "") {
  json e = {{"message", message},
            {"type", status == 401   ? "authentication_error"
                     : status >= 500 ? "server_error"
                                     : "invalid_request_error"},
            {"param", param.empty() ? json(nullptr) : json(param)},
            {"code", code.empty() ? json(nullptr) : json(code)}};
  res.status = status;
  res.set_content(json({{"error", e}}).dump(), "application/json");
}

// Runs queued requests together: one generate() call per gathered batch.
class Batcher {
 public:
  Batcher(Generator& gen, double window_s) : gen_(gen), window_s_(window_s), worker_([this] { loop(); }) {}
  ~Batcher() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    worker_.join();
  }
  // Streaming hooks of one job: its tokens and finished samples as they happen, or why it was refused.
  struct Hooks {
    std::function<void(size_t sample, int64_t token)> on_token;
    std::function<void(size_t sample, const Sample& sample_out)> on_sample;
    std::function<void(const std::string& error)> on_error;
  };
  // Queues `requests`; the future gives their results, or the generator's rlaif::Error for a request it refuses.
  std::future<std::vector<GenerationResult>> submit(std::vector<GenerationRequest> requests, Hooks hooks = {}) {
    auto job = std::make_shared<Job>();
    job->requests = std::move(requests);
    job->hooks = std::move(hooks);
    auto done = job->done.get_future();
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.push_back(job);
    }
    cv_.notify_all();
    return done;
  }
  std::vector<GenerationResult> run(std::vector<GenerationRequest> requests) {
    return submit(std::move(requests)).get();
  }
  json stats() const { return {{"requests", requests_.load()}, {"batches", batches_.load()}}; }

 private:
  struct Job {
    std::vector<GenerationRequest> requests;
    Hooks hooks;
    std::promise<std::vector<GenerationResult>> done;
  };

  // Runs `jobs` as one generate() call, routing each request's tokens and samples to its job's hooks.
  std::vector<GenerationResult> generate(const std::vector<std::shared_ptr<Job>>& jobs) {
    std::vector<GenerationRequest> all;
    std::vector<Job*> owner;
    for (const auto& j : jobs)
      for (const auto& r : j->requests) all.push_back(r), owner.push_back(j.get());
    return gen_.generate(
        all,
        [&](size_t r, size_t sample, const Sample& out) {
          if (owner[r]->hooks.on_sample) owner[r]->hooks.on_sample(sample, out);
        },
        [&](size_t r, size_t sample, int64_t token) {
          if (owner[r]->hooks.on_token) owner[r]->hooks.on_token(sample, token);
        });
  }

  void loop() {
    for (;;) {
      std::vector<std::shared_ptr<Job>> jobs;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        if (stopping_ && queue_.empty()) return;
        lock.unlock();
        std::this_thread::sleep_for(std::chrono::duration<double>(window_s_));  // let concurrent requests join
        lock.lock();
        jobs.assign(queue_.begin(), queue_.end());
        queue_.clear();
      }
      try {
        auto results = generate(jobs);
        // Counted before any reply goes out, so /health read after a reply already includes it.
        batches_ += 1;
        requests_ += static_cast<int64_t>(jobs.size());
        size_t at = 0;
        for (const auto& j : jobs) {
          std::vector<GenerationResult> mine(results.begin() + static_cast<std::ptrdiff_t>(at),
                                             results.begin() + static_cast<std::ptrdiff_t>(at + j->requests.size()));
          at += j->requests.size();
          j->done.set_value(std::move(mine));
        }
      } catch (...) {
        // One refused request must not fail the others: run each job alone.
        for (const auto& j : jobs) {
          try {
            auto mine = generate({j});
            batches_ += 1;
            requests_ += 1;
            j->done.set_value(std::move(mine));
          } catch (const std::exception& e) {
            if (j->hooks.on_error) j->hooks.on_error(e.what());
            j->done.set_exception(std::current_exception());
          }
        }
      }
    }
  }

  Generator& gen_;
  double window_s_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Job>> queue_;
  bool stopping_ = false;
  std::atomic<int64_t> requests_{0}, batches_{0};
  std::thread worker_;
};

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
    batcher_ = std::make_unique<Batcher>(*gen_, o.batch_window_s);
  }

  void run(const std::function<void(int)>& on_listening) {
    httplib::Server svr;
    svr.set_payload_max_length(o_.max_request_bytes);
    svr.set_pre_routing_handler([&](const httplib::Request& req, httplib::Response& res) {
      if (o_.api_key.empty() || req.path == "/health") return httplib::Server::HandlerResponse::Unhandled;
      if (req.get_header_value("Authorization") != "Bearer " + o_.api_key) {
        send_error(res, 401, "invalid or missing API key (send Authorization: Bearer <key>)", "", "invalid_api_key");
        return httplib::Server::HandlerResponse::Handled;
      }
      return httplib::Server::HandlerResponse::Unhandled;
    });
    svr.Get("/health", [&](const httplib::Request&, httplib::Response& res) {
      json j = {{"status", "ok"}, {"model", name_}};
      j.update(batcher_->stats());
      res.set_content(j.dump(), "application/json");
    });
    svr.Get("/v1/models", [&](const httplib::Request&, httplib::Response& res) {
      json m = {{"id", name_}, {"object", "model"}, {"created", created_}, {"owned_by", "rlaif"}};
      res.set_content(json({{"object", "list"}, {"data", json::array({m})}}).dump(), "application/json");
    });
    svr.Post("/v1/chat/completions",
             [&](const httplib::Request& req, httplib::Response& res) { handle(req, res, true); });
    svr.Post("/v1/completions", [&](const httplib::Request& req, httplib::Response& res) { handle(req, res, false); });
    svr.set_error_handler([&](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return;
      if (res.status == 413)
        send_error(res, 413, "request body larger than " + std::to_string(o_.max_request_bytes) + " bytes");
      else if (res.status == 404)
        send_error(res, 404, "no route " + req.method + " " + req.path, "", "not_found");
    });
    int port = o_.port;
    if (port == 0) {
      port = svr.bind_to_any_port(o_.host);
      if (port < 0) throw Error("cannot bind", o_.host, "check --host");
    } else if (!svr.bind_to_port(o_.host, port)) {
      throw Error("cannot bind " + o_.host + ":" + std::to_string(port), "--port", "is another server using the port?");
    }
    g_server = &svr;
    if (on_listening) on_listening(port);
    svr.listen_after_bind();
    g_server = nullptr;
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

  void handle(const httplib::Request& req, httplib::Response& res, bool chat) {
    ServeRequest p;
    try {
      p = parse_serve_request(req.body, chat, o_);
      encode_prompt(p);
      if (p.stream) return stream(p, res, chat);
      reply(p, batcher_->run({p.request}), res, chat);
    } catch (const BadRequest& e) {
      send_error(res, 400, e.message, e.param, "invalid_request");
    } catch (const Error& e) {  // the generator refused it (e.g. no room in the context): the request's fault
      send_error(res, 400, e.what(), "", "invalid_request");
    } catch (const std::exception& e) {
      send_error(res, 500, std::string("generation failed: ") + e.what());
    }
  }

  json usage_json(const ServeRequest& p, int64_t completion_tokens) const {
    const int64_t prompt_tokens = static_cast<int64_t>(p.request.prompt_ids.size());
    return {{"prompt_tokens", prompt_tokens},
            {"completion_tokens", completion_tokens},
            {"total_tokens", prompt_tokens + completion_tokens}};
  }

  void reply(const ServeRequest& p, const std::vector<GenerationResult>& results, httplib::Response& res, bool chat) {
    const auto& samples = results.at(0).samples;
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
                  {"usage", usage_json(p, completion_tokens)}};
    res.set_content(reply.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
  }

  // Server-sent events, live: each token's text is sent as it is drawn. Text that could still turn out to be the
  // start of a stop string, or an incomplete UTF-8 character, is held back until it is settled, so the deltas always
  // concatenate to exactly the non-streamed text.
  void stream(const ServeRequest& p, httplib::Response& res, bool chat) {
    struct SampleState {
      std::string bytes;  // the sample's bytes so far
      size_t sent = 0;    // bytes already sent
      int64_t tokens = 0;
    };
    struct State {
      std::mutex mu;
      std::condition_variable cv;
      std::deque<std::string> events;
      bool done = false;
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
    auto push = [st](std::string e) {
      std::lock_guard<std::mutex> lock(st->mu);
      st->events.push_back(std::move(e));
      st->cv.notify_all();
    };
    if (chat)
      for (size_t i = 0; i < st->samples.size(); ++i)
        push(event({{"index", i}, {"delta", {{"role", "assistant"}, {"content", ""}}}, {"finish_reason", nullptr}}));
    Batcher::Hooks hooks;
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
      push(delta(i, s.bytes.substr(s.sent, upto - s.sent)));
      s.sent = upto;
    };
    hooks.on_sample = [=](size_t i, const Sample& out) {
      auto& s = st->samples[i];
      if (out.text.size() > s.sent && out.text.compare(0, s.sent, s.bytes, 0, s.sent) == 0)
        push(delta(i, out.text.substr(s.sent)));
      json last = {{"index", i}, {"finish_reason", to_string(out.finish_reason)}};
      if (chat)
        last["delta"] = json::object();
      else
        last["text"] = "";
      std::lock_guard<std::mutex> lock(st->mu);
      int64_t total = 0;
      for (const auto& x : st->samples) total += x.tokens;
      bool all = ++st->finished == static_cast<int64_t>(st->samples.size());
      st->events.push_back(event(last, all ? usage_json(p, total) : json()));
      if (all) st->events.push_back("data: [DONE]\n\n"), st->done = true;
      st->cv.notify_all();
    };
    hooks.on_error = [=](const std::string& error) {
      json e = {
          {"error",
           {{"message", error}, {"type", "invalid_request_error"}, {"param", nullptr}, {"code", "invalid_request"}}}};
      std::lock_guard<std::mutex> lock(st->mu);
      st->events.push_back("data: " + e.dump() + "\n\n");
      st->events.push_back("data: [DONE]\n\n");
      st->done = true;
      st->cv.notify_all();
    };
    auto result = std::make_shared<std::future<std::vector<GenerationResult>>>(batcher_->submit({p.request}, hooks));
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider("text/event-stream", [st, result](size_t, httplib::DataSink& sink) {
      std::unique_lock<std::mutex> lock(st->mu);
      st->cv.wait(lock, [&] { return !st->events.empty() || st->done; });
      if (st->events.empty()) {
        sink.done();
        return true;
      }
      std::string e = std::move(st->events.front());
      st->events.pop_front();
      lock.unlock();
      return sink.write(e.data(), e.size());
    });
  }

  const ServeOptions& o_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::unique_ptr<Generator> gen_;
  std::unique_ptr<ChatTemplate> chat_;
  std::unique_ptr<Batcher> batcher_;
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
  if (auto* s = g_server.load()) s->stop();
}

}  // namespace rlaif
