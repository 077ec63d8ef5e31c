// Normalizers: NFC NFD NFKC NFKD Prepend Replace Strip Sequence.
#include <memory>

#include "core/regex.h"
#include "core/unicode.h"
#include "rlaif/error.h"
#include "tokenizer/components.h"

namespace rlaif {

std::string component_type(const nlohmann::json& j, const std::string& where) {
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string())
    throw Error("component has no \"type\" string", where, "each component is an object like {\"type\": \"NFC\"}");
  return j["type"].get<std::string>();
}

void unsupported_component(const std::string& kind, const std::string& type, const std::string& where,
                           const std::string& supported) {
  throw Error("unsupported " + kind + " type \"" + type + "\"", where, "supported " + kind + "s: " + supported);
}

namespace {

class UnicodeNormalizer : public Normalizer {
 public:
  explicit UnicodeNormalizer(std::string form) : form_(std::move(form)) {}
  void normalize(std::string& s) const override { s = unicode::normalize(s, form_); }

 private:
  std::string form_;
};

class Prepend : public Normalizer {
 public:
  explicit Prepend(std::string p) : prepend_(std::move(p)) {}
  void normalize(std::string& s) const override {
    if (!s.empty()) s.insert(0, prepend_);
  }

 private:
  std::string prepend_;
};

// Replaces every occurrence of a literal string or a regex with `content`.
class Replace : public Normalizer {
 public:
  Replace(const nlohmann::json& j, const std::string& where)
      : pattern_(j.at("pattern"), where + ".pattern"), content_(j.at("content").get<std::string>()) {}
  void normalize(std::string& s) const override { pattern_.replace_all(s, content_); }

 private:
  Pattern pattern_;
  std::string content_;
};

class Strip : public Normalizer {
 public:
  Strip(bool left, bool right) : left_(left), right_(right) {}
  void normalize(std::string& s) const override {
    size_t begin = 0, end = s.size();
    if (left_) {
      while (begin < end) {
        size_t i = begin;
        if (!unicode::is_whitespace(unicode::next_cp(s, i))) break;
        begin = i;
      }
    }
    if (right_) {
      while (end > begin) {
        size_t i = end - 1;
        while (i > begin && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) --i;
        size_t k = i;
        if (!unicode::is_whitespace(unicode::next_cp(s, k))) break;
        end = i;
      }
    }
    s = s.substr(begin, end - begin);
  }

 private:
  bool left_, right_;
};

class Sequence : public Normalizer {
 public:
  explicit Sequence(std::vector<std::unique_ptr<Normalizer>> parts) : parts_(std::move(parts)) {}
  void normalize(std::string& s) const override {
    for (const auto& p : parts_) p->normalize(s);
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> parts_;
};

}  // namespace

std::unique_ptr<Normalizer> make_normalizer(const nlohmann::json& j, const std::string& where) {
  if (j.is_null()) return nullptr;
  std::string type = component_type(j, where);
  try {
    if (type == "NFC" || type == "NFD" || type == "NFKC" || type == "NFKD")
      return std::make_unique<UnicodeNormalizer>(type);
    if (type == "Prepend") return std::make_unique<Prepend>(j.at("prepend").get<std::string>());
    if (type == "Replace") return std::make_unique<Replace>(j, where);
    if (type == "Strip") return std::make_unique<Strip>(j.value("strip_left", true), j.value("strip_right", true));
    if (type == "Sequence") {
      std::vector<std::unique_ptr<Normalizer>> parts;
      const auto& list = j.at("normalizers");
      for (size_t i = 0; i < list.size(); ++i) {
        auto n = make_normalizer(list[i], where + ".normalizers[" + std::to_string(i) + "]");
        if (n) parts.push_back(std::move(n));
      }
      return std::make_unique<Sequence>(std::move(parts));
    }
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string("bad ") + type + " normalizer: " + e.what(), where);
  }
  unsupported_component("normalizer", type, where, "NFC, NFD, NFKC, NFKD, Prepend, Replace, Strip, Sequence");
}

}  // namespace rlaif
