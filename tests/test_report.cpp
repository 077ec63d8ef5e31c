// `rlaif report`: the HTML page of a real (short) training run, checked as text and then loaded in a real headless
// browser (Debian's chromium-headless-shell): every chart lays out, the console stays silent, and a screenshot is kept
// as a test artifact (build/test-artifacts/report.png).
#include <filesystem>
#include <regex>

#include "rlaif/atomic_file.h"
#include "rlaif/init_model.h"
#include "test_util.h"

namespace fs = std::filesystem;
using rlaif_test::TempDir;

namespace {

const char* kBrowser = "chromium-headless-shell";

// A 4-step GRPO run with a rule reward, a weight-0 verifier, held-out prompts and the pre-flight check.
std::string make_run(const TempDir& dir) {
  rlaif::InitModelOptions o;
  o.arch = "llama";
  o.seed = 3;
  rlaif::init_model(o, dir / "model");
  std::string prompts;
  for (int i = 0; i < 8; ++i)
    prompts += "{\"prompt\": \"Write <b>" + std::to_string(i) + "</b>:\", \"reference\": \"a\"}\n";
  rlaif_test::write_text(dir / "prompts.jsonl", prompts);
  rlaif_test::write_text(dir / "labels.jsonl",
                         "{\"prompt\": \"p\", \"completion\": \"a\", \"label\": 1}\n"
                         "{\"prompt\": \"p\", \"completion\": \"b\", \"label\": 0}\n");
  rlaif_test::write_text(dir / "run.toml",
                         "[model]\npath = \"" + (dir / "model") + "\"\n[data]\nprompts = \"" + (dir / "prompts.jsonl") +
                             "\"\neval_prompts = \"" + (dir / "prompts.jsonl") + "\"\n[train]\noutput_dir = \"" +
                             (dir / "run") +
                             "\"\nmax_steps = 4\nnum_generations = 4\nper_device_train_batch_size = 8\n"
                             "max_completion_length = 12\nlearning_rate = 1e-3\nbeta = 0.04\neval_steps = 2\n"
                             "eval_samples = 4\nsave_steps = 0\nintegrity_verifier = \"truth\"\n"
                             "judge_eval_labels = \"" +
                             (dir / "labels.jsonl") +
                             "\"\n"
                             "[judge]\nbackend = \"none\"\n[[graders]]\nname = \"has_a\"\ntype = \"contains\"\n"
                             "value = \"a\"\n[[graders]]\nname = \"truth\"\ntype = \"regex\"\n"
                             "value = \"{reference}\"\nweight = 0\n");
  auto r = rlaif_test::run_command(std::string(RLAIF_BIN) + " train --quiet --config " + (dir / "run.toml"));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  return dir / "run";
}

int count(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

TEST(Report, SelfContainedPageWithChartsSamplesValidationAndConfig) {
  TempDir dir;
  std::string run = make_run(dir);
  auto r = rlaif_test::run_command(std::string(RLAIF_BIN) + " report " + run);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::string html = rlaif::read_file(run + "/report.html");
  EXPECT_EQ(count(html, "<svg class=\"chart\""), 8);
  // Offline: nothing is fetched (the only URL is the SVG namespace, which is a name, not a request).
  std::string stripped = std::regex_replace(html, std::regex("xmlns=\"http://www.w3.org/2000/svg\""), "");
  EXPECT_EQ(stripped.find("http"), std::string::npos);
  EXPECT_EQ(html.find("<link"), std::string::npos);
  EXPECT_EQ(html.find("src="), std::string::npos);
  // Curves with data: reward, KL, entropy, length, judge timing; 3 evaluations (steps 0, 2, 4) as dots.
  for (const std::string title : {"Reward (judge + graders, weighted)", "KL to the reference", "Entropy of the policy",
                                  "Completion length", "Ground truth: verifier vs judge success"}) {
    auto at = html.find("aria-label=\"" + title + "\"");
    ASSERT_NE(at, std::string::npos) << title;
    std::smatch m;
    std::string tail = html.substr(at, 300);
    ASSERT_TRUE(std::regex_search(tail, m, std::regex("data-points=\"(\\d+)\""))) << title;
    EXPECT_GE(std::stoi(m[1]), 3) << title;
  }
  EXPECT_EQ(count(html, "<title>eval (held-out) at step "), 3);
  // Before/after samples, escaped; the judge validation and the configuration.
  EXPECT_NE(html.find("before (step 0)"), std::string::npos);
  EXPECT_NE(html.find("after (step 4)"), std::string::npos);
  EXPECT_NE(html.find("Write &lt;b&gt;0&lt;/b&gt;:"), std::string::npos);
  EXPECT_EQ(html.find("Write <b>0</b>"), std::string::npos);
  EXPECT_NE(html.find("<th>accuracy</th>"), std::string::npos);
  EXPECT_NE(html.find("integrity_verifier = &quot;truth&quot;"), std::string::npos);
  // A folder that is not a run is a clear error.
  r = rlaif_test::run_command(std::string(RLAIF_BIN) + " report " + (dir / "nothing"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("metrics.jsonl"), std::string::npos) << r.output;

  // In a real browser: every chart has a non-empty layout box, no console message, and a screenshot.
  std::string url = "file://" + fs::absolute(run + "/report.html").string();
  std::string flags =
      std::string(kBrowser) + " --no-sandbox --disable-gpu --hide-scrollbars --enable-logging=stderr --v=0 ";
  r = rlaif_test::run_command("timeout 120 " + flags + "--dump-dom " + url + " 2>" + (dir / "console.txt"));
  ASSERT_EQ(r.exit_code, 0) << "is " << kBrowser << " installed (scripts/setup.sh)?\n" << r.output;
  EXPECT_NE(r.output.find("data-charts-rendered=\"8\""), std::string::npos);
  EXPECT_NE(r.output.find("8 of 8 charts rendered"), std::string::npos);
  std::string console = rlaif::read_file(dir / "console.txt");
  EXPECT_EQ(console.find("CONSOLE"), std::string::npos) << console;
  fs::create_directories(RLAIF_ARTIFACT_DIR);
  std::string shot = std::string(RLAIF_ARTIFACT_DIR) + "/report.png";
  fs::remove(shot);
  r = rlaif_test::run_command("timeout 120 " + flags + "--window-size=1200,2600 --screenshot=" + shot + " " + url +
                              " 2>&1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  ASSERT_TRUE(fs::exists(shot));
  EXPECT_GT(fs::file_size(shot), 20000u);  // a page with charts, not a blank image
}

// A judge pool's servers: the per-step judge/endpoint_<k>/* metrics summed per server, named by the URLs of the run's
// config; latency is the mean over all the run's requests to the server.
TEST(Report, AJudgePoolsServersAreSummedPerServer) {
  TempDir dir;
  fs::create_directories(dir / "run");
  rlaif_test::write_text(dir / "run/run_config.toml",
                         "[model]\npath = \"m\"\n[data]\nprompts = \"p.jsonl\"\n[judge]\nmodel = \"j\"\nbase_url = "
                         "[\"http://judge-a:8000/v1\", \"http://judge-b:8000/v1\"]\n");
  rlaif_test::write_text(
      dir / "run/metrics.jsonl",
      "{\"step\": 1, \"reward\": 0.5, \"judge/endpoint_0/requests\": 6, \"judge/endpoint_0/failures\": 0, "
      "\"judge/endpoint_0/latency_mean\": 0.5, \"judge/endpoint_0/ejections\": 0, \"judge/endpoint_1/requests\": 2, "
      "\"judge/endpoint_1/failures\": 2, \"judge/endpoint_1/latency_mean\": 3.0, \"judge/endpoint_1/ejections\": 1}\n"
      "{\"step\": 2, \"reward\": 0.6, \"judge/endpoint_0/requests\": 2, \"judge/endpoint_0/failures\": 1, "
      "\"judge/endpoint_0/latency_mean\": 1.5, \"judge/endpoint_0/ejections\": 0, \"judge/endpoint_1/requests\": 0, "
      "\"judge/endpoint_1/failures\": 0, \"judge/endpoint_1/latency_mean\": 0, \"judge/endpoint_1/ejections\": 0}\n");
  auto r = rlaif_test::run_command(std::string(RLAIF_BIN) + " report " + (dir / "run"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::string html = rlaif::read_file(dir / "run/report.html");
  // Server a: 8 requests, 1 failed, (6 x 0.5 + 2 x 1.5) / 8 = 0.75 s. Server b: 2, 2 failed, 3 s, ejected once.
  EXPECT_NE(html.find("<td>judge</td><td>http://judge-a:8000/v1</td><td>8</td><td>1</td><td>0.750</td><td>0</td>"),
            std::string::npos)
      << html;
  EXPECT_NE(html.find("<td>judge</td><td>http://judge-b:8000/v1</td><td>2</td><td>2</td><td>3.000</td><td>1</td>"),
            std::string::npos);
}

}  // namespace
