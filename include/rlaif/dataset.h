// Training data: JSONL rows turned into token ids, and a seeded, resumable order over them.
//
// RL rows:  {"prompt": "..."} or {"messages": [...]} (rendered with the model's chat template, generation prompt
//           added), optional "reference" (for the judge and graders), optional "rubric" or "checklist" (the row's
//           own items for the judge, rubric.h) and any other keys (kept as metadata).
// SFT rows: {"prompt": "...", "completion": "..."} or {"messages": [..., {"role": "assistant", ...}]}; the loss is on
//           the completion (the last assistant message) only.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "rlaif/rubric.h"
#include "rlaif/tokenizer.h"

namespace rlaif {

struct PromptRow {
  size_t line = 0;                      // in the file, 1-based
  std::string text;                     // the prompt as the judge sees it (the conversation for "messages")
  std::vector<int64_t> prompt_ids;      // what the policy is conditioned on
  std::vector<int64_t> completion_ids;  // SFT: the target (ending with the end-of-sequence token for "prompt" rows)
  std::string reference;
  std::shared_ptr<const Rubric> rubric;  // RL: the row's own rubric or checklist (null = the judge's)
  nlohmann::ordered_json metadata;       // the row's other keys
  nlohmann::ordered_json messages;       // RL: the conversation the prompt renders ("prompt" rows: one user message)
  nlohmann::ordered_json source;         // RL: the row as read (what an environment's reset receives)
};

struct DatasetOptions {
  int64_t max_prompt_length = 512;    // longer prompts keep their last tokens (TRL truncates on the left too)
  int64_t max_completion_length = 0;  // SFT: longer completions are cut (0 = no limit)
  bool sft = false;
  int64_t eos_id = -1;  // SFT "prompt"/"completion" rows end with it (-1 = none)
};

// Reads every row; a bad row is an rlaif::Error naming file and line and saying what the row must look like.
// A conversation as the judge reads it: a lone message's text, else one "role: text" line per message.
std::string conversation_text(const nlohmann::ordered_json& messages);

std::vector<PromptRow> load_dataset(const std::string& path, const Tokenizer& tokenizer, const DatasetOptions& options);

// Epoch-by-epoch shuffled order: epoch e is a Fisher-Yates permutation seeded by (seed, e). The position is two
// integers, so a resumed run continues exactly where it stopped.
class DataOrder {
 public:
  DataOrder(size_t size, uint64_t seed, bool shuffle = true);
  size_t next();  // the next row index
  int64_t epoch() const { return epoch_; }
  int64_t position() const { return position_; }
  void seek(int64_t epoch, int64_t position);

 private:
  void make_order();
  size_t size_;
  uint64_t seed_;
  bool shuffle_;
  int64_t epoch_ = 0, position_ = 0;
  std::vector<size_t> order_;
};

}  // namespace rlaif
