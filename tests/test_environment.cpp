// The environment clients against real environments: OpenEnv HTTP servers on 127.0.0.1 (cpp-httplib) and a command
// environment (a Python program speaking the JSON-lines protocol). Both play the same game: guess a digit (the reset's
// seed mod 10); after a wrong guess the observation says "higher" or "lower"; the episode ends at the right digit
// (reward 1) or after 4 guesses (reward 0). Binary search is the optimal policy and always wins.
#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <thread>

#include "rlaif/environment.h"
#include "test_util.h"

namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

// One game's rule, shared by the HTTP server below and (in Python) by the command program.
json play(int target, int guess, int steps) {
  if (guess == target) return {{"observation", {{"text", "correct"}}}, {"reward", 1.0}, {"done", true}};
  const bool last = steps >= 4;
  return {{"observation", {{"text", guess < target ? "higher" : "lower"}}},
          {"reward", last ? json(0.0) : json(nullptr)},
          {"done", last}};
}

// An OpenEnv server holding one environment. Faults on demand: the first `fail_resets` resets answer 500, steps
// answer 500 while `fail_steps` > 0, each step waits `step_delay_ms`, and `reply` (when set) replaces the body.
class GuessServer {
 public:
  GuessServer() {
    server_.Post("/reset", [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard<std::mutex> lock(mu_);
      ++resets_;
      if (fail_resets > 0) return --fail_resets, res.status = 500, res.set_content("busy", "text/plain");
      const json body = json::parse(req.body);
      target_ = static_cast<int>(body.at("seed").get<uint64_t>() % 10);
      episode_ = body.at("episode_id").get<std::string>();
      steps_ = 0;
      last_reset_ = body;
      res.set_content(
          json({{"observation", {{"text", "guess a digit"}, {"episode_id", episode_}}}, {"done", false}}).dump(),
          "application/json");
    });
    server_.Post("/step", [this](const httplib::Request& req, httplib::Response& res) {
      std::this_thread::sleep_for(std::chrono::milliseconds(step_delay_ms.load()));
      std::lock_guard<std::mutex> lock(mu_);
      ++step_requests_;
      if (fail_steps > 0) return --fail_steps, res.status = 500, res.set_content("oops", "text/plain");
      if (!reply.empty()) return res.set_content(reply, "application/json");
      const json body = json::parse(req.body);
      const int guess = std::atoi(body.at("action").at("message").get<std::string>().c_str());
      json out = play(target_, guess, ++steps_);
      out["observation"]["episode_id"] = episode_;
      res.set_content(out.dump(), "application/json");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~GuessServer() { stop(); }
  void stop() {
    if (!thread_.joinable()) return;
    server_.stop();
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  int resets() {
    std::lock_guard<std::mutex> lock(mu_);
    return resets_;
  }
  int step_requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return step_requests_;
  }
  json last_reset() {
    std::lock_guard<std::mutex> lock(mu_);
    return last_reset_;
  }
  // Faults for the next requests.
  void fail(int resets, int steps) {
    std::lock_guard<std::mutex> lock(mu_);
    fail_resets = resets, fail_steps = steps;
  }
  void set_reply(const std::string& body) {
    std::lock_guard<std::mutex> lock(mu_);
    reply = body;
  }
  std::atomic<int> step_delay_ms{0};

 private:
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  std::mutex mu_;
  int target_ = 0, steps_ = 0, resets_ = 0, step_requests_ = 0, fail_resets = 0, fail_steps = 0;
  std::string reply;
  std::string episode_;
  json last_reset_;
};

// The binary-search policy of one episode.
struct Searcher {
  int lo = 0, hi = 9, last = -1;
  std::string act(const std::string& observation) {
    if (observation == "higher") lo = last + 1;
    if (observation == "lower") hi = last - 1;
    last = (lo + hi) / 2;
    return std::to_string(last);
  }
};

// Plays `seeds.size()` episodes (ids 100, 101, ...) to the end with binary search, all started at once (the client
// holds back what exceeds its capacity). Returns every reply, by episode.
std::map<int64_t, std::vector<rlaif::EnvReply>> play_all(rlaif::Environment& env, const std::vector<uint64_t>& seeds) {
  std::map<int64_t, std::vector<rlaif::EnvReply>> replies;
  std::map<int64_t, Searcher> policy;
  for (size_t i = 0; i < seeds.size(); ++i) env.reset(100 + static_cast<int64_t>(i), json::object(), seeds[i]);
  size_t ended = 0;
  const auto t0 = Clock::now();
  while (ended < seeds.size() && Clock::now() - t0 < std::chrono::seconds(60)) {
    for (auto& r : env.poll(1.0)) {
      replies[r.episode].push_back(r);
      if (!r.ok || r.done) {
        env.close(r.episode);
        ++ended;
      } else {
        env.step(r.episode, policy[r.episode].act(r.observation));
      }
    }
  }
  EXPECT_EQ(ended, seeds.size()) << "episodes did not end within 60 s";
  return replies;
}

rlaif::EnvConfig openenv_config(const std::vector<std::string>& urls) {
  rlaif::EnvConfig c;
  c.type = "openenv";
  c.base_urls = urls;
  c.observation_field = "text";
  c.timeout_s = 5;
  c.backoff_base_s = 0.01;
  return c;
}

TEST(OpenEnv, APoolOfServersPlaysMoreEpisodesThanServersEachHeldByOne) {
  GuessServer a, b;
  auto env = rlaif::make_environment(openenv_config({a.url(), b.url() + "/"}));
  EXPECT_EQ(env->capacity(), 2);
  const std::vector<uint64_t> seeds = {3, 9, 10, 27, 5};  // targets 3, 9, 0, 7, 5
  auto replies = play_all(*env, seeds);
  ASSERT_EQ(replies.size(), seeds.size());
  for (const auto& [episode, rs] : replies) {
    ASSERT_FALSE(rs.empty());
    for (const auto& r : rs) {
      ASSERT_TRUE(r.ok) << r.failure << ": " << r.detail;
      // Every answer came from the server holding this episode: no other episode's steps reached it meanwhile.
      EXPECT_EQ(r.raw.at("episode_id"), std::to_string(episode));
    }
    EXPECT_EQ(rs.front().observation, "guess a digit");
    EXPECT_FALSE(rs.front().reward.has_value());
    EXPECT_TRUE(rs.back().done);
    ASSERT_TRUE(rs.back().reward.has_value());
    EXPECT_EQ(*rs.back().reward, 1.0) << "binary search always wins";
    EXPECT_LE(rs.size(), 5u);
  }
  EXPECT_EQ(a.resets() + b.resets(), 5);
  EXPECT_GE(a.resets(), 1);
  EXPECT_GE(b.resets(), 1);
  const auto stats = env->stats();
  EXPECT_EQ(stats.resets, 5);
  EXPECT_EQ(stats.failed, 0);
  EXPECT_EQ(env->outstanding(), 0);
}

TEST(OpenEnv, TheRowsEnvFieldsAndTheSeedReachTheReset) {
  GuessServer a;
  auto env = rlaif::make_environment(openenv_config({a.url()}));
  env->reset(7, json({{"prompt", "p"}, {"env", {{"level", 3}, {"task", "digits"}}}}), 42);
  auto rs = env->poll(5);
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_TRUE(rs[0].ok);
  const json sent = a.last_reset();
  EXPECT_EQ(sent.at("seed"), 42);
  EXPECT_EQ(sent.at("episode_id"), "7");
  EXPECT_EQ(sent.at("level"), 3);
  EXPECT_EQ(sent.at("task"), "digits");
  EXPECT_FALSE(sent.contains("prompt"));
}

TEST(OpenEnv, AResetIsRetriedButAStepThatReachedTheServerIsNeverSentTwice) {
  GuessServer a;
  a.fail(2, 0);
  auto env = rlaif::make_environment(openenv_config({a.url()}));
  env->reset(1, json::object(), 4);
  auto rs = env->poll(5);
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_TRUE(rs[0].ok) << rs[0].detail;
  EXPECT_EQ(rs[0].attempts, 3);
  EXPECT_EQ(a.resets(), 3);
  a.fail(0, 1);
  env->step(1, "4");
  rs = env->poll(5);
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_FALSE(rs[0].ok);
  EXPECT_EQ(rs[0].failure, "env_http_5xx");
  EXPECT_EQ(rs[0].attempts, 1);
  EXPECT_EQ(a.step_requests(), 1);
  EXPECT_EQ(env->stats().retries, 2);
  EXPECT_EQ(env->stats().failures.at("env_http_5xx"), 1);
}

TEST(OpenEnv, ASlowStepTimesOutAndADeadServerFailsTheReset) {
  GuessServer a;
  auto c = openenv_config({a.url()});
  c.timeout_s = 0.3;
  auto env = rlaif::make_environment(c);
  env->reset(1, json::object(), 4);
  ASSERT_EQ(env->poll(5).size(), 1u);
  a.step_delay_ms = 1500;
  const auto t0 = Clock::now();
  env->step(1, "4");
  auto rs = env->poll(5);
  const double waited = std::chrono::duration<double>(Clock::now() - t0).count();
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_EQ(rs[0].failure, "env_timeout");
  EXPECT_EQ(rs[0].attempts, 1) << "a step that may have reached the server is not sent again";
  EXPECT_LT(waited, 1.2);
  env->close(1);
  a.step_delay_ms = 0;

  GuessServer gone;
  const std::string url = gone.url();
  gone.stop();
  c.base_urls = {url};
  c.max_retries = 2;
  auto dead = rlaif::make_environment(c);
  dead->reset(2, json::object(), 1);
  rs = dead->poll(5);
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_EQ(rs[0].failure, "env_connection");
  EXPECT_EQ(rs[0].attempts, 3);
  EXPECT_NE(rs[0].detail.find(url), std::string::npos) << rs[0].detail;
}

TEST(OpenEnv, BadRepliesFailTheEpisodeWithTheReason) {
  GuessServer a;
  auto env = rlaif::make_environment(openenv_config({a.url()}));
  struct Case {
    std::string body, cause, says;
  };
  const std::vector<Case> cases = {
      {"not json", "env_bad_reply", "not valid JSON"},
      {"[1, 2]", "env_bad_reply", "not a JSON object"},
      {R"({"reward": 1})", "env_bad_reply", "no \"observation\""},
      {R"({"observation": {"other": "x"}})", "env_bad_reply", "no field \"text\""},
      {R"({"observation": {"text": "x"}, "reward": "high"})", "env_bad_reply", "\"reward\" is not a number"},
      {R"({"observation": {"text": "x"}, "done": "yes"})", "env_bad_reply", "\"done\" is not true or false"},
  };
  int64_t episode = 10;
  for (const auto& k : cases) {
    a.set_reply("");
    env->reset(episode, json::object(), 1);
    ASSERT_EQ(env->poll(5).size(), 1u);
    a.set_reply(k.body);
    env->step(episode, "1");
    auto rs = env->poll(5);
    ASSERT_EQ(rs.size(), 1u) << k.body;
    EXPECT_EQ(rs[0].failure, k.cause) << k.body;
    EXPECT_NE(rs[0].detail.find(k.says), std::string::npos) << rs[0].detail;
    env->close(episode++);
  }
  // A step for an episode that was never reset is an error, not a hang.
  env->step(999, "1");
  auto rs = env->poll(0.2);
  ASSERT_EQ(rs.size(), 0u) << "a reply for an episode that is not open is dropped";
}

// The same game as a command environment. Actions "hold" (answer only after the next request), "die" (exit 3 with
// a message on stderr), "hang" (never answer) and "error" (an error reply) exercise the client.
const char* kGuessProgram = R"PY(
import json, sys
games, held = {}, None
print("starting", flush=True)  # not a reply: counted as a bad line
for line in sys.stdin:
    m = json.loads(line)
    i = m["id"]
    out = None
    if m["op"] == "reset":
        games[i] = {"target": m["seed"] % 10, "steps": 0}
        out = {"id": i, "observation": "guess a digit", "reward": None, "done": False}
    elif m["op"] == "close":
        games.pop(i, None)
    else:
        a = m["action"]
        if a == "die":
            print("boom: the environment crashed", file=sys.stderr, flush=True)
            sys.exit(3)
        if a == "hang":
            continue
        if a == "error":
            out = {"id": i, "error": "no such move"}
        elif a == "hold":
            held = {"id": i, "observation": "held " + i, "done": False}
            continue
        else:
            g = games[i]
            g["steps"] += 1
            guess, t = int(a), g["target"]
            if guess == t:
                out = {"id": i, "observation": "correct", "reward": 1, "done": True}
            else:
                last = g["steps"] >= 4
                out = {"id": i, "observation": "higher" if guess < t else "lower",
                       "reward": 0 if last else None, "done": last}
    if out is not None:
        print(json.dumps(out), flush=True)
    if held is not None and out is not None:
        print(json.dumps(held), flush=True)
        held = None
)PY";

// Resets episodes 1 (target 3) and 2 (target 4); returns how many resets were answered within 20 s.
size_t start_two(rlaif::Environment& env) {
  env.reset(1, json::object(), 3);
  env.reset(2, json::object(), 4);
  size_t got = 0;
  for (int i = 0; i < 20 && got < 2; ++i) got += env.poll(1).size();
  return got;
}

class CommandEnv : public ::testing::Test {
 protected:
  rlaif::EnvConfig config() {
    rlaif_test::write_text(dir_ / "guess.py", kGuessProgram);
    rlaif::EnvConfig c;
    c.type = "command";
    c.command = {"/usr/bin/python3", dir_ / "guess.py"};
    c.timeout_s = 10;
    return c;
  }
  rlaif_test::TempDir dir_;
};

TEST_F(CommandEnv, InterleavedEpisodesPlayToTheEndInOneProgram) {
  auto env = rlaif::make_environment(config());
  const std::vector<uint64_t> seeds = {3, 9, 10, 27, 5, 6};
  auto replies = play_all(*env, seeds);
  ASSERT_EQ(replies.size(), seeds.size());
  for (const auto& [episode, rs] : replies) {
    for (const auto& r : rs) ASSERT_TRUE(r.ok) << r.failure << ": " << r.detail;
    EXPECT_TRUE(rs.back().done);
    EXPECT_EQ(rs.back().reward.value_or(-1), 1.0);
  }
  const auto stats = env->stats();
  EXPECT_EQ(stats.resets, 6);
  EXPECT_EQ(stats.restarts, 0);
  EXPECT_EQ(stats.bad_lines, 1) << "the program's \"starting\" line";
}

TEST_F(CommandEnv, RepliesInAnyOrderReachTheirEpisodes) {
  auto env = rlaif::make_environment(config());
  ASSERT_EQ(start_two(*env), 2u);
  env->step(1, "hold");  // answered only after episode 2's step
  env->step(2, "4");
  std::vector<rlaif::EnvReply> rs;
  for (int i = 0; i < 20 && rs.size() < 2; ++i)
    for (auto& r : env->poll(1)) rs.push_back(r);
  ASSERT_EQ(rs.size(), 2u);
  EXPECT_EQ(rs[0].episode, 2);
  EXPECT_EQ(rs[0].observation, "correct");
  EXPECT_EQ(rs[1].episode, 1);
  EXPECT_EQ(rs[1].observation, "held 1");
}

TEST_F(CommandEnv, AProgramThatDiesFailsItsEpisodesAndIsStartedAgain) {
  auto env = rlaif::make_environment(config());
  ASSERT_EQ(start_two(*env), 2u);
  env->step(1, "die");
  auto rs = env->poll(10);
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_EQ(rs[0].episode, 1);
  EXPECT_EQ(rs[0].failure, "env_died");
  EXPECT_NE(rs[0].detail.find("exited with status 3"), std::string::npos) << rs[0].detail;
  EXPECT_NE(rs[0].detail.find("boom: the environment crashed"), std::string::npos) << rs[0].detail;
  // Episode 2 lived in the program that died: its next step fails at once.
  env->step(2, "4");
  rs = env->poll(1);
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_EQ(rs[0].failure, "env_died");
  env->close(1);
  env->close(2);
  // A new episode starts the program again.
  env->reset(3, json::object(), 7);
  rs = env->poll(10);
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_TRUE(rs[0].ok) << rs[0].detail;
  EXPECT_EQ(env->stats().restarts, 1);
  EXPECT_EQ(env->stats().failures.at("env_died"), 2);
}

TEST_F(CommandEnv, ASilentProgramTimesOutWithoutHoldingTheOthers) {
  auto c = config();
  c.timeout_s = 0.5;
  auto env = rlaif::make_environment(c);
  ASSERT_EQ(start_two(*env), 2u);
  const auto t0 = Clock::now();
  env->step(1, "hang");
  env->step(2, "error");
  std::map<int64_t, rlaif::EnvReply> by_episode;
  for (int i = 0; i < 20 && by_episode.size() < 2; ++i)
    for (auto& r : env->poll(1)) by_episode[r.episode] = r;
  const double waited = std::chrono::duration<double>(Clock::now() - t0).count();
  ASSERT_EQ(by_episode.size(), 2u);
  EXPECT_EQ(by_episode[1].failure, "env_timeout");
  EXPECT_EQ(by_episode[2].failure, "env_error");
  EXPECT_EQ(by_episode[2].detail, "no such move");
  EXPECT_LT(waited, 2.0);
  EXPECT_EQ(env->outstanding(), 0);
  env->close(1);
  env->close(2);
  env->reset(3, json::object(), 1);  // the program still serves new episodes
  auto rs = env->poll(5);
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_TRUE(rs[0].ok);
}

TEST_F(CommandEnv, AProgramThatCannotRunFailsTheResetSayingWhy) {
  auto c = config();
  c.command = {dir_ / "no-such-program"};
  auto env = rlaif::make_environment(c);
  env->reset(1, json::object(), 3);
  auto rs = env->poll(10);
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_EQ(rs[0].failure, "env_died");
  EXPECT_NE(rs[0].detail.find("cannot run"), std::string::npos) << rs[0].detail;
  EXPECT_NE(rs[0].detail.find("status 127"), std::string::npos) << rs[0].detail;
}

TEST(EnvConfig, ReadsTheEnvTableAndNamesWhatIsWrong) {
  rlaif_test::TempDir dir;
  const std::string path = dir / "env.toml";
  rlaif_test::write_text(
      path,
      "[env]\ntype = \"openenv\"\nbase_urls = [\"http://127.0.0.1:8001\", \"http://127.0.0.1:8002\"]\n"
      "action_field = \"text\"\nmax_turns = 6\ntimeout_s = 2.5\n");
  const auto c = rlaif::EnvConfig::from_toml(path);
  EXPECT_EQ(c.type, "openenv");
  ASSERT_EQ(c.base_urls.size(), 2u);
  EXPECT_EQ(c.base_urls[1], "http://127.0.0.1:8002");
  EXPECT_EQ(c.action_field, "text");
  EXPECT_EQ(c.max_turns, 6);
  EXPECT_DOUBLE_EQ(c.timeout_s, 2.5);

  rlaif_test::write_text(path, "[env]\ntype = \"openenv\"\nbase_urls = \"http://x:1\"\nmax_turn = 3\n");
  rlaif_test::expect_error([&] { rlaif::EnvConfig::from_toml(path); }, {"unknown key \"max_turn\"", "line 4"});
  rlaif_test::write_text(path, "[env]\ntype = \"openenv\"\n");
  rlaif_test::expect_error([&] { rlaif::EnvConfig::from_toml(path); }, {"env.base_urls", "at least one server"});
  rlaif_test::write_text(path, "[env]\ntype = \"gym\"\n");
  rlaif_test::expect_error([&] { rlaif::EnvConfig::from_toml(path); }, {"env.type", "openenv, command or tools"});
  rlaif_test::write_text(path, "[env]\ntype = \"command\"\ncommand = [\"x\"]\nmax_episode_tokens = 10\n");
  rlaif_test::expect_error([&] { rlaif::EnvConfig::from_toml(path); },
                           {"env.max_episode_tokens", ">= max_turn_tokens"});
  rlaif_test::write_text(path, "[env]\ntype = \"openenv\"\nbase_urls = [\"127.0.0.1:8000\"]\n");
  rlaif_test::expect_error([&] { rlaif::EnvConfig::from_toml(path); }, {"not an http:// or https:// URL"});
}

}  // namespace
