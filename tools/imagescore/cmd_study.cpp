// imagescore study: the main job (see include/imagescore/study.hpp).
#include "common.hpp"
#include "imagescore/pipeline/study.hpp"

namespace imagescore::cli {

void add_study_command(CLI::App& app) {
  struct Options {
    StudyOptions study;
    std::string norm = "linf", scale = "mean", overlap = "recall";
  };
  auto opt = std::make_shared<Options>();
  auto& s = opt->study;
  s.train.epochs = 10;
  auto* cmd = app.add_subcommand("study", "Compare the image score with the baseline scores for pseudo-label selection");
  cmd->add_option("--data", s.data, "Data spec with a labelled training split")->default_val("fashion-mnist");
  cmd->add_option("--out", s.out_dir, "Output folder")->required();
  cmd->add_option("--labelled", s.labelled_fraction, "Share of each class whose labels are used")->default_val(0.1);
  cmd->add_option("--seed", s.seed, "Seed of the split")->default_val(0);
  cmd->add_option("--model", s.arch, "Architecture: small-cnn, vgg16 or resnet18")->default_val("small-cnn");
  cmd->add_option("--epochs", s.train.epochs, "Training epochs on the labelled part")->default_val(10);
  cmd->add_option("--reference-epochs", s.reference_epochs,
                  "Epochs of the fully supervised reference model (0: skip it)")->default_val(5);
  cmd->add_option("--train-seed", s.train.seed, "Seed of training")->default_val(0);
  cmd->add_option("--lr", s.train.optimizer.learning_rate, "Learning rate (Adam)")->default_val(1e-3);
  cmd->add_option("--select-fraction", s.select_fraction, "Share of each class's candidates selected")->default_val(0.3);
  cmd->add_option("--rho", s.fit.profile.rho, "Threshold factor")->default_val(0.5);
  cmd->add_option("--knn-index", s.fit.knn_index,
                  "knn, trust: nearest-neighbour search, exact or ivf (approximate, for large reference sets)")
      ->default_val("exact");
  cmd->add_option("--knn-nprobe", s.fit.knn_nprobe, "knn, trust with --knn-index ivf: lists searched per query")
      ->default_val(64);
  cmd->add_option("--validation", s.validation_fraction,
                  "Share of the labelled images held out of training, to fit the learned fusion and choose the best "
                  "selector (0: none)")
      ->default_val(0.1);
  cmd->add_option("--fuse", s.fuse, "Rank fusions to compare too, such as rank:msp+trust (comma-separated)")->delimiter(',');
  cmd->add_option("--scores", s.scores, "Scores to compare (default: every cheap score; see `score --help`)")->delimiter(',');
  cmd->add_option("--resamples", s.resamples, "Bootstrap resamples of the comparison with msp")->default_val(200);
  cmd->add_option("--norm", opt->norm, "linf, l1 or l2")->default_val("linf");
  cmd->add_option("--scale", opt->scale, "mean or sum")->default_val("mean");
  cmd->add_option("--overlap", opt->overlap, "recall, literal or jaccard")->default_val("recall");
  add_global_options(*cmd);
  add_device_option(*cmd);
  cmd->callback([opt] {
    run_command([&] {
      auto& st = opt->study;
      st.fit.profile.norm = parse_norm(opt->norm);
      st.fit.profile.scale = parse_scale(opt->scale);
      st.image_score.overlap = parse_overlap(opt->overlap);
      st.fit.validate();  // before the training that precedes the fit
      st.threads = st.train.threads = global_options().threads;
      st.quiet = st.train.quiet = global_options().quiet;
      auto result = run_study(st);
      if (!global_options().json) std::printf("%s", format_study(result).c_str());
      return result.to_json();
    });
  });
}

}  // namespace imagescore::cli
