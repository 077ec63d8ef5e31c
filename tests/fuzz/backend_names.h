// For the fuzz targets that read judge configuration without linking the backends (libtorch, libcurl): the registry
// lives beside the backends, and the parser only asks whether a name is known. These are the built-in ones
// (src/judge/judge_backend.cpp).
#pragma once

#include <string>

namespace rlaif {
bool judge_backend_registered(const std::string& name) {
  return name == "openai" || name == "command" || name == "local" || name == "none";
}
}  // namespace rlaif
