#include "env/command_env.h"
#include "env/openenv_env.h"
#include "env/tools_env.h"

namespace rlaif {

std::unique_ptr<Environment> make_environment(const EnvConfig& config) {
  config.validate("env");
  if (config.type == "openenv") return std::make_unique<OpenEnvEnvironment>(config);
  if (config.type == "tools") return std::make_unique<ToolsEnvironment>(config);
  return std::make_unique<CommandEnvironment>(config);
}

}  // namespace rlaif
