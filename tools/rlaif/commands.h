// Subcommands of the rlaif CLI. Each registers its options on the app and returns the function that runs it.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>

namespace rlaif_cli {

using Run = std::function<int()>;
Run add_init_model(CLI::App& app);
Run add_generate(CLI::App& app);
Run add_tokenize(CLI::App& app);
Run add_judge(CLI::App& app);
Run add_train(CLI::App& app);
Run add_sft(CLI::App& app);
Run add_train_tokenizer(CLI::App& app);
Run add_report(CLI::App& app);
Run add_demo_task(CLI::App& app);
Run add_serve(CLI::App& app);
Run add_export(CLI::App& app);
Run add_episodes(CLI::App& app);

}  // namespace rlaif_cli
