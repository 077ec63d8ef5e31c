// Where a judge's verdicts come from. The Judge (judge.h) renders nothing itself for a backend: it answers cache hits,
// hands the rest to its backend, and finishes every result the same way whatever the backend (usage counted, cache
// put, graders applied, journal line, on_result). Built in: openai (any OpenAI-compatible server), command (a program
// reading JSON on stdin), local (a judge model folder in-process) and none (rule graders alone). Others can be
// registered by name — a judge of one's own, or a scripted judge in tests — and then named in judge.toml's `backend`.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "rlaif/judge.h"

namespace rlaif {

class JudgeBackend {
 public:
  virtual ~JudgeBackend() = default;

  // Called once per sample, as each ends: its result (ok with a verdict, or a failure cause) and the request to
  // journal (the messages sent; null when the backend sends none). Called from the thread score() runs on.
  using Done = std::function<void(size_t index, JudgeResult&& result, const nlohmann::json& request)>;

  // Scores every sample, calling done() once for each. keep_going() turns false when the judge's budget is spent:
  // work not yet sent then ends as the failure "budget_exhausted". Throws rlaif::Error only for what no retry can fix
  // (a missing program, an unreadable model folder).
  virtual void score(const std::vector<JudgeSample>& samples, const Done& done,
                     const std::function<bool()>& keep_going) = 0;

  // Adds what besides the texts, rubric and settings decides a result to a sample's cache key (e.g. a model folder's
  // file times).
  virtual void add_cache_material(nlohmann::json& material) const {}
  // Whether results are worth caching (none's are not: the graders run again anyway).
  virtual bool cacheable() const { return true; }
  // Whether the judge's own verdict enters the reward (none's does not: graders alone).
  virtual bool has_verdict() const { return true; }
};

using JudgeBackendFactory = std::function<std::unique_ptr<JudgeBackend>(const JudgeConfig&)>;

// Makes `name` a backend judge.toml can name; replaces a registered factory of that name. The built-in names
// (openai, command, local, none) cannot be replaced.
void register_judge_backend(const std::string& name, JudgeBackendFactory factory);
bool judge_backend_registered(const std::string& name);

// The backend config.backend names (built-in or registered); throws rlaif::Error for an unknown name.
std::unique_ptr<JudgeBackend> make_judge_backend(const JudgeConfig& config);

}  // namespace rlaif
