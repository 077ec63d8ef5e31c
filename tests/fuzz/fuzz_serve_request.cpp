// libFuzzer target for `rlaif serve`'s request bodies: parse_serve_request on arbitrary bytes, as a chat request and
// as a completion request. Invariants checked: the only exception is BadRequest (the server's 400 naming the
// parameter); a request it accepts stays within the server's limits (1..max_n samples, 1..max_tokens_limit new
// tokens, sampling parameters in range, at most 4 non-empty stop strings, top_logprobs within OpenAI's bounds) and
// names a prompt (text, or messages with string roles and text contents).
// Build and run: bash tests/fuzz/run.sh SECONDS BUILD_DIR serve_request
#include <cstdint>
#include <cstdlib>
#include <string>

#include "serve/serve_request.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string body(reinterpret_cast<const char*>(data), size);
  rlaif::ServeOptions limits;
  limits.max_n = 16;
  limits.max_tokens_limit = 1024;
  for (bool chat : {true, false}) {
    rlaif::ServeRequest r;
    try {
      r = rlaif::parse_serve_request(body, chat, limits);
    } catch (const rlaif::BadRequest& e) {
      if (e.message.empty()) std::abort();  // a 400 says what is wrong
      continue;
    }
    const auto& q = r.request;
    const auto& s = q.params.sampling;
    if (q.num_samples < 1 || q.num_samples > limits.max_n) std::abort();
    if (q.params.max_new_tokens < 1 || q.params.max_new_tokens > limits.max_tokens_limit) std::abort();
    if (!(s.temperature >= 0 && s.temperature <= 2) || !(s.top_p > 0 && s.top_p <= 1) || s.top_k < 0 ||
        !(s.min_p >= 0 && s.min_p <= 1))
      std::abort();
    if (q.params.stop.size() > 4) std::abort();
    for (const auto& stop : q.params.stop)
      if (stop.empty()) std::abort();
    if (r.logprobs < -1 || r.logprobs > (chat ? 20 : 5) || q.params.top_logprobs < 0) std::abort();
    if (chat) {
      if (!r.messages.is_array() || r.messages.empty()) std::abort();
      for (const auto& m : r.messages)
        if (!m["role"].is_string() || !m["content"].is_string()) std::abort();
    } else if (r.prompt.empty()) {
      std::abort();
    }
  }
  return 0;
}
