#include "rlaif/rl_options.h"

namespace rlaif {

const Choices<Algorithm> kAlgorithms = {{"grpo", Algorithm::kGrpo},
                                        {"rloo", Algorithm::kRloo},
                                        {"reinforce_pp", Algorithm::kReinforcePp},
                                        {"reinforce_pp_baseline", Algorithm::kReinforcePpBaseline},
                                        {"online_dpo", Algorithm::kOnlineDpo}};
const Choices<ScaleRewards> kScaleRewards = {
    {"group", ScaleRewards::kGroup}, {"batch", ScaleRewards::kBatch}, {"none", ScaleRewards::kNone}};
const Choices<KlEstimator> kKlEstimators = {
    {"k1", KlEstimator::kK1}, {"k2", KlEstimator::kK2}, {"k3", KlEstimator::kK3}};
const Choices<LossType> kLossTypes = {
    {"grpo", LossType::kGrpo}, {"bnpo", LossType::kBnpo}, {"dr_grpo", LossType::kDrGrpo}, {"dapo", LossType::kDapo}};
const Choices<ImportanceSamplingLevel> kImportanceSamplingLevels = {{"token", ImportanceSamplingLevel::kToken},
                                                                    {"sequence", ImportanceSamplingLevel::kSequence}};

}  // namespace rlaif
