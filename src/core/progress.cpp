#include "rlaif/progress.h"

#include <unistd.h>

#include <cstdio>

namespace rlaif {

std::string format_duration(double s) {
  if (s < 0 || s != s) return "?";
  char buf[32];
  long t = static_cast<long>(s + 0.5);
  if (t >= 3600)
    std::snprintf(buf, sizeof buf, "%ldh%02ldm", t / 3600, (t % 3600) / 60);
  else if (t >= 60)
    std::snprintf(buf, sizeof buf, "%ldm%02lds", t / 60, t % 60);
  else
    std::snprintf(buf, sizeof buf, "%lds", t);
  return buf;
}

Progress::Progress(std::string label, int64_t total, std::string unit, bool enabled)
    : label_(std::move(label)),
      unit_(std::move(unit)),
      total_(total),
      enabled_(enabled),
      tty_(::isatty(2) == 1),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

Progress::~Progress() { finish(); }

void Progress::advance(int64_t n) {
  done_ += n;
  auto now = std::chrono::steady_clock::now();
  double since = std::chrono::duration<double>(now - last_draw_).count();
  if (since >= (tty_ ? 0.2 : 10.0)) draw(false);
}

void Progress::finish() {
  if (finished_) return;
  finished_ = true;
  draw(true);
}

void Progress::draw(bool final) {
  if (!enabled_) return;
  auto now = std::chrono::steady_clock::now();
  last_draw_ = now;
  double el = std::chrono::duration<double>(now - start_).count();
  double rate = el > 0 ? done_ / el : 0;
  std::string eta = (total_ > 0 && rate > 0) ? format_duration((total_ - done_) / rate) : "?";
  char line[512];
  if (total_ > 0) {
    const int width = 30;
    int filled = static_cast<int>(width * static_cast<double>(done_) / total_);
    if (filled > width) filled = width;
    std::string bar(filled, '#');
    bar += std::string(width - filled, '.');
    std::snprintf(line, sizeof line, "%s [%s] %lld/%lld %s  %.1f %s/s  elapsed %s  eta %s  %s", label_.c_str(),
                  bar.c_str(), (long long)done_, (long long)total_, unit_.c_str(), rate, unit_.c_str(),
                  format_duration(el).c_str(), final ? "0s" : eta.c_str(), extra_.c_str());
  } else {
    std::snprintf(line, sizeof line, "%s %lld %s  %.1f %s/s  elapsed %s  %s", label_.c_str(), (long long)done_,
                  unit_.c_str(), rate, unit_.c_str(), format_duration(el).c_str(), extra_.c_str());
  }
  if (tty_)
    std::fprintf(stderr, "\r\033[K%s%s", line, final ? "\n" : "");
  else
    std::fprintf(stderr, "%s\n", line);
  std::fflush(stderr);
}

}  // namespace rlaif
