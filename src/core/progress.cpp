#include "imagescore/core/progress.hpp"

#include <unistd.h>

#include <atomic>
#include <cstdio>

#include "imagescore/core/error.hpp"

namespace imagescore {
namespace {
std::atomic<bool> g_quiet{false};
std::atomic<bool> g_interrupted{false};
static_assert(std::atomic<bool>::is_always_lock_free, "set from a signal handler");

std::string format_duration(double seconds) {
  if (!(seconds >= 0) || seconds > 1e7) return "?";
  int s = int(seconds + 0.5);
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%d:%02d:%02d", s / 3600, (s / 60) % 60, s % 60);
  else
    std::snprintf(buf, sizeof buf, "%d:%02d", s / 60, s % 60);
  return buf;
}
}  // namespace

void request_interrupt() noexcept { g_interrupted = true; }
bool interrupt_requested() noexcept { return g_interrupted; }
void clear_interrupt() noexcept { g_interrupted = false; }
void check_interrupted() {
  if (g_interrupted) throw Interrupted();
}

void Progress::set_quiet(bool quiet) { g_quiet = quiet; }
bool Progress::quiet() { return g_quiet; }

Progress::Progress(std::string label, std::size_t total, bool quiet)
    : label_(std::move(label)),
      total_(total),
      quiet_(quiet || g_quiet),
      tty_(::isatty(STDERR_FILENO) == 1),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

Progress::~Progress() {
  // A bar left mid-line by an exception still ends its line.
  if (!finished_ && !quiet_ && tty_ && done_ > 0) std::fputc('\n', stderr);
}

void Progress::advance(std::size_t items, const std::string& note) {
  check_interrupted();
  done_ += items;
  if (!note.empty()) note_ = note;
  if (quiet_) return;
  auto now = std::chrono::steady_clock::now();
  // Redraw a terminal bar 10 times a second; plain lines (logs) every 10 seconds.
  double min_gap = tty_ ? 0.1 : 10.0;
  if (std::chrono::duration<double>(now - last_draw_).count() >= min_gap) {
    last_draw_ = now;
    draw(false);
  }
}

void Progress::finish(const std::string& note) {
  if (finished_) return;
  finished_ = true;
  if (!note.empty()) note_ = note;
  if (!quiet_) draw(true);
}

void Progress::draw(bool final_line) {
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  double rate = elapsed > 0 ? double(done_) / elapsed : 0.0;
  std::string line = label_;
  char buf[160];
  if (total_ > 0) {
    double frac = std::min(1.0, double(done_) / double(total_));
    if (tty_) {
      const int width = 24;
      int filled = int(frac * width);
      line += " [" + std::string(std::size_t(filled), '#') + std::string(std::size_t(width - filled), '.') + "]";
    }
    double eta = rate > 0 ? double(total_ - std::min(done_, total_)) / rate : -1;
    std::snprintf(buf, sizeof buf, " %3d%% %zu/%zu %.0f img/s %s %s", int(frac * 100), done_, total_, rate,
                  final_line ? "in" : "ETA", format_duration(final_line ? elapsed : eta).c_str());
  } else {
    std::snprintf(buf, sizeof buf, " %zu %.0f img/s %s", done_, rate, format_duration(elapsed).c_str());
  }
  line += buf;
  if (!note_.empty()) line += "  " + note_;
  if (tty_)
    std::fprintf(stderr, "\r\033[K%s%s", line.c_str(), final_line ? "\n" : "");
  else
    std::fprintf(stderr, "%s\n", line.c_str());
  std::fflush(stderr);
}

}  // namespace imagescore
