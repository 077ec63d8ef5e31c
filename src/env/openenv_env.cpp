// The "openenv" environment client: a pool of OpenEnv HTTP servers, one environment each. Each server has a worker
// thread that runs its episode's requests in order with libcurl; an episode holds its server from reset to close().
#include "env/openenv_env.h"

#include <curl/curl.h>

#include <mutex>
#include <thread>

namespace rlaif {
namespace {

size_t append_body(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

}  // namespace

OpenEnvEnvironment::OpenEnvEnvironment(EnvConfig config) : config_(std::move(config)) {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  for (auto url : config_.base_urls) {
    while (!url.empty() && url.back() == '/') url.pop_back();
    servers_.push_back(Server{url, -1, false, {}});
  }
  for (size_t i = 0; i < servers_.size(); ++i) workers_.emplace_back([this, i] { work(i); });
}

OpenEnvEnvironment::~OpenEnvEnvironment() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& w : workers_) w.join();
}

void OpenEnvEnvironment::reset(int64_t episode, const nlohmann::json& row, uint64_t seed) {
  // OpenEnv's ResetRequest: seed and episode_id, plus any fields of the row's "env" object (custom reset parameters).
  nlohmann::json body = {{"seed", seed}, {"episode_id", std::to_string(episode)}};
  if (row.is_object() && row.contains("env") && row["env"].is_object())
    for (const auto& [k, v] : row["env"].items()) body[k] = v;
  replies_.opened(episode);
  std::lock_guard<std::mutex> lock(mu_);
  waiting_.push_back(Job{episode, true, "/reset", body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)});
  assign_free_servers();
}

void OpenEnvEnvironment::step(int64_t episode, const std::string& action) {
  nlohmann::json body = {{"action", {{config_.action_field, action}}}};
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& s : servers_)
    if (s.episode == episode) {
      s.jobs.push_back(
          Job{episode, false, "/step", body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)});
      cv_.notify_all();
      return;
    }
  EnvReply r;
  r.episode = episode;
  r.failure = "env_error";
  r.detail = "episode " + std::to_string(episode) + " holds no environment server (not reset, or closed)";
  replies_.push(std::move(r), false);
}

void OpenEnvEnvironment::close(int64_t episode) {
  replies_.closed(episode);
  std::lock_guard<std::mutex> lock(mu_);
  for (size_t i = 0; i < waiting_.size(); ++i)
    if (waiting_[i].episode == episode) waiting_.erase(waiting_.begin() + static_cast<long>(i)), --i;
  for (auto& s : servers_)
    if (s.episode == episode) {
      s.jobs.clear();
      if (!s.busy) s.episode = -1;  // else the worker frees it when its request ends
    }
  assign_free_servers();
}

void OpenEnvEnvironment::assign_free_servers() {
  for (auto& s : servers_) {
    if (waiting_.empty()) break;
    if (s.episode != -1 || s.busy) continue;
    s.episode = waiting_.front().episode;
    s.jobs.push_back(std::move(waiting_.front()));
    waiting_.pop_front();
  }
  cv_.notify_all();
}

std::vector<EnvReply> OpenEnvEnvironment::poll(double wait_s) { return replies_.poll(wait_s); }

int64_t OpenEnvEnvironment::outstanding() const {
  std::lock_guard<std::mutex> lock(mu_);
  int64_t n = static_cast<int64_t>(waiting_.size());
  for (const auto& s : servers_) n += static_cast<int64_t>(s.jobs.size()) + (s.busy ? 1 : 0);
  return n + replies_.queued();
}

void OpenEnvEnvironment::work(size_t index) {
  CURL* curl = curl_easy_init();  // one handle per server: its connection is kept alive between requests
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    cv_.wait(lock, [&] { return stopping_.load() || !servers_[index].jobs.empty(); });
    if (stopping_) break;
    Job job = std::move(servers_[index].jobs.front());
    servers_[index].jobs.pop_front();
    servers_[index].busy = true;
    const std::string url = servers_[index].url + job.path;
    lock.unlock();
    EnvReply r = send(curl, url, job);
    lock.lock();
    Server& s = servers_[index];
    s.busy = false;
    if (s.episode == job.episode) replies_.push(std::move(r), job.reset);  // else closed while its request ran
    assign_free_servers();
  }
  lock.unlock();
  curl_easy_cleanup(curl);
}

EnvReply OpenEnvEnvironment::send(void* handle, const std::string& url, const Job& job) {
  CURL* curl = static_cast<CURL*>(handle);
  EnvReply r;
  r.episode = job.episode;
  const auto t0 = std::chrono::steady_clock::now();
  curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
  for (int attempt = 0;; ++attempt) {
    std::string body;
    curl_easy_reset(curl);
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl, CURLOPT_POST, 1L);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, job.body.c_str());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, static_cast<long>(job.body.size()));
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(config_.timeout_s * 1000));
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, append_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);  // so that a stopping client aborts a request at once
    curl_easy_setopt(
        curl, CURLOPT_XFERINFOFUNCTION, +[](void* self, curl_off_t, curl_off_t, curl_off_t, curl_off_t) -> int {
          return static_cast<OpenEnvEnvironment*>(self)->stopping_ ? 1 : 0;
        });
    curl_easy_setopt(curl, CURLOPT_XFERINFODATA, this);
    const CURLcode rc = curl_easy_perform(curl);
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    r.attempts = attempt + 1;
    bool sent = true;  // whether the request may have reached the environment
    if (rc == CURLE_OK && status >= 200 && status < 300) {
      read_env_answer(body, config_.observation_field, r);
      break;
    }
    if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST) {
      sent = false;
      r.failure = "env_connection";
      r.detail = std::string("cannot connect to ") + url + ": " + curl_easy_strerror(rc);
    } else if (rc == CURLE_OPERATION_TIMEDOUT) {
      r.failure = "env_timeout";
      r.detail = url + " did not answer within " + std::to_string(config_.timeout_s) + " s (env.timeout_s)";
    } else if (rc != CURLE_OK) {
      r.failure = "env_connection";
      r.detail = url + ": " + curl_easy_strerror(rc);
    } else {
      r.failure = status == 429 ? "env_http_429" : status >= 500 ? "env_http_5xx" : "env_http_4xx";
      r.detail = url + " answered HTTP " + std::to_string(status) + ": " + body.substr(0, 300);
    }
    r.ok = false;
    // A reset may be sent again (it starts the episode afresh); a step only if it never reached the server.
    const bool retryable = r.failure != "env_http_4xx" && (job.reset || !sent);
    if (!retryable || attempt >= config_.max_retries || stopping_) break;
    replies_.count_retry();
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, std::chrono::duration<double>(config_.backoff_base_s * (1 << std::min(attempt, 10))),
                 [&] { return stopping_.load(); });
  }
  curl_slist_free_all(headers);
  r.latency_s = seconds_since(t0);
  return r;
}

}  // namespace rlaif
