#include "imagescore/train/selftrain_records.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <map>
#include <set>
#include <tuple>
#include <sstream>

#include "imagescore/core/error.hpp"
#include "imagescore/core/io.hpp"
#include "imagescore/core/json.hpp"
#include "imagescore/core/names.hpp"
#include "imagescore/core/text.hpp"
#include "imagescore/stats/bootstrap.hpp"

namespace imagescore {
namespace {

using json = nlohmann::json;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

const EnumName<Protocol> kProtocolNames[] = {
    {Protocol::Base, "base"}, {Protocol::PerClass, "per-class"}, {Protocol::Joint, "joint"}};

double mean(const std::vector<double>& v) {
  if (v.empty()) return kNaN;
  double s = 0;
  for (double x : v) s += x;
  return s / double(v.size());
}

// A number of a record that may be null (NaN, an absent measurement).
double number_or_nan(const json& value, const std::string& where) {
  if (value.is_null()) return kNaN;
  if (!value.is_number()) fail(where, "expected a number or null");
  return value.get<double>();
}

}  // namespace

Protocol parse_protocol(const std::string& name) { return enum_from_name(kProtocolNames, name, "protocols", "protocol"); }
std::string to_string(Protocol protocol) { return enum_name(kProtocolNames, protocol); }

std::string Arm::column() const {
  if (name == "baseline" || name == "base") return "";
  if (name == "softmax") return "msp";
  if (name == "imagescore") return "image_score";
  return name;
}

Arm parse_arm(const std::string& name, const std::vector<std::string>& columns) {
  Arm arm{name};
  const std::string column = arm.column();
  if (name == "base" || (!column.empty() && std::find(columns.begin(), columns.end(), column) == columns.end()))
    fail_option("arms", "unknown arm '" + name + "' (expected baseline, softmax, imagescore or a score column)");
  return arm;
}

double EpochRecord::added_precision() const {
  return added_correct && added > 0 ? double(*added_correct) / double(added) : kNaN;
}

json EpochRecord::to_json() const {
  json per_class = json::array();
  for (double a : per_class_accuracy) per_class.push_back(number_or_null(a));
  json j = {{"protocol", to_string(protocol)},
          {"arm", arm},
          {"class", class_id >= 0 ? json(class_id) : json(nullptr)},
          {"epoch", epoch},
          {"test_accuracy", test_accuracy},
          {"per_class_accuracy", per_class},
          {"added", added},
          {"added_correct", added_correct ? json(*added_correct) : json(nullptr)},
          {"added_precision", number_or_null(added_precision())}};
  if (validation_accuracy) j["validation_accuracy"] = number_or_null(*validation_accuracy);
  if (seed) j["seed"] = *seed;
  return j;
}

EpochRecord EpochRecord::from_json(const json& j, const std::string& where) {
  EpochRecord r;
  try {
    r.protocol = parse_protocol(json_field<std::string>(j, "protocol", where));
  } catch (const OptionError& e) {
    fail(where, "'protocol': " + e.problem());
  }
  r.arm = json_field<std::string>(j, "arm", where);
  // Only per-class records must say which class their run is for (null: every class).
  if (!j.contains("class") && r.protocol == Protocol::PerClass) fail(where, "missing field 'class'");
  if (j.contains("class") && !j.at("class").is_null()) r.class_id = json_field<int>(j, "class", where);
  r.epoch = json_field<int>(j, "epoch", where);
  if (r.epoch < 0) fail(where, "'epoch' must be >= 0");
  r.test_accuracy = json_field<double>(j, "test_accuracy", where);
  if (j.contains("per_class_accuracy")) {
    const json& per_class = j.at("per_class_accuracy");
    if (!per_class.is_array()) fail(where, "'per_class_accuracy' must be an array");
    for (const auto& a : per_class) r.per_class_accuracy.push_back(number_or_nan(a, where + ": per_class_accuracy"));
  }
  if (r.class_id >= 0 && std::size_t(r.class_id) >= r.per_class_accuracy.size())
    fail(where, "per_class_accuracy has no entry for class " + std::to_string(r.class_id));
  r.added = json_field_or<std::size_t>(j, "added", 0, where);
  if (j.contains("added_correct") && !j.at("added_correct").is_null())
    r.added_correct = json_field<std::size_t>(j, "added_correct", where);
  if (j.contains("validation_accuracy"))
    r.validation_accuracy = number_or_nan(j.at("validation_accuracy"), where + ": validation_accuracy");
  if (j.contains("seed")) r.seed = json_field<std::uint64_t>(j, "seed", where);
  return r;
}

std::vector<EpochRecord> read_epoch_records(const std::string& path) {
  std::istringstream lines(read_file(path, std::uint64_t(1) << 30));
  std::vector<EpochRecord> records;
  std::string line;
  for (std::size_t number = 1; std::getline(lines, line); ++number) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = path + ":" + std::to_string(number);
    records.push_back(EpochRecord::from_json(parse_json(line, where), where));
  }
  return records;
}

std::string epoch_records_jsonl(const std::vector<EpochRecord>& records) {
  std::string lines;
  for (const auto& r : records) lines += r.to_json().dump() + "\n";
  return lines;
}

std::vector<std::string> read_run_classes(const std::string& run_dir, std::size_t num_classes) {
  const std::string path = run_dir + "/classes.json";
  std::vector<std::string> names;
  std::error_code ec;
  if (std::filesystem::exists(path, ec)) {
    const json j = read_json_file(path, 1 << 24);
    if (!json_converts_to<std::vector<std::string>>(j)) fail(path, "expected an array of class names");
    names = j.get<std::vector<std::string>>();
  }
  names.resize(std::max(names.size(), num_classes));
  for (std::size_t k = 0; k < names.size(); ++k)
    if (names[k].empty()) names[k] = "class " + std::to_string(k);
  return names;
}

SelftrainStats selftrain_stats(const std::vector<EpochRecord>& records, const std::vector<std::string>& class_names,
                               std::size_t resamples, std::uint64_t seed, const std::string& where) {
  // series[protocol][arm][class or -1] = per-class accuracies (in %) per retraining epoch
  std::map<Protocol, std::map<std::string, std::map<int, std::vector<std::vector<double>>>>> series;
  std::size_t num_classes = 0;
  for (const auto& r : records) {
    if (r.epoch < 1 || r.protocol == Protocol::Base) continue;
    std::vector<double> accuracy;
    for (double a : r.per_class_accuracy) accuracy.push_back(100.0 * a);
    num_classes = std::max(num_classes, accuracy.size());
    series[r.protocol][r.arm][r.class_id].push_back(accuracy);
  }
  if (series.empty()) fail(where, "holds no retraining epoch yet");

  SelftrainStats stats;
  stats.resamples = resamples;
  stats.seed = seed;
  for (Protocol protocol : {Protocol::PerClass, Protocol::Joint}) {
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
      for (const auto& epoch : run->second) out.push_back(k < epoch.size() ? epoch[k] : kNaN);
      return out;
    };
    StatsTable t;
    t.protocol = protocol;
    for (std::size_t k = 0; k < num_classes; ++k) {
      auto base = accuracies("baseline", k), train = accuracies("imagescore", k), soft = accuracies("softmax", k);
      if (train.empty() && soft.empty()) continue;
      StatsRow row;
      row.class_name = k < class_names.size() ? class_names[k] : "class " + std::to_string(k);
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
    stats.tables.push_back(t);
  }
  return stats;
}

namespace {

const char* const kStatsColumns[] = {"baseline", "train", "diff_tb", "p_value_tb", "softmax", "diff_sb", "p_value_sb", "diff_ts"};

std::vector<double> row_values(const StatsRow& r) {
  return {r.baseline, r.train, r.diff_tb, r.p_value_tb, r.softmax, r.diff_sb, r.p_value_sb, r.diff_ts};
}

json table_json(const StatsTable& t) {
  json rows = json::array();
  for (const auto& r : t.rows) {
    json row = {{"class", r.class_name}};
    const auto values = row_values(r);
    for (std::size_t i = 0; i < values.size(); ++i) row[kStatsColumns[i]] = number_or_null(values[i]);
    rows.push_back(row);
  }
  return {{"protocol", to_string(t.protocol)}, {"rows", rows}, {"significant_tb", t.significant_tb},
          {"significant_sb", t.significant_sb}};
}

}  // namespace

SeedStats seed_stats(const std::vector<EpochRecord>& records, std::size_t resamples, std::uint64_t seed,
                     const std::string& where) {
  // The last record of every run: last[protocol][arm][class or -1][seed].
  std::map<Protocol, std::map<std::string, std::map<int, std::map<std::uint64_t, const EpochRecord*>>>> last;
  std::map<Protocol, std::vector<std::string>> arm_order;  // as the records first name them
  std::map<std::pair<Protocol, std::string>, std::pair<std::size_t, std::size_t>> added;
  std::set<std::uint64_t> seed_set;
  for (const auto& r : records) {
    if (r.protocol == Protocol::Base || r.epoch < 1) continue;
    const std::uint64_t s = r.seed.value_or(0);
    seed_set.insert(s);
    auto& order = arm_order[r.protocol];
    if (std::find(order.begin(), order.end(), r.arm) == order.end()) order.push_back(r.arm);
    const EpochRecord*& slot = last[r.protocol][r.arm][r.class_id][s];
    if (!slot || r.epoch > slot->epoch) slot = &r;
    if (r.added_correct) {
      auto& sum = added[{r.protocol, r.arm}];
      sum.first += r.added;
      sum.second += *r.added_correct;
    }
  }
  if (last.empty()) fail(where, "holds no retraining epoch yet");
  SeedStats stats;
  stats.seeds.assign(seed_set.begin(), seed_set.end());
  stats.resamples = resamples;
  stats.seed = seed;
  for (Protocol protocol : {Protocol::PerClass, Protocol::Joint}) {
    if (!last.count(protocol)) continue;
    const auto& arms = last.at(protocol);
    if (!arms.count("baseline"))
      fail(where, "the " + to_string(protocol) + " protocol has no baseline arm to compare the seeds with");
    // The per-class protocol is judged on the classes it ran.
    std::set<int> classes;
    for (const auto& [arm, runs] : arms)
      for (const auto& run : runs)
        if (run.first >= 0) classes.insert(run.first);
    auto final_record = [&](const std::string& arm, int class_id, std::uint64_t s) -> const EpochRecord& {
      const auto& runs = arms.at(arm);
      auto run = runs.find(class_id);
      if (run == runs.end()) run = runs.find(-1);
      if (run == runs.end() || !run->second.count(s))
        fail(where, to_string(protocol) + " arm '" + arm + "' has no record for seed " + std::to_string(s) +
                        (class_id >= 0 ? " and class " + std::to_string(class_id) : std::string()) + " (unfinished run?)");
      return *run->second.at(s);
    };
    auto accuracy = [&](const std::string& arm, std::uint64_t s) {
      if (protocol == Protocol::Joint) return final_record(arm, -1, s).test_accuracy;
      std::vector<double> per_class;
      for (int k : classes) {
        const auto& r = final_record(arm, k, s);
        const double a = std::size_t(k) < r.per_class_accuracy.size() ? r.per_class_accuracy[std::size_t(k)] : kNaN;
        if (!std::isnan(a)) per_class.push_back(a);
      }
      return mean(per_class);
    };
    auto last_epoch = [&](const std::string& arm, std::uint64_t s) {
      return final_record(arm, protocol == Protocol::Joint || arm == "baseline" ? -1 : *classes.begin(), s).epoch;
    };
    std::vector<std::string> order = {"baseline"};
    for (const auto& arm : arm_order.at(protocol))
      if (arm != "baseline") order.push_back(arm);
    for (std::size_t a = 0; a < order.size(); ++a) {
      SeedArmRow row;
      row.protocol = protocol;
      row.arm = order[a];
      std::vector<double> validation;
      for (auto s : stats.seeds) {
        if (last_epoch(row.arm, s) != last_epoch("baseline", s))
          fail(where, "seed " + std::to_string(s) + ": " + to_string(protocol) + " arm '" + row.arm + "' ends at epoch " +
                          std::to_string(last_epoch(row.arm, s)) + ", the baseline at " +
                          std::to_string(last_epoch("baseline", s)) + " (unfinished run?)");
        row.accuracy.push_back(accuracy(row.arm, s));
        row.difference.push_back(row.accuracy.back() - accuracy("baseline", s));
        if (row.difference.back() > 0) ++row.wins;
        if (protocol == Protocol::Joint && final_record(row.arm, -1, s).validation_accuracy)
          validation.push_back(*final_record(row.arm, -1, s).validation_accuracy);
      }
      row.mean = mean(row.accuracy);
      row.mean_difference = mean(row.difference);
      const auto interval = bootstrap_mean_interval(row.difference, resamples, seed + a);
      row.low = interval.low;
      row.high = interval.high;
      if (validation.size() == stats.seeds.size()) row.validation_mean = mean(validation);
      if (added.count({protocol, row.arm})) std::tie(row.added, row.added_correct) = added.at({protocol, row.arm});
      stats.rows.push_back(row);
    }
  }
  return stats;
}

json SeedStats::to_json() const {
  json rows_json = json::array();
  for (const auto& r : rows) {
    json per_seed = json::array(), differences = json::array();
    for (double a : r.accuracy) per_seed.push_back(number_or_null(a));
    for (double d : r.difference) differences.push_back(number_or_null(d));
    rows_json.push_back({{"protocol", to_string(r.protocol)},
                         {"arm", r.arm},
                         {"accuracy", per_seed},
                         {"difference", differences},
                         {"mean", number_or_null(r.mean)},
                         {"mean_difference", number_or_null(r.mean_difference)},
                         {"low", number_or_null(r.low)},
                         {"high", number_or_null(r.high)},
                         {"wins", r.wins},
                         {"validation_mean", r.validation_mean ? number_or_null(*r.validation_mean) : json(nullptr)},
                         {"added", r.added},
                         {"added_correct", r.added_correct}});
  }
  return {{"seeds", seeds}, {"resamples", resamples}, {"seed", seed}, {"rows", rows_json}};
}

std::string SeedStats::markdown() const {
  std::string s = "### Over " + std::to_string(seeds.size()) + " seed" + (seeds.size() == 1 ? "" : "s") +
                  ": final accuracy (%) and the paired difference to the baseline\n\n";
  s += "| protocol | arm | mean | per seed | difference | 95% interval over seeds | wins | validation | added | precision |\n";
  s += "|---|---|---|---|---|---|---|---|---|---|\n";
  for (const auto& r : rows) {
    std::string per_seed;
    for (double a : r.accuracy) per_seed += (per_seed.empty() ? "" : ", ") + fixed(100 * a, 2);
    const bool baseline = r.arm == "baseline";
    s += "| " + to_string(r.protocol) + " | " + r.arm + " | " + fixed(100 * r.mean, 2) + " | " + per_seed + " | " +
         (baseline ? "" : fixed(100 * r.mean_difference, 2)) + " | " +
         (baseline ? "" : "[" + fixed(100 * r.low, 2) + ", " + fixed(100 * r.high, 2) + "]") + " | " +
         (baseline ? "" : std::to_string(r.wins) + " of " + std::to_string(seeds.size())) + " | " +
         (r.validation_mean ? fixed(100 * *r.validation_mean, 2) : "") + " | " + (r.added ? std::to_string(r.added) : "") +
         " | " + (r.added ? fixed(double(r.added_correct) / double(r.added), 3) : "") + " |\n";
  }
  s += "\nDifferences in points; the interval is a percentile bootstrap over seeds (" + std::to_string(resamples) +
       " resamples), which with few seeds cannot be wider than the seeds' own spread. Per-class protocol: the mean over "
       "the run classes of each class's accuracy under its own run. Added: pseudo-labels over all selections and seeds.\n\n";
  return s;
}

std::string SeedStats::csv() const {
  std::string s = "protocol,arm,seed,accuracy,difference\n";
  for (const auto& r : rows)
    for (std::size_t i = 0; i < seeds.size(); ++i)
      s += to_string(r.protocol) + "," + csv_field(r.arm) + "," + std::to_string(seeds[i]) + "," + fixed(r.accuracy[i], 6) +
           "," + fixed(r.difference[i], 6) + "\n";
  return s;
}

StatsTable parse_stats_table(const json& j, const std::string& where) {
  StatsTable t;
  try {
    t.protocol = parse_protocol(json_field_or<std::string>(j, "protocol", "per-class", where));
  } catch (const OptionError& e) {
    fail(where, "'protocol': " + e.problem());
  }
  t.significant_tb = json_field<int>(j, "significant_tb", where);
  t.significant_sb = json_field<int>(j, "significant_sb", where);
  if (!j.contains("rows")) fail(where, "missing field 'rows'");
  const json& rows = j.at("rows");
  if (!rows.is_array()) fail(where, "'rows' must be an array");
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const std::string at = where + ": rows[" + std::to_string(i) + "]";
    StatsRow r;
    r.class_name = json_field<std::string>(rows[i], "class", at);
    double* fields[] = {&r.baseline, &r.train, &r.diff_tb, &r.p_value_tb, &r.softmax, &r.diff_sb, &r.p_value_sb, &r.diff_ts};
    for (std::size_t c = 0; c < std::size(kStatsColumns); ++c) {
      if (!rows[i].contains(kStatsColumns[c])) fail(at, std::string("missing field '") + kStatsColumns[c] + "'");
      *fields[c] = number_or_nan(rows[i].at(kStatsColumns[c]), at + "." + kStatsColumns[c]);
    }
    t.rows.push_back(r);
  }
  return t;
}

json SelftrainStats::to_json() const {
  json all = json::array();
  for (const auto& t : tables) all.push_back(table_json(t));
  // The first table (per-class protocol when run) also at the top level.
  json summary = tables.empty() ? json::object() : table_json(tables.front());
  json classes = json::array();
  if (!tables.empty())
    for (const auto& r : tables.front().rows) classes.push_back(r.class_name);
  summary["classes"] = classes;
  summary["tables"] = all;
  summary["resamples"] = resamples;
  summary["seed"] = seed;
  return summary;
}

SelftrainStats SelftrainStats::from_json(const json& j, const std::string& where) {
  SelftrainStats s;
  s.resamples = json_field<std::size_t>(j, "resamples", where);
  s.seed = json_field<std::uint64_t>(j, "seed", where);
  const json& tables = j.contains("tables") ? j.at("tables") : json();
  if (!tables.is_array() || tables.empty()) fail(where, "'tables' must be a non-empty array");
  for (std::size_t i = 0; i < tables.size(); ++i)
    s.tables.push_back(parse_stats_table(tables[i], where + ": tables[" + std::to_string(i) + "]"));
  return s;
}

std::string SelftrainStats::markdown() const {
  std::string s;
  for (const auto& t : tables) {
    s += "### " + to_string(t.protocol) + " protocol\n\n";
    s += "| class | baseline | train | diff_tb | p-value_tb | softmax | diff_sb | p-value_sb | diff_ts |\n";
    s += "|---|---|---|---|---|---|---|---|---|\n";
    for (const auto& r : t.rows)
      s += "| " + r.class_name + " | " + fixed(r.baseline, 3) + " | " + fixed(r.train, 3) + " | " + fixed(r.diff_tb, 3) +
           " | " + fixed(r.p_value_tb, 4) + " | " + fixed(r.softmax, 3) + " | " + fixed(r.diff_sb, 3) + " | " +
           fixed(r.p_value_sb, 4) + " | " + fixed(r.diff_ts, 3) + " |\n";
    s += "\nClasses significantly improved at 0.05: image score (train) " + std::to_string(t.significant_tb) + " of " +
         std::to_string(t.rows.size()) + ", softmax " + std::to_string(t.significant_sb) + " of " +
         std::to_string(t.rows.size()) + ".\n\n";
  }
  return s;
}

std::string SelftrainStats::csv() const {
  std::string s = "protocol,class,baseline,train,diff_tb,p_value_tb,softmax,diff_sb,p_value_sb,diff_ts\n";
  for (const auto& t : tables)
    for (const auto& r : t.rows) {
      s += to_string(t.protocol) + "," + csv_field(r.class_name);
      for (double v : row_values(r)) s += "," + fixed(v, 6);
      s += "\n";
    }
  return s;
}

json assembly_json(const std::vector<AssemblyResult>& results) {
  json rows = json::array();
  for (const auto& r : results)
    rows.push_back({{"epoch", r.epoch},
                    {"base", r.base_accuracy},
                    {"baseline", r.baseline_arm_accuracy ? json(*r.baseline_arm_accuracy) : json(nullptr)},
                    {"assembled", r.assembled_accuracy},
                    {"claimed_by_none", r.claimed_by_none},
                    {"claimed_by_several", r.claimed_by_several}});
  return rows;
}

std::vector<AssemblyResult> parse_assembly_json(const json& j, const std::string& where) {
  if (!j.is_array()) fail(where, "expected an array of assembly rows");
  std::vector<AssemblyResult> results;
  for (std::size_t i = 0; i < j.size(); ++i) {
    const std::string at = where + ": [" + std::to_string(i) + "]";
    AssemblyResult r;
    r.epoch = json_field<int>(j[i], "epoch", at);
    r.base_accuracy = json_field<double>(j[i], "base", at);
    if (!j[i].contains("baseline")) fail(at, "missing field 'baseline'");
    if (!j[i].at("baseline").is_null()) r.baseline_arm_accuracy = json_field<double>(j[i], "baseline", at);
    r.assembled_accuracy = json_field<double>(j[i], "assembled", at);
    r.claimed_by_none = json_field<std::size_t>(j[i], "claimed_by_none", at);
    r.claimed_by_several = json_field<std::size_t>(j[i], "claimed_by_several", at);
    results.push_back(r);
  }
  return results;
}

std::string assembly_markdown(const std::vector<AssemblyResult>& results) {
  std::string table = "| epoch | base model | baseline arm | assembled |\n|---|---|---|---|\n";
  for (const auto& r : results)
    table += "| " + std::to_string(r.epoch) + " | " + fixed(100 * r.base_accuracy, 2) + " | " +
             (r.baseline_arm_accuracy ? fixed(100 * *r.baseline_arm_accuracy, 2) : std::string("-")) + " | " +
             fixed(100 * r.assembled_accuracy, 2) + " |\n";
  return table;
}

}  // namespace imagescore
