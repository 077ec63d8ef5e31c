// The pipeline stages of a Hugging Face tokenizer.json (internal): normalizer -> pre-tokenizer -> model ->
// post-processor to encode; decoder to decode. Each factory reads one JSON component and throws rlaif::Error naming
// `where` (file and JSON path) for a type it does not know or a field it cannot use.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace rlaif {

// A span of text on its way to the model. at_start: it begins at offset 0 of the caller's input (Metaspace's
// prepend_scheme "first" depends on it).
struct Piece {
  std::string text;
  bool at_start = false;
};

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual void normalize(std::string& s) const = 0;
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Splits every piece further (or rewrites it); empty pieces are dropped.
  virtual void pre_tokenize(std::vector<Piece>& pieces) const = 0;
};

class Decoder {
 public:
  virtual ~Decoder() = default;
  // Transforms the list of token strings; the caller joins the final list.
  virtual void decode_chain(std::vector<std::string>& tokens) const = 0;
  // The raw bytes of one token in the middle of a text (no first-token stripping); used for token_bytes().
  virtual void token_text(std::string& token) const {
    std::vector<std::string> t{token};
    decode_chain(t);
    token = t[0];
  }
};

class PostProcessor {
 public:
  virtual ~PostProcessor() = default;
  virtual std::vector<int64_t> process(std::vector<int64_t> ids) const = 0;  // called only with add_special_tokens
};

// token -> id lookup the post-processor factory needs to check its special tokens.
using TokenLookup = std::map<std::string, int64_t>;

std::unique_ptr<Normalizer> make_normalizer(const nlohmann::json& j, const std::string& where);
std::unique_ptr<PreTokenizer> make_pre_tokenizer(const nlohmann::json& j, const std::string& where);
std::unique_ptr<Decoder> make_decoder(const nlohmann::json& j, const std::string& where);
std::unique_ptr<PostProcessor> make_post_processor(const nlohmann::json& j, const std::string& where);

// Shared by the factories: the "type" of a component, or an Error naming `where`.
std::string component_type(const nlohmann::json& j, const std::string& where);
[[noreturn]] void unsupported_component(const std::string& kind, const std::string& type, const std::string& where,
                                        const std::string& supported);

// How a Split marks the delimiters it finds (Hugging Face's SplitDelimiterBehavior).
enum class SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

class Regex;

// A {"String": "..."} or {"Regex": "..."} pattern of tokenizer.json (Split, Replace).
class Pattern {
 public:
  Pattern(const nlohmann::json& j, const std::string& where);
  ~Pattern();
  // Appends the [start, end) spans of all non-overlapping matches, left to right.
  void find_all(const std::string& s, std::vector<std::pair<size_t, size_t>>& out) const;
  // Replaces every match with `content`.
  void replace_all(std::string& s, const std::string& content) const;

 private:
  std::string literal_;
  std::unique_ptr<Regex> regex_;
};

// Applies Hugging Face's split semantics to `s`, given the [start,end) spans that matched: spans and the gaps between
// them become pieces according to `behavior`; empty pieces are dropped.
void split_by_matches(const Piece& piece, const std::vector<std::pair<size_t, size_t>>& matches, SplitBehavior behavior,
                      bool invert, std::vector<Piece>& out);

}  // namespace rlaif
