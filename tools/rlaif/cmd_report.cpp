// rlaif report RUN_DIR: one self-contained HTML page about a training run (charts, samples, judge validation, config).
#include <cstdio>

#include "commands.h"
#include "rlaif/report.h"

namespace rlaif_cli {

Run add_report(CLI::App& app) {
  auto run_dir = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  app.add_option("RUN_DIR", *run_dir, "the output_dir of an `rlaif train` run")->required();
  app.add_option("--out", *out, "HTML file to write (default RUN_DIR/report.html)");
  return [run_dir, out]() {
    std::printf("report: %s\n", rlaif::write_report(*run_dir, *out).c_str());
    return 0;
  };
}

}  // namespace rlaif_cli
