// The pre-flight gate: before RL starts, the run's judge scores a labelled set (the same evaluation as
// `rlaif judge eval`); the report is written to output_dir/judge_validation.json and training refuses to start when
// the configured agreement metric is below train.judge_min_agreement.
#pragma once

#include "rlaif/train_config.h"

namespace rlaif {

// No-op when train.judge_eval_labels is empty. Throws rlaif::Error (after writing the report, with "passed": false)
// when the judge agrees too little.
void judge_preflight(const TrainConfig& c, bool quiet);

}  // namespace rlaif
