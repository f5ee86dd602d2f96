// End-to-end throughput of the built-in models on synthetic in-memory images:
// plain inference, profile building, scoring and one training epoch, in images/s, and
// what the tuned allocator (imagescore::tune_malloc) gains for inference and training.
//
// The profile and score passes do everything plain inference does plus the tap
// copies and the per-neuron loops, so their ratios to inference show what the method
// costs on top of the forward pass (the goal is >= 0.95). A second table does the same
// for every score of the registry alone: fitting its statistics on the images, then
// scoring them, each as a ratio to plain inference measured in the same rounds.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "bench_source.hpp"
#include "imagescore/data/data.hpp"
#include "imagescore/core/error.hpp"
#include "imagescore/models/model.hpp"
#include "imagescore/score/profile.hpp"
#include "imagescore/core/runtime.hpp"
#include "imagescore/models/device.hpp"
#include "imagescore/score/fitted.hpp"
#include "imagescore/score/registry.hpp"
#include "imagescore/score/score.hpp"
#include "imagescore/train/train.hpp"

namespace imagescore::bench {
namespace {

constexpr int kClasses = 10;
constexpr std::size_t kBatch = 256;  // the profile and score commands' default batch

struct Args {
  std::size_t images = 0;  // 0: a per-model default sized for a 2-core machine
  std::vector<std::string> models = {"small-cnn", "vgg16", "resnet18"};
  bool quick = false;
  int repeats = 3;        // inference, profile and score passes
  int train_repeats = 2;  // training epochs cost 4-6 inference passes each
  std::string device = "cpu";
  bool per_score = true;
};

void usage() {
  std::puts(
      "usage: bench_throughput [--images N] [--models a,b,c] [--repeats R] [--device D] [--quick]\n"
      "  --images N     images per model (default: 4096 small-cnn, 384 vgg16, 256 resnet18)\n"
      "  --models LIST  comma-separated: small-cnn, vgg16, resnet18 (default: all)\n"
      "  --repeats R    runs per measurement, the best reported (default 3; training R-1, at least 1)\n"
      "  --device D     cpu (default), cuda or cuda:N; on a GPU the allocator comparison is skipped\n"
      "  --no-per-score skip the table of every score's fit and scoring throughput\n"
      "  --quick        tiny sizes, one run each: a smoke test");
}

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> parts;
  std::stringstream in(s);
  std::string part;
  while (std::getline(in, part, ','))
    if (!part.empty()) parts.push_back(part);
  return parts;
}

Args parse_args(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "bench_throughput: %s needs a value\n", arg.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (arg == "--images") {
      a.images = std::stoul(value());
    } else if (arg == "--models") {
      a.models = split_commas(value());
    } else if (arg == "--repeats") {
      a.repeats = std::max(1, std::stoi(value()));
      a.train_repeats = std::max(1, a.repeats - 1);
    } else if (arg == "--device") {
      a.device = value();
    } else if (arg == "--no-per-score") {
      a.per_score = false;
    } else if (arg == "--quick") {
      a.quick = true;
    } else if (arg == "--help" || arg == "-h") {
      usage();
      std::exit(0);
    } else {
      std::fprintf(stderr, "bench_throughput: unknown argument '%s'\n", arg.c_str());
      usage();
      std::exit(2);
    }
  }
  if (a.quick) a.repeats = a.train_repeats = 1;
  return a;
}

std::size_t images_for(const Args& a, const std::string& arch) {
  if (a.images > 0) return a.images;
  if (a.quick) return arch == "small-cnn" ? 512 : 64;
  if (arch == "small-cnn") return 4096;
  return arch == "vgg16" ? 384 : 256;
}

ImageShape shape_for(const std::string& arch) { return arch == "small-cnn" ? ImageShape{1, 28, 28} : ImageShape{3, 32, 32}; }

std::string loadavg() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return a + " " + b + " " + c;
}

double seconds_of(const std::function<void()>& f) {
  auto start = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// One measured thing: `run` passes over `images` images; `setup` (untimed) runs before.
struct Phase {
  Phase(std::string label_, std::size_t images_, std::function<void()> run_, std::function<void()> setup_ = [] {})
      : label(std::move(label_)), images(images_), run(std::move(run_)), setup(std::move(setup_)) {}
  std::string label;
  std::size_t images;
  std::function<void()> run, setup;
  double best = 0;  // images/s of the fastest run
  double faults = -1;  // fewest minor page faults per image over the runs
  std::string runs;
};

long minor_faults() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_minflt;
}

// Runs the phases round-robin, `repeats` rounds, and keeps each one's best images/s:
// interleaving exposes all phases to the same background load, and the best run is the
// least disturbed one (other processes only ever slow a run down).
void measure(std::vector<Phase>& phases, int repeats) {
  for (int r = 0; r < repeats; ++r)
    for (auto& p : phases) {
      p.setup();
      const long faults_before = minor_faults();
      double rate = double(p.images) / seconds_of(p.run);
      const double faults = double(minor_faults() - faults_before) / double(p.images);
      p.best = std::max(p.best, rate);
      p.faults = p.faults < 0 ? faults : std::min(p.faults, faults);
      char buf[32];
      std::snprintf(buf, sizeof buf, " %.1f", rate);
      p.runs += buf;
    }
  for (const auto& p : phases)
    std::printf("  %-28s best %8.1f img/s  (runs:%s)  %.0f page faults/img\n", p.label.c_str(), p.best, p.runs.c_str(),
                p.faults);
  std::fflush(stdout);
}

void run_inference(Model& model, const ImageSource& source, const std::vector<std::size_t>& tap_ids = {}) {
  LoaderOptions lo;
  lo.batch_size = kBatch;
  lo.threads = 0;
  BatchLoader loader(source, model.meta().normalization, lo);
  Batch batch;
  while (loader.next(batch)) {
    auto out = model.forward(batch, tap_ids);
    if (out.batch != batch.size()) fail("bench", "short forward output");
  }
}

void run_training(TrainableModel& model, const ImageSource& source) {
  TrainOptions o;
  o.epochs = 1;
  o.quiet = true;
  o.threads = 0;
  train_model(model, source, o);
}

struct MainRow {
  std::string arch;
  double inference = 0, profile = 0, score = 0, train = 0;
};

struct BreakdownRow {
  std::string arch;
  double inference = 0, forward_taps = 0, add_only = 0, score_only = 0;
};

struct AllocRow {
  std::string arch, phase;
  double default1 = 0, tuned = 0, default2 = 0;                     // images/s
  double default1_faults = 0, tuned_faults = 0, default2_faults = 0;  // minor page faults per image
};

// One score alone: its fit on the images and its scoring pass, against inference.
struct ScoreThroughput {
  std::string arch, score;
  double inference = 0, fit = 0, scoring = 0;  // images/s; 0: not possible with this model
  std::string note;
};

// Fits what `name` needs on `source` (a one-tap profile for the scores of the logits).
ReferenceSet fit_for(Model& model, const ImageSource& source, const ScoreInfo& info) {
  if (info.fit.empty()) {
    ProfileRunOptions po;
    po.quiet = true;
    po.taps = {"output"};
    return reference_of(build_profiles(model, source, po));
  }
  FitRunOptions fo;
  fo.scores = {info.name};
  fo.quiet = true;
  return fit_reference(model, source, fo);
}

void measure_scores(Model& model, const ImageSource& source, std::size_t n, int repeats, const std::string& arch,
                    std::vector<ScoreThroughput>& rows) {
  std::printf("  every score alone (fit, then score the same %zu images):\n", n);
  for (const ScoreInfo& info : score_registry()) {
    ScoreThroughput row{arch, info.name};
    ScoreRunOptions so;
    so.quiet = true;
    so.scores = {info.name};
    ReferenceSet reference;
    try {
      reference = fit_for(model, source, info);
      score_images(model, reference, source, so, [](const imagescore::ScoreRow&) {});  // warm-up and check
    } catch (const Error& e) {
      row.note = e.what();
      rows.push_back(row);
      std::printf("  %-16s n/a: %s\n", info.name.c_str(), e.what());
      continue;
    }
    std::vector<Phase> phases = {
        {"inference", n, [&] { run_inference(model, source); }},
        {info.name + " fit", n, [&] { reference = fit_for(model, source, info); }},
        {info.name + " score", n, [&] { score_images(model, reference, source, so, [](const imagescore::ScoreRow&) {}); }},
    };
    measure(phases, repeats);
    row.inference = phases[0].best;
    row.fit = phases[1].best;
    row.scoring = phases[2].best;
    rows.push_back(row);
  }
}

void print_score_table(const std::vector<ScoreThroughput>& rows) {
  if (rows.empty()) return;
  std::puts("\n\n### Every score alone (fit, then scoring, as ratios to inference in the same rounds)\n");
  std::puts("| model | score | inference img/s | fit img/s | fit/inference | score img/s | score/inference |");
  std::puts("| --- | --- | ---: | ---: | ---: | ---: | ---: |");
  for (const auto& r : rows) {
    if (!r.note.empty()) {
      std::printf("| %s | %s | | | n/a | | n/a (%s) |\n", r.arch.c_str(), r.score.c_str(), r.note.c_str());
      continue;
    }
    std::printf("| %s | %s | %.1f | %.1f | %.3f | %.1f | %.3f |\n", r.arch.c_str(), r.score.c_str(), r.inference, r.fit,
                r.fit / r.inference, r.scoring, r.scoring / r.inference);
  }
  std::fflush(stdout);
}

void print_tables(const std::vector<MainRow>& main_rows, const std::vector<BreakdownRow>& breakdown_rows,
                  const std::vector<AllocRow>& alloc_rows) {
  std::puts("\n### Throughput (tuned allocator, as the imagescore command runs)\n");
  std::puts("| model | inference img/s | profile img/s | profile/inference | score img/s | score/inference | train img/s |");
  std::puts("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
  for (const auto& r : main_rows)
    std::printf("| %s | %.1f | %.1f | %.3f | %.1f | %.3f | %.1f |\n", r.arch.c_str(), r.inference, r.profile,
                r.profile / r.inference, r.score, r.score / r.inference, r.train);
  for (const auto& r : main_rows) {
    if (r.profile / r.inference < 0.95) std::printf("\nNOTE: %s profile/inference %.3f is below 0.95", r.arch.c_str(), r.profile / r.inference);
    if (r.score / r.inference < 0.95) std::printf("\nNOTE: %s score/inference %.3f is below 0.95", r.arch.c_str(), r.score / r.inference);
  }
  std::puts("\n\n### Where the time goes (ms per image; the per-neuron loops timed alone on one batch)\n");
  std::puts("| model | forward, no taps | tap recording | ProfileBuilder::add | ImageScorer::score | "
            "predicted profile/inference | predicted score/inference |");
  std::puts("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
  for (const auto& r : breakdown_rows) {
    const double fwd = 1e3 / r.inference, taps = 1e3 / r.forward_taps - fwd, add = 1e3 / r.add_only,
                 score = 1e3 / r.score_only;
    std::printf("| %s | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f |\n", r.arch.c_str(), fwd, taps, add, score,
                fwd / (fwd + taps + add), fwd / (fwd + taps + score));
  }
  if (alloc_rows.empty()) return;
  std::puts("\n\n### Allocator: glibc default vs tune_malloc(true)\n");
  std::puts("| model | phase | default img/s | tuned img/s | tuned/default | default again img/s | "
            "page faults/img default / tuned / again |");
  std::puts("| --- | --- | ---: | ---: | ---: | ---: | ---: |");
  for (const auto& r : alloc_rows)
    std::printf("| %s | %s | %.1f | %.1f | %.2f | %.1f | %.0f / %.0f / %.0f |\n", r.arch.c_str(), r.phase.c_str(),
                r.default1, r.tuned, r.tuned / r.default1, r.default2, r.default1_faults, r.tuned_faults,
                r.default2_faults);
  std::fflush(stdout);
}

int run(const Args& args) {
  const int threads = set_threads(0);
  tune_malloc(true);
  set_device(args.device);
  std::printf("bench_throughput: device %s, %d threads, %d repeat(s) per measurement (best reported), batch %zu "
              "(training %zu), OMP_WAIT_POLICY=%s\n",
              args.device.c_str(), threads, args.repeats, kBatch, TrainOptions{}.batch_size,
              std::getenv("OMP_WAIT_POLICY") ? std::getenv("OMP_WAIT_POLICY") : "(unset)");
  std::printf("load average at start: %s\n", loadavg().c_str());
  const auto start = std::chrono::steady_clock::now();

  std::vector<MainRow> main_rows;
  std::vector<BreakdownRow> breakdown_rows;
  std::vector<AllocRow> alloc_rows;
  std::vector<ScoreThroughput> score_rows;
  for (const auto& arch : args.models) {
    const std::size_t n = images_for(args, arch);
    const ImageShape shape = shape_for(arch);
    RandomSource source(shape, n, kClasses, 7);
    const Normalization norm{std::vector<float>(std::size_t(shape.channels), 0.5f),
                             std::vector<float>(std::size_t(shape.channels), 0.25f)};
    auto model = create_model(arch, shape, source.class_names(), norm, 1);
    std::printf("\n%s: %zu images of %dx%dx%d, %zu taps\n", arch.c_str(), n, shape.channels, shape.height,
                shape.width, model->taps().size());
    // Warm-up (untimed): the first pass at each batch size creates the oneDNN primitives.
    run_inference(*model, source);

    MainRow row;
    row.arch = arch;
    BreakdownRow parts;
    parts.arch = arch;
    const auto tap_ids = resolve_taps(*model, {});
    ProfileRunOptions po;
    po.quiet = true;
    po.threads = 0;
    ScoreRunOptions so;
    so.quiet = true;
    so.threads = 0;
    ProfileSet profiles;
    std::vector<Phase> passes = {
        {"inference", n, [&] { run_inference(*model, source); }},
        // Where the extra time of profile and score goes, 1: recording the taps.
        {"forward with all taps", n, [&] { run_inference(*model, source, tap_ids); }},
        {"profile (all taps)", n, [&] { profiles = build_profiles(*model, source, po); }},
        {"score (all taps)", n, [&] { score_images(*model, profiles, source, so, [](const ScoreRow&) {}); }},
    };
    measure(passes, args.repeats);
    row.inference = parts.inference = passes[0].best;
    parts.forward_taps = passes[1].best;
    row.profile = passes[2].best;
    row.score = passes[3].best;

    // 2: each per-neuron loop alone, on one recorded batch.
    {
      LoaderOptions lo;
      lo.batch_size = kBatch;
      BatchLoader loader(source, model->meta().normalization, lo);
      Batch batch;
      loader.next(batch);
      const auto out = model->forward(batch, tap_ids);
      ProfileBuilder builder(*model, tap_ids, po.profile);
      ImageScorer scorer(profiles, so.image_score);
      std::vector<const float*> ptrs(tap_ids.size());
      double sink = 0;
      std::vector<Phase> loops = {
          {"ProfileBuilder::add alone", batch.size(), [&] { builder.add(out, batch.labels); }},
          {"ImageScorer::score alone", batch.size(), [&] {
             for (std::size_t i = 0; i < out.batch; ++i) {
               for (std::size_t l = 0; l < ptrs.size(); ++l) ptrs[l] = out.taps[l].row(i);
               sink += scorer.score(std::size_t(batch.labels[i]), ptrs, nullptr);
             }
           }},
      };
      measure(loops, args.repeats);
      if (sink == 42.4242) std::puts("");  // keeps the scoring from being optimised away
      parts.add_only = loops[0].best;
      parts.score_only = loops[1].best;
    }
    breakdown_rows.push_back(parts);

    if (args.per_score) measure_scores(*model, source, n, args.repeats, arch, score_rows);

    std::vector<Phase> training = {{"train (1 epoch)", n, [&] { run_training(*model, source); }}};
    measure(training, args.train_repeats);
    row.train = training[0].best;
    main_rows.push_back(row);
    if (args.device != "cpu") continue;

    // The allocator: in each round default, tuned, then default again (to show that the
    // first default run was not merely a cold start).
    auto plain = [] { tune_malloc(false); };
    auto tuned = [] { tune_malloc(true); };
    auto infer = [&] { run_inference(*model, source); };
    auto train = [&] { run_training(*model, source); };
    std::vector<Phase> alloc_inference = {{"inference, default malloc", n, infer, plain},
                                          {"inference, tuned malloc", n, infer, tuned},
                                          {"inference, default again", n, infer, plain}};
    measure(alloc_inference, args.repeats);
    std::vector<Phase> alloc_train = {{"train, default malloc", n, train, plain},
                                      {"train, tuned malloc", n, train, tuned},
                                      {"train, default again", n, train, plain}};
    measure(alloc_train, args.train_repeats);
    tune_malloc(true);
    for (const auto* set : {&alloc_inference, &alloc_train}) {
      const auto& ph = *set;
      alloc_rows.push_back({arch, set == &alloc_inference ? "inference" : "train", ph[0].best, ph[1].best, ph[2].best,
                            ph[0].faults, ph[1].faults, ph[2].faults});
    }
  }
  print_tables(main_rows, breakdown_rows, alloc_rows);
  print_score_table(score_rows);
  std::printf("\nload average at end: %s; total %.0f s\n", loadavg().c_str(),
              std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  return 0;
}

// OpenMP reads OMP_WAIT_POLICY when LibTorch loads, before main; the imagescore command
// re-executes itself with the passive policy, so do the same to measure what it runs.
void ensure_passive_openmp(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY")) return;
  setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
  execv("/proc/self/exe", argv);
}

}  // namespace
}  // namespace imagescore::bench

int main(int argc, char** argv) {
  using namespace imagescore::bench;
  Args args = parse_args(argc, argv);
  for (const auto& m : args.models)
    if (m != "small-cnn" && m != "vgg16" && m != "resnet18") {
      std::fprintf(stderr, "bench_throughput: unknown model '%s' (expected small-cnn, vgg16, resnet18)\n", m.c_str());
      return 2;
    }
  ensure_passive_openmp(argv);
  try {
    return run(args);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_throughput: error: %s\n", e.what());
    return 1;
  }
}
