// `rlaif serve`: an OpenAI-compatible HTTP server over the generation engine, so any model folder can act as a judge
// (or be tried after training) with the protocol every client speaks: POST /v1/chat/completions and /v1/completions,
// GET /v1/models and /health. Requests that arrive together are batched into one generation call.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace rlaif {

struct ServeOptions {
  std::string model_dir;               // a model folder, or a LoRA run's final/ or checkpoint-N/
  std::string adapter;                 // a PEFT LoRA adapter folder merged into model_dir's weights ("" = none)
  std::string model_name;              // the id in /v1/models and replies; "" = the folder's name
  std::string dtype = "auto";          // inference precision, as `rlaif generate --dtype`
  std::string host = "127.0.0.1";      // loopback unless told otherwise
  int port = 8000;                     // 0 = any free port (reported through on_listening)
  std::string api_key;                 // "" = no authentication; else "Authorization: Bearer <key>" is required
  int64_t max_batch = 32;              // sequences decoded together
  int64_t max_tokens_limit = 1024;     // a request asking for more max_tokens is a 400
  int64_t max_n = 16;                  // choices per request
  size_t max_request_bytes = 1 << 20;  // larger bodies are refused (413)
  double batch_window_s = 0.002;       // after the first waiting request, how long to gather more into the batch
};

// Loads the model and serves until stop_serving() (or SIGINT/SIGTERM through the CLI). Throws rlaif::Error for a bad
// model folder or an address it cannot bind. `on_listening(port)` runs once the socket listens.
void serve(const ServeOptions& options, const std::function<void(int port)>& on_listening = {});

// Asks a running serve() to return (thread- and signal-safe).
void stop_serving();

}  // namespace rlaif
