// `rlaif export --format gguf`, read back by Hugging Face's GGUF reader (npm @huggingface/gguf, an implementation
// independent of rlaif's writer, through tests/reference/gguf_ref.js): the header, every metadata value and its GGUF
// type, the tensor table, and each tensor's data against the source weights — exact for f32/f16/bf16 (the source
// rounded to that type), q8_0 within its block error bound, its blocks decoded here from the published layout
// (an IEEE half scale, then 32 int8). Vocabularies: byte-level BPE (GPT-2, SmolLM2, Llama 3, Qwen3) and
// SentencePiece-style BPE (Mistral / Llama 2); the latter is also tokenized the way llama.cpp's SentencePiece
// tokenizer reads the file (highest-scoring adjacent merge first, byte fallback) and must give Hugging Face's ids.
#include <cstring>
#include <filesystem>
#include <fstream>
#include <queue>
#include <set>

#include <torch/torch.h>
#include "adapter_test_util.h"
#include "rlaif/gguf.h"
#include "rlaif/init_model.h"
#include "rlaif/lora.h"
#include "rlaif/model_folder.h"
#include "rlaif/tokenizer.h"

#include "test_util.h"

namespace fs = std::filesystem;
using nlohmann::json;
using rlaif_test::TempDir;

namespace {

const std::string kNpm = RLAIF_NPM_DIR;
const std::string kRef = RLAIF_REFERENCE_DIR;

// GGUF's value type numbers.
enum { kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7, kString = 8, kArray = 9 };
// ggml's tensor type numbers.
enum { kTypeF32 = 0, kTypeF16 = 1, kTypeQ8_0 = 8, kTypeBF16 = 30 };

std::string rlaif_cmd(const std::string& args) { return std::string(RLAIF_BIN) + " " + args; }

// IEEE binary16 bits to float, written out here so the q8_0 check does not lean on the writer's conversion.
float half_to_float(uint16_t h) {
  const int sign = h >> 15, exponent = (h >> 10) & 0x1f, mantissa = h & 0x3ff;
  float v;
  if (exponent == 0)
    v = std::ldexp(static_cast<float>(mantissa), -24);
  else if (exponent == 31)
    v = mantissa ? NAN : INFINITY;
  else
    v = std::ldexp(static_cast<float>(mantissa | 0x400), exponent - 25);
  return sign ? -v : v;
}

struct GgufFile {
  json metadata, tensors;
  int64_t data_offset = 0;
  std::string bytes;

  const json& value(const std::string& key) const { return metadata.at(key).at("value"); }
  int type(const std::string& key) const { return metadata.at(key).at("type"); }
  const json& tensor(const std::string& name) const {
    for (const auto& t : tensors)
      if (t["name"] == name) return t;
    throw std::runtime_error("no tensor " + name);
  }
};

GgufFile read_gguf(const TempDir& dir, const std::string& file) {
  GgufFile g;
  auto r = rlaif_test::run_command("node " + kRef + "/gguf_ref.js " + kNpm + " " + file + " " + (dir / "gguf.json"));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  if (r.exit_code != 0) return g;
  json j = json::parse(rlaif::read_file(dir / "gguf.json"));
  g.metadata = j["metadata"];
  g.tensors = j["tensors"];
  g.data_offset = j["tensor_data_offset"];
  g.bytes = rlaif::read_file(file);
  return g;
}

// A tensor's data as float32 in torch's shape (GGUF lists dims innermost first). Q8_0 blocks are decoded by hand.
torch::Tensor tensor_data(const GgufFile& g, const json& info) {
  std::vector<int64_t> shape;
  int64_t n = 1;
  for (const auto& d : info["shape"]) {
    shape.insert(shape.begin(), d.get<int64_t>());
    n *= d.get<int64_t>();
  }
  const char* p = g.bytes.data() + g.data_offset + info["offset"].get<int64_t>();
  const int dtype = info["dtype"];
  if (dtype == kTypeQ8_0) {
    torch::Tensor out = torch::empty({n});
    float* o = out.data_ptr<float>();
    for (int64_t b = 0; b < n / 32; ++b) {
      uint16_t bits;
      std::memcpy(&bits, p + b * 34, 2);
      const float d = half_to_float(bits);
      for (int j = 0; j < 32; ++j) o[b * 32 + j] = d * static_cast<int8_t>(p[b * 34 + 2 + j]);
    }
    return out.reshape(shape);
  }
  const auto st = dtype == kTypeF32 ? torch::kFloat32 : dtype == kTypeF16 ? torch::kFloat16 : torch::kBFloat16;
  std::string copy(p, n * (dtype == kTypeF32 ? 4 : 2));
  return torch::from_blob(copy.data(), shape, st).to(torch::kFloat32).clone();
}

// The GGUF name of each transformers parameter, as llama.cpp's converter names them (written out independently of
// the exporter's table).
std::string gguf_name(const std::string& hf) {
  if (hf == "model.embed_tokens.weight") return "token_embd.weight";
  if (hf == "model.norm.weight") return "output_norm.weight";
  if (hf == "lm_head.weight") return "output.weight";
  const std::vector<std::pair<std::string, std::string>> parts = {
      {".input_layernorm.", ".attn_norm."},    {".post_attention_layernorm.", ".ffn_norm."},
      {".self_attn.q_proj.", ".attn_q."},      {".self_attn.k_proj.", ".attn_k."},
      {".self_attn.v_proj.", ".attn_v."},      {".self_attn.o_proj.", ".attn_output."},
      {".self_attn.q_norm.", ".attn_q_norm."}, {".self_attn.k_norm.", ".attn_k_norm."},
      {".mlp.gate_proj.", ".ffn_gate."},       {".mlp.up_proj.", ".ffn_up."},
      {".mlp.down_proj.", ".ffn_down."}};
  std::string s = hf;
  s.replace(0, std::string("model.layers.").size(), "blk.");
  for (const auto& [from, to] : parts)
    if (auto at = s.find(from); at != std::string::npos) return s.replace(at, from.size(), to);
  return "?" + hf;
}

// llama.cpp's llama architecture rotates adjacent pairs: within each head of D rows, GGUF row 2j + p is
// transformers' row p * D/2 + j.
torch::Tensor to_adjacent_pairs(const torch::Tensor& w, int64_t heads) {
  const int64_t D = w.size(0) / heads;
  std::vector<int64_t> rows;
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t j = 0; j < D / 2; ++j)
      for (int64_t p = 0; p < 2; ++p) rows.push_back(h * D + p * D / 2 + j);
  return w.index_select(0, torch::tensor(rows));
}

// Checks the tensor table and every tensor's data against `model` (fp32) exported with matrices in `type`.
void expect_tensors(const GgufFile& g, rlaif::CausalLM& model, int type) {
  const auto& c = model->config();
  const bool llama = c.model_type == "llama" || c.model_type == "mistral";
  std::set<std::string> expected, found;
  for (const auto& t : g.tensors) found.insert(t["name"]);
  for (const auto& p : model->named_parameters()) {
    const std::string name = gguf_name(p.key());
    expected.insert(name);
    if (!found.count(name)) continue;
    const json& info = g.tensor(name);
    torch::Tensor want = p.value().detach();
    if (llama && p.key().find("q_proj") != std::string::npos) want = to_adjacent_pairs(want, c.num_attention_heads);
    if (llama && p.key().find("k_proj") != std::string::npos) want = to_adjacent_pairs(want, c.num_key_value_heads);
    const int want_type = want.dim() == 1 ? kTypeF32 : (type == kTypeQ8_0 && want.size(-1) % 32) ? kTypeF16 : type;
    EXPECT_EQ(info["dtype"], want_type) << name;
    EXPECT_EQ((g.data_offset + info["offset"].get<int64_t>()) % 32, 0) << name << ": data not aligned";
    const torch::Tensor got = tensor_data(g, info);
    ASSERT_EQ(got.sizes(), want.sizes()) << name;
    if (want_type == kTypeQ8_0) {
      // Per block of 32: d = max|x| / 127 stored as a half; x - d_half * q is within d/2 plus the half's rounding.
      const auto x = want.reshape({-1, 32}), y = got.reshape({-1, 32});
      const auto d = x.abs().amax(1, true) / 127;
      const auto d_half = d.to(torch::kFloat16).to(torch::kFloat32);
      const auto bound = d / 2 + 127 * (d - d_half).abs() + 1e-7;
      EXPECT_TRUE(((x - y).abs() <= bound).all().item<bool>()) << name;
      EXPECT_GT((x - y).abs().max().item<double>(), 0) << name << ": q8_0 should not be lossless";
    } else {
      const auto st = want_type == kTypeF32   ? torch::kFloat32
                      : want_type == kTypeF16 ? torch::kFloat16
                                              : torch::kBFloat16;
      EXPECT_TRUE(torch::equal(got, want.to(st).to(torch::kFloat32))) << name;
    }
  }
  if (c.rope_scaling.type == "llama3") expected.insert("rope_freqs.weight");
  EXPECT_EQ(found, expected);
  EXPECT_EQ(g.value("tensor_count"), expected.size());
}

void expect_hparams(const GgufFile& g, const rlaif::ModelConfig& c, const std::string& arch, int file_type) {
  EXPECT_EQ(g.value("version"), 3);
  EXPECT_EQ(g.value("general.architecture"), arch);
  const std::vector<std::pair<std::string, int64_t>> u32 = {{".block_count", c.num_hidden_layers},
                                                            {".context_length", c.max_position_embeddings},
                                                            {".embedding_length", c.hidden_size},
                                                            {".feed_forward_length", c.intermediate_size},
                                                            {".attention.head_count", c.num_attention_heads},
                                                            {".attention.head_count_kv", c.num_key_value_heads},
                                                            {".rope.dimension_count", c.head_dim}};
  for (const auto& [key, want] : u32) {
    EXPECT_EQ(g.type(arch + key), kU32) << key;
    EXPECT_EQ(g.value(arch + key), want) << key;
  }
  EXPECT_EQ(g.type(arch + ".rope.freq_base"), kF32);
  EXPECT_FLOAT_EQ(g.value(arch + ".rope.freq_base").get<float>(), static_cast<float>(c.rope_theta));
  EXPECT_EQ(g.type(arch + ".attention.layer_norm_rms_epsilon"), kF32);
  EXPECT_FLOAT_EQ(g.value(arch + ".attention.layer_norm_rms_epsilon").get<float>(), static_cast<float>(c.rms_norm_eps));
  EXPECT_EQ(g.value("general.file_type"), file_type);
  EXPECT_EQ(g.type("general.file_type"), kU32);
}

// The tokenizer metadata against the tokenizer itself (and tokenizer.json's merges for byte-level BPE).
void expect_vocab(const GgufFile& g, const std::string& tokenizer_dir, const rlaif::ModelConfig& config,
                  const std::string& model, const std::string& pre) {
  const int64_t vocab_size = config.vocab_size;
  const auto tok = rlaif::Tokenizer::load(tokenizer_dir);
  EXPECT_EQ(g.value("tokenizer.ggml.model"), model);
  EXPECT_EQ(g.value("tokenizer.ggml.pre"), pre);
  EXPECT_EQ(g.type("tokenizer.ggml.tokens"), kArray);
  EXPECT_EQ(g.metadata["tokenizer.ggml.tokens"]["subType"], kString);
  EXPECT_EQ(g.metadata["tokenizer.ggml.token_type"]["subType"], kI32);
  const json& tokens = g.value("tokenizer.ggml.tokens");
  const json& types = g.value("tokenizer.ggml.token_type");
  ASSERT_EQ(tokens.size(), static_cast<size_t>(vocab_size));
  ASSERT_EQ(types.size(), static_cast<size_t>(vocab_size));
  for (int64_t id = 0; id < vocab_size; ++id) {
    if (id < tok.vocab_size() && !tok.id_to_token(id).empty()) {
      ASSERT_EQ(tokens[id], tok.id_to_token(id)) << id;
      if (tok.is_special(id) && tokens[id] != "<unk>") {
        EXPECT_EQ(types[id], 3) << id << " " << tokens[id];
      }
    } else {
      ASSERT_EQ(tokens[id], "[PAD" + std::to_string(id) + "]");
      EXPECT_EQ(types[id], 5) << id;  // unused
    }
  }
  if (tok.bos_id() >= 0) {
    EXPECT_EQ(g.value("tokenizer.ggml.bos_token_id"), tok.bos_id());
  }
  // The tokenizer's eos, or config.json's where tokenizer_config.json names none.
  EXPECT_EQ(g.value("tokenizer.ggml.eos_token_id"), tok.eos_id() >= 0 ? tok.eos_id() : config.eos_token_ids.at(0));
  EXPECT_EQ(g.type("tokenizer.ggml.eos_token_id"), kU32);
  EXPECT_EQ(g.type("tokenizer.ggml.add_bos_token"), kBool);
  const auto with = tok.encode("hello", true), without = tok.encode("hello");
  EXPECT_EQ(g.value("tokenizer.ggml.add_bos_token"), with.size() > without.size() && with.front() == tok.bos_id());
  if (!tok.chat_template().empty()) {
    EXPECT_EQ(g.value("tokenizer.chat_template"), tok.chat_template());
  }
  if (model == "gpt2") {
    const json j = json::parse(rlaif::read_file((fs::path(tokenizer_dir) / "tokenizer.json").string()));
    const json& merges = j["model"]["merges"];
    const json& written = g.value("tokenizer.ggml.merges");
    ASSERT_EQ(written.size(), merges.size());
    for (size_t i = 0; i < merges.size(); ++i) {
      const std::string m = merges[i].is_array()
                                ? merges[i][0].get<std::string>() + " " + merges[i][1].get<std::string>()
                                : merges[i].get<std::string>();
      ASSERT_EQ(written[i], m) << i;
    }
  }
}

// llama.cpp's SentencePiece tokenizer (llm_tokenizer_spm) over the GGUF vocabulary: "▁" for spaces (and before the
// text with add_space_prefix), the text split into characters, then repeatedly the adjacent pair whose joined text
// is the highest-scoring token is merged (the leftmost on ties); a symbol that is no token becomes its bytes'
// <0xNN> tokens.
std::vector<int64_t> spm_tokenize(const GgufFile& g, const std::map<std::string, int64_t>& ids, std::string text) {
  const json& scores = g.value("tokenizer.ggml.scores");
  std::string escaped = g.value("tokenizer.ggml.add_space_prefix").get<bool>() ? "\u2581" : "";
  for (char ch : text) escaped += ch == ' ' ? std::string("\u2581") : std::string(1, ch);
  std::vector<std::string> sym;
  for (size_t i = 0; i < escaped.size();) {
    const unsigned char c = escaped[i];
    const size_t len = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    sym.push_back(escaped.substr(i, len));
    i += len;
  }
  std::vector<bool> alive(sym.size(), true);
  std::vector<int> next(sym.size()), prev(sym.size());
  for (size_t i = 0; i < sym.size(); ++i)
    next[i] = i + 1 < sym.size() ? static_cast<int>(i) + 1 : -1, prev[i] = static_cast<int>(i) - 1;
  struct Bigram {
    float score;
    int left;
    std::string text;
    bool operator<(const Bigram& o) const { return score < o.score || (score == o.score && left > o.left); }
  };
  std::priority_queue<Bigram> queue;
  auto try_add = [&](int l, int r) {
    if (l < 0 || r < 0) return;
    const std::string t = sym[l] + sym[r];
    if (auto it = ids.find(t); it != ids.end()) queue.push({scores[it->second].get<float>(), l, t});
  };
  for (size_t i = 0; i + 1 < sym.size(); ++i) try_add(i, i + 1);
  while (!queue.empty()) {
    Bigram b = queue.top();
    queue.pop();
    const int r = next[b.left];
    if (!alive[b.left] || r < 0 || sym[b.left] + sym[r] != b.text) continue;  // stale
    sym[b.left] = b.text;
    alive[r] = false;
    next[b.left] = next[r];
    if (next[r] >= 0) prev[next[r]] = b.left;
    try_add(prev[b.left], b.left);
    try_add(b.left, next[b.left]);
  }
  std::vector<int64_t> out;
  for (int i = 0; i >= 0 && i < static_cast<int>(sym.size()); i = next[i]) {
    if (auto it = ids.find(sym[i]); it != ids.end()) {
      out.push_back(it->second);
      continue;
    }
    for (unsigned char byte : sym[i]) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "<0x%02X>", byte);
      out.push_back(ids.at(hex));
    }
  }
  return out;
}

class Gguf : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    auto r = rlaif_test::run_command("node " + kRef + "/make_tokenizers.js " + kNpm + " " + (*dir_ / "tokenizers"));
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  static void TearDownTestSuite() { delete dir_; }

  // A small model of `arch` with the tokenizer `tokenizer` (a make_tokenizers.js folder, or "" for byte-level).
  static std::string make_model(const std::string& name, const std::string& arch, const std::string& tokenizer,
                                const std::string& size) {
    rlaif::InitModelOptions o;
    o.arch = arch;
    o.size = size;
    o.seed = 11;
    if (!tokenizer.empty()) o.tokenizer = *dir_ / ("tokenizers/" + tokenizer);
    rlaif::init_model(o, *dir_ / name);
    return *dir_ / name;
  }
  static std::string tokenizer_dir(const std::string& name) { return *dir_ / ("tokenizers/" + name); }

  // Exports `model` to NAME.gguf with matrices in `type`; returns the file.
  static std::string export_gguf(const std::string& model, const std::string& name, const std::string& type) {
    const std::string out = *dir_ / (name + ".gguf");
    auto r = rlaif_test::run_command(
        rlaif_cmd("export --model " + model + " --format gguf --type " + type + " --out " + out));
    EXPECT_EQ(r.exit_code, 0) << r.output;
    return out;
  }

  static TempDir* dir_;
};
TempDir* Gguf::dir_ = nullptr;

TEST_F(Gguf, Q8_0FollowsTheReferenceQuantizerAndItsPublishedLayout) {
  // One block whose largest magnitude is 127 (so d = 1 exactly): values are rounded half away from zero, as C's
  // roundf in ggml's quantize_row_q8_0_ref; a second block of zeros has d = 0.
  std::vector<float> x(64, 0.0f);
  for (int j = 0; j < 32; ++j) x[j] = static_cast<float>(j) - 15.5f;  // -15.5 .. 15.5
  x[31] = 127.0f;
  const std::string q = rlaif::quantize_q8_0(torch::tensor(x));
  ASSERT_EQ(q.size(), 2u * 34u);
  uint16_t bits;
  std::memcpy(&bits, q.data(), 2);
  EXPECT_EQ(half_to_float(bits), 1.0f);
  for (int j = 0; j < 31; ++j) EXPECT_EQ(static_cast<int8_t>(q[2 + j]), static_cast<int>(std::round(x[j]))) << j;
  EXPECT_EQ(static_cast<int8_t>(q[2 + 31]), 127);
  EXPECT_EQ(static_cast<int8_t>(q[2]), -16);      // -15.5 rounds away from zero (torch.round would give -16 too)
  EXPECT_EQ(static_cast<int8_t>(q[2 + 13]), -3);  // -2.5: away from zero, where round-half-even gives -2
  std::memcpy(&bits, q.data() + 34, 2);
  EXPECT_EQ(bits, 0);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(q[34 + 2 + j], 0);
  // Read back from the layout, d * q.
  for (int b = 0; b < 2; ++b) {
    std::memcpy(&bits, q.data() + 34 * b, 2);
    for (int j = 0; j < 32; ++j)
      EXPECT_EQ(half_to_float(bits) * static_cast<int8_t>(q[34 * b + 2 + j]), b == 0 ? std::round(x[j]) : 0.0f) << j;
  }
}

TEST_F(Gguf, LlamaWithLlama3TokenizerAndRopeScalingInF32AndQ8_0) {
  const std::string m =
      make_model("llama3", "llama", "llama3",
                 "hidden=64,layers=2,heads=4,kv_heads=2,intermediate=80,rope_scaling=llama3,max_pos=4096");
  auto model = rlaif::load_model(m);
  for (const auto& [type, code, ftype] :
       std::vector<std::tuple<std::string, int, int>>{{"f32", kTypeF32, 0}, {"q8_0", kTypeQ8_0, 7}}) {
    SCOPED_TRACE(type);
    const GgufFile g = read_gguf(*dir_, export_gguf(m, "llama3-" + type, type));
    expect_hparams(g, model->config(), "llama", ftype);
    EXPECT_EQ(g.value("llama.vocab_size"), model->config().vocab_size);
    expect_tensors(g, model, code);
    expect_vocab(g, tokenizer_dir("llama3"), model->config(), "gpt2", "llama-bpe");
    // Llama 3's rope scaling as one factor per frequency pair: 1 for the fast ones, `factor` for the slow ones.
    const torch::Tensor f = tensor_data(g, g.tensor("rope_freqs.weight"));
    ASSERT_EQ(f.numel(), model->config().head_dim / 2);
    EXPECT_FLOAT_EQ(f[0].item<float>(), 1.0f);
    EXPECT_FLOAT_EQ(f[-1].item<float>(), static_cast<float>(model->config().rope_scaling.factor));
  }
}

TEST_F(Gguf, MistralWithSentencePieceVocabularyTokenizesAsHuggingFaceInF16) {
  const std::string m =
      make_model("mistral", "mistral", "mistral", "hidden=64,layers=2,heads=4,kv_heads=1,intermediate=96");
  auto model = rlaif::load_model(m);
  const GgufFile g = read_gguf(*dir_, export_gguf(m, "mistral", "f16"));
  expect_hparams(g, model->config(), "llama", 1);  // mistral is written as llama, as llama.cpp's converter does
  expect_tensors(g, model, kTypeF16);
  expect_vocab(g, tokenizer_dir("mistral"), model->config(), "llama", "default");
  EXPECT_EQ(g.metadata["tokenizer.ggml.scores"]["subType"], kF32);
  EXPECT_EQ(g.value("tokenizer.ggml.add_space_prefix"), true);
  EXPECT_EQ(g.value("tokenizer.ggml.unknown_token_id"), 0);
  const json& types = g.value("tokenizer.ggml.token_type");
  const json& tokens = g.value("tokenizer.ggml.tokens");
  std::map<std::string, int64_t> ids;
  for (size_t i = 0; i < tokens.size(); ++i) {
    ids[tokens[i]] = i;
    const std::string t = tokens[i];
    if (t.size() == 6 && t.rfind("<0x", 0) == 0) {
      EXPECT_EQ(types[i], 6) << t;  // byte
    }
  }
  EXPECT_EQ(types[0], 2);  // <unk>

  // llama.cpp's tokenizer over this vocabulary gives Hugging Face's ids.
  const auto tok = rlaif::Tokenizer::load(tokenizer_dir("mistral"));
  std::vector<std::string> texts;
  std::ifstream corpus(RLAIF_CORPUS);
  for (std::string line; std::getline(corpus, line);)
    if (!line.empty()) texts.push_back(json::parse(line).get<std::string>());
  texts.push_back("The quick brown fox jumps over the lazy dog, naïvely — 東京 🙂 x²+y²");
  int compared = 0;
  for (const auto& text : texts) {
    if (text.find('<') != std::string::npos || text.empty()) continue;  // special-token text is matched apart
    EXPECT_EQ(spm_tokenize(g, ids, text), tok.encode(text)) << text;
    ++compared;
  }
  EXPECT_GT(compared, 20);
}

TEST_F(Gguf, Qwen2WithSmolLM2TokenizerInBf16AndGpt2InF16) {
  const std::string m =
      make_model("qwen2", "qwen2", "smollm2", "hidden=64,layers=2,heads=4,kv_heads=2,intermediate=96");
  auto model = rlaif::load_model(m);
  const GgufFile g = read_gguf(*dir_, export_gguf(m, "qwen2", "bf16"));
  expect_hparams(g, model->config(), "qwen2", 32);
  expect_tensors(g, model, kTypeBF16);  // with the q/k/v biases, rows in transformers' order
  expect_vocab(g, tokenizer_dir("smollm2"), model->config(), "gpt2", "smollm");

  const std::string m2 =
      make_model("gpt2vocab", "llama", "gpt2", "hidden=64,layers=1,heads=4,kv_heads=4,intermediate=64,tied=1");
  auto model2 = rlaif::load_model(m2);
  const GgufFile g2 = read_gguf(*dir_, export_gguf(m2, "gpt2vocab", "f16"));
  expect_tensors(g2, model2, kTypeF16);  // tied: no output.weight
  expect_vocab(g2, tokenizer_dir("gpt2"), model2->config(), "gpt2", "gpt-2");
}

TEST_F(Gguf, Qwen3WithQwen3TokenizerInQ8_0) {
  const std::string m =
      make_model("qwen3", "qwen3", "qwen3", "hidden=64,layers=2,heads=4,kv_heads=2,intermediate=96,head_dim=32,tied=1");
  auto model = rlaif::load_model(m);
  const GgufFile g = read_gguf(*dir_, export_gguf(m, "qwen3", "q8_0"));
  expect_hparams(g, model->config(), "qwen3", 7);
  EXPECT_EQ(g.value("qwen3.attention.key_length"), 32);
  expect_tensors(g, model, kTypeQ8_0);  // with attn_q_norm / attn_k_norm
  expect_vocab(g, tokenizer_dir("qwen3"), model->config(), "gpt2", "qwen2");
  EXPECT_EQ(g.value("tokenizer.ggml.add_bos_token"), false);
  const json& types = g.value("tokenizer.ggml.token_type");
  const auto tok = rlaif::Tokenizer::load(tokenizer_dir("qwen3"));
  EXPECT_EQ(types[tok.token_id("<|im_start|>")], 3);  // control
  EXPECT_EQ(types[tok.token_id("<think>")], 4);       // user-defined: added, not special
}

TEST_F(Gguf, ALoraCheckpointIsMergedAndBadInputsAreErrorsThatLeaveNoFile) {
  const std::string base = make_model("base", "qwen3", "", "tiny");
  rlaif_test::write_adapter(base, *dir_ / "run/checkpoint-2");
  auto merged = rlaif::load_model(base);
  rlaif::load_lora(merged, *dir_ / "run/checkpoint-2");
  rlaif::merge_lora(merged);
  const GgufFile g = read_gguf(*dir_, export_gguf(*dir_ / "run/checkpoint-2", "adapted", "f32"));
  expect_tensors(g, merged, kTypeF32);
  expect_vocab(g, base, merged->config(), "gpt2", "default");

  auto expect_fail = [&](const std::string& args, const std::vector<std::string>& parts) {
    auto r = rlaif_test::run_command(rlaif_cmd("export --format gguf " + args));
    EXPECT_EQ(r.exit_code, 1) << args << "\n" << r.output;
    for (const auto& p : parts) EXPECT_NE(r.output.find(p), std::string::npos) << p << "\n" << r.output;
  };
  expect_fail("--model " + base + " --out " + (*dir_ / "adapted.gguf"), {"adapted.gguf", "already exists"});
  expect_fail("--model " + base + " --out " + (*dir_ / "x.gguf") + " --type q4_0", {"--type", "q8_0"});
  // A pre-tokenizer llama.cpp does not know, and a tokenizer model GGUF cannot hold, are named.
  fs::copy(base, *dir_ / "odd");
  json tok = json::parse(rlaif::read_file(*dir_ / "odd/tokenizer.json"));
  tok["pre_tokenizer"] = {
      {"type", "Sequence"},
      {"pretokenizers",
       {{{"type", "Split"}, {"pattern", {{"Regex", "\\s+"}}}, {"behavior", "Isolated"}, {"invert", false}},
        {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}}}}};
  rlaif_test::write_text(*dir_ / "odd/tokenizer.json", tok.dump());
  expect_fail("--model " + (*dir_ / "odd") + " --out " + (*dir_ / "x.gguf"),
              {"tokenizer.json", "pre_tokenizer", "llama.cpp"});
  EXPECT_FALSE(fs::exists(*dir_ / "x.gguf"));
  for (const auto& e : fs::directory_iterator(dir_->path()))
    EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos) << e.path();
}

}  // namespace
