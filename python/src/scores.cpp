// Scores: the image score and the baseline scores of batches, the scores table (the
// command line's scores file), and scoring a data source with a library model.
#include <cmath>
#include <iterator>
#include <limits>

#include "bindings.hpp"
#include "imagescore/core/error.hpp"
#include "imagescore/core/runtime.hpp"
#include "imagescore/score/fitted.hpp"
#include "imagescore/score/score.hpp"
#include "imagescore/score/registry.hpp"
#include "imagescore/score/scores_table.hpp"

namespace imagescore::python {
namespace {

// The scores computed from the logits alone, each with its field of Baselines.
struct BaselineColumn {
  const char* name;
  double Baselines::*field;
};
const BaselineColumn kBaselineColumns[] = {{"msp", &Baselines::msp},           {"margin", &Baselines::margin},
                                           {"neg_entropy", &Baselines::neg_entropy}, {"energy", &Baselines::energy},
                                           {"max_logit", &Baselines::max_logit}, {"doctor", &Baselines::doctor}};

ScoreRunOptions score_options(const std::vector<std::string>& scores, const std::string& overlap, double floor,
                              const std::string& by, bool per_tap) {
  ScoreRunOptions o;
  o.scores = scores;
  o.image_score.overlap = parse_overlap(overlap);
  o.image_score.floor = floor;
  o.by = parse_profile_choice(by);
  o.per_tap = per_tap;
  o.validate();
  return o;
}

// The model of a reference set scored without one: its classes and the profiles' taps.
std::shared_ptr<Model> model_of(const ReferenceSet& set) {
  std::vector<std::pair<std::string, std::vector<std::int64_t>>> taps;
  if (const ProfileSet* profiles = set.profiles())
    for (const auto& t : profile_taps(*profiles))
      if (t.name != "output") taps.emplace_back(t.name, t.shape);
  return describe_model(set.class_names, taps, {}, set.weights_hash, set.model_arch, {});
}

// Where a value column comes from.
struct ColumnSource {
  enum Kind { ImageScore, TapTerm, Baseline, Fitted } kind;
  std::size_t index;  // the tap (TapTerm) or the entry of kBaselineColumns (Baseline)
};

// Scores batches whose forward pass ran in Python: the rows a scoring run writes
// (score_value_columns), from the logits and the activations of the taps the reference
// set's scores read, computed through the fitted scores' own interface.
class Scorer {
 public:
  Scorer(const Reference& reference, std::shared_ptr<Model> model, const ScoreRunOptions& options)
      : reference_(reference), model_(model ? std::move(model) : model_of(*reference.set)), options_(options) {
    const ReferenceSet& set = *reference_.set;
    check_reference_matches(set, *model_, reference_.name);
    const auto names = scores_to_compute(set, *model_, options_);
    for (const auto& name : names)
      if (name == "mc_dropout" || name == "tta")
        fail_option("scores", "'" + name + "' needs forward passes of its own: score it with a library model");
    columns_ = score_value_columns(set, *model_, options_);
    std::vector<std::string> taps;
    if (std::find(names.begin(), names.end(), "image_score") != names.end()) {
      const ProfileSet& profiles = *set.profiles();
      if (profiles.options.global && options.by != ProfileChoice::Global)
        fail_option("by", "the profile file holds one global profile: score by global");
      if (!profiles.options.global && options.by == ProfileChoice::Global)
        fail_option("by", "the profile file holds per-class profiles, not a global one");
      scorer_ = std::make_unique<ImageScorer>(profiles, options.image_score);
      image_taps_ = profiles.tap_names();
      taps = image_taps_;
    }
    for (const auto& fit : set.fits) {
      if (fit->kind() == "profiles" || wanted(*fit).empty()) continue;
      for (const auto& t : fit->taps())
        if (std::find(taps.begin(), taps.end(), t) == taps.end()) taps.push_back(t);
    }
    for (auto id : resolve_taps(*model_, taps)) taps_.push_back(model_->taps()[id]);
    for (const auto& column : columns_) sources_.push_back(source_of(column));
  }

  const std::vector<std::string>& columns() const { return columns_; }
  const std::vector<TapInfo>& taps() const { return taps_; }

  py::dict score(py::handle logits, py::handle activations, py::object labels) {
    const std::size_t k = reference_.set->class_names.size();
    auto z = float_matrix(logits, "logits", k);
    const auto rows = std::size_t(z.shape(0));
    std::vector<std::int64_t> label_of(rows, kNoLabel);
    if (!labels.is_none()) label_of = int_vector(labels, "labels", rows);
    if (scorer_ && options_.by == ProfileChoice::Label)
      for (std::size_t i = 0; i < rows; ++i)
        if (label_of[i] < 0 || std::size_t(label_of[i]) >= scorer_->profiles().profiles.size())
          fail("image " + std::to_string(i) + " of the batch", "has no usable label to score by label");
    auto arrays = taps_arrays(activations, taps_, rows);
    ForwardOutput out;
    out.batch = rows;
    out.num_classes = k;
    out.logits.assign(z.data(), z.data() + rows * k);
    std::vector<std::string> names;
    for (std::size_t l = 0; l < taps_.size(); ++l) {
      out.taps.push_back(arrays[l].view);
      names.push_back(taps_[l].name);
    }
    const std::size_t m = columns_.size();
    std::vector<double> values(rows * m, 0.0);
    std::vector<std::int64_t> pred(rows);
    {
      py::gil_scoped_release release;
      score_pass(Activations{&out, names, {}}, label_of, values, pred);
    }
    py::dict result;
    result["pred"] = py::array_t<std::int64_t>(static_cast<py::ssize_t>(rows), pred.data());
    for (std::size_t c = 0; c < m; ++c) {
      py::array_t<double> column(static_cast<py::ssize_t>(rows));
      for (std::size_t i = 0; i < rows; ++i) column.mutable_data()[i] = values[i * m + c];
      result[py::str(columns_[c])] = column;
    }
    return result;
  }

 private:
  // The columns of a fit this run computes.
  std::vector<std::string> wanted(const FittedScore& fit) const {
    std::vector<std::string> out;
    for (const auto& c : fit.columns())
      if (std::find(columns_.begin(), columns_.end(), c) != columns_.end()) out.push_back(c);
    return out;
  }

  ColumnSource source_of(const std::string& column) const {
    if (column == "image_score") return {ColumnSource::ImageScore, 0};
    for (std::size_t l = 0; l < image_taps_.size(); ++l)
      if (column == "tap:" + image_taps_[l]) return {ColumnSource::TapTerm, l};
    for (std::size_t b = 0; b < std::size(kBaselineColumns); ++b)
      if (column == kBaselineColumns[b].name) return {ColumnSource::Baseline, b};
    if (reference_.set->provider(column)) return {ColumnSource::Fitted, 0};
    fail("imagescore._core", "the library's score column '" + column + "' has no binding yet");
  }

  void score_pass(const Activations& a, const std::vector<std::int64_t>& labels, std::vector<double>& values,
                  std::vector<std::int64_t>& pred) const {
    const std::size_t n = a.batch(), m = columns_.size(), k = a.num_classes();
    std::vector<Baselines> baselines(n);
    std::vector<int> predicted(n);
    for (std::size_t i = 0; i < n; ++i) {
      baselines[i] = baseline_scores(a.logits(i), k);
      predicted[i] = baselines[i].pred;
      pred[i] = baselines[i].pred;
    }
    for (const auto& fit : reference_.set->fits) {
      const auto columns = wanted(*fit);
      if (fit->kind() == "profiles" || columns.empty()) continue;
      std::vector<double> fitted;
      fit->score(a, predicted, columns, fitted);
      for (std::size_t c = 0; c < columns.size(); ++c) {
        const auto at = std::size_t(std::find(columns_.begin(), columns_.end(), columns[c]) - columns_.begin());
        for (std::size_t i = 0; i < n; ++i) values[i * m + at] = fitted[i * columns.size() + c];
      }
    }
    parallel_for(n, 8, [&](std::size_t begin, std::size_t end) {
      std::vector<const float*> tap_rows(image_taps_.size());
      std::vector<double> terms;
      for (std::size_t i = begin; i < end; ++i) {
        double* row = &values[i * m];
        if (scorer_) {
          for (std::size_t l = 0; l < image_taps_.size(); ++l) tap_rows[l] = a.tap(image_taps_[l]).row(i);
          std::size_t profile = 0;
          if (options_.by == ProfileChoice::Predicted) profile = std::size_t(predicted[i]);
          if (options_.by == ProfileChoice::Label) profile = std::size_t(labels[i]);
          const double image_score = scorer_->score(profile, tap_rows, options_.per_tap ? &terms : nullptr);
          for (std::size_t c = 0; c < m; ++c) {
            if (sources_[c].kind == ColumnSource::ImageScore) row[c] = image_score;
            if (sources_[c].kind == ColumnSource::TapTerm) row[c] = terms[sources_[c].index];
          }
        }
        for (std::size_t c = 0; c < m; ++c)
          if (sources_[c].kind == ColumnSource::Baseline) row[c] = baselines[i].*kBaselineColumns[sources_[c].index].field;
        for (std::size_t c = 0; c < m; ++c)
          if (!std::isfinite(row[c])) fail("image " + std::to_string(i) + " of the batch", "a score is not finite (non-finite logits?)");
      }
    });
  }

  Reference reference_;
  std::shared_ptr<Model> model_;
  ScoreRunOptions options_;
  std::vector<std::string> columns_;
  std::vector<ColumnSource> sources_;
  std::unique_ptr<ImageScorer> scorer_;
  std::vector<std::string> image_taps_;
  std::vector<TapInfo> taps_;
};

std::shared_ptr<ScoreTable> table_from_arrays(py::handle ids, py::handle preds, py::dict values, py::object labels,
                                              py::object paths) {
  auto table = std::make_shared<ScoreTable>();
  const auto id = int_vector(ids, "ids");
  const std::size_t rows = id.size();
  const auto pred = int_vector(preds, "preds", rows);
  std::vector<std::int64_t> label(rows, kNoLabel);
  if (!labels.is_none()) label = int_vector(labels, "labels", rows);
  std::vector<std::string> path(rows);
  if (!paths.is_none()) {
    path = paths.cast<std::vector<std::string>>();
    if (path.size() != rows) fail("paths", "has " + std::to_string(path.size()) + " values, expected " + std::to_string(rows));
  }
  std::vector<std::vector<double>> columns;
  for (const auto& item : values) {
    table->value_columns.push_back(py::str(item.first).cast<std::string>());
    columns.push_back(double_vector(item.second, "column '" + table->value_columns.back() + "'", rows));
  }
  table->rows.resize(rows);
  for (std::size_t i = 0; i < rows; ++i) {
    if (id[i] < 0) fail("ids", "must not be negative");
    if (pred[i] < 0 || pred[i] > std::numeric_limits<int>::max()) fail("preds", "must be class ids (>= 0)");
    if (label[i] < kNoLabel || label[i] > std::numeric_limits<int>::max()) fail("labels", "must be class ids or -1 (unknown)");
    ScoreRow& row = table->rows[i];
    row.id = std::size_t(id[i]);
    row.path = std::move(path[i]);
    row.label = int(label[i]);
    row.pred = int(pred[i]);
    for (const auto& column : columns) row.values.push_back(column[i]);
  }
  return table;
}

template <typename T, typename Get>
py::array_t<T> column_of(const ScoreTable& table, Get get) {
  py::array_t<T> a(py::ssize_t(table.rows.size()));
  for (std::size_t i = 0; i < table.rows.size(); ++i) a.mutable_data()[i] = get(table.rows[i]);
  return a;
}

py::object table_column(const ScoreTable& table, const std::string& name) {
  if (name == "id") return column_of<std::int64_t>(table, [](const ScoreRow& r) { return std::int64_t(r.id); });
  if (name == "label") return column_of<std::int64_t>(table, [](const ScoreRow& r) { return std::int64_t(r.label); });
  if (name == "pred") return column_of<std::int64_t>(table, [](const ScoreRow& r) { return std::int64_t(r.pred); });
  if (name == "correct") {
    if (!table.has_labels()) fail(table.path.empty() ? "scores" : table.path, "'correct' needs a label on every row");
    return column_of<bool>(table, [](const ScoreRow& r) { return r.label == r.pred; });
  }
  if (name == "path") {
    py::list paths;
    for (const auto& r : table.rows) paths.append(r.path);
    return paths;
  }
  const std::size_t c = table.column(name);
  return column_of<double>(table, [c](const ScoreRow& r) { return r.values[c]; });
}

}  // namespace

void bind_scores(py::module_& m) {
  m.def("score_columns", &score_columns, "The image score and the five softmax scores, in the order of a scores file");
  m.def("score_registry", [] {
    py::list out;
    for (const auto& info : score_registry()) {
      py::dict d;
      d["name"] = info.name;
      d["columns"] = info.columns;
      d["fit"] = info.fit;
      d["costly"] = info.costly;
      d["summary"] = info.summary;
      out.append(d);
    }
    return out;
  }, "Every score the library computes: name, columns, the fit it needs, whether it is costly, a summary");

  m.def("baseline_scores", [](py::handle logits) {
    auto z = float_matrix(logits, "logits", 0);
    const auto rows = std::size_t(z.shape(0)), k = std::size_t(z.shape(1));
    std::vector<Baselines> scores(rows);
    {
      py::gil_scoped_release release;
      for (std::size_t i = 0; i < rows; ++i) scores[i] = baseline_scores(z.data() + i * k, k);
    }
    py::dict out;
    for (const auto& column : kBaselineColumns) {
      py::array_t<double> a(static_cast<py::ssize_t>(rows));
      for (std::size_t i = 0; i < rows; ++i) a.mutable_data()[i] = scores[i].*column.field;
      out[column.name] = a;
    }
    py::array_t<std::int64_t> pred(static_cast<py::ssize_t>(rows));
    for (std::size_t i = 0; i < rows; ++i) pred.mutable_data()[i] = scores[i].pred;
    out["pred"] = pred;
    return out;
  }, py::arg("logits"), "msp, margin, neg_entropy, energy, max_logit, doctor and pred of float32 logits [images, classes]");

  py::class_<Scorer>(m, "Scorer",
                     "Scores batches: the image score, the fitted scores of a reference set and the softmax scores")
      .def(py::init([](const Reference& reference, std::shared_ptr<Model> model, const std::vector<std::string>& scores,
                       const std::string& overlap, double floor, const std::string& by, bool per_tap) {
             return std::make_unique<Scorer>(reference, std::move(model), score_options(scores, overlap, floor, by, per_tap));
           }),
           py::arg("reference"), py::arg("model") = nullptr, py::arg("scores") = std::vector<std::string>{},
           py::arg("overlap") = "recall", py::arg("floor") = 0.0, py::arg("by") = "predicted", py::arg("per_tap") = false)
      .def(py::init([](const Profiles& profiles, std::shared_ptr<Model> model, const std::vector<std::string>& scores,
                       const std::string& overlap, double floor, const std::string& by, bool per_tap) {
             const Reference reference{std::make_shared<ReferenceSet>(reference_of(profiles.set)), profiles.name};
             return std::make_unique<Scorer>(reference, std::move(model), score_options(scores, overlap, floor, by, per_tap));
           }),
           py::arg("profiles"), py::arg("model") = nullptr, py::arg("scores") = std::vector<std::string>{},
           py::arg("overlap") = "recall", py::arg("floor") = 0.0, py::arg("by") = "predicted", py::arg("per_tap") = false,
           "`scores`: registry names (default: every cheap score the reference set allows); `model`: the model the "
           "batches come from (checked against the reference set; needed for taps other than the profiles')")
      .def_property_readonly("columns", &Scorer::columns, "The value columns score() returns, in order")
      .def_property_readonly("taps", [](const Scorer& s) { return tap_list(s.taps()); },
                             "The taps every batch must give, as (name, shape)")
      .def("score", &Scorer::score, py::arg("logits"), py::arg("activations"), py::arg("labels") = py::none(),
           "One batch: logits and the activations of .taps (dict, or list in that order); a dict with `pred` and "
           "one float64 array per value column");

  py::class_<ScoreTable, std::shared_ptr<ScoreTable>>(m, "ScoreTable",
                                                      "Scores per image: the command line's scores file in memory")
      .def(py::init(&table_from_arrays), py::arg("ids"), py::arg("preds"), py::arg("values"),
           py::arg("labels") = py::none(), py::arg("paths") = py::none())
      .def("__len__", [](const ScoreTable& t) { return t.rows.size(); })
      .def_property_readonly("value_columns", [](const ScoreTable& t) { return t.value_columns; })
      .def_property_readonly("columns", [](const ScoreTable& t) {
        std::vector<std::string> names = {"id", "path", "label", "pred"};
        if (t.has_labels()) names.push_back("correct");
        names.insert(names.end(), t.value_columns.begin(), t.value_columns.end());
        return names;
      }, "Every column: id, path, label, pred, correct (when every row has a label), then the values")
      .def_property_readonly("has_labels", &ScoreTable::has_labels)
      .def_property_readonly("path", [](const ScoreTable& t) { return t.path; })
      .def_property_readonly("class_names", [](const ScoreTable& t) { return t.class_names; },
                             "Class names by id (from the file's label_name/pred_name columns, or the model's); "
                             "empty when unknown")
      .def("__getitem__", &table_column, py::arg("column"))
      .def("save", [](const ScoreTable& t, const std::string& path) {
        py::gil_scoped_release release;
        ScoreWriter writer(path, t.value_columns, t.class_names);
        for (const auto& row : t.rows) writer.write(row);
        writer.commit();
      }, py::arg("path"), "Writes the scores file the command line writes (atomically)");

  m.def("read_scores", [](const std::string& path) {
    return std::make_shared<ScoreTable>(interruptible([&] { return read_score_table(path); }));
  }, py::arg("path"));

  m.def("score_source", [](const std::shared_ptr<Model>& model, const Reference& reference,
                           const std::shared_ptr<ImageSource>& source, const std::vector<std::string>& scores,
                           const std::string& overlap, double floor, const std::string& by, bool per_tap,
                           std::size_t batch_size, int threads, bool quiet) {
    ScoreRunOptions o = score_options(scores, overlap, floor, by, per_tap);
    if (batch_size == 0) fail_option("batch_size", "must be at least 1");
    o.batch_size = batch_size;
    o.threads = threads;
    o.quiet = quiet;
    auto table = std::make_shared<ScoreTable>();
    interruptible([&] {
      check_reference_matches(*reference.set, *model, reference.name);
      table->value_columns = score_value_columns(*reference.set, *model, o);
      table->class_names = model->meta().class_names;
      return score_images(*model, *reference.set, *source, o, [&](const ScoreRow& row) { table->rows.push_back(row); });
    });
    return table;
  }, py::arg("model"), py::arg("reference"), py::arg("source"), py::arg("scores") = std::vector<std::string>{},
     py::arg("overlap") = "recall", py::arg("floor") = 0.0, py::arg("by") = "predicted", py::arg("per_tap") = false,
     py::arg("batch_size") = 256, py::arg("threads") = 0, py::arg("quiet") = true,
     "Scores of a library model over a data source: what `imagescore score` computes");
}

}  // namespace imagescore::python
