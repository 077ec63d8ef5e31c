// The judge's tables of a TOML file ([judge], [rubric], [template], [[graders]], [[panel]]), shared by judge.toml and run.toml.
// Internal to the library.
#pragma once

#include <string>

#include "core/toml_reader.h"
#include "rlaif/judge.h"

namespace rlaif {

constexpr const char* kJudgeTables = "judge, rubric, template, graders, panel";

// Reads the judge tables of `top` (marking them seen); does not validate.
JudgeConfig read_judge_tables(TomlReader& top, const std::string& path);

}  // namespace rlaif
