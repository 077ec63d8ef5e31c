// `rlaif serve`: an OpenAI-compatible HTTP server over the generation engine, so any model folder can act as a judge
// (or be tried after training) with the protocol every client speaks: POST /v1/chat/completions and /v1/completions,
// GET /v1/models and /health. Every running request shares one continuous decode batch: a request joins it at the
// next step and leaves when it finishes. Connections cost no thread: any number may be open (up to max_connections),
// slow or broken clients are cut off by the header and body deadlines, and one that goes away cancels its request.
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
  int threads = 0;                     // intra-op threads of the decode engine (0 = all cores)
  int64_t max_tokens_limit = 1024;     // a request asking for more max_tokens is a 400
  int64_t max_n = 16;                  // choices per request
  size_t max_request_bytes = 1 << 20;  // larger bodies are refused (413)
  int max_connections = 1024;          // open connections; more are answered 503 at once
  double header_timeout_s = 10;        // a request's headers must arrive within this (else 408)
  double body_timeout_s = 30;          // and its body within this after them (else 408)
  double idle_timeout_s = 60;          // a kept-alive connection without a request is closed
};

// Loads the model and serves until stop_serving() (or SIGINT/SIGTERM through the CLI). Throws rlaif::Error for a bad
// model folder or an address it cannot bind. `on_listening(port)` runs once the socket listens.
void serve(const ServeOptions& options, const std::function<void(int port)>& on_listening = {});

// Asks a running serve() to return (thread- and signal-safe).
void stop_serving();

}  // namespace rlaif
