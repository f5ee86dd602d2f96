// Stratified seeded splits and their JSON files.
#include "imagescore/data/split.hpp"

#include <algorithm>
#include <cmath>
#include <iterator>
#include <nlohmann/json.hpp>
#include <sstream>

#include "data_detail.hpp"
#include "imagescore/data/data.hpp"
#include "imagescore/core/random.hpp"
#include "imagescore/core/error.hpp"
#include "imagescore/core/io.hpp"

namespace imagescore {
namespace {

using Json = nlohmann::ordered_json;

const char* const kFormat = "imagescore-split";
constexpr int kVersion = 1;

std::string format_number(double value) {
  std::ostringstream text;
  text << value;
  return text.str();
}

const Json& field(const Json& json, const char* name, const std::string& path) {
  auto it = json.find(name);
  if (it == json.end()) fail(path, std::string("missing field '") + name + "'");
  return *it;
}

std::uint64_t unsigned_field(const Json& json, const char* name, const std::string& path) {
  const Json& value = field(json, name, path);
  if (!value.is_number_unsigned()) fail(path, std::string("field '") + name + "' must be a non-negative integer");
  return value.get<std::uint64_t>();
}

std::uint64_t hex_field(const Json& json, const char* name, const std::string& path) {
  const Json& value = field(json, name, path);
  const std::string text = value.is_string() ? value.get<std::string>() : "";
  if (text.empty() || text.size() > 16 || text.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos)
    fail(path, std::string("field '") + name + "' must be a hexadecimal string of at most 16 digits");
  return std::stoull(text, nullptr, 16);
}

// Reads a list of indices below `total`, sorted, refusing duplicates.
std::vector<std::size_t> index_field(const Json& json, const char* name, std::size_t total, const std::string& path) {
  const Json& value = field(json, name, path);
  if (!value.is_array()) fail(path, std::string("field '") + name + "' must be an array of image indices");
  std::vector<std::size_t> indices;
  indices.reserve(value.size());
  for (const Json& item : value) {
    if (!item.is_number_unsigned() || item.get<std::uint64_t>() >= total)
      fail(path, std::string("field '") + name + "' has " + item.dump() + ", not an image index below " +
                     std::to_string(total));
    indices.push_back(item.get<std::size_t>());
  }
  std::sort(indices.begin(), indices.end());
  auto repeated = std::adjacent_find(indices.begin(), indices.end());
  if (repeated != indices.end())
    fail(path, "index " + std::to_string(*repeated) + " appears twice in '" + name + "'");
  return indices;
}

void check_fraction(double fraction) {
  if (!(fraction > 0 && fraction < 1))
    fail_option("fraction", "training fraction must be in (0, 1), got " + format_number(fraction));
}

}  // namespace

std::uint64_t hash_labels(const ImageSource& source) {
  std::uint64_t hash = fnv1a64(nullptr, 0);
  for (std::size_t i = 0; i < source.size(); ++i) {
    // Little-endian bytes of each label, so the hash is the same on every platform.
    const std::uint32_t label = std::uint32_t(source.label(i));
    const unsigned char bytes[4] = {static_cast<unsigned char>(label), static_cast<unsigned char>(label >> 8),
                                    static_cast<unsigned char>(label >> 16), static_cast<unsigned char>(label >> 24)};
    hash = fnv1a64(bytes, sizeof bytes, hash);
  }
  return hash;
}

DataSplit make_split(const ImageSource& source, double training_fraction, std::uint64_t seed) {
  check_fraction(training_fraction);
  if (!source.labelled()) fail(source.spec(), "is unlabelled; a split needs labels");
  if (source.size() < 2)
    fail(source.spec(), "has " + std::to_string(source.size()) + (source.size() == 1 ? " image" : " images") +
                            "; a split needs at least 2");
  const std::size_t classes = source.class_names().size();
  std::vector<std::vector<std::size_t>> members(classes);
  for (std::size_t i = 0; i < source.size(); ++i) {
    const int label = source.label(i);
    if (label < 0 || std::size_t(label) >= classes)
      fail(source.path(i), "label " + std::to_string(label) + " is out of range (" + std::to_string(classes) +
                               " classes)");
    members[std::size_t(label)].push_back(i);
  }
  DataSplit split;
  split.data_spec = source.spec();
  split.seed = seed;
  split.training_fraction = training_fraction;
  split.total = source.size();
  split.labels_hash = hash_labels(source);
  for (std::size_t c = 0; c < classes; ++c) {
    const std::size_t n = members[c].size();
    if (n == 0) continue;
    // Both parts keep at least one image of every class that has two or more.
    const std::size_t keep = std::clamp<std::size_t>(std::size_t(std::llround(training_fraction * double(n))), 1,
                                                     n > 1 ? n - 1 : 1);
    const std::vector<std::size_t> order = seeded_permutation(n, mix_seed(seed, c));
    for (std::size_t j = 0; j < n; ++j) (j < keep ? split.training : split.additional).push_back(members[c][order[j]]);
  }
  std::sort(split.training.begin(), split.training.end());
  std::sort(split.additional.begin(), split.additional.end());
  return split;
}

void save_split(const DataSplit& split, const std::string& path) {
  Json json;
  json["format"] = kFormat;
  json["version"] = kVersion;
  json["data"] = split.data_spec;
  json["seed"] = split.seed;
  json["training_fraction"] = split.training_fraction;
  json["total"] = split.total;
  json["labels_hash"] = hex64(split.labels_hash);
  json["training"] = split.training;
  json["additional"] = split.additional;
  write_file_atomic(path, json.dump(2) + "\n");
}

DataSplit load_split(const std::string& path) {
  Json json;
  try {
    json = Json::parse(read_file(path, std::uint64_t(1) << 30));
  } catch (const Json::exception& e) {
    fail(path, std::string("not valid JSON (") + e.what() + ")");
  }
  if (!json.is_object() || !json.contains("format") || json["format"] != kFormat)
    fail(path, std::string("not an imagescore split file (no \"format\": \"") + kFormat + "\")");
  const std::uint64_t version = unsigned_field(json, "version", path);
  if (version != kVersion)
    fail(path, "unsupported split version " + std::to_string(version) + " (expected " + std::to_string(kVersion) + ")");
  DataSplit split;
  const Json& data = field(json, "data", path);
  if (!data.is_string()) fail(path, "field 'data' must be a string");
  split.data_spec = data.get<std::string>();
  split.seed = unsigned_field(json, "seed", path);
  const Json& fraction = field(json, "training_fraction", path);
  if (!fraction.is_number() || !(fraction.get<double>() > 0 && fraction.get<double>() < 1))
    fail(path, "field 'training_fraction' must be a number in (0, 1)");
  split.training_fraction = fraction.get<double>();
  split.total = unsigned_field(json, "total", path);
  split.labels_hash = hex_field(json, "labels_hash", path);
  split.training = index_field(json, "training", split.total, path);
  split.additional = index_field(json, "additional", split.total, path);
  std::vector<std::size_t> both;
  std::set_intersection(split.training.begin(), split.training.end(), split.additional.begin(),
                        split.additional.end(), std::back_inserter(both));
  if (!both.empty())
    fail(path, "index " + std::to_string(both.front()) + " is in both 'training' and 'additional'");
  return split;
}

void check_split_matches(const DataSplit& split, const ImageSource& source, const std::string& split_path) {
  // The data spec is not compared: the same data may be opened from another location.
  if (split.total != source.size())
    fail(split_path, "made from " + std::to_string(split.total) + " images but data '" + source.spec() + "' has " +
                         std::to_string(source.size()));
  const std::uint64_t hash = hash_labels(source);
  if (hash != split.labels_hash)
    fail(split_path, "made from other labels than data '" + source.spec() + "' (labels hash " +
                         hex64(split.labels_hash) + ", data has " + hex64(hash) + ")");
}

}  // namespace imagescore
