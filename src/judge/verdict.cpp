#include "rlaif/verdict.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <nlohmann/json.hpp>

#include "core/text.h"
#include "rlaif/error.h"

namespace rlaif {
namespace {

// Every outermost balanced {...} in the text that parses as a JSON object, in order of appearance (objects nested in
// one already found are part of it, not separate candidates).
std::vector<nlohmann::json> json_objects(const std::string& s) {
  std::vector<nlohmann::json> out;
  for (size_t start = s.find('{'); start != std::string::npos; start = s.find('{', start + 1)) {
    int depth = 0;
    bool in_string = false, escape = false;
    for (size_t i = start; i < s.size(); ++i) {
      char c = s[i];
      if (in_string) {
        if (escape)
          escape = false;
        else if (c == '\\')
          escape = true;
        else if (c == '"')
          in_string = false;
        continue;
      }
      if (c == '"')
        in_string = true;
      else if (c == '{')
        ++depth;
      else if (c == '}' && --depth == 0) {
        auto j = nlohmann::json::parse(s.substr(start, i - start + 1), nullptr, false);
        if (j.is_object()) {
          out.push_back(std::move(j));
          start = i;  // go on after this object
        }
        break;
      }
    }
  }
  return out;
}

// "7", " 7.5 ", "7/10" -> 7; anything else -> nullopt.
std::optional<double> number_in(const std::string& text) {
  size_t i = 0;
  while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
  const char* begin = text.c_str() + i;
  char* end = nullptr;
  double v = std::strtod(begin, &end);
  if (end == begin || !std::isfinite(v)) return std::nullopt;
  std::string rest(end);
  size_t k = 0;
  while (k < rest.size() && std::isspace(static_cast<unsigned char>(rest[k]))) ++k;
  if (k == rest.size()) return v;
  if (rest[k] == '/') {
    char* end2 = nullptr;
    std::strtod(rest.c_str() + k + 1, &end2);
    if (end2 != rest.c_str() + k + 1) return v;
  }
  return std::nullopt;
}

// The number after "name:" / "name =" / "name -" on a line (case-insensitive), e.g. "**Relevance**: 8/10".
std::optional<double> line_score(const std::string& reply, const std::string& name) {
  std::string text = ascii_lower(reply), key = ascii_lower(name);
  for (size_t at = text.find(key); at != std::string::npos; at = text.find(key, at + 1)) {
    bool word_start = at == 0 || !std::isalnum(static_cast<unsigned char>(text[at - 1]));
    size_t k = at + key.size();
    if (!word_start || (k < text.size() && std::isalnum(static_cast<unsigned char>(text[k])))) continue;
    while (k < text.size() && (text[k] == '*' || text[k] == ' ' || text[k] == '"')) ++k;
    if (k >= text.size() || (text[k] != ':' && text[k] != '=' && text[k] != '-')) continue;
    ++k;
    size_t eol = text.find('\n', k);
    std::string value = text.substr(k, eol == std::string::npos ? std::string::npos : eol - k);
    while (!value.empty() && (value[0] == ' ' || value[0] == '*')) value.erase(0, 1);
    size_t stop = value.find_first_not_of("0123456789.-/ ");
    if (auto v = number_in(value.substr(0, stop))) return v;
  }
  return std::nullopt;
}

}  // namespace

Verdict parse_verdict(const std::string& reply, const Rubric& rubric) {
  Verdict v;
  // The last JSON object that holds the scores, either under "scores" or at its top level.
  const nlohmann::json* scores = nullptr;
  auto objects = json_objects(reply);
  for (auto it = objects.rbegin(); it != objects.rend() && !scores; ++it) {
    if (it->contains("scores") && (*it)["scores"].is_object())
      scores = &(*it)["scores"];
    else if (it->contains(rubric.criteria[0].name))
      scores = &*it;
    if (scores && it->contains("rationale") && (*it)["rationale"].is_string()) v.rationale = (*it)["rationale"];
  }
  for (const auto& c : rubric.criteria) {
    std::optional<double> value;
    if (scores) {
      if (!scores->contains(c.name)) {
        v.failure = "missing_score";
        v.detail = "the verdict has no score for \"" + c.name + "\"";
        return v;
      }
      const auto& x = (*scores)[c.name];
      if (x.is_number())
        value = x.get<double>();
      else if (x.is_boolean() && rubric.pass_fail)
        value = x.get<bool>() ? 1 : 0;
      else if (x.is_string())
        value = number_in(x.get<std::string>());
      if (!value) {
        v.failure = "non_numeric_score";
        v.detail = "the score of \"" + c.name + "\" is " + x.dump();
        return v;
      }
    } else {
      value = line_score(reply, c.name);
      if (!value && rubric.criteria.size() == 1) {
        for (const char* key : {"score", "rating", "verdict"})
          if (!value) value = line_score(reply, key);
      }
      if (!value) {
        v.failure = "no_verdict";
        v.detail = "no JSON verdict and no \"" + c.name + ": N\" line in the reply";
        return v;
      }
    }
    double s = *value;
    if (s < c.min || s > c.max) {
      v.clamped.push_back(c.name);
      s = std::clamp(s, c.min, c.max);
    }
    v.scores[c.name] = s;
  }
  v.ok = true;
  v.reward = rubric.aggregate(v.scores);
  return v;
}

std::string parse_pairwise(const std::string& reply, std::string* failure, std::string* rationale) {
  auto norm = [](std::string w) -> std::string {
    w.erase(0, w.find_first_not_of(" \t\"'*"));
    w.erase(w.find_last_not_of(" \t\"'*.") + 1);
    w = ascii_lower(w);
    if (w == "a" || w == "response a") return "A";
    if (w == "b" || w == "response b") return "B";
    if (w == "tie" || w == "draw" || w == "equal") return "tie";
    return "";
  };
  auto objects = json_objects(reply);
  for (auto it = objects.rbegin(); it != objects.rend(); ++it) {
    if (!it->contains("winner") || !(*it)["winner"].is_string()) continue;
    std::string w = norm((*it)["winner"].get<std::string>());
    if (rationale && it->contains("rationale") && (*it)["rationale"].is_string()) *rationale = (*it)["rationale"];
    if (!w.empty()) return w;
    *failure = "non_numeric_score";
    return "";
  }
  std::string text = ascii_lower(reply);
  size_t at = text.rfind("winner");
  if (at != std::string::npos) {
    size_t colon = text.find_first_of(":=", at);
    if (colon != std::string::npos && colon - at <= 8) {
      size_t eol = text.find('\n', colon);
      std::string w = norm(text.substr(colon + 1, eol == std::string::npos ? std::string::npos : eol - colon - 1));
      if (!w.empty()) return w;
    }
  }
  *failure = "no_verdict";
  return "";
}

std::optional<ScoreDistribution> expected_score(const std::vector<std::pair<std::string, double>>& top_logprobs,
                                                double min, double max) {
  std::map<long, double> prob;  // score -> probability (tokens " 7" and "7" add up)
  for (const auto& [token, logprob] : top_logprobs) {
    std::string t = token;
    t.erase(0, t.find_first_not_of(" \t\n"));
    t.erase(t.find_last_not_of(" \t\n") + 1);
    if (t.empty() || t.size() > 3 ||
        !std::all_of(t.begin(), t.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); }))
      continue;
    long value = std::stol(t);
    if (value < min || value > max || !std::isfinite(logprob)) continue;
    prob[value] += std::exp(std::min(logprob, 0.0));  // a probability is at most 1 (a server's rounding can say 1e-7)
  }
  double mass = 0, mean = 0, best = 0;
  for (const auto& [value, p] : prob) mass += p;
  if (prob.empty() || mass <= 0) return std::nullopt;
  for (const auto& [value, p] : prob) {
    mean += static_cast<double>(value) * p / mass;
    best = std::max(best, p / mass);
  }
  return ScoreDistribution{mean, best, mass};
}

namespace {

// Where the number of criterion `name` starts in `text` (after "scores" when the text has that key), or npos.
size_t score_offset(const std::string& text, const std::string& name) {
  size_t from = text.find("\"scores\"");
  if (from == std::string::npos) from = 0;
  auto skip_spaces = [&](size_t q) {
    while (q < text.size() && (text[q] == ' ' || text[q] == '\t')) ++q;
    return q;
  };
  for (size_t p = text.find(name, from); p != std::string::npos; p = text.find(name, p + 1)) {
    size_t q = p + name.size();
    if (q < text.size() && text[q] == '"') ++q;
    q = skip_spaces(q);
    if (q >= text.size() || text[q] != ':') continue;
    q = skip_spaces(q + 1);
    if (q < text.size() && text[q] == '"') ++q;
    if (q < text.size() && std::isdigit(static_cast<unsigned char>(text[q]))) return q;
  }
  return std::string::npos;
}

}  // namespace

std::map<std::string, ScoreDistribution> score_distributions(const std::string& reply,
                                                             const std::vector<ReplyToken>& tokens,
                                                             const Rubric& rubric) {
  std::map<std::string, ScoreDistribution> out;
  std::string spelled;
  for (const auto& t : tokens) spelled += t.text;
  if (tokens.empty() || spelled != reply) return out;
  for (const auto& c : rubric.criteria) {
    const size_t at = score_offset(reply, c.name);
    if (at == std::string::npos) continue;
    size_t end_of_number = at;
    while (end_of_number < reply.size() && std::isdigit(static_cast<unsigned char>(reply[end_of_number])))
      ++end_of_number;
    size_t start = 0;
    for (const auto& t : tokens) {
      const size_t end = start + t.text.size();
      if (at < start || at >= end) {
        start = end;
        continue;
      }
      // The token holds the number's first digit: only spaces may come before it, and the whole number must be in it.
      const std::string before = t.text.substr(0, at - start);
      if (before.find_first_not_of(" \t") != std::string::npos || end < end_of_number) break;
      if (auto d = expected_score(t.top, c.min, c.max)) out[c.name] = *d;
      break;
    }
  }
  return out;
}

}  // namespace rlaif

namespace rlaif {

std::string format_verdict(const Rubric& rubric, const std::map<std::string, double>& scores,
                           const std::string& rationale) {
  std::string text = "{\"rationale\": " + nlohmann::json(rationale).dump() + ", \"scores\": {";
  for (size_t j = 0; j < rubric.criteria.size(); ++j) {
    const auto& name = rubric.criteria[j].name;
    auto it = scores.find(name);
    if (it == scores.end())
      throw Error("no score for criterion \"" + name + "\"", "verdict", "give every criterion of the rubric a score");
    const double v = it->second;
    std::string value =
        v == std::floor(v) && std::abs(v) < 1e15 ? std::to_string(static_cast<int64_t>(v)) : nlohmann::json(v).dump();
    text += std::string(j ? ", " : "") + nlohmann::json(name).dump() + ": " + value;
  }
  return text + "}}";
}

}  // namespace rlaif
