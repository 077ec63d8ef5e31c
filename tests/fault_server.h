// A real HTTP server on 127.0.0.1 (cpp-httplib) that misbehaves on purpose, for the HTTP client and judge tests.
// POST /v1/chat/completions reads {"fault": MODE, "id": ID} from the body (or, for judge requests, "FAULT=MODE" and
// "ID=..." inside the last message) and counts attempts per id. MODE is one of
//   ok | 4xx | invalid_json | non_numeric | 429xN | 500xN | timeoutxN | truncatexN | dripxN | timeout | 500 | chaosP
// where "xN" means: misbehave on the first N attempts, then answer normally, and "chaosP" misbehaves on P% of
// attempts, each time in one of seven ways (429, 500, timeout, truncate, drip, invalid_json, non_numeric), drawn
// from a hash of the id and the attempt so that a run repeats itself.
// A normal answer is an OpenAI chat completion whose content is a verdict JSON: score 7 on every requested key, or N
// when the last message says "SCORE=N" (the last such marker counts, so an appended injection can move it). A
// group prompt with BIAS=first gets 10 for response 1 and 1 for the others. A
// pairwise prompt gets {"winner": ...} preferring the response containing GOOD, or always "A" if BIAS=A appears, or
// the response with more letters 'a' if PREFER=a appears.
#pragma once

#include <arpa/inet.h>
#include <dirent.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace rlaif_test {

class FaultServer {
 public:
  explicit FaultServer(int added_latency_ms = 0, int threads = 300) : latency_ms_(added_latency_ms) {
    server_.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
    server_.set_tcp_nodelay(true);  // else Nagle holds the body behind the headers for a delayed ACK
    server_.Get("/health",
                [](const httplib::Request&, httplib::Response& res) { res.set_content("ok", "text/plain"); });
    server_.Post("/v1/chat/completions",
                 [this](const httplib::Request& req, httplib::Response& res) { handle(req, res); });
    port_ = server_.bind_to_any_port("127.0.0.1");
    raise_backlog(port_);
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~FaultServer() { stop(); }
  // Stops serving: from now on connections are refused (a server that died).
  void stop() {
    if (!thread_.joinable()) return;
    server_.stop();
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/v1/chat/completions"; }
  std::string base_url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/v1"; }
  int64_t requests() const { return requests_; }
  // The most requests it was handling at once.
  int max_concurrent() const { return max_concurrent_; }
  // When each request arrived (steady-clock seconds), in arrival order.
  std::vector<double> arrivals() const {
    std::lock_guard<std::mutex> lock(mu_);
    return arrivals_;
  }

 private:
  // Debian's cpp-httplib listens with a backlog of 5, so a burst of connections overflows the accept queue and the
  // kernel drops connections: the server, not the client under test, would then be the bottleneck. Calling listen()
  // again on the listening socket raises its backlog.
  static void raise_backlog(int port) {
    DIR* d = opendir("/proc/self/fd");
    if (!d) return;
    while (dirent* e = readdir(d)) {
      int fd = std::atoi(e->d_name);
      sockaddr_in addr{};
      socklen_t len = sizeof(addr);
      int listening = 0;
      socklen_t optlen = sizeof(listening);
      if (fd > 2 && getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0 && addr.sin_family == AF_INET &&
          ntohs(addr.sin_port) == port && getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &optlen) == 0 &&
          listening)
        ::listen(fd, 4096);
    }
    closedir(d);
  }

  static std::string field(const std::string& text, const std::string& key) {
    size_t at = text.rfind(key + "=");  // the last one: text appended to a completion can override it
    if (at == std::string::npos) return "";
    size_t end = text.find_first_of(" \n\"", at);
    return text.substr(at + key.size() + 1, end == std::string::npos ? std::string::npos : end - at - key.size() - 1);
  }

  void handle(const httplib::Request& req, httplib::Response& res) {
    ++requests_;
    {
      std::lock_guard<std::mutex> lock(mu_);
      arrivals_.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count());
      max_concurrent_ = std::max(max_concurrent_, ++concurrent_);
    }
    struct Leave {  // however the handler returns
      FaultServer* s;
      ~Leave() {
        std::lock_guard<std::mutex> lock(s->mu_);
        --s->concurrent_;
      }
    } leave{this};
    if (latency_ms_ > 0) std::this_thread::sleep_for(std::chrono::milliseconds(latency_ms_));
    auto body = nlohmann::json::parse(req.body, nullptr, false);
    std::string fault = "ok", id = "-", text;
    if (body.is_object() && body.contains("fault")) {
      fault = body["fault"];
      id = body.value("id", "-");
    } else if (body.is_object() && body.contains("messages") && !body["messages"].empty()) {
      text = body["messages"].back().value("content", "");
      if (!field(text, "FAULT").empty()) fault = field(text, "FAULT");
      if (!field(text, "ID").empty()) id = field(text, "ID");
    }
    int attempt;
    {
      std::lock_guard<std::mutex> lock(mu_);
      attempt = ++attempts_[id];
    }
    std::string mode = fault;
    size_t x = fault.rfind('x');
    if (x != std::string::npos && x + 1 < fault.size() && std::isdigit(static_cast<unsigned char>(fault[x + 1]))) {
      mode = fault.substr(0, x);
      if (attempt > std::stoi(fault.substr(x + 1))) mode = "ok";
    }
    if (fault.rfind("chaos", 0) == 0) {
      static const char* kWays[] = {"429", "500", "timeout", "truncate", "drip", "invalid_json", "non_numeric"};
      uint64_t h = std::hash<std::string>()(id + "#" + std::to_string(attempt)) * 0x9E3779B97F4A7C15ull;
      h ^= h >> 29;
      const bool fails = static_cast<int>(h % 100) < std::stoi(fault.substr(5));
      mode = fails ? kWays[(h / 100) % 7] : "ok";
    }
    if (mode == "429") {
      res.status = 429;
      res.set_header("Retry-After", "1");
      res.set_content("{\"error\": {\"message\": \"rate limited\"}}", "application/json");
    } else if (mode == "500") {
      res.status = 500;
      res.set_content("{\"error\": {\"message\": \"internal\"}}", "application/json");
    } else if (mode == "4xx") {
      res.status = 400;
      res.set_content("{\"error\": {\"message\": \"bad request\"}}", "application/json");
    } else if (mode == "timeout") {
      std::this_thread::sleep_for(std::chrono::milliseconds(2500));
      res.set_content(answer(body, 7), "application/json");
    } else if (mode == "truncate") {
      std::string full = answer(body, 7);
      res.set_content_provider(full.size(), "application/json", [full](size_t offset, size_t, httplib::DataSink& sink) {
        if (offset == 0) sink.write(full.data(), full.size() / 2);
        return false;  // abort: the client gets half the declared body
      });
    } else if (mode == "drip") {
      std::string full = answer(body, 7);
      res.set_content_provider(full.size(), "application/json", [full](size_t offset, size_t, httplib::DataSink& sink) {
        std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the whole body takes 8 x 300 ms
        sink.write(full.data() + offset, std::min(full.size() / 8 + 1, full.size() - offset));
        return true;
      });
    } else if (mode == "invalid_json") {
      res.set_content("{\"choices\": [{\"message\": {\"content\": ", "application/json");
    } else if (mode == "non_numeric") {
      res.set_content(answer(body, -1), "application/json");
    } else {
      std::string score = field(text, "SCORE");
      res.set_content(answer(body, score.empty() ? 7 : std::stoi(score)), "application/json");
    }
  }

  // A criterion listed as "- KEY (MIN to MAX): Mentions WORD" (or "(1 = yes, 0 = no)"): MAX (or 1) when WORD is in the
  // completion's text (inside its block), else MIN (or 0). Nothing for any other criterion.
  static std::optional<int> mentions(const std::string& prompt, const std::string& key) {
    size_t line = prompt.find("\n- " + key + " (");
    if (line == std::string::npos) return std::nullopt;
    size_t open = prompt.find('(', line), close = prompt.find("): Mentions ", line);
    size_t eol = prompt.find('\n', line + 1);
    if (close == std::string::npos || (eol != std::string::npos && close > eol)) return std::nullopt;
    const std::string word = prompt.substr(close + 12, (eol == std::string::npos ? prompt.size() : eol) - close - 12);
    const std::string scale = prompt.substr(open + 1, close - open - 1);  // "1 to 10" or "1 = yes, 0 = no"
    int lo = 0, hi = 1;
    if (scale.find(" to ") != std::string::npos)
      lo = std::stoi(scale), hi = std::stoi(scale.substr(scale.find(" to ") + 4));
    size_t from = prompt.find('>', prompt.find("<completion-")), to = prompt.find("</completion-");
    if (from == std::string::npos || to == std::string::npos || from > to) return std::nullopt;
    return prompt.substr(from, to - from).find(word) != std::string::npos ? hi : lo;
  }

  // An OpenAI chat completion whose content is a verdict with `score` for each criterion named in the prompt's
  // output format ("key": <integer ...>); score -1 writes "high" instead of a number.
  static std::string answer(const nlohmann::json& body, int score) {
    std::string prompt = body.is_object() && body.contains("messages") && !body["messages"].empty()
                             ? body["messages"].back().value("content", "")
                             : "";
    nlohmann::json scores = nlohmann::json::object();
    for (size_t p = prompt.find("\": <integer"); p != std::string::npos; p = prompt.find("\": <integer", p + 1)) {
      size_t q = prompt.rfind('"', p - 1);
      std::string key = prompt.substr(q + 1, p - q - 1);
      if (score < 0)
        scores[key] = "high";
      else if (auto mention = mentions(prompt, key))  // a criterion "Mentions WORD": top or bottom of its scale
        scores[key] = *mention;
      else if (prompt.find("BIAS=first") != std::string::npos)  // a judge with position bias: the first wins
        scores[key] = key == "1" ? 10 : 1;
      else
        scores[key] = score;
    }
    nlohmann::json content = {{"rationale", "fine"}, {"scores", scores}};
    size_t a = prompt.find("<response-A-"), b = prompt.find("<response-B-");
    if (a != std::string::npos && b != std::string::npos) {  // pairwise: prefer the response that says GOOD
      bool good_a = prompt.substr(a, b - a).find("GOOD") != std::string::npos;
      bool good_b = prompt.substr(b).find("GOOD") != std::string::npos;
      std::string winner = prompt.find("BIAS=A") != std::string::npos ? "A"
                           : good_a == good_b                         ? "tie"
                           : good_a                                   ? "A"
                                                                      : "B";
      if (prompt.find("PREFER=a") != std::string::npos) {  // the response with more letters 'a' wins
        size_t end_a = prompt.find("</response-A-"), end_b = prompt.find("</response-B-");
        auto count = [&](size_t from, size_t to) {
          return std::count(prompt.begin() + from, prompt.begin() + to, 'a');
        };
        auto na = count(prompt.find('>', a), end_a), nb = count(prompt.find('>', b), end_b);  // texts only, not tags
        winner = na == nb ? "tie" : na > nb ? "A" : "B";
      }
      content = {{"rationale", "compared"}, {"winner", winner}};
    }
    // DIST=v:p/v:p/...: the judge's distribution over each score; it writes the most likely value, and with
    // "logprobs": true reports its tokens (digit runs one token, every other character one) with that
    // distribution as the score tokens' alternatives.
    const std::string dist = field(prompt, "DIST");
    std::vector<std::pair<std::string, double>> alternatives;
    for (size_t at = 0; !dist.empty() && at < dist.size();) {
      size_t slash = dist.find('/', at), colon = dist.find(':', at);
      if (slash == std::string::npos) slash = dist.size();
      alternatives.emplace_back(dist.substr(at, colon - at),
                                std::log(std::stod(dist.substr(colon + 1, slash - colon - 1))));
      at = slash + 1;
    }
    if (!alternatives.empty() && content.contains("scores")) {
      auto best = std::max_element(alternatives.begin(), alternatives.end(),
                                   [](const auto& a, const auto& b) { return a.second < b.second; });
      for (auto& [key, value] : content["scores"].items()) value = std::stoi(best->first);
    }
    nlohmann::json choice = {
        {"index", 0}, {"message", {{"role", "assistant"}, {"content", content.dump()}}}, {"finish_reason", "stop"}};
    if (!alternatives.empty() && body.value("logprobs", false)) {
      const std::string text = content.dump();
      nlohmann::json tokens = nlohmann::json::array();
      for (size_t i = 0; i < text.size();) {
        size_t j = i + 1;
        while (std::isdigit(static_cast<unsigned char>(text[i])) && j < text.size() &&
               std::isdigit(static_cast<unsigned char>(text[j])))
          ++j;
        const std::string t = text.substr(i, j - i);
        nlohmann::json top = nlohmann::json::array();
        if (std::isdigit(static_cast<unsigned char>(t[0])))
          for (const auto& [v, lp] : alternatives) top.push_back({{"token", v}, {"logprob", lp}});
        else
          top.push_back({{"token", t}, {"logprob", 0.0}});
        tokens.push_back({{"token", t}, {"logprob", top[0]["logprob"]}, {"top_logprobs", top}});
        i = j;
      }
      choice["logprobs"] = {{"content", tokens}};
    }
    nlohmann::json reply = {{"id", "chatcmpl-test"},
                            {"object", "chat.completion"},
                            {"model", body.value("model", "fault")},
                            {"choices", {choice}},
                            {"usage", {{"prompt_tokens", 100}, {"completion_tokens", 20}, {"total_tokens", 120}}}};
    return reply.dump();
  }

  httplib::Server server_;
  std::thread thread_;
  int port_ = 0, latency_ms_ = 0;
  std::atomic<int64_t> requests_{0};
  mutable std::mutex mu_;
  std::map<std::string, int> attempts_;
  std::vector<double> arrivals_;
  int concurrent_ = 0, max_concurrent_ = 0;
};

}  // namespace rlaif_test
