// Pre-tokenizers: Split ByteLevel Metaspace Digits Sequence, with Hugging Face's split semantics.
#include <memory>

#include "core/regex.h"
#include "core/unicode.h"
#include "rlaif/error.h"
#include "tokenizer/components.h"

namespace rlaif {

void split_by_matches(const Piece& piece, const std::vector<std::pair<size_t, size_t>>& matches, SplitBehavior behavior,
                      bool invert, std::vector<Piece>& out) {
  const std::string& s = piece.text;
  // Spans covering the whole string, each flagged as a match or not (Hugging Face's Pattern::find_matches).
  struct Span {
    size_t a, b;
    bool match;
  };
  std::vector<Span> spans;
  if (s.empty()) return;
  size_t prev = 0;
  for (auto [a, b] : matches) {
    if (prev != a) spans.push_back({prev, a, false});
    spans.push_back({a, b, true});
    prev = b;
  }
  if (prev != s.size()) spans.push_back({prev, s.size(), false});
  if (invert)
    for (auto& sp : spans) sp.match = !sp.match;

  std::vector<Span> result;  // match = "remove this span"
  bool previous_match = false;
  switch (behavior) {
    case SplitBehavior::Isolated:
      for (auto sp : spans) result.push_back({sp.a, sp.b, false});
      break;
    case SplitBehavior::Removed:
      result = spans;
      break;
    case SplitBehavior::Contiguous:
      for (auto sp : spans) {
        if (sp.match == previous_match && !result.empty())
          result.back().b = sp.b;
        else
          result.push_back({sp.a, sp.b, false});
        previous_match = sp.match;
      }
      break;
    case SplitBehavior::MergedWithPrevious:
      for (auto sp : spans) {
        if (sp.match && !previous_match && !result.empty())
          result.back().b = sp.b;
        else
          result.push_back({sp.a, sp.b, false});
        previous_match = sp.match;
      }
      break;
    case SplitBehavior::MergedWithNext:
      for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
        if (it->match && !previous_match && !result.empty())
          result.back().a = it->a;
        else
          result.push_back({it->a, it->b, false});
        previous_match = it->match;
      }
      std::reverse(result.begin(), result.end());
      break;
  }
  for (const auto& sp : result) {
    if (sp.match || sp.a == sp.b) continue;
    out.push_back({s.substr(sp.a, sp.b - sp.a), piece.at_start && sp.a == 0});
  }
}

Pattern::Pattern(const nlohmann::json& j, const std::string& where) {
  if (j.is_object() && j.contains("String") && j["String"].is_string())
    literal_ = j["String"].get<std::string>();
  else if (j.is_object() && j.contains("Regex") && j["Regex"].is_string())
    regex_ = std::make_unique<Regex>(j["Regex"].get<std::string>(), where);
  else
    throw Error("pattern must be {\"String\": \"...\"} or {\"Regex\": \"...\"}", where);
}

Pattern::~Pattern() = default;

void Pattern::find_all(const std::string& s, std::vector<std::pair<size_t, size_t>>& out) const {
  if (regex_) {
    regex_->find_all(s, out);
    return;
  }
  if (literal_.empty()) return;
  for (size_t p = s.find(literal_); p != std::string::npos; p = s.find(literal_, p + literal_.size()))
    out.emplace_back(p, p + literal_.size());
}

void Pattern::replace_all(std::string& s, const std::string& content) const {
  std::vector<std::pair<size_t, size_t>> m;
  find_all(s, m);
  if (m.empty()) return;
  std::string out;
  size_t prev = 0;
  for (auto [a, b] : m) {
    out.append(s, prev, a - prev);
    out += content;
    prev = b;
  }
  out.append(s, prev, std::string::npos);
  s.swap(out);
}

namespace {

void find_literal(const std::string& s, const std::string& lit, std::vector<std::pair<size_t, size_t>>& out) {
  if (lit.empty()) return;
  for (size_t p = s.find(lit); p != std::string::npos; p = s.find(lit, p + lit.size()))
    out.emplace_back(p, p + lit.size());
}

// Applies `fn(piece, out)` to every piece.
template <class Fn>
void for_each_piece(std::vector<Piece>& pieces, Fn fn) {
  std::vector<Piece> out;
  out.reserve(pieces.size() * 2);
  for (const auto& p : pieces) fn(p, out);
  pieces.swap(out);
}

SplitBehavior parse_behavior(const nlohmann::json& j, const std::string& where) {
  std::string b = j.is_string() ? j.get<std::string>() : "";
  if (b == "Removed") return SplitBehavior::Removed;
  if (b == "Isolated") return SplitBehavior::Isolated;
  if (b == "MergedWithPrevious") return SplitBehavior::MergedWithPrevious;
  if (b == "MergedWithNext") return SplitBehavior::MergedWithNext;
  if (b == "Contiguous") return SplitBehavior::Contiguous;
  throw Error("unknown split behavior \"" + b + "\"", where + ".behavior",
              "use Removed, Isolated, MergedWithPrevious, MergedWithNext or Contiguous");
}

class Split : public PreTokenizer {
 public:
  Split(const nlohmann::json& j, const std::string& where) : pattern_(j.at("pattern"), where + ".pattern") {
    behavior_ = parse_behavior(j.at("behavior"), where);
    invert_ = j.value("invert", false);
  }
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    std::vector<std::pair<size_t, size_t>> m;
    for_each_piece(pieces, [&](const Piece& p, std::vector<Piece>& out) {
      m.clear();
      pattern_.find_all(p.text, m);
      split_by_matches(p, m, behavior_, invert_, out);
    });
  }

 private:
  Pattern pattern_;
  SplitBehavior behavior_ = SplitBehavior::Isolated;
  bool invert_ = false;
};

const char* const kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

class ByteLevel : public PreTokenizer {
 public:
  ByteLevel(const nlohmann::json& j, const std::string& where) : add_prefix_space_(j.value("add_prefix_space", true)) {
    if (j.value("use_regex", true)) regex_ = std::make_unique<Regex>(kGpt2Pattern, where);
  }
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    std::vector<std::pair<size_t, size_t>> m;
    for_each_piece(pieces, [&](const Piece& p, std::vector<Piece>& out) {
      Piece q = p;
      if (add_prefix_space_ && (q.text.empty() || q.text[0] != ' ')) q.text.insert(0, " ");
      if (regex_) {
        m.clear();
        regex_->find_all(q.text, m);
        split_by_matches(q, m, SplitBehavior::Isolated, false, out);
      } else if (!q.text.empty()) {
        out.push_back(std::move(q));
      }
    });
    for (auto& p : pieces) {
      std::string mapped;
      mapped.reserve(p.text.size() * 2);
      for (unsigned char c : p.text) mapped += unicode::byte_to_char(c);
      p.text.swap(mapped);
    }
  }

 private:
  bool add_prefix_space_;
  std::unique_ptr<Regex> regex_;
};

enum class PrependScheme { Always, First, Never };

PrependScheme parse_prepend_scheme(const nlohmann::json& j, const std::string& where) {
  if (j.contains("prepend_scheme")) {
    std::string s = j["prepend_scheme"].get<std::string>();
    if (s == "always") return PrependScheme::Always;
    if (s == "first") return PrependScheme::First;
    if (s == "never") return PrependScheme::Never;
    throw Error("unknown prepend_scheme \"" + s + "\"", where + ".prepend_scheme", "use always, first or never");
  }
  return j.value("add_prefix_space", true) ? PrependScheme::Always : PrependScheme::Never;  // older files
}

class Metaspace : public PreTokenizer {
 public:
  Metaspace(const nlohmann::json& j, const std::string& where)
      : replacement_(j.value("replacement", std::string("\xE2\x96\x81"))),
        scheme_(parse_prepend_scheme(j, where)),
        split_(j.value("split", true)) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    std::vector<std::pair<size_t, size_t>> m;
    for_each_piece(pieces, [&](const Piece& p, std::vector<Piece>& out) {
      Piece q{std::string(), p.at_start};
      q.text.reserve(p.text.size() + 8);
      for (char c : p.text) {
        if (c == ' ')
          q.text += replacement_;
        else
          q.text += c;
      }
      bool starts = q.text.compare(0, replacement_.size(), replacement_) == 0;
      if (!starts && (scheme_ == PrependScheme::Always || (scheme_ == PrependScheme::First && q.at_start)))
        q.text.insert(0, replacement_);
      if (!split_) {
        if (!q.text.empty()) out.push_back(std::move(q));
        return;
      }
      m.clear();
      find_literal(q.text, replacement_, m);
      split_by_matches(q, m, SplitBehavior::MergedWithNext, false, out);
    });
  }

 private:
  std::string replacement_;
  PrependScheme scheme_;
  bool split_;
};

class Digits : public PreTokenizer {
 public:
  explicit Digits(bool individual) : individual_(individual) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    std::vector<std::pair<size_t, size_t>> m;
    for_each_piece(pieces, [&](const Piece& p, std::vector<Piece>& out) {
      m.clear();
      for (size_t i = 0; i < p.text.size();) {
        size_t start = i;
        if (unicode::is_numeric(unicode::next_cp(p.text, i))) m.emplace_back(start, i);
      }
      split_by_matches(p, m, individual_ ? SplitBehavior::Isolated : SplitBehavior::Contiguous, false, out);
    });
  }

 private:
  bool individual_;
};

class Sequence : public PreTokenizer {
 public:
  explicit Sequence(std::vector<std::unique_ptr<PreTokenizer>> parts) : parts_(std::move(parts)) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    for (const auto& p : parts_) p->pre_tokenize(pieces);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> parts_;
};

}  // namespace

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const nlohmann::json& j, const std::string& where) {
  if (j.is_null()) return nullptr;
  std::string type = component_type(j, where);
  try {
    if (type == "Split") return std::make_unique<Split>(j, where);
    if (type == "ByteLevel") return std::make_unique<ByteLevel>(j, where);
    if (type == "Metaspace") return std::make_unique<Metaspace>(j, where);
    if (type == "Digits") return std::make_unique<Digits>(j.value("individual_digits", false));
    if (type == "Sequence") {
      std::vector<std::unique_ptr<PreTokenizer>> parts;
      const auto& list = j.at("pretokenizers");
      for (size_t i = 0; i < list.size(); ++i) {
        auto p = make_pre_tokenizer(list[i], where + ".pretokenizers[" + std::to_string(i) + "]");
        if (p) parts.push_back(std::move(p));
      }
      return std::make_unique<Sequence>(std::move(parts));
    }
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string("bad ") + type + " pre-tokenizer: " + e.what(), where);
  }
  unsupported_component("pre-tokenizer", type, where, "Split, ByteLevel, Metaspace, Digits, Sequence");
}

}  // namespace rlaif
