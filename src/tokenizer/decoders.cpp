// Decoders (ByteLevel ByteFallback Metaspace Fuse Strip Replace Sequence) and post-processors
// (TemplateProcessing ByteLevel BertProcessing RobertaProcessing Sequence), as Hugging Face's tokenizers defines them.
#include <memory>

#include "core/regex.h"
#include "core/unicode.h"
#include "rlaif/error.h"
#include "rlaif/tokenizer.h"
#include "tokenizer/components.h"

namespace rlaif {
namespace {

// Maps each character back to its byte; a token with a character outside the alphabet is kept as its UTF-8.
void byte_level_bytes(const std::string& token, std::string& out) {
  size_t mark = out.size();
  for (size_t i = 0; i < token.size();) {
    int b = unicode::char_to_byte(unicode::next_cp(token, i));
    if (b < 0) {
      out.resize(mark);
      out += token;
      return;
    }
    out += static_cast<char>(b);
  }
}

class ByteLevelDecoder : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string bytes;
    for (const auto& t : tokens) byte_level_bytes(t, bytes);
    tokens.assign(1, utf8_lossy(bytes));
  }
  void token_text(std::string& token) const override {
    std::string bytes;
    byte_level_bytes(token, bytes);
    token.swap(bytes);
  }
};

// "<0xAB>" -> 0xAB, else -1.
int byte_token(const std::string& t) {
  if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>') return -1;
  auto hex = [](char c) {
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                  : -1;
  };
  int hi = hex(t[3]), lo = hex(t[4]);
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

class ByteFallback : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::vector<std::string> out;
    std::string pending;
    auto flush = [&]() {
      if (pending.empty()) return;
      if (unicode::is_valid_utf8(pending))
        out.push_back(pending);
      else
        for (size_t i = 0; i < pending.size(); ++i) out.push_back("\xEF\xBF\xBD");
      pending.clear();
    };
    for (auto& t : tokens) {
      int b = byte_token(t);
      if (b >= 0) {
        pending += static_cast<char>(b);
      } else {
        flush();
        out.push_back(std::move(t));
      }
    }
    flush();
    tokens.swap(out);
  }
  void token_text(std::string& token) const override {
    int b = byte_token(token);
    if (b >= 0) token.assign(1, static_cast<char>(b));
  }
};

class Fuse : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string all;
    for (const auto& t : tokens) all += t;
    tokens.assign(1, all);
  }
  void token_text(std::string&) const override {}
};

class Strip : public Decoder {
 public:
  Strip(const std::string& content, size_t start, size_t stop) : start_(start), stop_(stop) {
    size_t i = 0;
    content_ = content.empty() ? U' ' : unicode::next_cp(content, i);
  }
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (auto& t : tokens) {
      std::vector<char32_t> cps;
      for (size_t i = 0; i < t.size();) cps.push_back(unicode::next_cp(t, i));
      size_t a = 0, b = cps.size();
      while (a < start_ && a < cps.size() && cps[a] == content_) ++a;
      for (size_t k = 0; k < stop_ && b > a && cps[b - 1] == content_; ++k) --b;
      std::string s;
      for (size_t i = a; i < b; ++i) unicode::append_utf8(s, cps[i]);
      t.swap(s);
    }
  }
  void token_text(std::string&) const override {}  // stripping applies to a whole text's ends only

 private:
  char32_t content_;
  size_t start_, stop_;
};

class ReplaceDecoder : public Decoder {
 public:
  ReplaceDecoder(const nlohmann::json& j, const std::string& where)
      : pattern_(j.at("pattern"), where + ".pattern"), content_(j.at("content").get<std::string>()) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (auto& t : tokens) pattern_.replace_all(t, content_);
  }

 private:
  Pattern pattern_;
  std::string content_;
};

class MetaspaceDecoder : public Decoder {
 public:
  MetaspaceDecoder(const nlohmann::json& j) : replacement_(j.value("replacement", std::string("\xE2\x96\x81"))) {
    if (j.contains("prepend_scheme"))
      strip_first_ = j["prepend_scheme"].get<std::string>() != "never";
    else
      strip_first_ = j.value("add_prefix_space", true);
  }
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) replace(tokens[i], i == 0 && strip_first_);
  }
  void token_text(std::string& token) const override { replace(token, false); }

 private:
  void replace(std::string& t, bool drop) const {
    std::string out;
    for (size_t p = 0; p < t.size();) {
      if (t.compare(p, replacement_.size(), replacement_) == 0) {
        if (!drop) out += ' ';
        p += replacement_.size();
      } else {
        out += t[p++];
      }
    }
    t.swap(out);
  }
  std::string replacement_;
  bool strip_first_ = true;
};

class SequenceDecoder : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> parts) : parts_(std::move(parts)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (const auto& p : parts_) p->decode_chain(tokens);
  }
  void token_text(std::string& token) const override {
    for (const auto& p : parts_) p->token_text(token);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> parts_;
};

// ---- post-processors ----

class Template : public PostProcessor {
 public:
  Template(const nlohmann::json& j, const std::string& where) {
    const auto& specials = j.value("special_tokens", nlohmann::json::object());
    for (const auto& item : j.at("single")) {
      if (item.contains("Sequence")) {
        if (item["Sequence"].value("id", "A") != "A")
          throw Error("single template refers to sequence B", where + ".single", "a single template may only use A");
        items_.push_back({});
      } else if (item.contains("SpecialToken")) {
        std::string name = item["SpecialToken"].at("id").get<std::string>();
        if (!specials.contains(name))
          throw Error("special token \"" + name + "\" is not in special_tokens", where + ".special_tokens",
                      "add it with its ids");
        items_.push_back(specials[name].at("ids").get<std::vector<int64_t>>());
        items_.back().insert(items_.back().begin(), -1);  // marker: a special-token item
      } else {
        throw Error("template item is neither Sequence nor SpecialToken", where + ".single");
      }
    }
  }
  std::vector<int64_t> process(std::vector<int64_t> ids) const override {
    std::vector<int64_t> out;
    for (const auto& item : items_) {
      if (item.empty())
        out.insert(out.end(), ids.begin(), ids.end());
      else
        out.insert(out.end(), item.begin() + 1, item.end());
    }
    return out;
  }

 private:
  std::vector<std::vector<int64_t>> items_;  // {} = the sequence; {-1, ids...} = special tokens
};

class Identity : public PostProcessor {
 public:
  std::vector<int64_t> process(std::vector<int64_t> ids) const override { return ids; }
};

class ClsSep : public PostProcessor {  // BertProcessing / RobertaProcessing: [cls] A [sep]
 public:
  ClsSep(int64_t cls, int64_t sep) : cls_(cls), sep_(sep) {}
  std::vector<int64_t> process(std::vector<int64_t> ids) const override {
    ids.insert(ids.begin(), cls_);
    ids.push_back(sep_);
    return ids;
  }

 private:
  int64_t cls_, sep_;
};

class SequenceProcessor : public PostProcessor {
 public:
  explicit SequenceProcessor(std::vector<std::unique_ptr<PostProcessor>> parts) : parts_(std::move(parts)) {}
  std::vector<int64_t> process(std::vector<int64_t> ids) const override {
    for (const auto& p : parts_) ids = p->process(std::move(ids));
    return ids;
  }

 private:
  std::vector<std::unique_ptr<PostProcessor>> parts_;
};

}  // namespace

std::unique_ptr<Decoder> make_decoder(const nlohmann::json& j, const std::string& where) {
  if (j.is_null()) return nullptr;
  std::string type = component_type(j, where);
  try {
    if (type == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
    if (type == "ByteFallback") return std::make_unique<ByteFallback>();
    if (type == "Fuse") return std::make_unique<Fuse>();
    if (type == "Strip")
      return std::make_unique<Strip>(j.value("content", std::string(" ")), j.value("start", 0), j.value("stop", 0));
    if (type == "Replace") return std::make_unique<ReplaceDecoder>(j, where);
    if (type == "Metaspace") return std::make_unique<MetaspaceDecoder>(j);
    if (type == "Sequence") {
      std::vector<std::unique_ptr<Decoder>> parts;
      const auto& list = j.at("decoders");
      for (size_t i = 0; i < list.size(); ++i) {
        auto d = make_decoder(list[i], where + ".decoders[" + std::to_string(i) + "]");
        if (d) parts.push_back(std::move(d));
      }
      return std::make_unique<SequenceDecoder>(std::move(parts));
    }
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string("bad ") + type + " decoder: " + e.what(), where);
  }
  unsupported_component("decoder", type, where, "ByteLevel, ByteFallback, Metaspace, Fuse, Strip, Replace, Sequence");
}

std::unique_ptr<PostProcessor> make_post_processor(const nlohmann::json& j, const std::string& where) {
  if (j.is_null()) return nullptr;
  std::string type = component_type(j, where);
  try {
    if (type == "TemplateProcessing") return std::make_unique<Template>(j, where);
    if (type == "ByteLevel") return std::make_unique<Identity>();
    if (type == "BertProcessing" || type == "RobertaProcessing")
      return std::make_unique<ClsSep>(j.at("cls").at(1).get<int64_t>(), j.at("sep").at(1).get<int64_t>());
    if (type == "Sequence") {
      std::vector<std::unique_ptr<PostProcessor>> parts;
      const auto& list = j.at("processors");
      for (size_t i = 0; i < list.size(); ++i) {
        auto p = make_post_processor(list[i], where + ".processors[" + std::to_string(i) + "]");
        if (p) parts.push_back(std::move(p));
      }
      return std::make_unique<SequenceProcessor>(std::move(parts));
    }
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string("bad ") + type + " post-processor: " + e.what(), where);
  }
  unsupported_component("post-processor", type, where,
                        "TemplateProcessing, ByteLevel, BertProcessing, RobertaProcessing, Sequence");
}

}  // namespace rlaif
