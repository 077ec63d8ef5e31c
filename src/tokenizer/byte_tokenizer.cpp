#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "rlaif/atomic_file.h"
#include "rlaif/error.h"
#include "rlaif/tokenizer.h"

namespace fs = std::filesystem;

namespace rlaif {
namespace {

// GPT-2's reversible byte -> unicode code point table.
std::vector<int> bytes_to_unicode() {
  std::vector<int> table(256, -1);
  for (int b = '!'; b <= '~'; ++b) table[b] = b;
  for (int b = 0xA1; b <= 0xAC; ++b) table[b] = b;
  for (int b = 0xAE; b <= 0xFF; ++b) table[b] = b;
  int n = 0;
  for (int b = 0; b < 256; ++b)
    if (table[b] < 0) table[b] = 256 + n++;
  return table;
}

std::string utf8_encode(int cp) {
  std::string s;
  if (cp < 0x80) s += static_cast<char>(cp);
  else if (cp < 0x800) {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    s += static_cast<char>(0xE0 | (cp >> 12));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

const std::string kEmpty;

}  // namespace

std::string utf8_lossy(const std::string& in) {
  std::string out;
  out.reserve(in.size());
  const auto* s = reinterpret_cast<const unsigned char*>(in.data());
  size_t i = 0, n = in.size();
  while (i < n) {
    unsigned char c = s[i];
    int len = c < 0x80 ? 1 : (c >= 0xC2 && c <= 0xDF) ? 2 : (c >= 0xE0 && c <= 0xEF) ? 3 : (c >= 0xF0 && c <= 0xF4) ? 4 : 0;
    if (len == 1) {
      out += static_cast<char>(c);
      ++i;
      continue;
    }
    size_t good = 0;  // bytes of a valid prefix (maximal subpart)
    if (len > 0) {
      good = 1;
      for (int k = 1; k < len && i + k < n; ++k) {
        unsigned char d = s[i + k];
        unsigned char lo = 0x80, hi = 0xBF;
        if (k == 1) {
          if (c == 0xE0) lo = 0xA0;
          if (c == 0xED) hi = 0x9F;
          if (c == 0xF0) lo = 0x90;
          if (c == 0xF4) hi = 0x8F;
        }
        if (d < lo || d > hi) break;
        ++good;
      }
    }
    if (len > 0 && good == static_cast<size_t>(len)) {
      out.append(in, i, len);
      i += len;
    } else {
      out += "\xEF\xBF\xBD";
      i += std::max<size_t>(good, 1);
    }
  }
  return out;
}

Tokenizer Tokenizer::byte_level(const std::vector<std::string>& special) {
  Tokenizer t;
  for (int b = 0; b < 256; ++b) {
    t.pieces_.push_back(std::string(1, static_cast<char>(b)));
    t.special_.push_back(false);
  }
  for (const auto& s : special) {
    AddedToken a{static_cast<int64_t>(t.pieces_.size()), s, true};
    t.pieces_.push_back("");
    t.special_.push_back(true);
    t.added_.push_back(a);
    t.by_content_[s] = a.id;
  }
  std::stable_sort(t.added_.begin(), t.added_.end(),
                   [](const AddedToken& a, const AddedToken& b) { return a.content.size() > b.content.size(); });
  if (!special.empty()) t.eos_id_ = t.by_content_[special[0]];
  return t;
}

Tokenizer Tokenizer::load(const std::string& dir) {
  std::string path = (fs::path(dir) / "tokenizer.json").string();
  if (!fs::exists(path)) throw Error("file not found", path, "the model folder needs a tokenizer.json");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::parse_error& e) {
    throw Error(std::string("invalid JSON: ") + e.what(), path, "the file is corrupt or truncated");
  }
  auto unsupported = [&](const std::string& what) {
    return Error("unsupported tokenizer component: " + what, path,
                 "this build reads the byte-level tokenizers that `rlaif init-model` writes");
  };
  if (!j.contains("model") || !j["model"].is_object()) throw Error("missing key \"model\"", path);
  const auto& m = j["model"];
  if (m.value("type", "") != "BPE") throw unsupported("model type " + m.value("type", std::string("?")));
  if (m.contains("merges") && !m["merges"].empty()) throw unsupported("BPE merges");
  for (const char* key : {"normalizer", "post_processor"})
    if (j.contains(key) && !j[key].is_null()) throw unsupported(std::string(key) + " " + j[key].value("type", "?"));
  for (const char* key : {"pre_tokenizer", "decoder"}) {
    if (!j.contains(key) || !j[key].is_object() || j[key].value("type", "") != "ByteLevel")
      throw unsupported(std::string(key) + " (need ByteLevel)");
    if (j[key].value("use_regex", true) || j[key].value("add_prefix_space", false))
      throw unsupported(std::string(key) + " ByteLevel with use_regex or add_prefix_space");
  }
  auto table = bytes_to_unicode();
  std::map<std::string, int> byte_of;
  for (int b = 0; b < 256; ++b) byte_of[utf8_encode(table[b])] = b;
  Tokenizer t;
  const auto& vocab = m["vocab"];
  if (!vocab.is_object()) throw Error("model.vocab is not an object", path);
  int64_t max_id = -1;
  for (auto it = vocab.begin(); it != vocab.end(); ++it) max_id = std::max<int64_t>(max_id, it->get<int64_t>());
  if (j.contains("added_tokens"))
    for (const auto& a : j["added_tokens"]) max_id = std::max<int64_t>(max_id, a.at("id").get<int64_t>());
  t.pieces_.assign(max_id + 1, "");
  t.special_.assign(max_id + 1, false);
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    auto b = byte_of.find(it.key());
    if (b == byte_of.end()) throw unsupported("vocabulary entry \"" + it.key() + "\" that is not a single byte");
    int64_t id = it->get<int64_t>();
    if (id < 0) throw Error("negative token id", path + ": vocab " + it.key());
    t.pieces_[id] = std::string(1, static_cast<char>(b->second));
  }
  if (j.contains("added_tokens")) {
    for (const auto& a : j["added_tokens"]) {
      AddedToken at{a.at("id").get<int64_t>(), a.at("content").get<std::string>(), a.value("special", false)};
      if (at.id < 0) throw Error("negative token id", path + ": added_tokens " + at.content);
      if (at.special) t.special_[at.id] = true;
      else t.pieces_[at.id] = at.content;
      t.by_content_[at.content] = at.id;
      t.added_.push_back(at);
    }
  }
  std::stable_sort(t.added_.begin(), t.added_.end(),
                   [](const AddedToken& a, const AddedToken& b) { return a.content.size() > b.content.size(); });
  std::string cfg_path = (fs::path(dir) / "tokenizer_config.json").string();
  if (fs::exists(cfg_path)) {
    auto cfg = nlohmann::json::parse(read_file(cfg_path), nullptr, /*allow_exceptions=*/false);
    if (cfg.is_discarded()) throw Error("invalid JSON", cfg_path, "fix the JSON syntax");
    auto name_of = [&](const char* key) -> std::string {
      if (!cfg.contains(key) || cfg[key].is_null()) return "";
      if (cfg[key].is_string()) return cfg[key].get<std::string>();
      if (cfg[key].is_object() && cfg[key].contains("content")) return cfg[key]["content"].get<std::string>();
      return "";
    };
    t.bos_id_ = t.token_id(name_of("bos_token"));
    t.eos_id_ = t.token_id(name_of("eos_token"));
  }
  return t;
}

int64_t Tokenizer::token_id(const std::string& content) const {
  if (content.empty()) return -1;
  auto it = by_content_.find(content);
  return it == by_content_.end() ? -1 : it->second;
}

bool Tokenizer::is_special(int64_t id) const {
  return id >= 0 && id < static_cast<int64_t>(special_.size()) && special_[id];
}

const std::string& Tokenizer::token_bytes(int64_t id) const {
  if (id < 0 || id >= static_cast<int64_t>(pieces_.size())) return kEmpty;
  return pieces_[id];
}

std::vector<int64_t> Tokenizer::encode(const std::string& text, bool add_special_tokens) const {
  std::vector<int64_t> ids;
  if (add_special_tokens && bos_id_ >= 0) ids.push_back(bos_id_);
  size_t i = 0;
  while (i < text.size()) {
    bool matched = false;
    for (const auto& a : added_) {
      if (!a.content.empty() && text.compare(i, a.content.size(), a.content) == 0) {
        ids.push_back(a.id);
        i += a.content.size();
        matched = true;
        break;
      }
    }
    if (!matched) ids.push_back(static_cast<unsigned char>(text[i++]));
  }
  return ids;
}

std::string Tokenizer::decode(const std::vector<int64_t>& ids, bool skip_special_tokens) const {
  std::string bytes;
  for (int64_t id : ids) {
    if (is_special(id)) {
      if (!skip_special_tokens) {
        for (const auto& a : added_)
          if (a.id == id) bytes += a.content;
      }
      continue;
    }
    bytes += token_bytes(id);
  }
  return utf8_lossy(bytes);
}

std::string Tokenizer::to_tokenizer_json() const {
  auto table = bytes_to_unicode();
  nlohmann::ordered_json vocab = nlohmann::ordered_json::object();
  for (int b = 0; b < 256; ++b) vocab[utf8_encode(table[b])] = b;
  nlohmann::ordered_json added = nlohmann::ordered_json::array();
  std::vector<AddedToken> by_id = added_;
  std::sort(by_id.begin(), by_id.end(), [](const AddedToken& a, const AddedToken& b) { return a.id < b.id; });
  for (const auto& a : by_id)
    added.push_back({{"id", a.id}, {"content", a.content}, {"single_word", false}, {"lstrip", false},
                     {"rstrip", false}, {"normalized", false}, {"special", a.special}});
  nlohmann::ordered_json byte_level = {
      {"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}};
  nlohmann::ordered_json j = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", added},
      {"normalizer", nullptr},
      {"pre_tokenizer", byte_level},
      {"post_processor", nullptr},
      {"decoder", byte_level},
      {"model",
       {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", nullptr},
        {"end_of_word_suffix", nullptr}, {"fuse_unk", false}, {"byte_fallback", false}, {"ignore_merges", false},
        {"vocab", vocab}, {"merges", nlohmann::ordered_json::array()}}}};
  return j.dump(2);
}

std::string Tokenizer::to_tokenizer_config_json() const {
  nlohmann::ordered_json j;
  j["tokenizer_class"] = "PreTrainedTokenizerFast";
  j["model_max_length"] = 2048;
  j["bos_token"] = bos_id_ >= 0 ? nlohmann::ordered_json(decode({bos_id_}, false)) : nlohmann::ordered_json();
  j["eos_token"] = eos_id_ >= 0 ? nlohmann::ordered_json(decode({eos_id_}, false)) : nlohmann::ordered_json();
  j["pad_token"] = j["eos_token"];
  j["clean_up_tokenization_spaces"] = false;
  return j.dump(2);
}

}  // namespace rlaif
