// imagescore profile: build per-class (or global) profiles; `profile merge` joins shards.
#include "common.hpp"
#include "imagescore/core/error.hpp"
#include "imagescore/models/model.hpp"
#include "imagescore/pipeline/profile_and_score.hpp"
#include "imagescore/score/profile.hpp"
#include "imagescore/data/split.hpp"

namespace imagescore::cli {
namespace {

void parse_shard(const std::string& text, std::size_t& index, std::size_t& count) {
  auto slash = text.find('/');
  try {
    if (slash == std::string::npos) throw std::invalid_argument("no slash");
    std::size_t used = 0;
    index = std::stoul(text.substr(0, slash), &used);
    if (used != slash) throw std::invalid_argument("junk");
    count = std::stoul(text.substr(slash + 1), &used);
    if (used != text.size() - slash - 1) throw std::invalid_argument("junk");
  } catch (const std::exception&) {
    fail("--shard", "expected I/K (for example 2/4), got '" + text + "'");
  }
  if (count == 0 || index < 1 || index > count) fail("--shard", "expected 1 <= I <= K, got '" + text + "'");
}

nlohmann::json describe(const ProfileSet& set, const std::string& out) {
  nlohmann::json profiles = nlohmann::json::array();
  for (const auto& p : set.profiles) {
    nlohmann::json taps = nlohmann::json::object();
    for (const auto& t : p.taps) taps[t.name] = {{"threshold", t.threshold}, {"mask", t.mask_count}, {"excluded", t.excluded}};
    profiles.push_back({{"name", p.name}, {"count", p.count}, {"taps", taps}});
  }
  return {{"out", out}, {"shard", {set.shard_index, set.shard_count}}, {"profiles", profiles}, {"excluded", set.exclusions()}};
}

void report_exclusions(const ProfileSet& set) {
  for (const auto& line : set.exclusions()) std::fprintf(stderr, "excluded from the score: %s\n", line.c_str());
}

}  // namespace

void add_profile_command(CLI::App& app) {
  struct Options {
    std::string model, preprocess;
    DataOptions data;
    std::string out;
    ProfileRunOptions run;
    std::string norm = "linf";
    std::string scale = "mean";
    std::string shard = "1/1";
    std::vector<std::string> merge_inputs;
    std::string merge_out;
  };
  auto opt = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("profile", "Build the 'correct activation' profiles of a model");
  cmd->add_option("--model", opt->model, "Model checkpoint or TorchScript file");
  cmd->add_option("--preprocess", opt->preprocess, "TorchScript: preprocessing JSON (default: MODEL.json)");
  add_data_options(*cmd, opt->data, "train", false);
  cmd->add_option("--out", opt->out, "Profile file to write");
  cmd->add_option("--taps", opt->run.taps, "Taps to use (default: all; see `model info`)")->delimiter(',');
  cmd->add_option("--rho", opt->run.profile.rho, "Threshold factor: t = rho * ||A||")->default_val(0.5);
  cmd->add_option("--norm", opt->norm, "Norm of the threshold: linf, l1 or l2")->default_val("linf");
  cmd->add_option("--scale", opt->scale, "mean (default) or sum (the paper's literal reading)")->default_val("mean");
  cmd->add_flag("--global", opt->run.profile.global, "One profile from all images instead of one per class");
  cmd->add_option("--shard", opt->shard, "Build only part I of K of the reference set (I/K)")->default_val("1/1");
  cmd->add_option("--batch-size", opt->run.batch_size, "Batch size")->default_val(256)->check(CLI::PositiveNumber);
  add_global_options(*cmd);
  add_device_option(*cmd);

  auto* merge = cmd->add_subcommand("merge", "Merge the shards of one profile into what one pass gives");
  merge->add_option("inputs", opt->merge_inputs, "Shard files")->required();
  merge->add_option("--out", opt->merge_out, "Merged profile file")->required();
  add_global_options(*merge);
  merge->callback([opt] {
    run_command([&] {
      std::vector<ProfileSet> shards;
      for (const auto& path : opt->merge_inputs) shards.push_back(load_profiles(path));
      auto merged = merge_profiles(shards, opt->merge_inputs);
      save_profiles(merged, opt->merge_out);
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
      o.run.profile.norm = parse_norm(o.norm);
      o.run.profile.scale = parse_scale(o.scale);
      parse_shard(o.shard, o.run.shard_index, o.run.shard_count);
      o.run.threads = global_options().threads;
      o.run.quiet = global_options().quiet;
      auto model = load_model(o.model, o.preprocess);
      auto source = open_selected_data(o.data, "training");
      auto set = profile_to_file(*model, *source, o.run, o.out);
      if (!set) return nlohmann::json(nullptr);  // another rank writes
      report_exclusions(*set);
      return describe(*set, o.out);
    });
  });
}

}  // namespace imagescore::cli
