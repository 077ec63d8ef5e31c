#include "rlaif/agreement.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <stdexcept>

namespace rlaif {
namespace {

void check(size_t a, size_t b) {
  if (a != b) throw std::invalid_argument("agreement statistics need two lists of the same length");
}

std::vector<double> average_ranks(const std::vector<double>& v) {
  std::vector<size_t> order(v.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return v[a] < v[b]; });
  std::vector<double> rank(v.size());
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    while (j + 1 < order.size() && v[order[j + 1]] == v[order[i]]) ++j;
    double r = (static_cast<double>(i) + static_cast<double>(j)) / 2 + 1;
    for (size_t k = i; k <= j; ++k) rank[order[k]] = r;
    i = j + 1;
  }
  return rank;
}

}  // namespace

double pearson(const std::vector<double>& x, const std::vector<double>& y) {
  check(x.size(), y.size());
  const double n = static_cast<double>(x.size());
  if (x.size() < 2) return 0;
  double mx = std::accumulate(x.begin(), x.end(), 0.0) / n, my = std::accumulate(y.begin(), y.end(), 0.0) / n;
  double sxy = 0, sxx = 0, syy = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    sxy += (x[i] - mx) * (y[i] - my);
    sxx += (x[i] - mx) * (x[i] - mx);
    syy += (y[i] - my) * (y[i] - my);
  }
  return sxx > 0 && syy > 0 ? sxy / std::sqrt(sxx * syy) : 0;
}

double spearman(const std::vector<double>& x, const std::vector<double>& y) {
  check(x.size(), y.size());
  return pearson(average_ranks(x), average_ranks(y));
}

double kendall_tau_b(const std::vector<double>& x, const std::vector<double>& y) {
  check(x.size(), y.size());
  double concordant = 0, discordant = 0, ties_x = 0, ties_y = 0;
  for (size_t i = 0; i < x.size(); ++i)
    for (size_t j = i + 1; j < x.size(); ++j) {
      double dx = x[i] - x[j], dy = y[i] - y[j];
      if (dx == 0 && dy == 0) continue;  // tied in both: counted in neither denominator term
      if (dx == 0)
        ++ties_x;
      else if (dy == 0)
        ++ties_y;
      else if ((dx > 0) == (dy > 0))
        ++concordant;
      else
        ++discordant;
    }
  double denom = std::sqrt((concordant + discordant + ties_x) * (concordant + discordant + ties_y));
  return denom > 0 ? (concordant - discordant) / denom : 0;
}

double cohen_kappa(const std::vector<int>& a, const std::vector<int>& b) {
  check(a.size(), b.size());
  if (a.empty()) return 0;
  const double n = static_cast<double>(a.size());
  std::map<int, double> pa, pb;
  double agree = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    agree += a[i] == b[i];
    pa[a[i]] += 1 / n;
    pb[b[i]] += 1 / n;
  }
  double po = agree / n, pe = 0;
  for (const auto& [k, p] : pa) pe += p * (pb.count(k) ? pb[k] : 0);
  return pe < 1 ? (po - pe) / (1 - pe) : (po == 1 ? 1 : 0);
}

}  // namespace rlaif
