// A scripted judge for trainer tests that need exact verdicts without HTTP: registered as the judge backend
// "scripted", it scores each completion by a fixed rule (the share of its characters that are 'e') and fails on the
// completions fails() names (those of odd length) with the cause "scripted_failure".
#pragma once

#include <atomic>
#include <string>

#include "rlaif/judge_backend.h"

namespace rlaif_test {

class ScriptedJudge : public rlaif::JudgeBackend {
 public:
  static std::atomic<int>& calls() {  // samples scored since the test started
    static std::atomic<int> n{0};
    return n;
  }
  // The reward the script gives a completion: its share of 'e' characters.
  static double reward_of(const std::string& completion) {
    if (completion.empty()) return 0;
    return static_cast<double>(std::count(completion.begin(), completion.end(), 'e')) / completion.size();
  }
  // The completions the script fails on: about half of them, so that every step sees failures.
  static bool fails(const std::string& completion) { return completion.size() % 2 == 1; }
  static void install() {
    rlaif::register_judge_backend("scripted",
                                  [](const rlaif::JudgeConfig&) { return std::make_unique<ScriptedJudge>(); });
  }

  void score(const std::vector<rlaif::JudgeSample>& samples, const Done& done, const std::function<bool()>&) override {
    for (size_t i = 0; i < samples.size(); ++i) {
      ++calls();
      rlaif::JudgeResult r;
      if (fails(samples[i].completion)) {
        r.failure = "scripted_failure";
      } else {
        r.ok = true;
        r.verdict.ok = true;
        r.verdict.reward = reward_of(samples[i].completion);
        r.verdict.scores["e_share"] = r.verdict.reward;
      }
      done(i, std::move(r), nlohmann::json());
    }
  }
};

}  // namespace rlaif_test
