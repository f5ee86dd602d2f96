// imagescore profile: build per-class (or global) profiles; `profile merge` joins shards.
#include "common.hpp"
#include "imagescore/core/error.hpp"
#include "imagescore/core/partition.hpp"
#include "imagescore/models/model.hpp"
#include "imagescore/pipeline/profile_and_score.hpp"
#include "imagescore/score/fitted.hpp"
#include "imagescore/data/split.hpp"

namespace imagescore::cli {
namespace {

void report_exclusions(const ReferenceSet& set) {
  if (const ProfileSet* profiles = set.profiles())
    for (const auto& line : profiles->exclusions()) std::fprintf(stderr, "excluded from the score: %s\n", line.c_str());
}

nlohmann::json describe(const ReferenceSet& set, const std::string& out) {
  auto summary = set.summary();
  summary["out"] = out;
  return summary;
}

}  // namespace

void add_profile_command(CLI::App& app) {
  struct Options {
    std::string model, preprocess;
    DataOptions data;
    std::string out;
    FitRunOptions run;
    std::string norm = "linf";
    std::string scale = "mean";
    std::string shard = "1/1";
    std::vector<std::string> merge_inputs;
    std::string merge_out;
    std::uint64_t merge_max_bytes = 0;
  };
  auto opt = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("profile",
                                 "Fit the reference set: the image score's 'correct activation' profiles and the other fitted scores");
  cmd->add_option("--model", opt->model, "Model checkpoint or TorchScript file");
  cmd->add_option("--preprocess", opt->preprocess, "TorchScript: preprocessing JSON (default: MODEL.json)");
  add_data_options(*cmd, opt->data, "train", false);
  cmd->add_option("--out", opt->out, "Profile file to write");
  cmd->add_option("--scores", opt->run.scores,
                  "Fitted scores to fit (comma-separated): image_score, knn, trust, mahalanobis, rel_mahalanobis, nac "
                  "(default: all of them; nac for built-in models only; only image_score with --global)")
      ->delimiter(',');
  cmd->add_option("--taps", opt->run.fit.taps, "Image score: taps to use (default: all; see `model info`)")->delimiter(',');
  cmd->add_option("--feature-tap", opt->run.fit.feature_tap,
                  "knn, trust, mahalanobis: the tap of features (default: the classifier's input, else the last tap)");
  cmd->add_option("--knn-k", opt->run.fit.knn_k, "knn: the k-th neighbour (default: reference images / 1000, at least 1)");
  cmd->add_option("--knn-index", opt->run.fit.knn_index,
                  "knn, trust: nearest-neighbour search, exact or ivf (approximate, for large reference sets)")
      ->default_val("exact");
  cmd->add_option("--knn-nprobe", opt->run.fit.knn_nprobe, "knn, trust with --knn-index ivf: lists searched per query")
      ->default_val(64);
  cmd->add_option("--trust-k", opt->run.fit.trust_k, "trust: neighbours of the density filter")->default_val(10);
  cmd->add_option("--trust-alpha", opt->run.fit.trust_alpha, "trust: share of each class dropped as low density")->default_val(0.0);
  cmd->add_option("--shrinkage", opt->run.fit.shrinkage, "mahalanobis: covariance shrinkage towards (trace/d) I")->default_val(1e-3);
  cmd->add_option("--nac-bins", opt->run.fit.nac.bins, "nac: interval edges of a neuron's state (M)")->default_val(50);
  cmd->add_option("--nac-min-count", opt->run.fit.nac.min_count, "nac: images that cover an interval fully (O)")->default_val(50.0);
  cmd->add_option("--nac-steepness", opt->run.fit.nac.steepness, "nac: steepness of the state's sigmoid (alpha)")->default_val(100.0);
  cmd->add_option("--max-memory", opt->run.fit.max_bytes,
                  "Memory the profiles' sums and the reference features may take, in bytes (default: half the memory); "
                  "profiles that do not fit at once are built a group of classes per pass");
  cmd->add_option("--class-group", opt->run.fit.profile_group,
                  "Image score: classes whose profiles are built in one pass (default: as many as --max-memory allows)");
  cmd->add_flag("--keep-sums", opt->run.fit.profile.keep_sums,
                "Image score: keep the exact sums in the file beside the bit-packed masks (16 bytes per neuron and class; "
                "shards always keep them)");
  cmd->add_option("--rho", opt->run.fit.profile.rho, "Threshold factor: t = rho * ||A||")->default_val(0.5);
  cmd->add_option("--norm", opt->norm, "Norm of the threshold: linf, l1 or l2")->default_val("linf");
  cmd->add_option("--scale", opt->scale, "mean (default) or sum (the paper's literal reading)")->default_val("mean");
  cmd->add_flag("--global", opt->run.fit.profile.global, "One profile from all images instead of one per class");
  cmd->add_option("--shard", opt->shard, "Build only part I of K of the reference set (I/K)")->default_val("1/1");
  cmd->add_option("--batch-size", opt->run.batch_size, "Batch size")->default_val(256)->check(CLI::PositiveNumber);
  add_global_options(*cmd);
  add_device_option(*cmd);

  auto* merge = cmd->add_subcommand("merge", "Merge the shards of one profile into what one pass gives");
  merge->add_option("inputs", opt->merge_inputs, "Shard files")->required();
  merge->add_option("--out", opt->merge_out, "Merged profile file")->required();
  merge->add_option("--max-memory", opt->merge_max_bytes, "Largest total of shard files to hold at once, in bytes (default: half the memory)");
  add_global_options(*merge);
  merge->callback([opt] {
    run_command([&] {
      auto merged = merge_reference_files(opt->merge_inputs, opt->merge_max_bytes);
      save_reference(merged, opt->merge_out);
      report_exclusions(merged);
      return describe(merged, opt->merge_out);
    });
  });

  cmd->callback([cmd, opt] {
    if (cmd->got_subcommand("merge")) return;
    run_command([&] {
      auto& o = *opt;
      if (o.model.empty()) fail("profile", "--model is required");
      if (o.data.spec.empty() && o.data.split_file.empty()) fail("profile", "--data is required");
      if (o.out.empty()) fail("profile", "--out is required");
      o.run.fit.profile.norm = parse_norm(o.norm);
      o.run.fit.profile.scale = parse_scale(o.scale);
      std::tie(o.run.shard_index, o.run.shard_count) = parse_shard(o.shard);
      o.run.threads = global_options().threads;
      o.run.quiet = global_options().quiet;
      auto model = load_model(o.model, o.preprocess);
      auto source = open_selected_data(o.data, "training", model.get());
      o.run.data_part = selected_part(o.data, "training");
      auto set = profile_to_file(*model, *source, o.run, o.out);
      if (!set) return nlohmann::json(nullptr);  // another rank writes
      report_exclusions(*set);
      return describe(*set, o.out);
    });
  });
}

}  // namespace imagescore::cli
