// The body of a POST /v1/chat/completions or /v1/completions request, read and checked before any model work: a
// client's mistake is a BadRequest (a 400 naming the parameter), never an exception of the JSON library or a crash.
// Torch-free: tests/fuzz/fuzz_serve_request.cpp runs it on arbitrary bytes.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

#include "rlaif/generation_params.h"
#include "rlaif/openai_server.h"

namespace rlaif {

// A client mistake: reported as a 400 with the offending parameter ("" = the body as a whole).
struct BadRequest {
  std::string message, param;
};

struct ServeRequest {
  bool chat = false;
  nlohmann::ordered_json messages;  // chat: [{"role", "content"}], content as text (parts joined)
  std::string prompt;               // completions: the prompt text (non-empty)
  GenerationRequest request;        // everything but prompt_ids, which the server fills from the text
  bool stream = false;
  int64_t logprobs = -1;  // -1 = none; else top-k count (0 = the sampled token only)
};

// Parses `body` (the raw request body) under the server's limits (max_n, max_tokens_limit). Throws BadRequest.
// Without "seed", the seed is drawn from the clock.
ServeRequest parse_serve_request(const std::string& body, bool chat, const ServeOptions& limits);

}  // namespace rlaif
