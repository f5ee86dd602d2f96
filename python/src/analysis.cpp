// Selection of pseudo-labels, the misclassification-detection metrics, the analysis of a
// scores table and the bootstrap.
#include <nlohmann/json.hpp>

#include <algorithm>

#include "bindings.hpp"
#include "imagescore/core/error.hpp"
#include "imagescore/select/select.hpp"
#include "imagescore/stats/analysis.hpp"
#include "imagescore/stats/bootstrap.hpp"
#include "imagescore/stats/metrics.hpp"

namespace imagescore::python {
namespace {

// One score and one correctness flag per image, of the same length.
struct Detection {
  std::vector<double> score;
  std::vector<bool> correct;
};
Detection detection(py::handle score, py::handle correct) {
  Detection d;
  d.score = double_vector(score, "score");
  d.correct = bool_vector(correct, "correct", d.score.size());
  return d;
}

// A metric of metrics.hpp as a Python function of (score, correct).
void def_metric(py::module_& m, const char* name, double (*metric)(const std::vector<double>&, const std::vector<bool>&),
                const char* doc) {
  m.def(name, [metric](py::handle score, py::handle correct) {
    const Detection d = detection(score, correct);
    py::gil_scoped_release release;
    return metric(d.score, d.correct);
  }, py::arg("score"), py::arg("correct"), doc);
}

SelectOptions select_options(py::object fraction, py::object alpha, py::object top, py::object min_score, bool global) {
  SelectOptions o;
  o.global = global;
  const int rules = int(!fraction.is_none()) + int(!alpha.is_none()) + int(!top.is_none()) + int(!min_score.is_none());
  if (rules > 1) fail("select", "give only one of fraction, alpha, top and min_score");
  if (!alpha.is_none()) {
    o.rule = SelectOptions::Rule::Alpha;
    o.alpha = double_vector(alpha, "alpha");
  } else if (!top.is_none()) {
    o.rule = SelectOptions::Rule::Top;
    const auto value = top.cast<long long>();
    if (value < 0) fail_option("top", "must not be negative");
    o.top = std::size_t(value);
  } else if (!min_score.is_none()) {
    o.rule = SelectOptions::Rule::MinScore;
    o.min_score = min_score.cast<double>();
  } else {
    o.rule = SelectOptions::Rule::Fraction;
    if (!fraction.is_none()) o.fraction = fraction.cast<double>();
  }
  return o;
}

// The class count selection needs: given, or as the command line takes it (the largest
// predicted class + 1, and at least one per alpha value).
std::size_t class_count(const ScoreTable& table, const SelectOptions& options, py::object classes) {
  return classes.is_none() ? imagescore::class_count(table, options) : classes.cast<std::size_t>();
}

std::vector<std::size_t> positions(py::handle selected, const ScoreTable& table) {
  std::vector<std::size_t> out;
  for (auto i : int_vector(selected, "selected")) {
    if (i < 0 || std::size_t(i) >= table.rows.size())
      fail("selected", "row " + std::to_string(i) + " outside the " + std::to_string(table.rows.size()) + " rows");
    out.push_back(std::size_t(i));
  }
  return out;
}

py::dict class_stats(const ClassSelectionStats& s, bool labels) {
  py::dict d;
  d["candidates"] = s.candidates;
  d["selected"] = s.selected;
  if (labels) {
    d["correct"] = s.correct;
    d["precision"] = s.precision();
  }
  return d;
}

py::object json_to_python(const nlohmann::json& j) { return py::module_::import("json").attr("loads")(j.dump()); }

}  // namespace

void bind_analysis(py::module_& m) {
  m.def("select", [](const ScoreTable& table, const std::string& by, py::object fraction, py::object alpha, py::object top,
                     py::object min_score, bool global, py::object classes) {
    const SelectOptions o = select_options(fraction, alpha, top, min_score, global);
    table.column(by);
    const std::size_t k = class_count(table, o, classes);
    std::vector<std::size_t> rows;
    {
      py::gil_scoped_release release;
      rows = select_rows(table, by, o, k);
    }
    return py::array_t<std::int64_t>(py::ssize_t(rows.size()), std::vector<std::int64_t>(rows.begin(), rows.end()).data());
  }, py::arg("table"), py::arg("by") = "image_score", py::arg("fraction") = py::none(), py::arg("alpha") = py::none(),
     py::arg("top") = py::none(), py::arg("min_score") = py::none(), py::arg("global_rank") = false,
     py::arg("classes") = py::none(),
     "Row positions of the selected rows (per predicted class unless global_rank): the top `fraction` "
     "(default 0.3), one fraction per class (`alpha`), `top` K, or every row with score >= `min_score`");

  m.def("selection_stats", [](const ScoreTable& table, py::handle selected, py::object classes) {
    const auto rows = positions(selected, table);
    SelectOptions o;
    const std::size_t k = class_count(table, o, classes);
    const SelectionStats stats = selection_stats(table, rows, k);
    const bool labels = table.has_labels();
    py::dict per_class;  // by class id, the classes with candidates (as selection_json)
    for (std::size_t c = 0; c < stats.per_class.size(); ++c)
      if (stats.per_class[c].candidates > 0) per_class[py::int_(c)] = class_stats(stats.per_class[c], labels);
    py::dict d;
    d["overall"] = class_stats(stats.overall, labels);
    d["per_class"] = per_class;
    return d;
  }, py::arg("table"), py::arg("selected"), py::arg("classes") = py::none(),
     "Candidates, selected, correct and precision of a selection, overall and per predicted class");

  m.def("write_selection", [](const std::string& path, const ScoreTable& table, const std::string& by,
                              py::handle selected) {
    const auto rows = positions(selected, table);
    py::gil_scoped_release release;
    write_selection(path, table, by, rows);
  }, py::arg("path"), py::arg("table"), py::arg("by"), py::arg("selected"),
     "Writes the selection file (id,path,pseudo_label,score) the command line writes");

  def_metric(m, "auroc", &auroc, "P(score of a right prediction > score of a wrong one), ties one half");
  def_metric(m, "aupr_errors", &aupr_errors, "Average precision of finding the errors by ascending score");
  def_metric(m, "aurc", &aurc, "Area under the risk-coverage curve");
  def_metric(m, "excess_aurc", &excess_aurc, "AURC minus the AURC of an oracle ranking");
  def_metric(m, "fpr_at_95_tpr", &fpr_at_95_tpr, "Wrong predictions accepted where 95% of the right ones are");
  m.def("precision_at_top", [](py::handle score, py::handle correct, double fraction) {
    const Detection d = detection(score, correct);
    py::gil_scoped_release release;
    return precision_at_top(d.score, d.correct, fraction);
  }, py::arg("score"), py::arg("correct"), py::arg("fraction"), "Accuracy among the top `fraction` by score");

  m.def("detection_metrics", [](py::handle score, py::handle correct, std::size_t resamples, std::uint64_t seed,
                                double confidence) {
    const Detection d = detection(score, correct);
    BootstrapOptions o;
    o.resamples = resamples;
    o.seed = seed;
    o.confidence = confidence;
    std::vector<Estimate> estimates;
    {
      py::gil_scoped_release release;
      estimates = detection_metrics(d.score, d.correct, o);
    }
    py::dict out;
    const auto& names = detection_metric_names();
    for (std::size_t i = 0; i < names.size(); ++i)
      out[py::str(names[i])] = py::make_tuple(estimates[i].value, estimates[i].lower, estimates[i].upper);
    return out;
  }, py::arg("score"), py::arg("correct"), py::arg("resamples") = 1000, py::arg("seed") = 0, py::arg("confidence") = 0.95,
     "Every detection metric as (value, lower, upper) with its seeded percentile bootstrap interval");

  m.def("risk_coverage", [](py::handle score, py::handle correct, std::size_t max_points) {
    const Detection d = detection(score, correct);
    RiskCoverage curve;
    {
      py::gil_scoped_release release;
      curve = risk_coverage(d.score, d.correct, max_points);
    }
    return py::make_tuple(py::array_t<double>(py::ssize_t(curve.coverage.size()), curve.coverage.data()),
                          py::array_t<double>(py::ssize_t(curve.risk.size()), curve.risk.data()));
  }, py::arg("score"), py::arg("correct"), py::arg("max_points") = 200, "(coverage, risk) arrays");

  m.def("analyze", [](const ScoreTable& test, const ScoreTable* training, std::size_t bins, const std::string& binning,
                      std::size_t resamples, std::uint64_t seed, double confidence, std::size_t curve_points) {
    AnalysisOptions o;
    o.bins = bins;
    o.binning = parse_binning(binning);
    o.bootstrap.resamples = resamples;
    o.bootstrap.seed = seed;
    o.bootstrap.confidence = confidence;
    o.curve_points = curve_points;
    nlohmann::json result;
    {
      py::gil_scoped_release release;
      result = analyze_scores(test, training, o);
    }
    return json_to_python(result);
  }, py::arg("table"), py::arg("training") = nullptr, py::arg("bins") = 10, py::arg("binning") = "width",
     py::arg("resamples") = 1000, py::arg("seed") = 0, py::arg("confidence") = 0.95, py::arg("curve_points") = 200,
     "What `imagescore analyze` writes, as a dict (docs/report.md)");

  m.def("bootstrap_p_value", [](py::handle a, py::handle b, std::size_t resamples, std::uint64_t seed) {
    const auto x = double_vector(a, "a"), y = double_vector(b, "b");
    py::gil_scoped_release release;
    return bootstrap_p_value(x, y, resamples, seed);
  }, py::arg("a"), py::arg("b"), py::arg("resamples") = 10000, py::arg("seed") = 0,
     "One-sided bootstrap test of mean(a) > mean(b)");
}

}  // namespace imagescore::python
