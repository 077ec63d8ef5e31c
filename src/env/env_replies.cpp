#include "env/env_replies.h"

namespace rlaif {

void EnvReplies::opened(int64_t episode) {
  std::lock_guard<std::mutex> lock(mu_);
  open_.insert(episode);
}

void EnvReplies::closed(int64_t episode) {
  std::lock_guard<std::mutex> lock(mu_);
  open_.erase(episode);
}

void EnvReplies::push(EnvReply reply, bool reset) {
  std::lock_guard<std::mutex> lock(mu_);
  ++(reset ? stats_.resets : stats_.steps);
  stats_.latency_s += reply.latency_s;
  if (!reply.ok) ++stats_.failed, ++stats_.failures[reply.failure];
  if (!open_.count(reply.episode)) return;
  queue_.push_back(std::move(reply));
  cv_.notify_all();
}

std::vector<EnvReply> EnvReplies::poll(double wait_s) {
  std::unique_lock<std::mutex> lock(mu_);
  if (queue_.empty() && wait_s > 0)
    cv_.wait_for(lock, std::chrono::duration<double>(wait_s), [&] { return !queue_.empty(); });
  std::vector<EnvReply> out(std::make_move_iterator(queue_.begin()), std::make_move_iterator(queue_.end()));
  queue_.clear();
  return out;
}

int64_t EnvReplies::queued() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int64_t>(queue_.size());
}

void EnvReplies::count_retry() {
  std::lock_guard<std::mutex> lock(mu_);
  ++stats_.retries;
}

void EnvReplies::count_restart() {
  std::lock_guard<std::mutex> lock(mu_);
  ++stats_.restarts;
}

void EnvReplies::count_bad_line() {
  std::lock_guard<std::mutex> lock(mu_);
  ++stats_.bad_lines;
}

void EnvReplies::count_tool_call(const std::string& outcome) {
  std::lock_guard<std::mutex> lock(mu_);
  ++stats_.tool_calls[outcome];
}

EnvStats EnvReplies::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

namespace {

std::string observation_text(const nlohmann::json& obs, const std::string& field, std::string& missing) {
  auto text = [](const nlohmann::json& v) {
    return v.is_string() ? v.get<std::string>() : v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  };
  if (obs.is_string()) return obs.get<std::string>();
  if (!field.empty()) {
    if (!obs.is_object() || !obs.contains(field)) {
      missing = "the observation has no field \"" + field + "\" (env.observation_field)";
      return "";
    }
    return text(obs[field]);
  }
  if (obs.is_object()) {
    const nlohmann::json* only = nullptr;
    int strings = 0;
    for (const auto& [k, v] : obs.items())
      if (v.is_string()) ++strings, only = &v;
    if (strings == 1) return only->get<std::string>();
  }
  return text(obs);
}

}  // namespace

void read_env_answer(const std::string& body, const std::string& observation_field, EnvReply& r) {
  auto bad = [&](const std::string& why) {
    r.ok = false;
    r.failure = "env_bad_reply";
    r.detail = why + ": " + body.substr(0, 300);
  };
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(body, nullptr, false);
  } catch (const nlohmann::json::exception& e) {
    return bad(std::string("not valid JSON (") + e.what() + ")");
  }
  if (j.is_discarded()) return bad("not valid JSON");
  if (!j.is_object()) return bad("not a JSON object");
  if (j.contains("error")) {
    r.ok = false;
    r.failure = "env_error";
    r.detail = j["error"].is_string() ? j["error"].get<std::string>() : j["error"].dump();
    return;
  }
  if (!j.contains("observation")) return bad("no \"observation\"");
  std::string missing;
  r.raw = j["observation"];
  r.observation = observation_text(r.raw, observation_field, missing);
  if (!missing.empty()) return bad(missing);
  r.reward.reset();
  if (j.contains("reward") && !j["reward"].is_null()) {
    const auto& w = j["reward"];
    if (w.is_boolean())
      r.reward = w.get<bool>() ? 1.0 : 0.0;
    else if (w.is_number())
      r.reward = w.get<double>();
    else
      return bad("\"reward\" is not a number");
  }
  r.done = false;
  if (j.contains("done") && !j["done"].is_null()) {
    if (!j["done"].is_boolean()) return bad("\"done\" is not true or false");
    r.done = j["done"].get<bool>();
  }
  r.ok = true;
  r.failure.clear();
  r.detail.clear();
}

}  // namespace rlaif
