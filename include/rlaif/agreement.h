// Agreement statistics for judging the judge: rank correlations with ties, accuracy at a threshold, Cohen's kappa.
#pragma once

#include <vector>

namespace rlaif {

// Pearson correlation; 0 when either side is constant.
double pearson(const std::vector<double>& x, const std::vector<double>& y);
// Spearman's rho: Pearson correlation of the ranks, ties given their average rank (as scipy.stats.spearmanr).
double spearman(const std::vector<double>& x, const std::vector<double>& y);
// Kendall's tau-b, which corrects for ties (as scipy.stats.kendalltau). O(n^2); 0 when a side is constant.
double kendall_tau_b(const std::vector<double>& x, const std::vector<double>& y);
// Cohen's kappa of two labelings (values compared for equality); 1 for perfect agreement, 0 for chance level.
double cohen_kappa(const std::vector<int>& a, const std::vector<int>& b);

}  // namespace rlaif
