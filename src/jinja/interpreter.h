// Evaluates a parsed chat template against a context (internal).
#pragma once

#include <string>

#include "jinja/ast.h"

namespace rlaif::jinja {

// Renders `program` with `context` (an object of variables). Throws rlaif::Error naming `where`, the line and the
// construct for runtime errors, unsupported filters/tests/methods, and raise_exception() calls.
std::string render(const Nodes& program, const Value& context, const std::string& where);

}  // namespace rlaif::jinja
