// rlaif serve: an OpenAI-compatible server over a model folder (see include/rlaif/openai_server.h).
#include <pthread.h>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "commands.h"
#include "rlaif/error.h"
#include "rlaif/openai_server.h"

namespace rlaif_cli {

Run add_serve(CLI::App& app) {
  auto o = std::make_shared<rlaif::ServeOptions>();
  auto key_env = std::make_shared<std::string>();
  app.footer(
      "Endpoints: POST /v1/chat/completions and /v1/completions (temperature, top_p, top_k, min_p, max_tokens, stop, "
      "seed, n, logprobs/top_logprobs, response_format, stream), GET /v1/models, GET /health. Running requests share "
      "one continuous decode batch (a new one joins at the next step). Errors are OpenAI-shaped JSON with status "
      "400/401/404/405/408/411/413/431/503.");
  app.add_option("--model", o->model_dir,
                 "the model folder to serve, or a LoRA run's final/ or checkpoint-N/ (its adapter on its base)")
      ->required();
  app.add_option("--adapter", o->adapter, "a PEFT LoRA adapter folder to merge into --model's weights");
  app.add_option("--model-name", o->model_name, "the model id clients see (default: the folder's name)");
  app.add_option("--host", o->host, "address to bind; keep 127.0.0.1 unless other machines must reach it")
      ->capture_default_str();
  app.add_option("--port", o->port, "port (0 = any free port; the line 'serving ... on URL' names it)")
      ->capture_default_str();
  app.add_option("--api-key-env", *key_env,
                 "name of an environment variable holding a key: requests must then send Authorization: Bearer <key>");
  app.add_option("--dtype", o->dtype, "auto (packed bf16 kernels where the CPU has AVX512_BF16), float32 or bfloat16")
      ->capture_default_str();
  app.add_option("--max-batch", o->max_batch, "sequences decoded together")->capture_default_str();
  app.add_option("--threads", o->threads, "threads the decode engine computes with (0 = all cores; /health shows it)")
      ->capture_default_str();
  app.add_option("--max-tokens", o->max_tokens_limit, "largest max_tokens a request may ask for")
      ->capture_default_str();
  app.add_option("--max-n", o->max_n, "largest n (choices per request)")->capture_default_str();
  app.add_option("--max-request-bytes", o->max_request_bytes, "larger request bodies get 413")->capture_default_str();
  app.add_option("--max-connections", o->max_connections, "open connections at most; more get 503")
      ->capture_default_str();
  app.add_option("--header-timeout", o->header_timeout_s, "seconds for a request's headers to arrive (else 408)")
      ->capture_default_str();
  app.add_option("--body-timeout", o->body_timeout_s, "seconds for a request's body to arrive after its headers")
      ->capture_default_str();
  app.add_option("--idle-timeout", o->idle_timeout_s, "seconds a kept-alive connection may wait for its next request")
      ->capture_default_str();
  return [o, key_env]() {
    if (!key_env->empty()) {
      const char* key = std::getenv(key_env->c_str());
      if (!key || !*key)
        throw rlaif::Error("environment variable " + *key_env + " is empty or unset", "--api-key-env",
                           "export it, or drop --api-key-env to serve without authentication");
      o->api_key = key;
    }
    // SIGINT / SIGTERM stop the server cleanly: a thread waits for them (they are blocked everywhere else).
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
    std::thread waiter([stop_signals] {
      int sig = 0;
      sigwait(&stop_signals, &sig);
      rlaif::stop_serving();
    });
    waiter.detach();
    rlaif::serve(*o, [&](int port) {
      std::printf("serving %s on http://%s:%d/v1\n", o->model_dir.c_str(), o->host.c_str(), port);
      std::fflush(stdout);
    });
    return 0;
  };
}

}  // namespace rlaif_cli
