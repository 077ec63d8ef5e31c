// libFuzzer target for a model folder's config.json: parse_json_text and ModelConfig::from_json on arbitrary bytes.
// Invariants checked: the only exception is rlaif::Error (a message naming the file, line or key); a config it
// accepts has positive sizes, query heads that the key/value heads divide, an even head_dim, a parameter count that
// does not overflow (UBSan checks the arithmetic), and writes out (to_json) as a config that reads back the same.
// Build and run: bash tests/fuzz/run.sh SECONDS BUILD_DIR model_config
#include <cstdint>
#include <cstdlib>
#include <string>

#include "rlaif/error.h"
#include "rlaif/json_file.h"
#include "rlaif/model_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  rlaif::ModelConfig c;
  try {
    c = rlaif::ModelConfig::from_json(rlaif::parse_json_text(text, "config.json"), "config.json");
  } catch (const rlaif::Error&) {
    return 0;  // a bad file, reported
  }
  if (c.vocab_size < 1 || c.hidden_size < 1 || c.intermediate_size < 1 || c.num_hidden_layers < 1 ||
      c.num_attention_heads < 1 || c.num_key_value_heads < 1 || c.head_dim < 2 || c.head_dim % 2 != 0 ||
      c.num_attention_heads % c.num_key_value_heads != 0 || c.max_position_embeddings < 1 || !(c.rms_norm_eps > 0) ||
      !(c.rope_theta > 0) || c.sliding_window < 0)
    std::abort();
  if (c.num_parameters() < 1) std::abort();
  const auto written = c.to_json();
  const auto again = rlaif::ModelConfig::from_json(written, "written");  // what rlaif writes, it reads: no throw
  if (again.to_json() != written) std::abort();
  return 0;
}
