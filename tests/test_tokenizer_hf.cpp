// rlaif's tokenizer against Hugging Face's own (the Rust tokenizers library, via npm) on real vocabularies: Qwen3,
// Llama-3, Mistral-7B, GPT-2 and variants exercising every supported component. Inputs: the adversarial corpus
// (tests/data/tokenizer_corpus.jsonl) and 10,000 seeded random strings. Required: 100% identical ids with and without
// special tokens, and identical decodes.
#include <random>

#include "rlaif/chat_template.h"
#include "rlaif/tokenizer.h"
#include "test_util.h"

using rlaif_test::TempDir;

namespace {

const std::string kNpm = RLAIF_NPM_DIR;
const std::string kRef = RLAIF_REFERENCE_DIR;

std::vector<std::string> read_corpus() {
  std::vector<std::string> out;
  std::ifstream in(RLAIF_CORPUS);
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) out.push_back(nlohmann::json::parse(line).get<std::string>());
  return out;
}

// Random strings built from pieces that stress tokenizers: every script, whitespace kind, digits, marks, emoji,
// apostrophes and special-token text.
std::vector<std::string> random_strings(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  const std::vector<std::pair<char32_t, char32_t>> ranges = {
      {0x20, 0x7E},       {0x20, 0x7E},       {0x20, 0x7E},       {0xA0, 0x17F},     {0x300, 0x36F},   {0x370, 0x3FF},
      {0x400, 0x4FF},     {0x590, 0x5FF},     {0x600, 0x6FF},     {0x900, 0x97F},    {0xE00, 0xE7F},   {0x1100, 0x11FF},
      {0x2000, 0x206F},   {0x2100, 0x22FF},   {0x3000, 0x30FF},   {0x4E00, 0x9FFF},  {0xAC00, 0xD7A3}, {0xFF00, 0xFFEF},
      {0x1F300, 0x1F64F}, {0x1F900, 0x1F9FF}, {0x10000, 0x1007F}, {0x1D400, 0x1D7FF}};
  const std::vector<std::string> words = {"'s",         "'T",
                                          "'re",        " ",
                                          "  ",         "\n",
                                          "\r\n",       "\t",
                                          "\u0085",     "\ufeff",
                                          "\u200d",     "\ufe0f",
                                          "<|im_end|>", "<|endoftext|>",
                                          "<s>",        "</s>",
                                          "<mask>",     "hello world",
                                          "123",        "٣٤",
                                          "▁",          "Ġ",
                                          "<0x0A>",     "<|begin_of_text|>",
                                          "<word>",     "=",
                                          ",",          ";"};
  std::vector<std::string> out;
  for (size_t i = 0; i < n; ++i) {
    std::string s;
    int len = 1 + static_cast<int>(rng() % 24);
    for (int k = 0; k < len; ++k) {
      if (rng() % 4 == 0) {
        s += words[rng() % words.size()];
      } else {
        auto [lo, hi] = ranges[rng() % ranges.size()];
        char32_t cp = lo + rng() % (hi - lo + 1);
        std::string u;
        if (cp < 0x80)
          u += static_cast<char>(cp);
        else if (cp < 0x800)
          u += {static_cast<char>(0xC0 | (cp >> 6)), static_cast<char>(0x80 | (cp & 0x3F))};
        else if (cp < 0x10000)
          u += {static_cast<char>(0xE0 | (cp >> 12)), static_cast<char>(0x80 | ((cp >> 6) & 0x3F)),
                static_cast<char>(0x80 | (cp & 0x3F))};
        else
          u += {static_cast<char>(0xF0 | (cp >> 18)), static_cast<char>(0x80 | ((cp >> 12) & 0x3F)),
                static_cast<char>(0x80 | ((cp >> 6) & 0x3F)), static_cast<char>(0x80 | (cp & 0x3F))};
        s += u;
      }
    }
    out.push_back(s);
  }
  return out;
}

class HfTokenizers : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    auto r = rlaif_test::run_command("node " + kRef + "/make_tokenizers.js " + kNpm + " " + dir_->path());
    ASSERT_EQ(r.exit_code, 0) << r.output;
    std::istringstream names(r.output);
    for (std::string name; std::getline(names, name);) variants_.push_back(name);
    inputs_ = read_corpus();
    corpus_size_ = inputs_.size();
    auto random = random_strings(10000, 1234);
    inputs_.insert(inputs_.end(), random.begin(), random.end());
    rlaif_test::write_text(*dir_ / "inputs.json", nlohmann::json(inputs_).dump());
  }
  static void TearDownTestSuite() { delete dir_; }

  static TempDir* dir_;
  static std::vector<std::string> variants_, inputs_;
  static size_t corpus_size_;
};
TempDir* HfTokenizers::dir_ = nullptr;
std::vector<std::string> HfTokenizers::variants_, HfTokenizers::inputs_;
size_t HfTokenizers::corpus_size_ = 0;

std::string show(const std::string& s) { return nlohmann::json(s).dump(); }

TEST_F(HfTokenizers, IdenticalIdsAndDecodesOnEveryVocabulary) {
  ASSERT_GE(corpus_size_, 300u);
  ASSERT_GE(variants_.size(), 10u);
  for (const auto& name : variants_) {
    std::string folder = *dir_ / name;
    std::string ref_out = *dir_ / (name + ".ref.jsonl");
    auto r = rlaif_test::run_command("node " + kRef + "/tokenizers_ref.js " + kNpm + " " + folder + "/tokenizer.json " +
                                     (*dir_ / "inputs.json") + " " + ref_out);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    auto tok = rlaif::Tokenizer::load(folder);
    std::ifstream in(ref_out);
    std::string line;
    size_t i = 0, bad_ids = 0, bad_special = 0, bad_decode = 0;
    auto ours_plain = tok.encode_batch(inputs_, false, 2);
    for (; std::getline(in, line); ++i) {
      ASSERT_LT(i, inputs_.size());
      auto ref = nlohmann::json::parse(line);
      auto want = ref["ids"].get<std::vector<int64_t>>();
      auto want_special = ref["ids_special"].get<std::vector<int64_t>>();
      auto got_special = tok.encode(inputs_[i], true);
      if (ours_plain[i] != want && bad_ids++ < 5)
        ADD_FAILURE() << name << " input " << i << " " << show(inputs_[i])
                      << ": ids differ from Hugging Face's\n  got  " << nlohmann::json(ours_plain[i]).dump()
                      << "\n  want " << nlohmann::json(want).dump();
      if (got_special != want_special && bad_special++ < 5)
        ADD_FAILURE() << name << " input " << i << " " << show(inputs_[i]) << ": ids with special tokens differ";
      std::string d = tok.decode(want_special, false), ds = tok.decode(want_special, true);
      if ((d != ref["decoded"].get<std::string>() || ds != ref["decoded_skip"].get<std::string>()) && bad_decode++ < 5)
        ADD_FAILURE() << name << " input " << i << " " << show(inputs_[i]) << ": decode differs\n  got  " << show(d)
                      << " / " << show(ds) << "\n  want " << ref["decoded"].dump() << " / "
                      << ref["decoded_skip"].dump();
    }
    EXPECT_EQ(i, inputs_.size()) << name;
    std::cout << name << ": " << i << " inputs, mismatched ids " << bad_ids << ", with special tokens " << bad_special
              << ", decodes " << bad_decode << "\n";
  }
}

}  // namespace

namespace {

TEST_F(HfTokenizers, OneMegabyteLinesMatch) {
  std::string mixed;
  while (mixed.size() < (1u << 20)) mixed += "The 2024 café — 日本語 text,  with   spaces\tand 😀 emoji's 12345. ";
  const std::vector<std::string> lines = {mixed, std::string(1u << 20, ' '), std::string(1u << 20, 'a'),
                                          std::string(1u << 19, '\n') + "x"};
  rlaif_test::write_text(*dir_ / "long.json", nlohmann::json(lines).dump());
  for (const std::string name : {"qwen3", "mistral", "llama3"}) {
    std::string ref_out = *dir_ / (name + ".long.jsonl");
    auto r = rlaif_test::run_command("node " + kRef + "/tokenizers_ref.js " + kNpm + " " + (*dir_ / name) +
                                     "/tokenizer.json " + (*dir_ / "long.json") + " " + ref_out);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    auto tok = rlaif::Tokenizer::load(*dir_ / name);
    std::ifstream in(ref_out);
    std::string line;
    for (size_t i = 0; std::getline(in, line); ++i) {
      auto ref = nlohmann::json::parse(line);
      auto ids = tok.encode(lines[i]);
      auto want = ref["ids"].get<std::vector<int64_t>>();
      EXPECT_TRUE(ids == want) << name << " long line " << i << ": " << ids.size() << " ids, want " << want.size();
      std::string got = tok.decode(ref["ids_special"].get<std::vector<int64_t>>(), false);
      std::string want_text = ref["decoded"].get<std::string>();
      EXPECT_TRUE(got == want_text) << name << " long line " << i << ": decode differs, " << got.size() << " bytes vs "
                                    << want_text.size() << "; starts " << show(got.substr(0, 40)) << " vs "
                                    << show(want_text.substr(0, 40));
    }
  }
}

}  // namespace

namespace {

TEST_F(HfTokenizers, TokenizeCommandPrintsTheReferenceIds) {
  // The first 50 corpus lines, written as JSON strings so newlines survive, through `rlaif tokenize`.
  std::string input;
  std::vector<std::string> texts(inputs_.begin(), inputs_.begin() + 50);
  for (const auto& t : texts) input += nlohmann::json(t).dump() + "\n";
  rlaif_test::write_text(*dir_ / "cli_in.txt", input);
  rlaif_test::write_text(*dir_ / "cli_texts.json", nlohmann::json(texts).dump());
  for (const std::string name : {"qwen3", "mistral"}) {
    auto r = rlaif_test::run_command(std::string(RLAIF_BIN) + " tokenize --tokenizer " + (*dir_ / name) +
                                     " --add-special-tokens < " + (*dir_ / "cli_in.txt"));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    auto ref =
        rlaif_test::run_command("node " + kRef + "/tokenizers_ref.js " + kNpm + " " + (*dir_ / name) +
                                "/tokenizer.json " + (*dir_ / "cli_texts.json") + " " + (*dir_ / "cli_ref.jsonl"));
    ASSERT_EQ(ref.exit_code, 0) << ref.output;
    std::istringstream got(r.output);
    std::ifstream want(*dir_ / "cli_ref.jsonl");
    std::string g, w;
    size_t n = 0;
    while (std::getline(want, w)) {
      ASSERT_TRUE(static_cast<bool>(std::getline(got, g))) << name << ": rlaif tokenize printed fewer lines";
      EXPECT_EQ(nlohmann::json::parse(g)["ids"], nlohmann::json::parse(w)["ids_special"]) << name << " line " << n;
      ++n;
    }
    EXPECT_EQ(n, texts.size());
  }
}

TEST_F(HfTokenizers, ModelWithARealVocabularyGeneratesFromChatMessages) {
  // init-model --tokenizer gives a tiny model Qwen3's vocabulary and chat template; generate renders the messages
  // with that template and encodes them with that tokenizer.
  std::string model = *dir_ / "qwen3-tiny";
  auto r = rlaif_test::run_command(std::string(RLAIF_BIN) + " init-model --arch qwen3 --size tiny --tokenizer " +
                                   (*dir_ / "qwen3") + " --out " + model);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto config = nlohmann::json::parse(rlaif::read_file(model + "/config.json"));
  auto tok = rlaif::Tokenizer::load(model);
  EXPECT_EQ(config["vocab_size"].get<int64_t>(), tok.vocab_size());
  auto eos = config["eos_token_id"];  // an int or a list, as transformers writes either
  EXPECT_EQ(eos.is_array() ? eos : nlohmann::json::array({eos}), nlohmann::json::array({tok.token_id("<|im_end|>")}));
  nlohmann::ordered_json messages = {{{"role", "system"}, {"content", "Be brief."}},
                                     {{"role", "user"}, {"content", "Hi 😀"}}};
  rlaif_test::write_text(*dir_ / "chat.jsonl", nlohmann::json({{"messages", messages}}).dump() + "\n");
  r = rlaif_test::run_command(std::string(RLAIF_BIN) + " generate --model " + model + " --prompts " +
                              (*dir_ / "chat.jsonl") + " --out " + (*dir_ / "chat_out.jsonl") +
                              " --max-new-tokens 4 --quiet");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::string out = rlaif::read_file(*dir_ / "chat_out.jsonl");
  auto row = nlohmann::json::parse(out.substr(0, out.find('\n')));
  std::string want = rlaif::ChatTemplate::for_tokenizer(tok).render_for(tok, messages, true);
  EXPECT_EQ(row["prompt"].get<std::string>(), want);
  EXPECT_NE(want.find("<|im_start|>assistant\n"), std::string::npos);
  EXPECT_NE(want.find("<|im_start|>system\nBe brief.<|im_end|>"), std::string::npos);
  EXPECT_EQ(row["token_ids"].size(), 4u);
}

}  // namespace

namespace {

TEST_F(HfTokenizers, StreamedDecodingEqualsDecodeOnRealVocabularies) {
  // Byte-level (Qwen3) and byte-fallback (Mistral) vocabularies split characters across tokens; the stream must hold
  // them back until complete and end with exactly the full decode.
  for (const std::string name : {"qwen3", "mistral"}) {
    auto tok = rlaif::Tokenizer::load(*dir_ / name);
    size_t checked = 0;
    for (size_t i = 0; i < corpus_size_; ++i) {
      auto ids = tok.encode(inputs_[i], true);
      rlaif::DecodeStream stream(tok, /*skip_special_tokens=*/false);
      std::string joined;
      for (int64_t id : ids) joined += stream.step(id);
      std::string full = tok.decode(ids, false);
      // What is still held back can only be an incomplete trailing character.
      ASSERT_EQ(full.compare(0, joined.size(), joined), 0) << name << " line " << i;
      if (joined == full) ++checked;
    }
    EXPECT_GE(checked, corpus_size_ - 5) << name;  // nearly every line ends on a complete character
  }
}

}  // namespace

namespace {

// A tokenizer learnt by `rlaif train-tokenizer` is a real tokenizer.json: Hugging Face's library loads it and encodes
// the corpus (and strings it never saw) to the same ids.
TEST(HfTrainedTokenizer, TrainTokenizerWritesAFileHuggingFaceEncodesIdentically) {
  TempDir dir;
  auto corpus = read_corpus();
  std::string rows;
  for (const auto& s : corpus) rows += nlohmann::json({{"text", s}}).dump() + "\n";
  rlaif_test::write_text(dir / "corpus.jsonl", rows);
  auto r = rlaif_test::run_command(std::string(RLAIF_BIN) + " train-tokenizer --corpus " + (dir / "corpus.jsonl") +
                                   " --vocab-size 600 --out " + (dir / "tok"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto tok = rlaif::Tokenizer::load(dir / "tok");
  ASSERT_EQ(tok.vocab_size(), 600);
  auto inputs = corpus;
  auto random = random_strings(2000, 99);
  inputs.insert(inputs.end(), random.begin(), random.end());
  rlaif_test::write_text(dir / "inputs.json", nlohmann::json(inputs).dump());
  r = rlaif_test::run_command("node " + kRef + "/tokenizers_ref.js " + kNpm + " " + (dir / "tok/tokenizer.json") + " " +
                              (dir / "inputs.json") + " " + (dir / "ref.jsonl"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::ifstream in(dir / "ref.jsonl");
  std::string line;
  size_t i = 0, bad = 0, merged = 0;
  for (; std::getline(in, line); ++i) {
    auto want = nlohmann::json::parse(line)["ids"].get<std::vector<int64_t>>();
    auto got = tok.encode(inputs[i], false);
    for (int64_t id : got) merged += id >= 256 && id < 597;
    if (got != want && bad++ < 5) ADD_FAILURE() << "input " << i << " " << show(inputs[i]) << ": ids differ";
  }
  EXPECT_EQ(i, inputs.size());
  EXPECT_GT(merged, 1000u);  // the merges are used
}

}  // namespace
