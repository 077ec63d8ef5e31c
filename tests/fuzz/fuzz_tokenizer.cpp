// libFuzzer target for the tokenizer: encode/decode on two built-in tokenizers (byte-level BPE with NFC, Digits,
// flagged added tokens; SentencePiece-style Metaspace with byte fallback and unk), and the tokenizer.json loader.
// Invariants checked: no crash; loader failures are rlaif::Error; decode(encode(x)) == x for the byte-level
// tokenizer (after U+FFFD replacement of invalid UTF-8, and NFC); streamed decoding equals decode.
// Build and run: bash tests/fuzz/run.sh SECONDS
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "rlaif/error.h"
#include "rlaif/tokenizer.h"

namespace {

const char* kByteLevel = R"({
  "added_tokens": [
    {"id": 300, "content": "<|end|>", "special": true, "lstrip": false, "rstrip": false, "single_word": false, "normalized": false},
    {"id": 301, "content": "<m>", "special": true, "lstrip": true, "rstrip": true, "single_word": false, "normalized": false},
    {"id": 302, "content": "wo rd", "special": false, "lstrip": false, "rstrip": false, "single_word": true, "normalized": true}],
  "normalizer": {"type": "NFC"},
  "pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": true},
    {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true}]},
  "decoder": {"type": "ByteLevel"},
  "model": {"type": "BPE", "vocab": VOCAB, "merges": ["Ġ t", "h e", "Ġt he", "Ġ a", "i n", "Ġ Ġ", "ĠĠ ĠĠ"]}})";

const char* kSentencePiece = R"({
  "added_tokens": [{"id": 0, "content": "<unk>", "special": true}, {"id": 1, "content": "<s>", "special": true}],
  "pre_tokenizer": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": true},
  "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
    {"Sequence": {"id": "A", "type_id": 0}}], "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
  "decoder": {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
    {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
  "model": {"type": "BPE", "unk_token": "<unk>", "fuse_unk": true, "byte_fallback": true, "vocab": VOCAB,
            "merges": ["▁ t", "h e", "▁t he", "▁ a"]}})";

std::string byte_vocab() {
  // GPT-2's byte alphabet (ids 0..255) plus the merged tokens.
  std::string v = "{";
  int extra = 0;
  for (int b = 0; b < 256; ++b) {
    bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    unsigned cp = printable ? b : 256 + extra++;
    std::string u;
    if (cp < 0x80)
      u += static_cast<char>(cp);
    else
      u += {static_cast<char>(0xC0 | (cp >> 6)), static_cast<char>(0x80 | (cp & 0x3F))};
    if (u == "\"") u = "\\\"";
    if (u == "\\") u = "\\\\";
    v += "\"" + u + "\": " + std::to_string(b) + ", ";
  }
  return v + "\"Ġt\": 256, \"he\": 257, \"Ġthe\": 258, \"Ġa\": 259, \"in\": 260, \"ĠĠ\": 261, \"ĠĠĠĠ\": 262}";
}

std::string sp_vocab() {
  std::string v = "{\"<unk>\": 0, \"<s>\": 1, ";
  char buf[16];
  for (int b = 0; b < 256; ++b) {
    std::snprintf(buf, sizeof(buf), "<0x%02X>", b);
    v += "\"" + std::string(buf) + "\": " + std::to_string(3 + b) + ", ";
  }
  return v +
         "\"▁\": 300, \"t\": 301, \"h\": 302, \"e\": 303, \"a\": 304, \"▁t\": 305, \"he\": 306, \"▁the\": 307, \"▁a\": "
         "308}";
}

std::string with_vocab(std::string t, const std::string& vocab) { return t.replace(t.find("VOCAB"), 5, vocab); }

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "invariant violated: %s\n", what);
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const rlaif::Tokenizer byte_level = rlaif::Tokenizer::from_json(with_vocab(kByteLevel, byte_vocab()), "fuzz");
  static const rlaif::Tokenizer sentencepiece =
      rlaif::Tokenizer::from_json(with_vocab(kSentencePiece, sp_vocab()), "fuzz");
  if (size == 0) return 0;
  std::string input(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 3) {
    case 0: {  // byte-level: lossless round trip of the normalised text
      auto ids = byte_level.encode(input, true);
      std::string text = byte_level.decode(ids, false);
      std::string nfc = byte_level.decode(byte_level.encode(text), false);
      check(text == nfc, "byte-level decode(encode(x)) is not stable");
      rlaif::DecodeStream stream(byte_level, false);
      std::string streamed;
      for (int64_t id : ids) streamed += stream.step(id);
      check(text.compare(0, streamed.size(), streamed) == 0, "streamed text is not a prefix of the decode");
      break;
    }
    case 1: {  // SentencePiece-style: any input, any ids
      auto ids = sentencepiece.encode(input, true);
      sentencepiece.decode(ids, true);
      std::vector<int64_t> arbitrary;
      for (unsigned char c : input) arbitrary.push_back(static_cast<int64_t>(c) * 3 - 20);
      sentencepiece.decode(arbitrary, false);
      byte_level.decode(arbitrary, true);
      break;
    }
    case 2: {  // the loader: anything but a valid file is an rlaif::Error
      try {
        auto t = rlaif::Tokenizer::from_json(input, "fuzz.json");
        t.decode(t.encode("Hello, wörld 123 <s>"), false);
      } catch (const rlaif::Error&) {}
      break;
    }
  }
  return 0;
}
