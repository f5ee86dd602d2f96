// imagescore: which images can a trained CNN be trusted on, and which are worth adding
// to training? Each sub-command lives in its own file and only parses options.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "common.hpp"
#include "imagescore/error.hpp"
#include "imagescore/runtime.hpp"

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

}  // namespace

int main(int argc, char** argv) {
  ensure_passive_openmp(argv);
  imagescore::tune_malloc(true);

  CLI::App app{"imagescore: score, select and pseudo-label images with a trained CNN"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "imagescore 0.1.0");
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
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    std::fprintf(stderr, "imagescore: error: %s (see --help)\n", e.what());
    return e.get_exit_code();
  } catch (const imagescore::Error& e) {
    std::fprintf(stderr, "imagescore: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    // LibTorch and the standard library can still throw on conditions no check caught.
    std::string message = e.what();
    message = message.substr(0, message.find('\n'));
    std::fprintf(stderr, "imagescore: error: %s\n", message.c_str());
    return 1;
  }
  return 0;
}
