// Rubrics: the default rubric's aggregate and their validation; a data row's own rubric or checklist.
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

// A row's "rubric": strings and objects, items named item1.. unless named, scored 1..10; the reward is the weighted
// share of the items' normalised scores.
TEST(RowRubric, ItemsWeightsAndTheirWeightedShare) {
  auto row = nlohmann::json::parse(R"({"prompt": "p", "rubric": ["Names the capital",
      {"criterion": "Cites a source", "weight": 3}, {"criterion": "Is brief", "name": "brevity"}]})");
  auto r = rlaif::read_row_rubric(row, "data.jsonl:4");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->criteria.size(), 3u);
  EXPECT_FALSE(r->checklist);
  EXPECT_EQ(r->criteria[0].name, "item1");
  EXPECT_EQ(r->criteria[0].description, "Names the capital");
  EXPECT_EQ(r->criteria[1].name, "item2");
  EXPECT_EQ(r->criteria[1].weight, 3);
  EXPECT_EQ(r->criteria[2].name, "brevity");
  for (const auto& c : r->criteria) {
    EXPECT_EQ(c.min, 1);
    EXPECT_EQ(c.max, 10);
  }
  // (10-1)/9 * 1 + (4-1)/9 * 3 + (1-1)/9 * 1, over the weights 5.
  EXPECT_NEAR(r->aggregate({{"item1", 10}, {"item2", 4}, {"brevity", 1}}), (1.0 + 3.0 * 3 / 9) / 5, 1e-12);
  auto items = rlaif::rubric_items(*r, {{"item1", 10}});
  ASSERT_EQ(items.size(), 3u);
  EXPECT_EQ(items[1]["criterion"], "Cites a source");
  EXPECT_EQ(items[0]["score"], 10);
  EXPECT_FALSE(items[1].contains("score"));
  EXPECT_EQ(rlaif::rubric_kind(r.get()), "rubric");
  EXPECT_EQ(rlaif::rubric_kind(nullptr), "");
  EXPECT_FALSE(rlaif::read_row_rubric(nlohmann::json::parse(R"({"prompt": "p"})"), "x"));
}

// A row's "checklist": yes/no items on 0..1; the reward is the weighted share of yeses.
TEST(RowRubric, ChecklistIsYesNoItems) {
  auto row = nlohmann::json::parse(R"({"checklist": ["Says yes", {"criterion": "Says why", "weight": 2}]})");
  auto r = rlaif::read_row_rubric(row, "d:1");
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->checklist);
  EXPECT_EQ(rlaif::rubric_kind(r.get()), "checklist");
  for (const auto& c : r->criteria) {
    EXPECT_EQ(c.min, 0);
    EXPECT_EQ(c.max, 1);
  }
  EXPECT_NEAR(r->aggregate({{"item1", 0}, {"item2", 1}}), 2.0 / 3, 1e-12);
  EXPECT_NEAR(r->aggregate({{"item1", 1}, {"item2", 0}}), 1.0 / 3, 1e-12);
}

// Every wrong shape is an error naming the row and the item.
TEST(RowRubric, BadItemsAreErrorsNamingRowAndItem) {
  auto fails = [](const char* text, std::initializer_list<std::string> want) {
    rlaif_test::expect_error([&] { rlaif::read_row_rubric(nlohmann::json::parse(text), "data.jsonl:7"); }, want);
  };
  fails(R"({"rubric": ["a"], "checklist": ["b"]})", {"data.jsonl:7", "both"});
  fails(R"({"rubric": []})", {"data.jsonl:7", "non-empty list"});
  fails(R"({"checklist": "one"})", {"data.jsonl:7", "non-empty list"});
  fails(R"({"rubric": ["a", 3]})", {"data.jsonl:7: rubric[1]", "string or an object"});
  fails(R"({"rubric": [{"weight": 2}]})", {"rubric[0]", "no text"});
  fails(R"({"rubric": [""]})", {"rubric[0]", "no text"});
  fails(R"({"rubric": [{"criterion": "a", "points": 2}]})", {"rubric[0]", "\"points\""});
  fails(R"({"rubric": [{"criterion": "a", "weight": "2"}]})", {"rubric[0]", "\"weight\""});
  fails(R"({"checklist": [{"criterion": "a", "weight": 0}]})", {"data.jsonl:7", "weight must be positive"});
  fails(R"({"rubric": [{"criterion": "a", "name": "x"}, {"criterion": "b", "name": "x"}]})", {"\"x\"", "twice"});
  fails(R"({"rubric": [{"criterion": "a", "name": "a b"}]})", {"a b"});
}

}  // namespace
