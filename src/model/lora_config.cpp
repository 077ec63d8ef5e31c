#include "rlaif/lora_config.h"

#include <cmath>

#include "rlaif/error.h"

namespace rlaif {

const char* const kLoraProjections[7] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};

double LoraConfig::scale() const { return use_rslora ? lora_alpha / std::sqrt(double(r)) : lora_alpha / double(r); }

void LoraConfig::validate(const std::string& where) const {
  if (r < 1) throw Error("r must be at least 1, got " + std::to_string(r), where + " r", "typical values: 8, 16, 64");
  if (!(lora_dropout >= 0 && lora_dropout < 1))
    throw Error("lora_dropout must be in [0, 1), got " + std::to_string(lora_dropout), where + " lora_dropout");
  if (target_modules.empty())
    throw Error("target_modules is empty", where + " target_modules",
                "e.g. [\"q_proj\", \"v_proj\"] or \"all-linear\"");
  for (const auto& t : target_modules) {
    bool known = t == "all-linear";
    for (const char* p : kLoraProjections) known = known || t == p;
    if (!known)
      throw Error("unknown target module \"" + t + "\"", where + " target_modules",
                  "use q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj or all-linear");
  }
}

}  // namespace rlaif
