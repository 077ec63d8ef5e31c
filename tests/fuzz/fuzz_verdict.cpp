// libFuzzer target for what a judge replies: the verdict parser (JSON, JSON in prose or code fences, "name: 7/10"
// lines), the pairwise parser, and expected scores from top log-probabilities. The first byte picks the parser.
// Invariants checked: no crash and no exception; a parsed verdict holds every criterion with a finite score on its
// scale and a reward in [0, 1], a failed one names its cause; a pairwise verdict is A, B, tie or a named failure; an
// expected score lies on the scale with a confidence in [0, 1] and a finite positive mass.
// Build and run: bash tests/fuzz/run.sh SECONDS BUILD_DIR verdict
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <sstream>
#include <string>

#include "rlaif/rubric.h"
#include "rlaif/verdict.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
  static const rlaif::Rubric rubric = rlaif::Rubric::default_rubric();
  switch (data[0] % 3) {
    case 0: {
      rlaif::Verdict v = rlaif::parse_verdict(text, rubric);
      if (!v.ok) {
        if (v.failure.empty()) std::abort();
        break;
      }
      for (const auto& c : rubric.criteria) {
        auto it = v.scores.find(c.name);
        if (it == v.scores.end() || !std::isfinite(it->second) || it->second < c.min || it->second > c.max)
          std::abort();
      }
      if (!(v.reward >= 0 && v.reward <= 1)) std::abort();
      break;
    }
    case 1: {
      std::string failure, rationale;
      const std::string w = rlaif::parse_pairwise(text, &failure, &rationale);
      if (!(w == "A" || w == "B" || w == "tie" || (w.empty() && !failure.empty()))) std::abort();
      break;
    }
    default: {  // "token<TAB>logprob" lines
      std::vector<std::pair<std::string, double>> top;
      std::istringstream lines(text);
      for (std::string line; std::getline(lines, line);) {
        const size_t tab = line.find('\t');
        if (tab == std::string::npos) continue;
        top.emplace_back(line.substr(0, tab), std::strtod(line.c_str() + tab + 1, nullptr));
      }
      auto d = rlaif::expected_score(top, 1, 10);
      // (mass may pass 1 here: arbitrary lines are not one distribution, as a server's top_logprobs are)
      if (d && !(d->mean >= 1 && d->mean <= 10 && d->confidence >= 0 && d->confidence <= 1 + 1e-9 && d->mass > 0 &&
                 std::isfinite(d->mass)))
        std::abort();
    }
  }
  return 0;
}
