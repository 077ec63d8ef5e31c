// The tokenizer half of a GGUF export: a Hugging Face tokenizer.json as the tokenizer.ggml.* metadata llama.cpp
// reads, following its converter (convert_hf_to_gguf.py's get_vocab_base for byte-level BPE, LlamaHfVocab for
// SentencePiece-style BPE with byte fallback).
#include <filesystem>
#include <map>
#include <regex>

#include "gguf_export.h"
#include "rlaif/error.h"
#include "rlaif/json_file.h"
#include "rlaif/tokenizer.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace rlaif {
namespace {

// llama.cpp's token types.
enum TokenType : int32_t { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };

// The pre-tokenizer regexes llama.cpp knows by name (its LLAMA_VOCAB_PRE_TYPE_*), as tokenizer.json spells them.
const char* const kLlama3Split =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char* const kQwen2Split =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

bool is_type(const json& j, const char* type) { return j.is_object() && j.value("type", "") == type; }

bool byte_level(const json& j, bool use_regex) {
  return is_type(j, "ByteLevel") && j.value("use_regex", true) == use_regex;
}

// The list of a Sequence (under `key`), or the component itself.
json components(const json& j, const char* key) {
  if (is_type(j, "Sequence")) return j.value(key, json::array());
  return j.is_null() ? json::array() : json::array({j});
}

bool mentions(const json& j, const char* type) {
  if (is_type(j, type)) return true;
  if (j.is_object() || j.is_array())
    for (const auto& v : j)
      if (mentions(v, type)) return true;
  return false;
}

// tokenizer.ggml.pre for a byte-level BPE: the llama.cpp pre-tokenizer that splits text as tokenizer.json does.
std::string pre_tokenizer_name(const json& pre, bool has_merges, const std::string& where) {
  const json list = components(pre, "pretokenizers");
  if (list.size() == 1 && byte_level(list[0], true)) return "gpt-2";
  if (list.size() == 1 && byte_level(list[0], false) && !has_merges) return "default";  // bytes only: any split
  if (list.size() == 2 && is_type(list[0], "Digits") && list[0].value("individual_digits", false) &&
      byte_level(list[1], true))
    return "smollm";
  if (list.size() == 2 && is_type(list[0], "Split") && byte_level(list[1], false) &&
      list[0].value("behavior", "") == "Isolated" && !list[0].value("invert", false)) {
    const std::string regex = list[0].value("pattern", json::object()).value("Regex", "");
    if (regex == kLlama3Split) return "llama-bpe";
    if (regex == kQwen2Split) return "qwen2";
  }
  throw Error("pre-tokenizer " + pre.dump().substr(0, 300) + " is not one llama.cpp knows", where + ": pre_tokenizer",
              "GGUF export knows GPT-2's, SmolLM's, Llama 3's and Qwen2's byte-level splits");
}

// Whether a SentencePiece-style tokenizer puts "▁" before the text (llama.cpp's add_space_prefix).
bool adds_space_prefix(const json& tok) {
  for (const auto& n : components(tok.value("normalizer", json()), "normalizers"))
    if (is_type(n, "Prepend") && n.value("prepend", "") == "\u2581") return true;
  for (const auto& p : components(tok.value("pre_tokenizer", json()), "pretokenizers"))
    if (is_type(p, "Metaspace"))
      return p.contains("prepend_scheme") ? p.value("prepend_scheme", "always") != "never"
                                          : p.value("add_prefix_space", true);
  return false;
}

std::string merge_text(const json& m) {
  return m.is_array() ? m.at(0).get<std::string>() + " " + m.at(1).get<std::string>() : m.get<std::string>();
}

// llama.cpp's converter counts tokens such as <|im_start|> as control tokens even where tokenizer.json does not.
bool looks_special(const std::string& t) {
  return t.size() >= 4 && t.rfind("<|", 0) == 0 && t.substr(t.size() - 2) == "|>";
}

}  // namespace

void add_gguf_vocab(GgufWriter& w, const std::string& dir, const ModelConfig& config) {
  const std::string path = (fs::path(dir) / "tokenizer.json").string();
  const json tok = read_json_file(path, "GGUF export needs the model's tokenizer.json");
  const Tokenizer tokenizer = Tokenizer::load(dir);
  const json& model = tok.at("model");
  if (model.value("type", "") != "BPE")
    throw Error("tokenizer model " + model.value("type", "?") + " has no GGUF form here", path + ": model.type",
                "GGUF export holds byte-level BPE (gpt2) and SentencePiece-style BPE (llama) vocabularies");
  const bool bytes =
      mentions(tok.value("pre_tokenizer", json()), "ByteLevel") || mentions(tok.value("decoder", json()), "ByteLevel");
  const bool spm = !bytes && model.value("byte_fallback", false);
  if (!bytes && !spm)
    throw Error("a BPE tokenizer with neither a ByteLevel pre-tokenizer nor byte_fallback has no GGUF form",
                path + ": model", "GGUF export holds byte-level BPE (gpt2) and SentencePiece-style BPE (llama)");

  // Every row of the embedding gets a token: vocabulary, then added tokens, then "[PAD<i>]" (unused) for the rest.
  const int64_t n = config.vocab_size;
  std::vector<std::string> tokens(n);
  std::vector<int32_t> types(n, kUnused);
  std::vector<bool> filled(n, false);
  auto place = [&](int64_t id, const std::string& text, int32_t type) {
    if (id < 0 || id >= n)
      throw Error(
          "token \"" + text + "\" has id " + std::to_string(id) + ", past the model's vocab_size " + std::to_string(n),
          path, "the tokenizer does not belong to this model; check config.json's vocab_size");
    tokens[id] = text;
    types[id] = type;
    filled[id] = true;
  };
  static const std::regex byte_token("<0x[0-9A-Fa-f]{2}>");
  const std::string unk = model.value("unk_token", json()).is_string() ? model["unk_token"].get<std::string>() : "";
  for (const auto& [text, id] : model.at("vocab").items()) {
    int32_t type = kNormal;
    if (spm && std::regex_match(text, byte_token)) type = kByte;
    if (spm && text == unk) type = kUnknown;
    place(id.get<int64_t>(), text, type);
  }
  for (const auto& a : tokenizer.added_tokens())
    if (!(spm && a.content == unk))
      place(a.id, a.content, a.special || looks_special(a.content) ? kControl : kUserDefined);
  for (int64_t i = 0; i < n; ++i)
    if (!filled[i]) tokens[i] = "[PAD" + std::to_string(i) + "]";

  const json merges = model.value("merges", json::array());
  if (spm) {
    // llama.cpp's SentencePiece tokenizer merges the adjacent pair whose result scores highest; transformers' BPE
    // merges the pair of lowest rank. A token's score is minus the rank of the first merge that makes it, so both
    // orders agree (tokens no merge makes score 0).
    std::map<std::string, int64_t> rank_of;
    for (size_t r = 0; r < merges.size(); ++r) {
      std::string m = merge_text(merges[r]);
      const size_t space = m.find(' ');
      rank_of.emplace(m.substr(0, space) + m.substr(space + 1), static_cast<int64_t>(r));
    }
    std::vector<float> scores(n, 0.0f);
    for (int64_t i = 0; i < n; ++i)
      if (auto it = rank_of.find(tokens[i]); it != rank_of.end() && types[i] == kNormal)
        scores[i] = -static_cast<float>(it->second);
    w.add_string("tokenizer.ggml.model", "llama");
    w.add_string("tokenizer.ggml.pre", "default");
    w.add_strings("tokenizer.ggml.tokens", tokens);
    w.add_f32s("tokenizer.ggml.scores", scores);
    w.add_i32s("tokenizer.ggml.token_type", types);
    w.add_bool("tokenizer.ggml.add_space_prefix", adds_space_prefix(tok));
  } else {
    std::vector<std::string> merge_list;
    merge_list.reserve(merges.size());
    for (const auto& m : merges) merge_list.push_back(merge_text(m));
    w.add_string("tokenizer.ggml.model", "gpt2");
    w.add_string("tokenizer.ggml.pre", pre_tokenizer_name(tok.value("pre_tokenizer", json()), !merges.empty(), path));
    w.add_strings("tokenizer.ggml.tokens", tokens);
    w.add_i32s("tokenizer.ggml.token_type", types);
    w.add_strings("tokenizer.ggml.merges", merge_list);
  }

  const int64_t bos = tokenizer.bos_id() >= 0 ? tokenizer.bos_id() : config.bos_token_id;
  const int64_t eos = tokenizer.eos_id() >= 0        ? tokenizer.eos_id()
                      : config.eos_token_ids.empty() ? -1
                                                     : config.eos_token_ids.front();
  if (bos >= 0) w.add_u32("tokenizer.ggml.bos_token_id", bos);
  if (eos >= 0) w.add_u32("tokenizer.ggml.eos_token_id", eos);
  if (const int64_t u = unk.empty() ? -1 : tokenizer.token_id(unk); u >= 0)
    w.add_u32("tokenizer.ggml.unknown_token_id", u);
  const fs::path cfg_path = fs::path(dir) / "tokenizer_config.json";
  if (fs::exists(cfg_path)) {
    const json cfg = read_json_file(cfg_path.string());
    const json pad = cfg.value("pad_token", json());
    const std::string pad_text = pad.is_string()   ? pad.get<std::string>()
                                 : pad.is_object() ? pad.value("content", "")
                                                   : "";
    if (const int64_t p = pad_text.empty() ? -1 : tokenizer.token_id(pad_text); p >= 0)
      w.add_u32("tokenizer.ggml.padding_token_id", p);
  }
  // What encoding with special tokens adds around a text, as llama.cpp's add_bos_token / add_eos_token.
  const std::vector<int64_t> plain = tokenizer.encode("a"), full = tokenizer.encode("a", true);
  const bool add_bos = bos >= 0 && full.size() > plain.size() && full.front() == bos;
  const bool add_eos = eos >= 0 && full.size() == plain.size() + (add_bos ? 2 : 1) && full.back() == eos;
  w.add_bool("tokenizer.ggml.add_bos_token", add_bos);
  w.add_bool("tokenizer.ggml.add_eos_token", add_eos);
  if (!tokenizer.chat_template().empty()) w.add_string("tokenizer.chat_template", tokenizer.chat_template());
}

}  // namespace rlaif
