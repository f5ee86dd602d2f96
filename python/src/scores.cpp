// Scores: the image score and the baseline scores of batches, the scores table (the
// command line's scores file), and scoring a data source with a library model.
#include <cmath>
#include <iterator>
#include <limits>

#include "bindings.hpp"
#include "imagescore/core/error.hpp"
#include "imagescore/core/runtime.hpp"
#include "imagescore/score/score.hpp"
#include "imagescore/score/scores_table.hpp"

namespace imagescore::python {
namespace {

// The baseline columns of score_columns(), each with its field of Baselines.
struct BaselineColumn {
  const char* name;
  double Baselines::*field;
};
const BaselineColumn kBaselineColumns[] = {{"msp", &Baselines::msp},
                                           {"margin", &Baselines::margin},
                                           {"neg_entropy", &Baselines::neg_entropy},
                                           {"energy", &Baselines::energy},
                                           {"max_logit", &Baselines::max_logit}};

ScoreRunOptions score_options(const std::string& overlap, double floor, const std::string& by, bool per_tap) {
  ScoreRunOptions o;
  o.image_score.overlap = parse_overlap(overlap);
  o.image_score.floor = floor;
  o.by = parse_profile_choice(by);
  o.per_tap = per_tap;
  return o;
}

// The same refusals as a scoring run over a data source.
void check_choice(const ProfileSet& set, ProfileChoice by) {
  if (set.options.global && by != ProfileChoice::Global)
    fail_option("by", "the profile file holds one global profile: score by global");
  if (!set.options.global && by == ProfileChoice::Global)
    fail_option("by", "the profile file holds per-class profiles, not a global one");
}

constexpr int kImageScore = -1;

// Where each of score_columns() comes from: kImageScore or a position in kBaselineColumns.
std::vector<int> score_column_sources() {
  std::vector<int> sources;
  for (const auto& name : score_columns()) {
    int source = name == "image_score" ? kImageScore : -2;
    for (std::size_t c = 0; c < std::size(kBaselineColumns); ++c)
      if (name == kBaselineColumns[c].name) source = int(c);
    if (source == -2) fail("imagescore._core", "the library's score column '" + name + "' has no binding yet");
    sources.push_back(source);
  }
  return sources;
}

// Scores batches whose forward pass ran in Python: the row values of a scoring run
// (score_value_columns) from the logits and the activations of the profiles' taps.
class Scorer {
 public:
  Scorer(const Profiles& profiles, const ScoreRunOptions& options)
      : profiles_(profiles), options_(options), scorer_(profiles.set, options.image_score),
        taps_(profile_taps(profiles.set)), sources_(score_column_sources()) {
    check_choice(profiles.set, options.by);
  }

  std::vector<std::string> columns() const { return score_value_columns(profiles_.set, options_.per_tap); }

  py::dict score(py::handle logits, py::handle activations, py::object labels) {
    const std::size_t k = profiles_.set.class_names.size();
    auto z = float_matrix(logits, "logits", k);
    const auto rows = std::size_t(z.shape(0));
    std::vector<std::int64_t> label_of(rows, kNoLabel);
    if (!labels.is_none()) label_of = int_vector(labels, "labels", rows);
    if (options_.by == ProfileChoice::Label)
      for (std::size_t i = 0; i < rows; ++i)
        if (label_of[i] < 0 || std::size_t(label_of[i]) >= profiles_.set.profiles.size())
          fail("image " + std::to_string(i) + " of the batch", "has no usable label to score by label");
    auto arrays = taps_arrays(activations, taps_, rows);
    const auto names = columns();
    std::vector<double> values(rows * names.size());
    std::vector<std::int64_t> pred(rows);
    {
      py::gil_scoped_release release;
      parallel_for(rows, 8, [&](std::size_t begin, std::size_t end) {
        std::vector<const float*> tap_rows(taps_.size());
        std::vector<double> terms;
        for (std::size_t i = begin; i < end; ++i) {
          const Baselines b = baseline_scores(z.data() + i * k, k);
          std::size_t profile = 0;
          if (options_.by == ProfileChoice::Predicted) profile = std::size_t(b.pred);
          if (options_.by == ProfileChoice::Label) profile = std::size_t(label_of[i]);
          for (std::size_t l = 0; l < taps_.size(); ++l) tap_rows[l] = arrays[l].view.row(i);
          double* row = &values[i * names.size()];
          const double image_score = scorer_.score(profile, tap_rows, options_.per_tap ? &terms : nullptr);
          for (std::size_t c = 0; c < sources_.size(); ++c)
            row[c] = sources_[c] == kImageScore ? image_score : b.*kBaselineColumns[sources_[c]].field;
          if (options_.per_tap) std::copy(terms.begin(), terms.end(), row + sources_.size());
          for (std::size_t c = 0; c < names.size(); ++c)
            if (!std::isfinite(row[c])) fail("image " + std::to_string(i) + " of the batch", "a score is not finite (non-finite logits?)");
          pred[i] = b.pred;
        }
      });
    }
    py::dict out;
    out["pred"] = py::array_t<std::int64_t>(py::ssize_t(rows), pred.data());
    for (std::size_t c = 0; c < names.size(); ++c) {
      py::array_t<double> column(static_cast<py::ssize_t>(rows));
      for (std::size_t i = 0; i < rows; ++i) column.mutable_data()[i] = values[i * names.size() + c];
      out[py::str(names[c])] = column;
    }
    return out;
  }

 private:
  const Profiles& profiles_;  // kept alive by the Python object (keep_alive)
  ScoreRunOptions options_;
  ImageScorer scorer_;
  std::vector<TapInfo> taps_;
  std::vector<int> sources_;
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
  m.def("score_columns", &score_columns, "The score columns of every scoring run, in order");

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
  }, py::arg("logits"), "msp, margin, neg_entropy, energy, max_logit and pred of float32 logits [images, classes]");

  py::class_<Scorer>(m, "Scorer", "Scores batches against profiles: the image score and the baseline scores")
      .def(py::init([](const Profiles& profiles, const std::string& overlap, double floor, const std::string& by,
                       bool per_tap) { return std::make_unique<Scorer>(profiles, score_options(overlap, floor, by, per_tap)); }),
           py::arg("profiles"), py::arg("overlap") = "recall", py::arg("floor") = 0.0, py::arg("by") = "predicted",
           py::arg("per_tap") = false, py::keep_alive<1, 2>())
      .def_property_readonly("columns", &Scorer::columns, "The value columns score() returns, in order")
      .def("score", &Scorer::score, py::arg("logits"), py::arg("activations"), py::arg("labels") = py::none(),
           "One batch: a dict with `pred` and one float64 array per value column");

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
      .def("__getitem__", &table_column, py::arg("column"))
      .def("save", [](const ScoreTable& t, const std::string& path) {
        py::gil_scoped_release release;
        ScoreWriter writer(path, t.value_columns);
        for (const auto& row : t.rows) writer.write(row);
        writer.commit();
      }, py::arg("path"), "Writes the scores file the command line writes (atomically)");

  m.def("read_scores", [](const std::string& path) {
    return std::make_shared<ScoreTable>(interruptible([&] { return read_score_table(path); }));
  }, py::arg("path"));

  m.def("score_source", [](const std::shared_ptr<Model>& model, const Profiles& profiles,
                           const std::shared_ptr<ImageSource>& source, const std::string& overlap, double floor,
                           const std::string& by, bool per_tap, std::size_t batch_size, int threads, bool quiet) {
    ScoreRunOptions o = score_options(overlap, floor, by, per_tap);
    if (batch_size == 0) fail_option("batch_size", "must be at least 1");
    o.batch_size = batch_size;
    o.threads = threads;
    o.quiet = quiet;
    auto table = std::make_shared<ScoreTable>();
    table->value_columns = score_value_columns(profiles.set, per_tap);
    interruptible([&] {
      check_profiles_match(profiles.set, *model, profiles.name);
      return score_images(*model, profiles.set, *source, o, [&](const ScoreRow& row) { table->rows.push_back(row); });
    });
    return table;
  }, py::arg("model"), py::arg("profiles"), py::arg("source"), py::arg("overlap") = "recall", py::arg("floor") = 0.0,
     py::arg("by") = "predicted", py::arg("per_tap") = false, py::arg("batch_size") = 256, py::arg("threads") = 0,
     py::arg("quiet") = true, "Scores of a library model over a data source: what `imagescore score` computes");
}

}  // namespace imagescore::python
