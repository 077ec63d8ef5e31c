// Tokenizer: loads tokenizer.json and runs Hugging Face's pipeline — added tokens, normalizer, pre-tokenizer, BPE,
// post-processor — and the decoder chain back.
#include "rlaif/tokenizer.h"

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <map>
#include <set>
#include <thread>
#include <unordered_map>

#include "core/unicode.h"
#include "rlaif/atomic_file.h"
#include "rlaif/error.h"
#include "rlaif/json_file.h"
#include "tokenizer/added_vocab.h"
#include "tokenizer/bpe.h"
#include "tokenizer/components.h"

namespace fs = std::filesystem;

namespace rlaif {

class TokenizerImpl {
 public:
  std::unique_ptr<Normalizer> normalizer;
  std::unique_ptr<PreTokenizer> pre_tokenizer;
  std::unique_ptr<BpeModel> model;
  std::unique_ptr<PostProcessor> post_processor;
  std::unique_ptr<Decoder> decoder;

  std::vector<AddedToken> added;                 // in file order
  std::unordered_map<int64_t, size_t> added_at;  // id -> index in `added`
  std::unordered_map<std::string, int64_t> added_by_content;
  std::set<std::string> special_contents;
  AddedMatcher raw_matcher, normalized_matcher;

  std::vector<std::string> bytes_of;  // id -> raw bytes mid-text ("" for special/unknown)
  std::vector<char> special;          // id -> is special
  int64_t vocab_size = 0, bos = -1, eos = -1;
  std::string chat_template, bos_token, eos_token;
  std::string source_json, source_config;  // kept for tokenizers made in memory, which are written out

  std::string token_string(int64_t id) const {
    auto it = added_at.find(id);
    if (it != added_at.end()) return added[it->second].content;
    const auto& v = model->vocab_by_id();
    return id >= 0 && id < static_cast<int64_t>(v.size()) ? v[id] : std::string();
  }

  void encode_text(const std::string& text, std::vector<int64_t>& ids) const {
    std::vector<TextSplit> outer, inner;
    std::vector<Piece> pieces;
    raw_matcher.split(text, outer);
    for (const auto& seg : outer) {
      if (seg.id >= 0) {
        ids.push_back(seg.id);
        continue;
      }
      std::string s = text.substr(seg.begin, seg.end - seg.begin);
      if (normalizer) normalizer->normalize(s);
      inner.clear();
      normalized_matcher.split(s, inner);
      for (const auto& sub : inner) {
        if (sub.id >= 0) {
          ids.push_back(sub.id);
          continue;
        }
        pieces.clear();
        if (sub.end > sub.begin)
          pieces.push_back({s.substr(sub.begin, sub.end - sub.begin), seg.begin == 0 && sub.begin == 0});
        if (pre_tokenizer) pre_tokenizer->pre_tokenize(pieces);
        for (const auto& p : pieces) model->tokenize(p.text, ids);
      }
    }
  }
};

namespace {

std::string token_name(const nlohmann::json& cfg, const char* key) {
  if (!cfg.contains(key) || cfg[key].is_null()) return "";
  if (cfg[key].is_string()) return cfg[key].get<std::string>();
  if (cfg[key].is_object() && cfg[key].contains("content") && cfg[key]["content"].is_string())
    return cfg[key]["content"].get<std::string>();
  return "";
}

std::shared_ptr<TokenizerImpl> build(const std::string& json_text, const std::string& where,
                                     const std::string& config_text, const std::string& config_where) {
  auto j = parse_json_text(json_text, where);
  if (!j.is_object()) throw Error("tokenizer.json is not a JSON object", where);
  auto t = std::make_shared<TokenizerImpl>();
  if (!j.contains("model") || !j["model"].is_object())
    throw Error("missing key \"model\"", where, "a tokenizer.json needs a model section");
  std::string mtype = j["model"].value("type", std::string("BPE"));
  if (mtype != "BPE") unsupported_component("model", mtype, where + ": model", "BPE");
  t->model = std::make_unique<BpeModel>(j["model"], where + ": model");
  auto get = [&](const char* key) { return j.contains(key) ? j[key] : nlohmann::json(); };
  t->normalizer = make_normalizer(get("normalizer"), where + ": normalizer");
  t->pre_tokenizer = make_pre_tokenizer(get("pre_tokenizer"), where + ": pre_tokenizer");
  t->post_processor = make_post_processor(get("post_processor"), where + ": post_processor");
  t->decoder = make_decoder(get("decoder"), where + ": decoder");

  int64_t max_id = static_cast<int64_t>(t->model->vocab_by_id().size()) - 1;
  const auto added = get("added_tokens");
  if (!added.is_null() && !added.is_array()) throw Error("\"added_tokens\" is not a list", where + ": added_tokens");
  for (size_t i = 0; added.is_array() && i < added.size(); ++i) {
    const auto& a = added[i];
    std::string at = where + ": added_tokens[" + std::to_string(i) + "]";
    if (!a.is_object() || !a.contains("id") || !a["id"].is_number_integer() || a["id"].get<int64_t>() < 0 ||
        !a.contains("content") || !a["content"].is_string())
      throw Error("added token needs a non-negative integer \"id\" and a string \"content\"", at);
    AddedToken tok;
    tok.id = a["id"].get<int64_t>();
    tok.content = a["content"].get<std::string>();
    tok.special = a.value("special", false);
    tok.lstrip = a.value("lstrip", false);
    tok.rstrip = a.value("rstrip", false);
    tok.single_word = a.value("single_word", false);
    tok.normalized = a.value("normalized", !tok.special);
    if (tok.content.empty()) continue;
    if (t->added_by_content.count(tok.content)) continue;  // Hugging Face keeps the first
    t->added_at[tok.id] = t->added.size();
    t->added_by_content[tok.content] = tok.id;
    if (tok.special) t->special_contents.insert(tok.content);
    t->added.push_back(tok);
    max_id = std::max(max_id, tok.id);
  }
  // Special tokens are matched first, then the others, each group in file order (ties in length keep that order).
  std::vector<AddedToken> raw, norm;
  std::vector<std::string> raw_pat, norm_pat;
  for (int pass = 0; pass < 2; ++pass) {
    for (const auto& a : t->added) {
      if (a.special != (pass == 0)) continue;
      if (a.normalized) {
        std::string p = a.content;
        if (t->normalizer) t->normalizer->normalize(p);
        norm.push_back(a);
        norm_pat.push_back(p);
      } else {
        raw.push_back(a);
        raw_pat.push_back(a.content);
      }
    }
  }
  t->raw_matcher = AddedMatcher(raw, raw_pat);
  t->normalized_matcher = AddedMatcher(norm, norm_pat);

  t->vocab_size = max_id + 1;
  t->special.assign(t->vocab_size, 0);
  t->bytes_of.assign(t->vocab_size, "");
  for (int64_t id = 0; id < t->vocab_size; ++id) {
    std::string s = t->token_string(id);
    if (t->special_contents.count(s)) {
      t->special[id] = 1;
      continue;
    }
    if (!s.empty() && t->decoder) t->decoder->token_text(s);
    t->bytes_of[id] = s;
  }

  if (!config_text.empty()) {
    auto cfg = parse_json_text(config_text, config_where);
    t->bos_token = token_name(cfg, "bos_token");
    t->eos_token = token_name(cfg, "eos_token");
    if (cfg.contains("chat_template")) {
      const auto& ct = cfg["chat_template"];
      if (ct.is_string()) {
        t->chat_template = ct.get<std::string>();
      } else if (ct.is_array()) {  // [{"name": "default", "template": ...}, ...]
        for (const auto& e : ct)
          if (e.is_object() && e.value("name", "") == "default" && e.contains("template"))
            t->chat_template = e["template"].get<std::string>();
      }
    }
    auto find = [&](const std::string& name) -> int64_t {
      if (name.empty()) return -1;
      auto it = t->added_by_content.find(name);
      return it != t->added_by_content.end() ? it->second : t->model->token_id(name);
    };
    t->bos = find(t->bos_token);
    t->eos = find(t->eos_token);
  }
  return t;
}

const std::string kEmpty;

}  // namespace

// build(), with any JSON type mismatch it did not anticipate turned into an Error naming the file.
static std::shared_ptr<TokenizerImpl> build_checked(const std::string& json_text, const std::string& where,
                                                    const std::string& config_text, const std::string& config_where) {
  try {
    return build(json_text, where, config_text, config_where);
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string("malformed tokenizer file: ") + e.what(), where,
                "a field has the wrong JSON type; compare it with a tokenizer.json that Hugging Face wrote");
  }
}

Tokenizer Tokenizer::from_json(const std::string& tokenizer_json, const std::string& where,
                               const std::string& tokenizer_config_json) {
  Tokenizer t;
  auto impl = build_checked(tokenizer_json, where, tokenizer_config_json, where + " (tokenizer_config)");
  impl->source_json = tokenizer_json;
  impl->source_config = tokenizer_config_json;
  t.impl_ = impl;
  return t;
}

Tokenizer Tokenizer::load(const std::string& dir) {
  std::string path = (fs::path(dir) / "tokenizer.json").string();
  if (!fs::exists(path))
    throw Error("file not found", path, "the model folder needs a tokenizer.json (Hugging Face's fast-tokenizer file)");
  std::string cfg_path = (fs::path(dir) / "tokenizer_config.json").string();
  std::string cfg = fs::exists(cfg_path) ? read_file(cfg_path) : "";
  Tokenizer t;
  t.impl_ = build_checked(read_file(path), path, cfg, cfg_path);
  return t;
}

namespace {

// tokenizer.json / tokenizer_config.json of a byte-level BPE: ids 0..255 are the bytes, then one per merge, then the
// special tokens. Without merges the whole text is one word (use_regex false: every byte is a token anyway).
Tokenizer make_byte_level(const std::vector<std::string>& special,
                          const std::vector<std::pair<std::string, std::string>>& merges) {
  nlohmann::ordered_json vocab = nlohmann::ordered_json::object();
  for (int b = 0; b < 256; ++b) vocab[unicode::byte_to_char(static_cast<unsigned char>(b))] = b;
  nlohmann::ordered_json merge_list = nlohmann::ordered_json::array();
  for (const auto& [a, b] : merges) {
    vocab[a + b] = static_cast<int64_t>(vocab.size());
    merge_list.push_back(a + " " + b);
  }
  const int64_t first_special = static_cast<int64_t>(vocab.size());
  nlohmann::ordered_json added = nlohmann::ordered_json::array();
  for (size_t i = 0; i < special.size(); ++i)
    added.push_back({{"id", first_special + static_cast<int64_t>(i)},
                     {"content", special[i]},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", false},
                     {"special", true}});
  nlohmann::ordered_json byte_level = {
      {"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", !merges.empty()}};
  nlohmann::ordered_json j = {{"version", "1.0"},
                              {"truncation", nullptr},
                              {"padding", nullptr},
                              {"added_tokens", added},
                              {"normalizer", nullptr},
                              {"pre_tokenizer", byte_level},
                              {"post_processor", nullptr},
                              {"decoder", byte_level},
                              {"model",
                               {{"type", "BPE"},
                                {"dropout", nullptr},
                                {"unk_token", nullptr},
                                {"continuing_subword_prefix", nullptr},
                                {"end_of_word_suffix", nullptr},
                                {"fuse_unk", false},
                                {"byte_fallback", false},
                                {"ignore_merges", false},
                                {"vocab", vocab},
                                {"merges", merge_list}}}};
  nlohmann::ordered_json cfg;
  cfg["tokenizer_class"] = "PreTrainedTokenizerFast";
  cfg["model_max_length"] = 2048;
  cfg["bos_token"] = nullptr;
  cfg["eos_token"] = special.empty() ? nlohmann::ordered_json() : nlohmann::ordered_json(special[0]);
  cfg["pad_token"] = cfg["eos_token"];
  cfg["clean_up_tokenization_spaces"] = false;
  return Tokenizer::from_json(j.dump(2), "byte-level tokenizer", cfg.dump(2));
}

}  // namespace

Tokenizer Tokenizer::byte_level(const std::vector<std::string>& special) { return make_byte_level(special, {}); }

Tokenizer Tokenizer::train_byte_level_bpe(const std::vector<std::string>& texts, int64_t vocab_size,
                                          const std::vector<std::string>& special) {
  if (vocab_size < 256 + static_cast<int64_t>(special.size()))
    throw Error("vocab_size " + std::to_string(vocab_size) + " is below the 256 bytes + " +
                    std::to_string(special.size()) + " special tokens",
                "--vocab-size", "use at least " + std::to_string(256 + special.size()));
  // Words (GPT-2 split, bytes as GPT-2's printable characters) with their counts, each a list of symbols.
  auto split = make_pre_tokenizer({{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}},
                                  "byte-level BPE trainer");
  std::map<std::string, int64_t> counts;
  for (const auto& text : texts) {
    std::vector<Piece> pieces{{unicode::is_valid_utf8(text) ? text : utf8_lossy(text), true}};
    split->pre_tokenize(pieces);
    for (const auto& p : pieces) ++counts[p.text];
  }
  std::vector<std::pair<std::vector<std::string>, int64_t>> words;
  for (const auto& [w, n] : counts) {
    std::vector<std::string> symbols;
    for (size_t i = 0; i < w.size(); i += unicode::cp_len(static_cast<unsigned char>(w[i])))
      symbols.push_back(w.substr(i, unicode::cp_len(static_cast<unsigned char>(w[i]))));
    words.emplace_back(std::move(symbols), n);
  }
  std::vector<std::pair<std::string, std::string>> merges;
  const int64_t max_merges = vocab_size - 256 - static_cast<int64_t>(special.size());
  while (static_cast<int64_t>(merges.size()) < max_merges) {
    std::map<std::pair<std::string, std::string>, int64_t> pairs;  // ordered: the first maximum is the smallest pair
    for (const auto& [symbols, n] : words)
      for (size_t i = 0; i + 1 < symbols.size(); ++i) pairs[{symbols[i], symbols[i + 1]}] += n;
    const std::pair<std::string, std::string>* best = nullptr;
    int64_t best_n = 1;
    for (const auto& [pair, n] : pairs)
      if (n > best_n) best = &pair, best_n = n;
    if (!best) break;  // no pair occurs twice: more merges would only memorise
    const auto merged = *best;
    merges.push_back(merged);
    for (auto& [symbols, n] : words) {
      std::vector<std::string> out;
      for (size_t i = 0; i < symbols.size(); ++i) {
        if (i + 1 < symbols.size() && symbols[i] == merged.first && symbols[i + 1] == merged.second) {
          out.push_back(merged.first + merged.second);
          ++i;
        } else {
          out.push_back(symbols[i]);
        }
      }
      symbols.swap(out);
    }
  }
  return make_byte_level(special, merges);
}

std::vector<int64_t> Tokenizer::encode(const std::string& text, bool add_special_tokens) const {
  std::vector<int64_t> ids;
  if (unicode::is_valid_utf8(text))
    impl_->encode_text(text, ids);
  else
    impl_->encode_text(utf8_lossy(text), ids);
  if (add_special_tokens && impl_->post_processor) ids = impl_->post_processor->process(std::move(ids));
  return ids;
}

std::vector<std::vector<int64_t>> Tokenizer::encode_batch(const std::vector<std::string>& texts,
                                                          bool add_special_tokens, int num_threads) const {
  std::vector<std::vector<int64_t>> out(texts.size());
  int n = num_threads > 0 ? num_threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  n = static_cast<int>(std::min<size_t>(static_cast<size_t>(n), texts.size()));
  std::atomic<size_t> next{0};
  auto work = [&]() {
    for (size_t i = next++; i < texts.size(); i = next++) out[i] = encode(texts[i], add_special_tokens);
  };
  if (n <= 1) {
    work();
    return out;
  }
  std::vector<std::thread> pool;
  std::exception_ptr error;
  std::mutex error_mu;
  for (int k = 0; k < n; ++k)
    pool.emplace_back([&]() {
      try {
        work();
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mu);
        if (!error) error = std::current_exception();
        next = texts.size();
      }
    });
  for (auto& th : pool) th.join();
  if (error) std::rethrow_exception(error);
  return out;
}

std::string Tokenizer::decode(const std::vector<int64_t>& ids, bool skip_special_tokens) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int64_t id : ids) {
    std::string s = impl_->token_string(id);
    if (s.empty()) continue;
    if (skip_special_tokens && impl_->special_contents.count(s)) continue;
    tokens.push_back(std::move(s));
  }
  if (!impl_->decoder) {
    std::string out;
    for (size_t i = 0; i < tokens.size(); ++i) out += (i ? " " : "") + tokens[i];
    return out;
  }
  impl_->decoder->decode_chain(tokens);
  std::string out;
  for (const auto& t : tokens) out += t;
  return out;
}

std::string Tokenizer::id_to_token(int64_t id) const { return impl_->token_string(id); }

const std::string& Tokenizer::token_bytes(int64_t id) const {
  return id >= 0 && id < impl_->vocab_size ? impl_->bytes_of[id] : kEmpty;
}

bool Tokenizer::is_special(int64_t id) const { return id >= 0 && id < impl_->vocab_size && impl_->special[id]; }

int64_t Tokenizer::token_id(const std::string& content) const {
  if (content.empty()) return -1;
  auto it = impl_->added_by_content.find(content);
  return it != impl_->added_by_content.end() ? it->second : impl_->model->token_id(content);
}

int64_t Tokenizer::vocab_size() const { return impl_->vocab_size; }
int64_t Tokenizer::bos_id() const { return impl_->bos; }
int64_t Tokenizer::eos_id() const { return impl_->eos; }
const std::vector<AddedToken>& Tokenizer::added_tokens() const { return impl_->added; }
const std::string& Tokenizer::chat_template() const { return impl_->chat_template; }
const std::string& Tokenizer::bos_token() const { return impl_->bos_token; }
const std::string& Tokenizer::eos_token() const { return impl_->eos_token; }

std::string Tokenizer::to_tokenizer_json() const {
  if (impl_->source_json.empty())
    throw Error(
        "to_tokenizer_json is only for tokenizers made in memory (byte_level, train_byte_level_bpe, from_json)");
  return impl_->source_json;
}

std::string Tokenizer::to_tokenizer_config_json() const {
  if (impl_->source_config.empty())
    throw Error(
        "to_tokenizer_config_json is only for tokenizers made in memory (byte_level, train_byte_level_bpe, from_json)");
  return impl_->source_config;
}

DecodeStream::DecodeStream(const Tokenizer& tokenizer, bool skip_special_tokens)
    : tokenizer_(tokenizer), skip_special_(skip_special_tokens) {}

std::string DecodeStream::step(int64_t id) {
  ids_.push_back(id);
  std::string text = tokenizer_.decode(ids_, skip_special_);
  static const std::string kReplacement = "\xEF\xBF\xBD";
  bool incomplete = text.size() >= 3 && text.compare(text.size() - 3, 3, kReplacement) == 0;
  if (text.size() <= prefix_.size() || incomplete) return "";
  std::string fresh = text.substr(std::min(prefix_.size(), text.size()));
  // Keep only the ids since the last emitted boundary, so each step decodes a short window.
  size_t new_prefix_index = ids_.size() - prefix_index_;
  ids_.erase(ids_.begin(), ids_.begin() + static_cast<std::ptrdiff_t>(prefix_index_));
  prefix_ = tokenizer_.decode(ids_, skip_special_);
  prefix_index_ = new_prefix_index;
  return fresh;
}

std::string utf8_lossy(const std::string& in) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size();) {
    size_t good = 0, len = unicode::utf8_sequence(in, i, &good);
    if (len > 0) {
      out.append(in, i, len);
      i += len;
    } else {
      out += "\xEF\xBF\xBD";
      i += std::max<size_t>(good, 1);
    }
  }
  return out;
}

}  // namespace rlaif
