// The batched generation engine: many prompts in, many samples out.
//
// S sequence slots share one preallocated KV cache. A prompt is prefilled in one forward pass and its keys/values
// copied to the slots of its other samples (G samples of one prompt share one prefill). Each decode step advances
// every active slot by one token; when a sequence finishes, its slot takes the next waiting sample (continuous
// batching), so the batch stays full. Every sample draws from its own random stream, seeded from the request's seed
// and the sample's index, so the same seed gives the same text whatever else is in the batch.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "rlaif/generation_params.h"
#include "rlaif/model.h"
#include "rlaif/tokenizer.h"

namespace rlaif {

enum class FinishReason { kStop, kLength };
const char* to_string(FinishReason r);  // "stop" | "length"

struct Sample {
  std::vector<int64_t> token_ids;  // generated tokens, including a final end-of-sequence token if one was sampled
  std::vector<float> logprobs;     // one per token: see SampledToken::logprob
  // With params.top_logprobs = k: per token, the k most likely (token, log-prob) at that step, most likely first,
  // under the same distribution as `logprobs` (softmax(logits / temperature); temperature 1 when greedy).
  std::vector<std::vector<std::pair<int64_t, float>>> top_logprobs;
  std::string text;  // decoded completion without special tokens, cut before a matched stop string
  FinishReason finish_reason = FinishReason::kLength;
};

struct GenerationResult {
  std::vector<Sample> samples;  // num_samples of them, in sample-index order
};

struct GeneratorOptions {
  int64_t max_batch = 32;   // S: sequences decoded together
  int64_t max_seq_len = 0;  // KV cache length per slot; 0 = enough for the longest request (within the model's limit)
};

struct GenerationStats {
  int64_t prefill_tokens = 0, decode_tokens = 0, decode_steps = 0;
  int64_t prefills = 0;       // prefill forwards (the prompts waiting together share one)
  int64_t mixed_steps = 0;    // decode steps whose forward also prefilled waiting prompts (packed path; among prefills)
  int64_t reused_tokens = 0;  // prompt tokens not prefilled: their keys and values were kept (keep_key)
  int64_t evictions = 0;      // kept slots given to other work before their key came back
  double prefill_seconds = 0, decode_seconds = 0, sample_seconds = 0;
};

class Generator {
 public:
  // `model` is used in inference mode; `eos_ids` end a sequence (see load_eos_token_ids).
  Generator(CausalLM model, Tokenizer tokenizer, std::vector<int64_t> eos_ids, GeneratorOptions options = {});

  // Called once per finished sample, as soon as it finishes (so a judge can start on it), from the calling thread.
  using OnSample = std::function<void(size_t request_index, size_t sample_index, const Sample& sample)>;

  // Generates every sample of every request. Throws rlaif::Error (naming the request index) for an empty prompt, a
  // prompt that leaves no room in the model's context, or invalid parameters — before any work is done.
  // Called for every generated token as soon as it is drawn (streaming), from the calling thread.
  using OnToken = std::function<void(size_t request_index, size_t sample_index, int64_t token)>;
  std::vector<GenerationResult> generate(const std::vector<GenerationRequest>& requests, const OnSample& on_sample = {},
                                         const OnToken& on_token = {});

  // Checks one request without running it: throws rlaif::Error, naming `where`, for an empty prompt, a prompt that
  // leaves no room in the model's context, or invalid parameters. Thread-safe.
  void check(const GenerationRequest& request, const std::string& where = "request") const {
    cache_need(request, where);
  }

  // Continuous batching across callers (a server): requests join the running batch at the next decode step and a
  // finished one leaves at once. Before every step `poll` hands over new requests (with the caller's ids; each was
  // checked with check()) and ids to cancel; when nothing is left to decode it is called with status.idle = true and
  // may block until there is work. Samples and tokens are reported with the caller's id, `on_done` once all samples
  // of a request are finished, `on_error` when a request cannot go on (its other reports stop). Returns when a poll
  // says stop; every callback runs on the calling thread.
  struct ContinuousStatus {
    bool idle = true;
    int64_t running = 0, waiting = 0;  // samples decoding, samples waiting for a slot
  };
  struct Incoming {
    std::vector<std::pair<size_t, GenerationRequest>> requests;
    std::vector<size_t> cancelled;
    bool stop = false;
  };
  using Poll = std::function<Incoming(const ContinuousStatus& status)>;
  using OnDone = std::function<void(size_t id, GenerationResult& result)>;
  using OnError = std::function<void(size_t id, const std::string& error)>;
  void run_continuous(const Poll& poll, const OnSample& on_sample, const OnToken& on_token, const OnDone& on_done,
                      const OnError& on_error);

  const GenerationStats& stats() const { return stats_; }
  const Tokenizer& tokenizer() const { return tokenizer_; }

 private:
  int64_t context() const;  // the model's usable context (max positions, or the sliding window)
  // Checks one request (throws rlaif::Error naming `where`) and returns the KV cache length it needs.
  int64_t cache_need(const GenerationRequest& request, const std::string& where) const;
  // (Re)allocates the KV cache when it is too short or of another layout.
  void prepare_cache(int64_t cache_len);

  CausalLM model_;
  Tokenizer tokenizer_;
  std::vector<int64_t> eos_ids_;
  GeneratorOptions options_;
  std::unique_ptr<KVCache> cache_;
  GenerationStats stats_;
};

}  // namespace rlaif
