// The backends by name: the four built in, and those registered by library users or tests.
#include "rlaif/judge_backend.h"

#include <map>
#include <mutex>

#include "judge/command_backend.h"
#include "judge/local_backend.h"
#include "judge/openai_chat.h"
#include "rlaif/error.h"

namespace rlaif {
namespace {

// "none": rule graders alone (verifiable rewards). Every sample is ok at once, with no verdict of its own.
class NoneBackend : public JudgeBackend {
 public:
  void score(const std::vector<JudgeSample>& samples, const Done& done, const std::function<bool()>&) override {
    for (size_t i = 0; i < samples.size(); ++i) {
      JudgeResult r;
      r.ok = true;
      done(i, std::move(r), nlohmann::json());
    }
  }
  bool cacheable() const override { return false; }
  bool has_verdict() const override { return false; }
};

bool built_in(const std::string& name) {
  return name == "openai" || name == "command" || name == "local" || name == "none";
}

std::mutex& registry_mutex() {
  static std::mutex mu;
  return mu;
}

std::map<std::string, JudgeBackendFactory>& registry() {
  static std::map<std::string, JudgeBackendFactory> factories;
  return factories;
}

}  // namespace

void register_judge_backend(const std::string& name, JudgeBackendFactory factory) {
  if (built_in(name) || name.empty())
    throw Error("cannot register a judge backend named \"" + name + "\"", "register_judge_backend",
                "openai, command, local and none are built in; choose another name");
  std::lock_guard<std::mutex> lock(registry_mutex());
  registry()[name] = std::move(factory);
}

bool judge_backend_registered(const std::string& name) {
  if (built_in(name)) return true;
  std::lock_guard<std::mutex> lock(registry_mutex());
  return registry().count(name) > 0;
}

std::unique_ptr<JudgeBackend> make_judge_backend(const JudgeConfig& config) {
  if (config.backend == "openai") return std::make_unique<OpenAiBackend>(config, std::make_shared<OpenAiChat>(config));
  if (config.backend == "command") return std::make_unique<CommandBackend>(config);
  if (config.backend == "local") return std::make_unique<LocalBackend>(config);
  if (config.backend == "none") return std::make_unique<NoneBackend>();
  JudgeBackendFactory factory;
  {
    std::lock_guard<std::mutex> lock(registry_mutex());
    auto it = registry().find(config.backend);
    if (it != registry().end()) factory = it->second;
  }
  if (!factory)
    throw Error("unknown backend \"" + config.backend + "\"", "judge.backend", "use openai, command, local or none");
  return factory(config);
}

}  // namespace rlaif
