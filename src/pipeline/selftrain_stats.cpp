// The paper's tables 1-2 from a self-training run, and the bootstrap test behind them.
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <map>
#include <sstream>

#include "imagescore/core/random.hpp"
#include "imagescore/core/text.hpp"
#include "imagescore/core/error.hpp"
#include "imagescore/core/io.hpp"
#include "imagescore/pipeline/selftrain.hpp"

namespace imagescore {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

double mean(const std::vector<double>& v) {
  if (v.empty()) return kNaN;
  double s = 0;
  for (double x : v) s += x;
  return s / double(v.size());
}

double resampled_mean(const std::vector<double>& v, SplitMix64& rng) {
  double s = 0;
  for (std::size_t i = 0; i < v.size(); ++i) s += v[rng.below(v.size())];
  return s / double(v.size());
}

}  // namespace

double bootstrap_p_value(const std::vector<double>& a, const std::vector<double>& b, std::size_t resamples,
                         std::uint64_t seed) {
  if (a.empty() || b.empty()) return kNaN;
  if (resamples == 0) fail_option("resamples", "must be > 0");
  SplitMix64 rng(seed);
  double below = 0;
  for (std::size_t r = 0; r < resamples; ++r) {
    double d = resampled_mean(a, rng) - resampled_mean(b, rng);
    if (d < 0) below += 1;
    else if (d == 0) below += 0.5;
  }
  return below / double(resamples);
}

std::vector<StatsTable> selftrain_stats(const std::string& run_dir, std::size_t resamples, std::uint64_t seed) {
  const std::string path = run_dir + "/epochs.jsonl";
  std::istringstream lines(read_file(path));
  // series[protocol][arm][class or -1] = per-class accuracies (in %) per retraining epoch
  std::map<std::string, std::map<std::string, std::map<int, std::vector<std::vector<double>>>>> series;
  std::size_t num_classes = 0;
  std::string line;
  std::size_t number = 0;
  while (std::getline(lines, line)) {
    ++number;
    if (line.empty()) continue;
    try {
      auto r = nlohmann::json::parse(line);
      if (r.at("epoch").get<int>() < 1 || r.at("protocol") == "base") continue;
      std::vector<double> acc;
      for (const auto& v : r.at("per_class_accuracy")) acc.push_back(v.is_null() ? kNaN : 100.0 * v.get<double>());
      num_classes = std::max(num_classes, acc.size());
      int cls = r.at("class").is_null() ? -1 : r.at("class").get<int>();
      series[r.at("protocol").get<std::string>()][r.at("arm").get<std::string>()][cls].push_back(acc);
    } catch (const nlohmann::json::exception& e) {
      fail(path + ":" + std::to_string(number), std::string("bad record: ") + e.what());
    }
  }
  if (series.empty()) fail(path, "holds no retraining epoch yet");

  std::vector<std::string> names;
  const std::string classes_path = run_dir + "/classes.json";
  if (std::filesystem::exists(classes_path)) names = nlohmann::json::parse(read_file(classes_path)).get<std::vector<std::string>>();
  names.resize(num_classes);
  for (std::size_t k = 0; k < num_classes; ++k)
    if (names[k].empty()) names[k] = "class " + std::to_string(k);

  std::vector<StatsTable> tables;
  for (const std::string protocol : {"per-class", "joint"}) {
    if (!series.count(protocol)) continue;
    const auto& arms = series.at(protocol);
    // Class k's accuracy over the epochs of an arm's run for class k (per-class
    // protocol), or of its one run (joint protocol and the per-class baseline).
    auto accuracies = [&](const std::string& arm, std::size_t k) {
      std::vector<double> out;
      auto a = arms.find(arm);
      if (a == arms.end()) return out;
      auto run = a->second.find(int(k));
      if (run == a->second.end()) run = a->second.find(-1);
      if (run == a->second.end()) return out;
      for (const auto& epoch : run->second) out.push_back(epoch.at(k));
      return out;
    };
    StatsTable t;
    t.protocol = protocol;
    for (std::size_t k = 0; k < num_classes; ++k) {
      auto base = accuracies("baseline", k), train = accuracies("imagescore", k), soft = accuracies("softmax", k);
      if (train.empty() && soft.empty()) continue;
      StatsRow row;
      row.class_name = names[k];
      row.baseline = mean(base);
      row.train = mean(train);
      row.softmax = mean(soft);
      row.diff_tb = row.train - row.baseline;
      row.diff_sb = row.softmax - row.baseline;
      row.diff_ts = row.train - row.softmax;
      // Distinct seeds per class and comparison keep the resamples independent.
      row.p_value_tb = bootstrap_p_value(train, base, resamples, seed + 2 * k);
      row.p_value_sb = bootstrap_p_value(soft, base, resamples, seed + 2 * k + 1);
      t.significant_tb += row.p_value_tb < 0.05;
      t.significant_sb += row.p_value_sb < 0.05;
      t.rows.push_back(row);
    }
    tables.push_back(t);
  }
  return tables;
}


std::string stats_markdown(const std::vector<StatsTable>& tables) {
  std::string s;
  for (const auto& t : tables) {
    s += "### " + t.protocol + " protocol\n\n";
    s += "| class | baseline | train | diff_tb | p-value_tb | softmax | diff_sb | p-value_sb | diff_ts |\n";
    s += "|---|---|---|---|---|---|---|---|---|\n";
    for (const auto& r : t.rows)
      s += "| " + r.class_name + " | " + fixed(r.baseline, 3) + " | " + fixed(r.train, 3) + " | " + fixed(r.diff_tb, 3) + " | " +
           fixed(r.p_value_tb, 4) + " | " + fixed(r.softmax, 3) + " | " + fixed(r.diff_sb, 3) + " | " + fixed(r.p_value_sb, 4) +
           " | " + fixed(r.diff_ts, 3) + " |\n";
    s += "\nClasses significantly improved at 0.05: image score (train) " + std::to_string(t.significant_tb) + " of " +
         std::to_string(t.rows.size()) + ", softmax " + std::to_string(t.significant_sb) + " of " +
         std::to_string(t.rows.size()) + ".\n\n";
  }
  return s;
}

std::string stats_csv(const std::vector<StatsTable>& tables) {
  std::string s = "protocol,class,baseline,train,diff_tb,p_value_tb,softmax,diff_sb,p_value_sb,diff_ts\n";
  for (const auto& t : tables)
    for (const auto& r : t.rows)
      s += t.protocol + "," + r.class_name + "," + fixed(r.baseline, 6) + "," + fixed(r.train, 6) + "," + fixed(r.diff_tb, 6) +
           "," + fixed(r.p_value_tb, 6) + "," + fixed(r.softmax, 6) + "," + fixed(r.diff_sb, 6) + "," + fixed(r.p_value_sb, 6) +
           "," + fixed(r.diff_ts, 6) + "\n";
  return s;
}

std::vector<int> assemble_labels(const std::vector<std::vector<int>>& labels, const std::vector<std::vector<double>>& scores,
                                 const std::vector<int>& base) {
  if (labels.size() != scores.size()) fail("assemble", "one score list per model needed");
  std::vector<int> out = base;
  std::vector<double> best(base.size(), -std::numeric_limits<double>::infinity());
  std::vector<bool> claimed(base.size(), false);
  for (std::size_t k = 0; k < labels.size(); ++k) {
    if (labels[k].size() != base.size() || scores[k].size() != base.size()) fail("assemble", "models disagree on the number of images");
    for (std::size_t i = 0; i < base.size(); ++i) {
      if (labels[k][i] != int(k)) continue;
      // Strictly greater: on a tie the lower class id (earlier model) keeps the image.
      if (!claimed[i] || scores[k][i] > best[i]) {
        claimed[i] = true;
        best[i] = scores[k][i];
        out[i] = int(k);
      }
    }
  }
  return out;
}

}  // namespace imagescore
