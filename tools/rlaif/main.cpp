// rlaif: reinforcement fine-tuning of language models with an LLM as the judge.
// The CLI parses flags, calls the library and turns errors into messages and exit codes:
// 0 success, 1 an error in the input or the environment (the message says what, where and how to fix it),
// 2 bad command-line usage, 3 an internal error (a bug: please report it).
#include <c10/util/Exception.h>

#include <cstdio>
#include <map>

#include "commands.h"
#include "rlaif/error.h"
#include "rlaif/runtime.h"

int main(int argc, char** argv) {
  rlaif::ensure_runtime_env(argc, argv);
  // All cores unless a command says otherwise (--threads, train.num_threads): libtorch's own default can be 1.
  rlaif::set_num_threads(0);
  CLI::App app{"rlaif — reinforcement fine-tuning of language models with an LLM as the judge (RLAIF)"};
  app.require_subcommand(1);
  std::map<CLI::App*, rlaif_cli::Run> runs;
  auto* init =
      app.add_subcommand("init-model", "write a seeded, randomly initialised model folder (no download needed)");
  runs[init] = rlaif_cli::add_init_model(*init);
  auto* gen = app.add_subcommand("generate", "sample completions for a JSONL file of prompts");
  runs[gen] = rlaif_cli::add_generate(*gen);
  auto* tok =
      app.add_subcommand("tokenize", "encode or decode stdin lines with a model folder's tokenizer (JSONL out)");
  runs[tok] = rlaif_cli::add_tokenize(*tok);
  auto* judge = app.add_subcommand("judge", "score a JSONL file of prompt/completion rows with an LLM judge");
  runs[judge] = rlaif_cli::add_judge(*judge);
  auto* train = app.add_subcommand("train", "reinforcement fine-tuning with judge rewards (GRPO family, online DPO)");
  runs[train] = rlaif_cli::add_train(*train);
  auto* sft = app.add_subcommand("sft", "supervised fine-tuning on prompt/completion pairs (loss on completions)");
  runs[sft] = rlaif_cli::add_sft(*sft);
  auto* ttok = app.add_subcommand("train-tokenizer", "learn a byte-level BPE tokenizer from JSONL or text files");
  runs[ttok] = rlaif_cli::add_train_tokenizer(*ttok);
  auto* report = app.add_subcommand("report", "write a self-contained HTML report of a training run");
  runs[report] = rlaif_cli::add_report(*report);
  auto* demo =
      app.add_subcommand("demo-task", "write the quickstart's built-in task (prompts, SFT data, judge labels)");
  runs[demo] = rlaif_cli::add_demo_task(*demo);
  auto* serve = app.add_subcommand("serve", "serve a model folder over the OpenAI API (chat/completions, completions)");
  runs[serve] = rlaif_cli::add_serve(*serve);
  auto* exp =
      app.add_subcommand("export", "write a trained model as a Hugging Face folder (LoRA merged) or an adapter");
  runs[exp] = rlaif_cli::add_export(*exp);
  auto* episodes = app.add_subcommand(
      "episodes", "play multi-turn episodes against an environment (OpenEnv HTTP or a command) and write them (JSONL)");
  runs[episodes] = rlaif_cli::add_episodes(*episodes);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  try {
    for (auto& kv : runs)
      if (kv.first->parsed()) return kv.second();
  } catch (const CLI::ParseError& e) {  // a usage error found after parsing (e.g. options that go together)
    std::fprintf(stderr, "rlaif: usage: %s\n", e.what());
    return 2;
  } catch (const rlaif::Error& e) {
    std::fprintf(stderr, "rlaif: error: %s\n", e.what());
    return 1;
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "rlaif: internal error: %s\n", e.what_without_backtrace());
    return 3;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rlaif: error: %s\n", e.what());
    return 1;
  }
  return 2;
}
