// imagescore: which images can a trained CNN be trusted on, and which are worth adding
// to training? Each sub-command lives in its own file and only parses options.
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

#include "common.hpp"
#include "imagescore/dist/dist.hpp"
#include "imagescore/core/error.hpp"
#include "imagescore/core/io.hpp"
#include "imagescore/core/progress.hpp"
#include "imagescore/core/runtime.hpp"
#include "imagescore/core/version.hpp"

namespace {

// OpenMP reads OMP_WAIT_POLICY when the library loads, before main. Spinning workers
// made 2 threads 14x slower when another process shares the cores, so start again
// once with the passive policy unless the user chose a policy.
void ensure_passive_openmp(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY")) return;
  setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
  execv("/proc/self/exe", argv);
  // execv failed (no /proc): carry on with the default policy.
}

// The first Ctrl-C (or SIGTERM, what `timeout` and batch schedulers send) asks the
// running command to stop at its next interruption point, so that temporary files are
// removed on the way out; a second one kills at once (the atomic writes still leave
// nothing under a final name).
volatile std::sig_atomic_t g_stop_signal = 0;
void on_stop_signal(int signal) {
  g_stop_signal = signal;
  imagescore::request_interrupt();
  std::signal(signal, SIG_DFL);
}

// Messages name files, and a file name can hold a newline or terminal escape codes: each
// control character is printed as \xNN, so that an error is one line that cannot fake
// another message.
std::string printable(const std::string& text) {
  std::string out;
  for (unsigned char c : text) {
    if (c < 0x20 || c == 0x7f) {
      char code[5];
      std::snprintf(code, sizeof code, "\\x%02x", c);
      out += code;
    } else {
      out += char(c);
    }
  }
  return out;
}

// Shell convention for a command stopped by a signal: 128 + its number (130 for SIGINT,
// 143 for SIGTERM).
int interrupted_exit_code() { return 128 + (g_stop_signal ? int(g_stop_signal) : SIGINT); }

}  // namespace

// Runs the command line; returns the exit code.
int run_command_line(int argc, char** argv);

int main(int argc, char** argv) {
  ensure_passive_openmp(argv);
  try {
    imagescore::dist::init(argc, argv);
  } catch (const imagescore::Error& e) {
    std::fprintf(stderr, "imagescore: error: %s\n", printable(e.what()).c_str());
    return 1;
  }
  const int code = run_command_line(argc, argv);
  // A failed rank would leave the others waiting in a collective call: end them all.
  if (code != 0 && imagescore::dist::cluster().distributed()) imagescore::dist::abort_all(code);
  imagescore::dist::finalize();
  return code;
}

int run_command_line(int argc, char** argv) {
  imagescore::tune_malloc(true);
  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);
  imagescore::install_mapped_file_fault_handler();

  CLI::App app{"imagescore: score, select and pseudo-label images with a trained CNN"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "imagescore " IMAGESCORE_VERSION);
  using namespace imagescore::cli;
  add_split_command(app);
  add_train_command(app);
  add_eval_command(app);
  add_model_command(app);
  add_profile_command(app);
  add_score_command(app);
  add_select_command(app);
  add_study_command(app);
  add_analyze_command(app);
  add_report_command(app);
  add_selftrain_command(app);
  add_stats_command(app);
  add_assemble_command(app);
  add_detect_command(app);
  add_fuse_command(app);
  add_serve_command(app);
  refuse_empty_numbers(app);
  try {
    app.parse(argc, argv);
    // The command ran: say how its output was made (the deepest parsed sub-command).
    const CLI::App* command = &app;
    while (!command->get_subcommands().empty()) command = command->get_subcommands().front();
    if (command != &app) record_provenance(*command, argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    std::fprintf(stderr, "imagescore: error: %s (see --help)\n", printable(e.what()).c_str());
    return e.get_exit_code();
  } catch (const imagescore::OptionError& e) {
    // The library names the field; the user typed the flag.
    std::string flag = e.field();
    std::replace(flag.begin(), flag.end(), '_', '-');
    std::fprintf(stderr, "imagescore: error: --%s: %s\n", flag.c_str(), printable(e.problem()).c_str());
    return 1;
  } catch (const imagescore::Error& e) {
    if (imagescore::interrupt_requested()) {
      std::fprintf(stderr, "imagescore: interrupted\n");
      return interrupted_exit_code();
    }
    std::fprintf(stderr, "imagescore: error: %s\n", printable(e.what()).c_str());
    return 1;
  } catch (const std::bad_alloc&) {
    // Every size read from a file or an option is bounded before allocating; what is
    // left is a machine with too little memory for the work asked.
    std::string command = app.get_subcommands().empty() ? "" : app.get_subcommands().front()->get_name() + ": ";
    std::fprintf(stderr, "imagescore: error: %sout of memory (lower --batch-size or --threads, or see docs/reliability.md)\n",
                 command.c_str());
    return 1;
  } catch (const std::exception& e) {
    // LibTorch and the standard library can still throw on conditions no check caught.
    std::string message = e.what();
    message = message.substr(0, message.find('\n'));
    std::fprintf(stderr, "imagescore: error: %s\n", printable(message).c_str());
    return 1;
  }
  return 0;
}
