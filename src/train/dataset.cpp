// JSONL rows -> token ids for RL prompts and SFT pairs; the shuffled, resumable data order.
#include "rlaif/dataset.h"

#include <c10/util/Exception.h>

#include "rlaif/chat_template.h"
#include "rlaif/error.h"
#include "rlaif/jsonl.h"
#include "rlaif/rubric.h"
#include "rlaif/sampler.h"

namespace rlaif {
std::string conversation_text(const nlohmann::ordered_json& messages) {
  if (messages.size() == 1 && messages[0].value("content", nlohmann::ordered_json()).is_string())
    return messages[0]["content"].get<std::string>();
  std::string out;
  for (const auto& m : messages) {
    const auto& c = m.value("content", nlohmann::ordered_json());
    out += m.value("role", std::string("user")) + ": " + (c.is_string() ? c.get<std::string>() : c.dump()) + "\n";
  }
  return out;
}

std::vector<PromptRow> load_dataset(const std::string& path, const Tokenizer& tokenizer, const DatasetOptions& o) {
  auto chat = ChatTemplate::for_tokenizer(tokenizer);
  const std::string shape =
      o.sft ? "rows look like {\"prompt\": \"...\", \"completion\": \"...\"} or {\"messages\": [..., "
              "{\"role\": \"assistant\", \"content\": \"...\"}]}"
            : "rows look like {\"prompt\": \"...\"} or {\"messages\": [{\"role\": \"user\", "
              "\"content\": \"...\"}]}, with an optional \"reference\" and \"rubric\" or \"checklist\"";
  std::vector<PromptRow> out;
  for (const auto& r : read_jsonl(path)) {
    const std::string where = path + ":" + std::to_string(r.line);
    if (!r.error.empty()) throw Error(r.error, where, "each line must be one JSON object");
    if (!r.value.is_object()) throw Error("row is not a JSON object", where, shape);
    const auto& v = r.value;
    PromptRow row;
    row.line = r.line;
    if (v.contains("reference")) {
      if (!v["reference"].is_string()) throw Error("\"reference\" must be a string", where);
      row.reference = v["reference"].get<std::string>();
    }
    if (!o.sft) {
      row.rubric = read_row_rubric(v, where);
      row.source = v;
    }
    for (const auto& [k, x] : v.items())
      if (k != "prompt" && k != "messages" && k != "completion" && k != "reference" &&
          (o.sft || (k != "rubric" && k != "checklist")))
        row.metadata[k] = x;
    try {
      if (v.contains("prompt")) {
        if (!v["prompt"].is_string()) throw Error("\"prompt\" must be a string", where, shape);
        row.text = v["prompt"].get<std::string>();
        if (!o.sft) row.messages = nlohmann::ordered_json::array({{{"role", "user"}, {"content", row.text}}});
        row.prompt_ids = tokenizer.encode(row.text, /*add_special_tokens=*/true);
        if (o.sft) {
          if (!v.contains("completion") || !v["completion"].is_string())
            throw Error("an SFT row with \"prompt\" needs a string \"completion\"", where, shape);
          row.completion_ids = tokenizer.encode(v["completion"].get<std::string>(), false);
          if (o.eos_id >= 0) row.completion_ids.push_back(o.eos_id);
        }
      } else if (v.contains("messages")) {
        const auto& m = v["messages"];
        if (!m.is_array() || m.empty()) throw Error("\"messages\" must be a non-empty list", where, shape);
        if (o.sft) {
          if (m.size() < 2 || m.back().value("role", std::string()) != "assistant")
            throw Error("an SFT conversation must end with an assistant message", where, shape);
          auto context = nlohmann::ordered_json(std::vector<nlohmann::ordered_json>(m.begin(), m.end() - 1));
          row.text = conversation_text(context);
          auto prompt = chat.render_for(tokenizer, context, /*add_generation_prompt=*/true);
          auto full = chat.render_for(tokenizer, m, /*add_generation_prompt=*/false);
          if (full.compare(0, prompt.size(), prompt) != 0)
            throw Error("the chat template renders the conversation so that the prompt is not a prefix of it", where,
                        "use prompt/completion rows for this model");
          row.prompt_ids = tokenizer.encode(prompt, false);
          row.completion_ids = tokenizer.encode(full.substr(prompt.size()), false);
        } else {
          row.text = conversation_text(m);
          row.messages = m;
          row.prompt_ids = tokenizer.encode(chat.render_for(tokenizer, m, /*add_generation_prompt=*/true), false);
        }
      } else {
        throw Error("row has neither \"prompt\" nor \"messages\"", where, shape);
      }
    } catch (const Error& e) {
      if (e.where() == where) throw;
      throw Error(e.what_part() + (e.where().empty() ? "" : " (at " + e.where() + ")"), where, e.hint());
    }
    if (row.prompt_ids.empty()) throw Error("the prompt is empty", where);
    if (o.sft && row.completion_ids.empty()) throw Error("the completion is empty", where);
    if (static_cast<int64_t>(row.prompt_ids.size()) > o.max_prompt_length)
      row.prompt_ids.erase(row.prompt_ids.begin(), row.prompt_ids.end() - o.max_prompt_length);
    if (o.max_completion_length > 0 && static_cast<int64_t>(row.completion_ids.size()) > o.max_completion_length)
      row.completion_ids.resize(o.max_completion_length);
    out.push_back(std::move(row));
  }
  if (out.empty()) throw Error("no rows", path, shape);
  return out;
}

DataOrder::DataOrder(size_t size, uint64_t seed, bool shuffle) : size_(size), seed_(seed), shuffle_(shuffle) {
  TORCH_CHECK(size > 0, "empty dataset");
  make_order();
}

void DataOrder::make_order() {
  order_.resize(size_);
  for (size_t i = 0; i < size_; ++i) order_[i] = i;
  if (!shuffle_) return;
  uint64_t state = sample_seed(seed_, static_cast<uint64_t>(epoch_));
  for (size_t i = size_ - 1; i > 0; --i) {  // Fisher-Yates with splitmix64 draws
    state += 0x9E3779B97F4A7C15ULL;
    uint64_t z = state;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    std::swap(order_[i], order_[z % (i + 1)]);
  }
}

size_t DataOrder::next() {
  if (position_ >= static_cast<int64_t>(size_)) {
    ++epoch_;
    position_ = 0;
    make_order();
  }
  return order_[position_++];
}

void DataOrder::seek(int64_t epoch, int64_t position) {
  epoch_ = epoch;
  position_ = position;
  make_order();
}

}  // namespace rlaif
