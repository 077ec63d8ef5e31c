// The review task's ground truth and the judge's training rationales (src/demo/review_task.cpp): what
// write_review_task labels its rows with. Internal to the library; the tests check the task against it.
#pragma once

#include <string>

#include "rlaif/demo_task.h"

namespace rlaif {

// The ground truth: `completion` is a well-formed (below), fluent (below) review of the `product` the prompt asked
// for, naming no other product, with the `sentiment` ("positive" | "negative") asked for: a word of that lexicon,
// none of the other's.
bool review_follows(const std::string& sentiment, const std::string& product, const std::string& completion);
// One short sentence: at most 120 characters, ending in '.' or '!', no word used three times or more.
bool review_well_formed(const std::string& completion);
// Written in the task's language: its words (runs of ASCII letters and digits, any case) follow one another as they do
// in some review the task writes — the first word starts one, every next word follows its predecessor in one, the last
// ends one — with a product name wherever a review has its product. So misspellings, stray words, loops and splices
// that no review contains fail.
bool review_fluent(const std::string& completion);
// What a judge should say before its verdict: "asked for <sentiment> <product>, review is garbled" or "..., review is
// <positive|negative|mixed|neutral> <the product it names|nothing>" (the judge model's training rationale: written
// first, it puts the two products side by side, so the verdict compares neighbouring words).
std::string review_rationale(const std::string& sentiment, const std::string& product, const std::string& completion);

// The same check as a regular expression (the rows' "reference").
std::string review_reference_regex(const std::string& sentiment, const std::string& product);

}  // namespace rlaif
