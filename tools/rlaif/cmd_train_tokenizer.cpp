// rlaif train-tokenizer: learn a byte-level BPE tokenizer from JSONL or text files and write it as a tokenizer folder
// (tokenizer.json + tokenizer_config.json) that `rlaif init-model --tokenizer DIR` and Hugging Face both load.
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "commands.h"
#include "rlaif/atomic_file.h"
#include "rlaif/error.h"
#include "rlaif/jsonl.h"
#include "rlaif/tokenizer.h"

namespace rlaif_cli {
namespace {

struct TrainTokenizerArgs {
  std::vector<std::string> corpus;
  int64_t vocab_size = 1024;
  std::string out;
};

// Every string value in a JSON row (prompt, completion, messages[].content, ...), depth first.
void collect_strings(const nlohmann::ordered_json& v, std::vector<std::string>& out) {
  if (v.is_string())
    out.push_back(v.get<std::string>());
  else if (v.is_array() || v.is_object())
    for (const auto& e : v) collect_strings(e, out);
}

int run_train_tokenizer(const TrainTokenizerArgs& a) {
  std::vector<std::string> texts;
  for (const auto& path : a.corpus) {
    if (!std::filesystem::exists(path)) throw rlaif::Error("file not found", path, "check the --corpus path");
    if (path.size() > 6 && path.compare(path.size() - 6, 6, ".jsonl") == 0) {
      for (const auto& r : rlaif::read_jsonl(path)) {
        if (!r.error.empty())
          throw rlaif::Error(r.error, path + ":" + std::to_string(r.line), "each line must be JSON");
        collect_strings(r.value, texts);
      }
    } else {
      std::ifstream in(path);
      for (std::string line; std::getline(in, line);) texts.push_back(line + "\n");
    }
  }
  if (texts.empty()) throw rlaif::Error("the corpus has no text", "--corpus", "name JSONL or text files with content");
  auto tok =
      rlaif::Tokenizer::train_byte_level_bpe(texts, a.vocab_size, {"<|endoftext|>", "<|im_start|>", "<|im_end|>"});
  std::filesystem::create_directories(a.out);
  rlaif::write_file_atomic(a.out + "/tokenizer.json", tok.to_tokenizer_json());
  rlaif::write_file_atomic(a.out + "/tokenizer_config.json", tok.to_tokenizer_config_json());
  std::printf("wrote %s: byte-level BPE, %lld tokens (%lld merges) from %zu texts\n", a.out.c_str(),
              static_cast<long long>(tok.vocab_size()), static_cast<long long>(tok.vocab_size() - 259), texts.size());
  return 0;
}

}  // namespace

Run add_train_tokenizer(CLI::App& app) {
  auto a = std::make_shared<TrainTokenizerArgs>();
  app.add_option("--corpus", a->corpus, "JSONL files (every string value is text) or plain text files (per line)")
      ->required();
  app.add_option("--vocab-size", a->vocab_size,
                 "bytes + merges + the special tokens <|endoftext|> <|im_start|> <|im_end|>")
      ->capture_default_str();
  app.add_option("--out", a->out, "folder to write tokenizer.json and tokenizer_config.json into")->required();
  return [a]() { return run_train_tokenizer(*a); };
}

}  // namespace rlaif_cli
