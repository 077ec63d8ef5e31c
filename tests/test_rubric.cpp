// Rubrics: the default rubric's aggregate and their validation.
#include <cmath>

#include "rlaif/rubric.h"
#include "test_util.h"

namespace {

TEST(Rubric, DefaultAggregateAndValidation) {
  auto r = rlaif::Rubric::default_rubric();
  r.validate("rubric");
  ASSERT_EQ(r.criteria.size(), 3u);
  // (7-1)/9, (10-1)/9, (1-1)/9 averaged with equal weights.
  EXPECT_NEAR(r.aggregate({{"relevance", 7}, {"coherence", 10}, {"safety", 1}}), (6.0 / 9 + 1.0 + 0.0) / 3, 1e-12);
  r.criteria[0].weight = 2;
  EXPECT_NEAR(r.aggregate({{"relevance", 10}, {"coherence", 1}, {"safety", 1}}), 2.0 / 4, 1e-12);
  auto bad = r;
  bad.criteria[1].name = "relevance";
  rlaif_test::expect_error([&] { bad.validate("judge.toml: rubric"); }, {"judge.toml: rubric", "relevance", "twice"});
  bad = r;
  bad.criteria[2].min = 5;
  bad.criteria[2].max = 5;
  rlaif_test::expect_error([&] { bad.validate("rubric"); }, {"criteria[2]", "min must be below max"});
  bad.criteria = {};
  rlaif_test::expect_error([&] { bad.validate("rubric"); }, {"no criteria"});
  bad = r;
  bad.criteria[0].name = "has space";
  rlaif_test::expect_error([&] { bad.validate("rubric"); }, {"has space"});
}

}  // namespace
