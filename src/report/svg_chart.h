// Line charts drawn as inline SVG: no script, no font file, nothing fetched — the report opens offline anywhere.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace rlaif {

struct ChartSeries {
  std::string name;
  std::vector<std::pair<double, double>> points;  // (x, y), any order of x is kept as given
  bool markers = false;                           // draw each point as a dot (few points, e.g. evaluations)
};

struct Chart {
  std::string title, x_label = "step", y_label;
  std::vector<ChartSeries> series;
};

// An <svg class="chart"> of fixed size with axes, "nice" ticks, one coloured polyline per series, a legend, and a
// <title> on each dot for its value. A chart without any point renders a "no data" note instead of axes.
std::string render_chart_svg(const Chart& chart);

// Text safe inside HTML/SVG elements and attributes.
std::string html_escape(const std::string& s);

}  // namespace rlaif
