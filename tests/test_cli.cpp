// The rlaif binary end to end: init-model then generate on real files, and the exit codes and messages of misuse.
#include <filesystem>

#include "rlaif/jsonl.h"
#include "test_util.h"

using rlaif_test::run_command;
using rlaif_test::TempDir;

namespace {
std::string bin() { return RLAIF_BIN; }
}  // namespace

TEST(Cli, InitModelThenGenerate) {
  TempDir dir;
  auto r = run_command(bin() + " init-model --arch llama --size tiny --seed 3 --out " + (dir / "m"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  rlaif_test::write_text(
      dir / "p.jsonl",
      "{\"prompt\": \"Write a haiku\"}\n\n{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}\n");
  r = run_command(bin() + " generate --model " + (dir / "m") + " --prompts " + (dir / "p.jsonl") + " --out " +
                  (dir / "o.jsonl") + " --num-generations 3 --max-new-tokens 7 --temperature 0.8 --top-p 0.9 --seed 4");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto rows = rlaif::read_jsonl(dir / "o.jsonl");
  ASSERT_EQ(rows.size(), 6u);
  for (const auto& row : rows) {
    EXPECT_TRUE(row.error.empty());
    EXPECT_EQ(row.value["token_ids"].size(), row.value["logprobs"].size());
    EXPECT_LE(row.value["token_ids"].size(), 7u);
    EXPECT_TRUE(row.value["finish_reason"] == "stop" || row.value["finish_reason"] == "length");
  }
  EXPECT_EQ(rows[0].value["line"], 1);
  EXPECT_EQ(rows[3].value["line"], 3);
  EXPECT_EQ(rows[3].value["prompt"], "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
  // Same seed, same samples whatever the batch size (logprobs may differ in the last bits: other matmul shapes).
  r = run_command(bin() + " generate --quiet --model " + (dir / "m") + " --prompts " + (dir / "p.jsonl") + " --out " +
                  (dir / "o2.jsonl") +
                  " --num-generations 3 --max-new-tokens 7 --temperature 0.8 --top-p 0.9 --seed 4 --batch-size 2");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto again = rlaif::read_jsonl(dir / "o2.jsonl");
  ASSERT_EQ(again.size(), rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    EXPECT_EQ(again[i].value["token_ids"], rows[i].value["token_ids"]);
    EXPECT_EQ(again[i].value["completion"], rows[i].value["completion"]);
    for (size_t t = 0; t < rows[i].value["logprobs"].size(); ++t)
      EXPECT_NEAR(again[i].value["logprobs"][t].get<double>(), rows[i].value["logprobs"][t].get<double>(), 1e-5);
  }
}

TEST(Cli, MalformedRowStopsOrIsReported) {
  TempDir dir;
  ASSERT_EQ(run_command(bin() + " init-model --out " + (dir / "m")).exit_code, 0);
  rlaif_test::write_text(dir / "p.jsonl", "{\"prompt\": \"ok\"}\n{\"prompt\": 5}\n{broken\n{\"prompt\": \"fine\"}\n");
  auto r = run_command(bin() + " generate --model " + (dir / "m") + " --prompts " + (dir / "p.jsonl") + " --out " +
                       (dir / "o.jsonl") + " --max-new-tokens 3");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("p.jsonl:2"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("--on-error skip"), std::string::npos) << r.output;
  EXPECT_FALSE(std::filesystem::exists(dir / "o.jsonl")) << "no partial output";
  r = run_command(bin() + " generate --model " + (dir / "m") + " --prompts " + (dir / "p.jsonl") + " --out " +
                  (dir / "o.jsonl") + " --max-new-tokens 3 --on-error skip");
  EXPECT_EQ(r.exit_code, 4) << r.output;
  auto rows = rlaif::read_jsonl(dir / "o.jsonl");
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_TRUE(rows[1].value.contains("error"));
  EXPECT_EQ(rows[1].value["line"], 2);
  EXPECT_EQ(rows[2].value["line"], 3);
  EXPECT_TRUE(rows[2].value.contains("error"));
  EXPECT_EQ(rows[3].value["prompt"], "fine");
  // A number past a double's range is a bad line like any other, not a crash (found by tests/fuzz/fuzz_jsonl).
  rlaif_test::write_text(dir / "big.jsonl", "{\"prompt\": \"a\", \"n\": 1e999}\n{\"prompt\": \"b\"}\n");
  auto big = rlaif::read_jsonl(dir / "big.jsonl");
  ASSERT_EQ(big.size(), 2u);
  EXPECT_NE(big[0].error.find("invalid JSON"), std::string::npos);
  EXPECT_TRUE(big[1].error.empty());
}

TEST(Cli, ErrorsNameTheFileAndExitNonZero) {
  TempDir dir;
  rlaif_test::write_text(dir / "p.jsonl", "{\"prompt\": \"ok\"}\n");
  auto r = run_command(bin() + " generate --model " + (dir / "none") + " --prompts " + (dir / "p.jsonl") + " --out " +
                       (dir / "o"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find(dir / "none"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("hint:"), std::string::npos) << r.output;
  ASSERT_EQ(run_command(bin() + " init-model --out " + (dir / "m")).exit_code, 0);
  rlaif_test::write_text(dir / "m/model.safetensors", "garbage!");
  r = run_command(bin() + " generate --model " + (dir / "m") + " --prompts " + (dir / "p.jsonl") + " --out " +
                  (dir / "o"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("model.safetensors"), std::string::npos) << r.output;
  r = run_command(bin() + " init-model --arch gpt2 --out " + (dir / "x"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("--arch"), std::string::npos) << r.output;
  r = run_command(bin() + " generate --model " + (dir / "m") + " --prompts " + (dir / "p.jsonl") + " --out " +
                  (dir / "o") + " --top-p 1.5");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("top_p"), std::string::npos) << r.output;
  EXPECT_EQ(run_command(bin() + " generate --no-such-flag").exit_code, 2);
  r = run_command(bin() + " generate --help");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.output.find("--num-generations"), std::string::npos);
}

TEST(Cli, EpisodesPlaysACommandEnvironmentAndWritesTheTrajectories) {
  TempDir dir;
  auto r = run_command(bin() + " init-model --arch qwen2 --size tiny --seed 3 --out " + (dir / "m"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  rlaif_test::write_text(dir / "p.jsonl",
                         "{\"prompt\": \"Play.\", \"name\": \"a\"}\n{\"prompt\": \"Go.\", \"name\": \"b\"}\n");
  const std::string program = std::string(RLAIF_REFERENCE_DIR) + "/../data/counting_env.py";
  rlaif_test::write_text(dir / "env.toml", "[env]\ntype = \"command\"\ncommand = [\"/usr/bin/python3\", \"" + program +
                                               "\"]\nmax_turns = 2\nmax_turn_tokens = 6\nmax_episode_tokens = 12\n");
  const std::string base = bin() + " episodes --model " + (dir / "m") + " --prompts " + (dir / "p.jsonl") + " --out " +
                           (dir / "e.jsonl") + " --num-episodes 3 --seed 2 --env ";
  r = run_command(base + (dir / "env.toml"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("6 played, 0 failed"), std::string::npos) << r.output;
  auto rows = rlaif::read_jsonl(dir / "e.jsonl");
  ASSERT_EQ(rows.size(), 6u);
  for (const auto& row : rows) {
    const auto& v = row.value;
    EXPECT_EQ(v["ended_by"], v["turns"] == 2 ? "max_turns" : "max_episode_tokens") << v.dump();
    EXPECT_EQ(v["rewards"].size(), v["turns"].get<size_t>());
    EXPECT_EQ(v["token_ids"].size(), v["policy_mask"].size());
    EXPECT_EQ(v["token_ids"].size(), v["logprobs"].size());
    EXPECT_NE(v["messages"][0]["content"].get<std::string>().find("\n\nStart "), std::string::npos);
    int64_t policy = 0;
    for (const auto& m : v["policy_mask"]) policy += m.get<int64_t>();
    EXPECT_GT(policy, 0);
    EXPECT_LE(policy, 12);
  }
  EXPECT_EQ(rows[3].value["line"], 2);
  EXPECT_EQ(rows[3].value["episode"], 0);

  // A typo in [env] names the key and its line; an environment that cannot run fails every episode: exit 1.
  rlaif_test::write_text(dir / "bad.toml", "[env]\ntype = \"command\"\ncommand = [\"x\"]\nmax_turn = 2\n");
  r = run_command(base + (dir / "bad.toml"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("unknown key \"max_turn\""), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("line 4"), std::string::npos) << r.output;
  rlaif_test::write_text(dir / "gone.toml", "[env]\ntype = \"command\"\ncommand = [\"" + (dir / "no-such") + "\"]\n");
  r = run_command(base + (dir / "gone.toml"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("every episode failed"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("cannot run"), std::string::npos) << r.output;
}
