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
  EXPECT_EQ(rlaif::utf8_lossy("a\xE2\x82"), "a\xEF\xBF\xBD");  // truncated 3-byte sequence: one U+FFFD
  EXPECT_EQ(rlaif::utf8_lossy("\xFF"
                              "b"),
            "\xEF\xBF\xBD"
            "b");                                                                        // invalid byte
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

namespace {

// A small BPE tokenizer.json written by hand: byte-level alphabet for "abc ", three merges, one special token.
nlohmann::json tiny_bpe() {
  nlohmann::json vocab = {{"a", 0}, {"b", 1}, {"c", 2}, {"Ġ", 3}, {"ab", 4}, {"abc", 5}, {"Ġa", 6}};
  return {{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", {"a b", "ab c", "Ġ a"}}}},
          {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
          {"decoder", {{"type", "ByteLevel"}}},
          {"added_tokens", {{{"id", 7}, {"content", "<eos>"}, {"special", true}}}}};
}

}  // namespace

TEST(Tokenizer, MergesApplyByRank) {
  auto t = rlaif::Tokenizer::from_json(tiny_bpe().dump(), "tiny");
  EXPECT_EQ(t.encode("abc"), (std::vector<int64_t>{5}));
  // " abc" is Ġ a b c: "a b" (rank 0) merges before "Ġ a" (rank 2), then "ab c", and Ġ stays alone.
  EXPECT_EQ(t.encode("abc abc"), (std::vector<int64_t>{5, 3, 5}));
  EXPECT_EQ(t.encode(" ac"), (std::vector<int64_t>{6, 2}));  // here "Ġ a" is the only merge that applies
  EXPECT_EQ(t.encode("cab<eos>"), (std::vector<int64_t>{2, 4, 7}));
  EXPECT_EQ(t.decode({5, 6, 1, 2, 7}, false), "abc abc<eos>");
  EXPECT_EQ(t.decode({5, 6, 1, 2, 7}, true), "abc abc");
  EXPECT_EQ(t.vocab_size(), 8);
  EXPECT_TRUE(t.is_special(7));
  EXPECT_EQ(t.token_bytes(6), " a");
  EXPECT_EQ(t.id_to_token(6), "Ġa");
}

TEST(Tokenizer, EncodeBatchEqualsEncodeOnEveryThreadCount) {
  auto t = rlaif::Tokenizer::from_json(tiny_bpe().dump(), "tiny");
  std::vector<std::string> texts;
  for (int i = 0; i < 200; ++i) texts.push_back(std::string(i % 7, 'a') + " abc" + std::string(i % 5, 'c') + "<eos>");
  for (int threads : {1, 2, 3}) {
    auto batch = t.encode_batch(texts, false, threads);
    ASSERT_EQ(batch.size(), texts.size());
    for (size_t i = 0; i < texts.size(); ++i)
      EXPECT_EQ(batch[i], t.encode(texts[i])) << threads << " threads, text " << i;
  }
}

TEST(Tokenizer, DecodeStreamNeverSplitsACharacter) {
  auto t = rlaif::Tokenizer::byte_level({"<|endoftext|>"});
  std::string text = "héllo 😀 日本 <|endoftext|>end";
  auto ids = t.encode(text);
  rlaif::DecodeStream stream(t, /*skip_special_tokens=*/false);
  std::string joined;
  for (int64_t id : ids) {
    std::string chunk = stream.step(id);
    EXPECT_TRUE(chunk.find("\xEF\xBF\xBD") == std::string::npos) << "chunk with a broken character";
    joined += chunk;
  }
  EXPECT_EQ(joined, text);
  EXPECT_EQ(joined, t.decode(ids, false));
}

TEST(Tokenizer, InvalidUtf8InputIsEncodedAsReplacementCharacters) {
  auto t = rlaif::Tokenizer::byte_level({});
  EXPECT_EQ(t.encode("a\xFF"
                     "b"),
            t.encode("a\xEF\xBF\xBD"
                     "b"));
  EXPECT_EQ(t.encode(""), std::vector<int64_t>{});
  EXPECT_EQ(t.decode({}), "");
}

TEST(Tokenizer, BadTokenizerJsonNamesTheProblem) {
  auto bad = [](const std::function<void(nlohmann::json&)>& edit, std::initializer_list<std::string> parts) {
    auto j = tiny_bpe();
    edit(j);
    rlaif_test::expect_error([&] { rlaif::Tokenizer::from_json(j.dump(), "tok.json"); }, parts);
  };
  bad([](auto& j) { j["model"]["merges"].push_back("a zz"); },
      {"tok.json", "merges[3]", "\"zz\"", "not in the vocabulary"});
  bad([](auto& j) { j["model"]["merges"].push_back("b c"); }, {"merges[3]", "merged token \"bc\""});
  bad([](auto& j) { j["model"]["merges"].push_back("abc"); }, {"merges[3]", "two tokens"});
  bad([](auto& j) { j["normalizer"] = {{"type", "BertNormalizer"}}; }, {"normalizer", "BertNormalizer", "supported"});
  bad(
      [](auto& j) {
        j["pre_tokenizer"] = {{"type", "Sequence"}, {"pretokenizers", {{{"type", "Whitespace"}}}}};
      },
      {"pre_tokenizer.pretokenizers[0]", "Whitespace"});
  bad([](auto& j) { j["decoder"] = {{"type", "WordPiece"}}; }, {"decoder", "WordPiece"});
  bad([](auto& j) { j["post_processor"] = {{"type", "Unknown"}}; }, {"post_processor", "Unknown"});
  bad([](auto& j) { j["model"]["type"] = "WordPiece"; }, {"model", "WordPiece", "BPE"});
  bad([](auto& j) { j["model"]["dropout"] = 0.1; }, {"dropout"});
  bad(
      [](auto& j) {
        j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}};
      },
      {"pre_tokenizer.pattern", "regex does not compile"});
  bad(
      [](auto& j) {
        j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"String", "x"}}}, {"behavior", "Sideways"}};
      },
      {"behavior", "Sideways"});
  bad([](auto& j) { j["added_tokens"][0]["id"] = -3; }, {"added_tokens[0]", "id"});
  bad([](auto& j) { j["model"]["vocab"]["a"] = "zero"; }, {"vocab", "\"a\""});
  bad([](auto& j) { j["model"]["unk_token"] = "<unk>"; }, {"unk_token", "<unk>"});
  std::string text = tiny_bpe().dump();
  rlaif_test::expect_error([&] { rlaif::Tokenizer::from_json(text.substr(0, text.size() / 2), "tok.json"); },
                           {"tok.json", "invalid JSON"});
  rlaif_test::expect_error([&] { rlaif::Tokenizer::from_json("[1, 2]", "tok.json"); },
                           {"tok.json", "not a JSON object"});
}

TEST(Tokenizer, TrainedByteLevelBpeMergesTheMostFrequentPairsFirst) {
  // "ab" occurs 6 times, "abc" 4 times, "xy" 2 times: the merges are (a,b), then (ab,c), then (x,y); "q" pairs occur
  // once, so training stops there although the vocabulary has room.
  std::vector<std::string> texts = {"ab ab", "abc abc abc abc", "xy xy", "pq"};
  auto tok = rlaif::Tokenizer::train_byte_level_bpe(texts, 300, {"<|endoftext|>"});
  auto j = nlohmann::json::parse(tok.to_tokenizer_json());
  auto merges = j["model"]["merges"];
  ASSERT_GE(merges.size(), 3u);
  EXPECT_EQ(merges[0], "a b");
  EXPECT_EQ(merges[1], "ab c");
  EXPECT_EQ(j["pre_tokenizer"]["use_regex"], true);
  // Words start with their space (GPT-2 split): " abc" is its own word, so "Ġab" + "c" and friends appear too.
  EXPECT_EQ(tok.vocab_size(), 256 + static_cast<int64_t>(merges.size()) + 1);
  EXPECT_EQ(tok.encode("abc", false).size(), 1u);
  EXPECT_EQ(tok.encode("xy", false).size(), 1u);
  EXPECT_EQ(tok.encode("pq", false).size(), 2u);
  EXPECT_EQ(tok.token_id("<|endoftext|>"), tok.vocab_size() - 1);
  for (const std::string s : {"abc xy pq", "never seen: ünïcödé ✓", "<|endoftext|>ab"})
    EXPECT_EQ(tok.decode(tok.encode(s, false), false), s);
  // Deterministic, and the vocabulary bound holds.
  EXPECT_EQ(rlaif::Tokenizer::train_byte_level_bpe(texts, 300, {"<|endoftext|>"}).to_tokenizer_json(),
            tok.to_tokenizer_json());
  EXPECT_EQ(rlaif::Tokenizer::train_byte_level_bpe(texts, 258, {"<|endoftext|>"}).vocab_size(), 258);
  rlaif_test::expect_error([&] { rlaif::Tokenizer::train_byte_level_bpe(texts, 100, {"<|endoftext|>"}); },
                           {"vocab_size", "257"});
}
