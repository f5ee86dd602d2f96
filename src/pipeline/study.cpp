#include "imagescore/pipeline/study.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "imagescore/core/error.hpp"
#include "imagescore/core/json.hpp"
#include "imagescore/core/random.hpp"
#include "imagescore/stats/logistic.hpp"
#include "imagescore/core/io.hpp"
#include "imagescore/stats/metrics.hpp"
#include "imagescore/report/report.hpp"
#include "imagescore/select/select.hpp"
#include "imagescore/data/split.hpp"

namespace imagescore {
namespace {

void log_step(const StudyOptions& o, const std::string& text) {
  if (!o.quiet) std::fprintf(stderr, "== %s\n", text.c_str());
}

}  // namespace

nlohmann::json StudyResult::to_json() const {
  auto per_score = [&](const std::map<std::string, std::vector<double>>& m) {
    nlohmann::json j = nlohmann::json::object();
    for (const auto& [name, values] : m) {
      nlohmann::json per_class = nlohmann::json::object();
      for (std::size_t c = 0; c < class_names.size(); ++c) per_class[class_names[c]] = number_or_null(values[c]);
      j[name] = {{"overall", number_or_null(values.back())}, {"per_class", per_class}};
    }
    return j;
  };
  return {{"classes", class_names},
          {"training_images", training_images},
          {"validation_images", validation_images},
          {"additional_images", additional_images},
          {"test_accuracy", test_accuracy},
          {"additional_pseudo_label_accuracy", additional_accuracy},
          {"reference_test_accuracy", reference_test_accuracy < 0 ? nlohmann::json(nullptr) : nlohmann::json(reference_test_accuracy)},
          {"candidates", candidates},
          {"selected", selected},
          {"precision", per_score(precision)},
          {"auroc", per_score(auroc)},
          {"scores", scores},
          {"versus_msp", comparison_json(comparisons, comparison_options)},
          {"validation", validation_images == 0 ? nlohmann::json(nullptr)
                                                : nlohmann::json{{"versus_msp", comparison_json(validation_comparisons, comparison_options)},
                                                                 {"chosen", chosen_on_validation},
                                                                 {"learned_fusion", learned_skipped.empty() ? learned.to_json() : nlohmann::json(nullptr)},
                                                                 {"learned_fusion_skipped", learned_skipped}}},
          {"excluded_taps", exclusions}};
}

namespace {

// The parts of the main job, in order; each writes its files into the output folder.
struct Study {
  const StudyOptions& o;
  StudyResult r;
  std::unique_ptr<ImageSource> train_source, test_source, training, validation, additional;

  std::string path(const std::string& name) const { return o.out_dir + "/" + name; }

  void split() {
    train_source = open_data(o.data, SplitName::Train);
    test_source = open_data(o.data, SplitName::Test);
    r.class_names = train_source->class_names();
    log_step(o, "split " + train_source->spec() + ": " + std::to_string(o.labelled_fraction) + " labelled, seed " +
                    std::to_string(o.seed));
    auto split = make_split(*train_source, o.labelled_fraction, o.seed);
    save_split(split, path("split.json"));
    additional = subset(*train_source, split.additional);
    std::vector<std::size_t> trained = split.training;
    if (o.validation_fraction > 0) {
      // The held-out part of the labelled images, per class, seeded apart from the split.
      auto labelled = subset(*train_source, split.training);
      const auto held = make_split(*labelled, 1 - o.validation_fraction, mix_seed(o.seed, 1));
      trained.clear();
      std::vector<std::size_t> held_out;
      for (auto i : held.training) trained.push_back(split.training[i]);
      for (auto i : held.additional) held_out.push_back(split.training[i]);
      validation = subset(*train_source, held_out);
      r.validation_images = validation->size();
    }
    training = subset(*train_source, trained);
    r.training_images = training->size();
    r.additional_images = additional->size();
  }

  std::unique_ptr<TrainableModel> train_on_labelled() {
    log_step(o, "train " + o.arch + " on the " + std::to_string(r.training_images) + " labelled images");
    auto model = create_model(o.arch, training->shape(), r.class_names, compute_normalization(*training, o.threads),
                              o.train.seed);
    train_model(*model, *training, o.train);
    save_model(*model, path("model.safetensors"));
    r.test_accuracy = evaluate(*model, *test_source, o.batch_size, o.threads, o.quiet).accuracy;
    return model;
  }

  void profile_and_score(Model& model) {
    log_step(o, "profiles and the other fitted scores from the labelled images");
    FitRunOptions fo;
    fo.fit = o.fit;
    fo.batch_size = o.batch_size;
    fo.threads = o.threads;
    fo.quiet = o.quiet;
    const auto reference = fit_reference(model, *training, fo);
    save_reference(reference, path("profiles.safetensors"));
    if (const ProfileSet* profiles = reference.profiles()) r.exclusions = profiles->exclusions();

    log_step(o, "score the " + std::to_string(r.additional_images) +
                    " additional images (labels used only to measure)");
    ScoreRunOptions so;
    so.scores = o.scores;
    // Every score is measured against msp.
    if (!so.scores.empty() && std::find(so.scores.begin(), so.scores.end(), "msp") == so.scores.end()) so.scores.push_back("msp");
    so.image_score = o.image_score;
    so.batch_size = o.batch_size;
    so.threads = o.threads;
    so.quiet = o.quiet;
    for (auto [source, file] : {std::pair{additional.get(), "scores.csv"}, std::pair{validation.get(), "validation-scores.csv"}}) {
      if (!source) continue;
      ScoreWriter writer(path(file), score_value_columns(reference, model, so), model.meta().class_names);
      score_images(model, reference, *source, so, [&](const ScoreRow& row) { writer.write(row); });
      writer.commit();
    }
  }

  // Everything below works from the scores file, exactly as `select` would.
  void compare_selections() {
    const std::size_t k = r.class_names.size();
    auto table = read_score_table(path("scores.csv"));
    add_fusions(table);
    r.scores = table.value_columns;
    std::vector<std::vector<std::size_t>> rows_of_class(k);
    std::vector<bool> right_rows(table.rows.size());
    std::size_t right = 0;
    for (std::size_t i = 0; i < table.rows.size(); ++i) {
      rows_of_class[std::size_t(table.rows[i].pred)].push_back(i);
      right_rows[i] = table.rows[i].label == table.rows[i].pred;
      right += right_rows[i];
    }
    r.additional_accuracy = double(right) / double(table.rows.size());
    SelectOptions sel;
    sel.rule = SelectOptions::Rule::Fraction;
    sel.fraction = o.select_fraction;
    for (const auto& column : r.scores) {
      auto chosen = select_rows(table, column, sel, k);
      std::string file = column;
      std::replace(file.begin(), file.end(), ':', '_');
      write_selection(path("selection_" + file + ".csv"), table, column, chosen);
      auto stats = selection_stats(table, chosen, k);
      auto& precision = r.precision[column];
      for (std::size_t c = 0; c < k; ++c) precision.push_back(stats.per_class[c].precision());
      precision.push_back(stats.overall.precision());
      if (r.candidates.empty()) {
        for (const auto& s : stats.per_class) {
          r.candidates.push_back(s.candidates);
          r.selected.push_back(s.selected);
        }
      }
      const auto values = table.values(column);
      auto& au = r.auroc[column];
      for (std::size_t c = 0; c < k; ++c) {
        std::vector<double> v;
        std::vector<bool> ok;
        for (auto i : rows_of_class[c]) {
          v.push_back(values[i]);
          ok.push_back(right_rows[i]);
        }
        au.push_back(auroc(v, ok));
      }
      au.push_back(auroc(values, right_rows));
    }
    log_step(o, "every score against msp, with a paired bootstrap (" + std::to_string(o.resamples) + " resamples)");
    r.comparison_options.select_fraction = o.select_fraction;
    r.comparison_options.bootstrap.resamples = o.resamples;
    r.comparison_options.bootstrap.seed = o.seed;
    r.comparisons = compare_scores(table, r.scores, k, r.comparison_options);
    if (validation) {
      auto held = read_score_table(path("validation-scores.csv"));
      add_fusions(held);
      r.validation_comparisons = compare_scores(held, r.scores, k, r.comparison_options);
      // The learned fusion was fitted on these very images: it is not chosen here.
      const ScoreComparison* best = nullptr;
      for (const auto& c : r.validation_comparisons)
        if (c.column != "learned" && (!best || c.precision > best->precision)) best = &c;
      r.chosen_on_validation = best->column;
    }
  }

  // The rank fusions asked for, and with a validation part the learned fusion of every
  // score, fitted there (written to fusion.json; `select --by learned:fusion.json`).
  void add_fusions(ScoreTable& table) {
    for (const auto& recipe : o.fuse) add_fused_column(table, recipe);
    if (!validation || !r.learned_skipped.empty()) return;
    if (r.learned.columns.empty()) {
      auto held = read_score_table(path("validation-scores.csv"));
      const FusionFitOptions fit;
      std::size_t wrong = 0;
      for (const auto& row : held.rows) wrong += row.label != row.pred;
      if (wrong < fit.folds || held.rows.size() - wrong < fit.folds) {
        r.learned_skipped = "the " + std::to_string(held.rows.size()) + " held-out images have " + std::to_string(wrong) +
                            " wrong predictions: too few to fit a combination";
        return;
      }
      r.learned = fit_learned_fusion(held, held.value_columns, fit);
      write_file_atomic(path("fusion.json"), r.learned.to_json().dump(2) + "\n");
    }
    std::vector<std::size_t> at;
    for (const auto& c : r.learned.columns) at.push_back(table.column(c));
    std::vector<double> values(at.size());
    table.value_columns.push_back("learned");
    for (auto& row : table.rows) {
      for (std::size_t c = 0; c < at.size(); ++c) values[c] = row.values[at[c]];
      row.values.push_back(r.learned.apply(values));
    }
  }

  void train_reference() {
    log_step(o, "reference: " + o.arch + " trained on all " + std::to_string(train_source->size()) +
                    " labelled training images (an upper bound for self-training)");
    TrainOptions ro = o.train;
    ro.epochs = o.reference_epochs;
    auto reference = create_model(o.arch, train_source->shape(), r.class_names,
                                  compute_normalization(*train_source, o.threads), o.train.seed);
    train_model(*reference, *train_source, ro);
    save_model(*reference, path("reference-model.safetensors"));
    r.reference_test_accuracy = evaluate(*reference, *test_source, o.batch_size, o.threads, o.quiet).accuracy;
  }

  void write_summary_and_report() {
    write_file_atomic(path("summary.json"), r.to_json().dump(2) + "\n");
    log_step(o, "report: " + path("report.html"));
    ReportOptions report;
    report.run_dir = o.out_dir;
    report.analysis.bootstrap.resamples = 200;  // a quick overview; `imagescore analyze` for more
    write_report(report, path("report.html"));
  }
};

}  // namespace

StudyResult run_study(const StudyOptions& o) {
  if (o.out_dir.empty()) fail_option("out", "an output folder is required");
  if (!(o.labelled_fraction > 0 && o.labelled_fraction < 1)) fail_option("labelled", "must be in (0, 1)");
  if (!(o.select_fraction > 0 && o.select_fraction <= 1)) fail_option("select_fraction", "must be in (0, 1]");
  make_directories(o.out_dir);
  Study study{o, {}, {}, {}, {}, {}};
  study.split();
  auto model = study.train_on_labelled();
  study.profile_and_score(*model);
  study.compare_selections();
  if (o.reference_epochs > 0) study.train_reference();
  study.write_summary_and_report();
  return study.r;
}

std::string format_study(const StudyResult& r) {
  std::string s;
  char buf[256];
  auto line = [&](const std::string& label, const std::vector<std::string>& cells) {
    std::snprintf(buf, sizeof buf, "%-14s", label.substr(0, 14).c_str());
    s += buf;
    for (const auto& c : cells) {
      std::snprintf(buf, sizeof buf, " %11s", c.c_str());
      s += buf;
    }
    s += "\n";
  };
  auto fmt = [](double v) {
    if (std::isnan(v)) return std::string("-");
    char b[32];
    std::snprintf(b, sizeof b, "%.4f", v);
    return std::string(b);
  };
  const std::size_t k = r.class_names.size();
  std::snprintf(buf, sizeof buf, "labelled %zu, additional %zu; test accuracy %.4f; pseudo-label accuracy on the additional part %.4f\n",
                r.training_images, r.additional_images, r.test_accuracy, r.additional_accuracy);
  s += buf;
  if (r.reference_test_accuracy >= 0) {
    std::snprintf(buf, sizeof buf, "reference model trained on all labelled images: test accuracy %.4f\n", r.reference_test_accuracy);
    s += buf;
  }
  auto table = [&](const std::string& title, const std::map<std::string, std::vector<double>>& m, bool counts) {
    s += "\n" + title + "\n";
    std::vector<std::string> header;
    if (counts) header = {"candidates", "selected"};
    for (const auto& name : r.scores) header.push_back(name);
    line("class", header);
    for (std::size_t c = 0; c <= k; ++c) {
      std::vector<std::string> cells;
      if (counts) {
        std::size_t cand = 0, sel = 0;
        for (std::size_t i = 0; i < k; ++i)
          if (c == k || i == c) {
            cand += r.candidates[i];
            sel += r.selected[i];
          }
        cells = {std::to_string(cand), std::to_string(sel)};
      }
      for (const auto& name : r.scores) cells.push_back(fmt(m.at(name)[c]));
      line(c == k ? "overall" : r.class_names[c], cells);
    }
  };
  table("Precision of the pseudo-labels selected by each score (top share per predicted class):", r.precision, true);
  table("AUROC of each score for telling right from wrong pseudo-labels (per predicted class):", r.auroc, false);

  // A plain verdict on the paper's claim: where the image score stands against the best
  // other score.
  auto verdict = [&](const std::string& what, const std::map<std::string, std::vector<double>>& m) {
    if (!m.count("image_score")) return;
    std::string best;
    for (const auto& name : r.scores)
      if (name != "image_score" && (best.empty() || m.at(name).back() > m.at(best).back())) best = name;
    double mine = m.at("image_score").back(), theirs = m.at(best).back();
    std::snprintf(buf, sizeof buf, "%s: image_score %.4f vs the best other score, %s, %.4f: the image score %s (%+.4f).\n",
                  what.c_str(), mine, best.c_str(), theirs,
                  mine > theirs ? "is better" : (mine == theirs ? "ties" : "is worse"), mine - theirs);
    s += buf;
  };
  s += "\n";
  verdict("Selection precision", r.precision);
  verdict("AUROC", r.auroc);
  if (!r.comparisons.empty()) s += "\n" + comparison_text(r.comparisons, r.comparison_options);
  if (!r.learned_skipped.empty()) s += "\nNo learned fusion: " + r.learned_skipped + ".\n";
  if (!r.chosen_on_validation.empty()) {
    for (const auto& c : r.comparisons)
      if (c.column == r.chosen_on_validation) {
        std::snprintf(buf, sizeof buf,
                      "\nChosen on the %zu held-out labelled images (best precision there, the learned fusion aside): %s.\n"
                      "On the pool it selects with precision %.4f, %+.4f [%+.4f, %+.4f] against msp.\n",
                      r.validation_images, c.column.c_str(), c.precision, c.precision_difference.value,
                      c.precision_difference.lower, c.precision_difference.upper);
        s += buf;
      }
  }
  if (!r.exclusions.empty()) {
    s += "Taps excluded from the image score:\n";
    for (const auto& e : r.exclusions) s += "  " + e + "\n";
  }
  return s;
}

}  // namespace imagescore
