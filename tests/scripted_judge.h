// A scripted judge for trainer tests that need exact verdicts without HTTP: registered as the judge backend
// "scripted", it scores each completion by a rule the test sets (the share of its characters that are 'e', on the
// default rubric's criteria) and fails on completions matching `fail_if` with the cause "scripted_failure".
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
  static void install() {
    rlaif::register_judge_backend("scripted",
                                  [](const rlaif::JudgeConfig&) { return std::make_unique<ScriptedJudge>(); });
  }

  void score(const std::vector<rlaif::JudgeSample>& samples, const Done& done, const std::function<bool()>&) override {
    for (size_t i = 0; i < samples.size(); ++i) {
      ++calls();
      rlaif::JudgeResult r;
      if (samples[i].completion.find('x') != std::string::npos) {
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
