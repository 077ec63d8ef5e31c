// rlaif tokenize: encode or decode lines from stdin with a model folder's tokenizer, one JSON object per line out.
#include <iostream>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "rlaif/error.h"
#include "rlaif/tokenizer.h"

namespace rlaif_cli {
namespace {

struct TokenizeArgs {
  std::string tokenizer, mode = "ids";
  bool add_special = false, keep_special = false;
  int threads = 0;
};

// A line that is a JSON string is that string (so texts with newlines fit on one line); any other line is itself.
std::string line_text(const std::string& line) {
  if (line.empty() || line[0] != '"') return line;
  auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  return j.is_string() ? j.get<std::string>() : line;
}

std::vector<int64_t> line_ids(const std::string& line, size_t number) {
  auto j = nlohmann::json::parse(line, nullptr, false);
  if (j.is_object() && j.contains("ids")) j = j["ids"];
  if (!j.is_array())
    throw rlaif::Error("expected a JSON list of token ids", "stdin:" + std::to_string(number),
                       "decode reads lines like [9707, 1879] or {\"ids\": [9707, 1879]}");
  std::vector<int64_t> ids;
  for (const auto& x : j) {
    if (!x.is_number_integer())
      throw rlaif::Error("token id is not an integer: " + x.dump(), "stdin:" + std::to_string(number));
    ids.push_back(x.get<int64_t>());
  }
  return ids;
}

int run_tokenize(const TokenizeArgs& a) {
  auto tok = rlaif::Tokenizer::load(a.tokenizer);
  std::vector<std::string> lines;
  for (std::string line; std::getline(std::cin, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(line);
  }
  std::string out;
  if (a.mode == "decode") {
    for (size_t i = 0; i < lines.size(); ++i) {
      if (lines[i].empty()) continue;
      out += nlohmann::json{{"text", tok.decode(line_ids(lines[i], i + 1), !a.keep_special)}}.dump(
                 -1, ' ', false, nlohmann::json::error_handler_t::replace) +
             "\n";
    }
  } else {
    std::vector<std::string> texts;
    for (const auto& l : lines) texts.push_back(line_text(l));
    auto all = tok.encode_batch(texts, a.add_special, a.threads);
    for (const auto& ids : all) {
      nlohmann::json row{{"ids", ids}};
      if (a.mode == "tokens") {
        nlohmann::json tokens = nlohmann::json::array();
        for (int64_t id : ids) tokens.push_back(tok.id_to_token(id));
        row["tokens"] = tokens;
      }
      out += row.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    }
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

}  // namespace

Run add_tokenize(CLI::App& app) {
  auto a = std::make_shared<TokenizeArgs>();
  app.footer(
      "Reads stdin one line at a time. A line that is a JSON string (\"...\") is decoded first, so texts holding "
      "newlines "
      "fit on one line; other lines are taken as they are. Writes one JSON object per input line:\n"
      "  --ids (default)  {\"ids\": [...]}\n"
      "  --tokens         {\"ids\": [...], \"tokens\": [\"Hello\", \"Ġworld\"]}\n"
      "  --decode         input lines are [ids] or {\"ids\": [...]}; output {\"text\": \"...\"}");
  app.add_option("--tokenizer", a->tokenizer, "model folder (or any folder) holding tokenizer.json")->required();
  auto* ids = app.add_flag("--ids", "print token ids (default)");
  auto* tokens = app.add_flag("--tokens", "print token ids and their vocabulary strings");
  auto* decode = app.add_flag("--decode", "decode lists of ids back to text");
  ids->excludes(tokens)->excludes(decode);
  tokens->excludes(decode);
  app.add_flag("--add-special-tokens", a->add_special, "apply the tokenizer's post-processor (e.g. Llama-2's <s>)");
  app.add_flag("--keep-special-tokens", a->keep_special, "with --decode: keep special tokens in the text");
  app.add_option("--threads", a->threads, "encoding threads (0 = all cores)")->capture_default_str();
  return [a, tokens, decode]() {
    if (*tokens) a->mode = "tokens";
    if (*decode) a->mode = "decode";
    return run_tokenize(*a);
  };
}

}  // namespace rlaif_cli
