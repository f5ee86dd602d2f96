// Progress reporting on stderr: a redrawn bar on a terminal, plain lines otherwise.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>

#include "imagescore/core/error.hpp"

namespace imagescore {

class Progress {
 public:
  // total: number of items (images) expected; 0 if unknown.
  Progress(std::string label, std::size_t total, bool quiet);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  // Also the interruption point of every long loop: throws Error("interrupted") once
  // request_interrupt() was called.
  void advance(std::size_t items, const std::string& note = "");
  void finish(const std::string& note = "");

  // Global switch set by --quiet.
  static void set_quiet(bool quiet);
  static bool quiet();

 private:
  void draw(bool final_line);
  std::string label_;
  std::size_t total_;
  std::size_t done_ = 0;
  bool quiet_;
  bool tty_;
  bool finished_ = false;
  std::string note_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
};

// Interruption (SIGINT, SIGTERM). The CLI's signal handler calls request_interrupt(),
// which only stores to a lock-free atomic and so is async-signal-safe. Long loops call
// check_interrupted() (Progress::advance does), which throws Interrupted: the stack
// unwinds and the atomic writers remove their temporary files. A program that embeds the
// library and carries on after an interruption calls clear_interrupt().
class Interrupted : public Error {
 public:
  Interrupted() : Error("interrupted") {}
};
void request_interrupt() noexcept;
bool interrupt_requested() noexcept;
void clear_interrupt() noexcept;
void check_interrupted();

}  // namespace imagescore
