// The RL algorithm's choices as run.toml names them (train.algorithm, scale_rewards, kl_estimator, loss_type,
// importance_sampling_level), without the tensor code that implements them (rlaif/rl.h): configuration readers
// include this alone.
#pragma once

#include "rlaif/choices.h"

namespace rlaif {

// The options' names (run.toml's train.algorithm, ...) are in the tables below them.
enum class Algorithm { kGrpo, kRloo, kReinforcePp, kReinforcePpBaseline, kOnlineDpo };
enum class ScaleRewards { kGroup, kBatch, kNone };
enum class KlEstimator { kK1, kK2, kK3 };
enum class LossType { kGrpo, kBnpo, kDrGrpo, kDapo };
enum class ImportanceSamplingLevel { kToken, kSequence };
extern const Choices<Algorithm> kAlgorithms;       // grpo | rloo | reinforce_pp | reinforce_pp_baseline | online_dpo
extern const Choices<ScaleRewards> kScaleRewards;  // group | batch | none
extern const Choices<KlEstimator> kKlEstimators;   // k1 | k2 | k3
extern const Choices<LossType> kLossTypes;         // grpo | bnpo | dr_grpo | dapo
extern const Choices<ImportanceSamplingLevel> kImportanceSamplingLevels;  // token | sequence (GSPO)

}  // namespace rlaif
