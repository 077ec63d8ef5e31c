// The byte-level tokenizer that init-model writes: round trips, special tokens, lossy UTF-8, unsupported files.
#include "rlaif/atomic_file.h"
#include "rlaif/tokenizer.h"
#include "test_util.h"

using rlaif_test::TempDir;

TEST(Tokenizer, ByteLevelRoundTripAndSpecialTokens) {
  TempDir dir;
  auto t = rlaif::Tokenizer::byte_level({"<|endoftext|>", "<|im_start|>", "<|im_end|>"});
  rlaif_test::write_text(dir / "tokenizer.json", t.to_tokenizer_json());
  rlaif_test::write_text(dir / "tokenizer_config.json", t.to_tokenizer_config_json());
  auto u = rlaif::Tokenizer::load(dir.path());
  std::string text = "héllo <|im_start|>wörld\n\t😀<|endoftext|>";
  auto ids = u.encode(text);
  EXPECT_EQ(ids[0], 'h');
  EXPECT_EQ(ids[1], 0xC3);  // the bytes of é
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 257), 1);
  EXPECT_EQ(ids.back(), 256);
  EXPECT_EQ(u.decode(ids, /*skip_special_tokens=*/false), text);
  EXPECT_EQ(u.decode(ids), "héllo wörld\n\t😀");
  EXPECT_EQ(u.eos_id(), 256);
  EXPECT_EQ(u.vocab_size(), 259);
  EXPECT_EQ(u.decode({100000}), "");  // ids beyond the tokenizer decode to nothing, as in transformers
}

TEST(Tokenizer, PartialUtf8BecomesReplacementCharacter) {
  EXPECT_EQ(rlaif::utf8_lossy("a\xE2\x82"), "a\xEF\xBF\xBD");        // truncated 3-byte sequence: one U+FFFD
  EXPECT_EQ(rlaif::utf8_lossy("\xFF" "b"), "\xEF\xBF\xBD" "b");      // invalid byte
  EXPECT_EQ(rlaif::utf8_lossy("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate: 3 replacements
  EXPECT_EQ(rlaif::utf8_lossy("€"), "€");
}

TEST(Tokenizer, UnsupportedOrBrokenFilesAreNamedErrors) {
  TempDir dir;
  rlaif_test::expect_error([&] { rlaif::Tokenizer::load(dir.path()); }, {"tokenizer.json", "file not found"});
  rlaif_test::write_text(dir / "tokenizer.json", "{\"model\": {\"type\": \"BPE\"");
  rlaif_test::expect_error([&] { rlaif::Tokenizer::load(dir.path()); }, {"tokenizer.json", "invalid JSON"});
  rlaif_test::write_text(dir / "tokenizer.json", R"({"model": {"type": "Unigram", "vocab": []}})");
  rlaif_test::expect_error([&] { rlaif::Tokenizer::load(dir.path()); }, {"tokenizer.json", "Unigram"});
}
