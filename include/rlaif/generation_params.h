// What one generation request asks for: the prompt's tokens, how many samples, the seed, and how to sample and stop.
// Torch-free, so request parsers (rlaif serve's bodies) include this alone; the engine is in rlaif/generator.h.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "rlaif/json_schema.h"
#include "rlaif/sampler.h"

namespace rlaif {

struct GenerationParams {
  SamplingParams sampling;
  int64_t max_new_tokens = 128;   // >= 1
  std::vector<std::string> stop;  // stop strings: generation ends once the text contains one (text is cut before it)
  bool ignore_eos = false;        // true: do not stop at end-of-sequence tokens
  int64_t top_logprobs = 0;       // > 0: also return the k most likely tokens at each step (OpenAI's top_logprobs)
  // true: the completion is one JSON object (OpenAI's response_format json_object). A drawn token that cannot extend
  // a JSON-object prefix is redrawn, which samples from the distribution restricted to the tokens that can; the end
  // token is allowed only once the object is closed, and generation stops there. Reported log-probs stay those of
  // the unrestricted distribution. A sample cut by max_new_tokens ends with a valid prefix and finish reason length.
  // Whitespace between JSON tokens is bounded (a run of at most 21 bytes with one newline; JsonSchemaPrefix).
  bool json_object = false;
  // With json_object: the object must also be valid under this schema (OpenAI's response_format json_schema; the
  // subset in rlaif/json_schema.h, checked by JsonSchemaPrefix): keys, required keys, value types, enums and number
  // bounds are enforced the same way, so every finished completion parses and validates.
  std::shared_ptr<const JsonSchema> json_schema;
};

struct GenerationRequest {
  std::vector<int64_t> prompt_ids;  // non-empty
  int64_t num_samples = 1;          // G
  uint64_t seed = 0;                // sample j uses the stream sample_seed(seed, j)
  GenerationParams params;
  // >= 0 (with one sample): when the sample finishes, its slot keeps the keys and values of its sequence under this
  // key, within the same run_continuous/generate call. A later request with the same key reuses them for the part of
  // its prompt that starts with that sequence and prefills only the rest (a multi-turn episode's next turn). A kept
  // slot is given to other work only when no free slot is left, least recently kept first.
  int64_t keep_key = -1;
};

}  // namespace rlaif
