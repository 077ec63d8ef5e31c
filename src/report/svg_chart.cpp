#include "report/svg_chart.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace rlaif {
namespace {

// Colour-blind-safe palette (Okabe-Ito).
const char* const kColours[] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"};

constexpr double kWidth = 560, kHeight = 280;
constexpr double kLeft = 72, kRight = 16, kTop = 34, kBottom = 64;

std::string fmt(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

// A tick label: as few digits as tell the ticks apart.
std::string tick_label(double v, double step) {
  char buf[32];
  if (std::fabs(v) < step * 1e-6) v = 0;
  int decimals = step >= 1 ? 0 : static_cast<int>(std::ceil(-std::log10(step) - 1e-9));
  if (std::fabs(v) >= 1e5 || (v != 0 && std::fabs(v) < 1e-4))
    std::snprintf(buf, sizeof buf, "%.1e", v);
  else
    std::snprintf(buf, sizeof buf, "%.*f", std::min(decimals, 6), v);
  return buf;
}

std::string value_label(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

// Rounded tick values covering [lo, hi] with about `target` steps of 1, 2 or 5 x 10^k.
std::vector<double> nice_ticks(double lo, double hi, int target) {
  if (!(hi > lo)) {  // one value: a unit range around it
    double pad = lo == 0 ? 1 : std::fabs(lo) * 0.1;
    lo -= pad, hi += pad;
  }
  const double raw = (hi - lo) / std::max(1, target);
  const double mag = std::pow(10, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * mag >= raw) {
      step = m * mag;
      break;
    }
  std::vector<double> ticks;
  for (double t = std::floor(lo / step) * step; t <= hi + step * 0.5 && ticks.size() < 50; t += step)
    ticks.push_back(t);
  if (ticks.back() < hi) ticks.push_back(ticks.back() + step);
  return ticks;
}

}  // namespace

std::string html_escape(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string render_chart_svg(const Chart& chart) {
  double x0 = 1e300, x1 = -1e300, y0 = 1e300, y1 = -1e300;
  size_t n_points = 0;
  for (const auto& s : chart.series)
    for (const auto& [x, y] : s.points) {
      if (!std::isfinite(x) || !std::isfinite(y)) continue;
      x0 = std::min(x0, x), x1 = std::max(x1, x), y0 = std::min(y0, y), y1 = std::max(y1, y);
      ++n_points;
    }
  std::string svg = "<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"" + fmt(kWidth) +
                    "\" height=\"" + fmt(kHeight) + "\" viewBox=\"0 0 " + fmt(kWidth) + " " + fmt(kHeight) +
                    "\" role=\"img\" aria-label=\"" + html_escape(chart.title) + "\" data-points=\"" +
                    std::to_string(n_points) + "\">\n";
  svg += "<text x=\"" + fmt(kWidth / 2) + "\" y=\"20\" text-anchor=\"middle\" class=\"chart-title\">" +
         html_escape(chart.title) + "</text>\n";
  if (n_points == 0) {
    svg += "<text x=\"" + fmt(kWidth / 2) + "\" y=\"" + fmt(kHeight / 2) +
           "\" text-anchor=\"middle\" class=\"no-data\">not logged in this run</text>\n</svg>";
    return svg;
  }
  auto xt = nice_ticks(x0, x1, 6), yt = nice_ticks(y0, y1, 5);
  const double xa = xt.front(), xb = xt.back(), ya = yt.front(), yb = yt.back();
  const double pw = kWidth - kLeft - kRight, ph = kHeight - kTop - kBottom;
  auto px = [&](double x) { return kLeft + (x - xa) / (xb - xa) * pw; };
  auto py = [&](double y) { return kTop + ph - (y - ya) / (yb - ya) * ph; };

  // Grid and axes.
  svg += "<g class=\"grid\">";
  for (double t : yt)
    svg += "<line x1=\"" + fmt(kLeft) + "\" y1=\"" + fmt(py(t)) + "\" x2=\"" + fmt(kLeft + pw) + "\" y2=\"" +
           fmt(py(t)) + "\"/>";
  svg += "</g>\n<g class=\"axis\">";
  svg += "<line x1=\"" + fmt(kLeft) + "\" y1=\"" + fmt(kTop + ph) + "\" x2=\"" + fmt(kLeft + pw) + "\" y2=\"" +
         fmt(kTop + ph) + "\"/>";
  svg += "<line x1=\"" + fmt(kLeft) + "\" y1=\"" + fmt(kTop) + "\" x2=\"" + fmt(kLeft) + "\" y2=\"" + fmt(kTop + ph) +
         "\"/>";
  const double ystep = yt.size() > 1 ? yt[1] - yt[0] : 1, xstep = xt.size() > 1 ? xt[1] - xt[0] : 1;
  for (double t : yt)
    svg += "<text x=\"" + fmt(kLeft - 6) + "\" y=\"" + fmt(py(t) + 4) + "\" text-anchor=\"end\">" +
           tick_label(t, ystep) + "</text>";
  for (double t : xt)
    svg += "<text x=\"" + fmt(px(t)) + "\" y=\"" + fmt(kTop + ph + 16) + "\" text-anchor=\"middle\">" +
           tick_label(t, xstep) + "</text>";
  svg += "<text x=\"" + fmt(kLeft + pw / 2) + "\" y=\"" + fmt(kTop + ph + 32) + "\" text-anchor=\"middle\">" +
         html_escape(chart.x_label) + "</text>";
  if (!chart.y_label.empty())
    svg += "<text transform=\"translate(12 " + fmt(kTop + ph / 2) + ") rotate(-90)\" text-anchor=\"middle\">" +
           html_escape(chart.y_label) + "</text>";
  svg += "</g>\n";

  // Series, then the legend below the plot.
  double lx = kLeft;
  for (size_t k = 0; k < chart.series.size(); ++k) {
    const auto& s = chart.series[k];
    const std::string colour = kColours[k % (sizeof kColours / sizeof *kColours)];
    std::string pts;
    for (const auto& [x, y] : s.points)
      if (std::isfinite(x) && std::isfinite(y)) pts += fmt(px(x)) + "," + fmt(py(y)) + " ";
    if (pts.empty()) continue;
    svg += "<g class=\"series\" data-name=\"" + html_escape(s.name) + "\">";
    if (s.points.size() > 1)
      svg += "<polyline fill=\"none\" stroke=\"" + colour + "\" stroke-width=\"1.6\" points=\"" + pts + "\"/>";
    if (s.markers || s.points.size() == 1)
      for (const auto& [x, y] : s.points)
        if (std::isfinite(x) && std::isfinite(y))
          svg += "<circle cx=\"" + fmt(px(x)) + "\" cy=\"" + fmt(py(y)) + "\" r=\"3.2\" fill=\"" + colour +
                 "\"><title>" + html_escape(s.name) + " at " + chart.x_label + " " + value_label(x) + ": " +
                 value_label(y) + "</title></circle>";
    svg += "</g>\n";
    const double ly = kHeight - 12;
    svg += "<rect x=\"" + fmt(lx) + "\" y=\"" + fmt(ly - 9) + "\" width=\"12\" height=\"4\" fill=\"" + colour + "\"/>";
    svg += "<text x=\"" + fmt(lx + 16) + "\" y=\"" + fmt(ly - 4) + "\" class=\"legend\">" + html_escape(s.name) +
           "</text>\n";
    lx += 26 + 6.2 * static_cast<double>(s.name.size());
  }
  return svg + "</svg>";
}

}  // namespace rlaif
