// The review task's ground truth and the judge's training rationales (src/demo/review_task.cpp): what
// write_review_task labels its rows with. Internal to the library; the tests check the task against it.
#pragma once

#include <string>

#include "rlaif/demo_task.h"

namespace rlaif {

// The ground truth: `completion` is a well-formed review (below) with the `sentiment` ("positive" | "negative") the
// prompt asked for: a word of that lexicon, none of the other's.
bool review_follows(const std::string& sentiment, const std::string& completion);
// One short sentence: at most 120 characters, ending in '.' or '!', no word used three times or more.
bool review_well_formed(const std::string& completion);
// What a judge should say before its verdict: "asked for <sentiment>, review is <positive|negative|mixed|neutral|
// garbled>" (the judge model's training rationale).
std::string review_rationale(const std::string& sentiment, const std::string& completion);

// The same check as a regular expression (the rows' "reference").
std::string review_reference_regex(const std::string& sentiment);

}  // namespace rlaif
