// Reference sets: fitting every fitted score in one streamed pass, shards, files.
#include "imagescore/score/fitted.hpp"

#include <nlohmann/json.hpp>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>

#include "fits.hpp"
#include "imagescore/core/error.hpp"
#include "imagescore/core/io.hpp"
#include "imagescore/core/json.hpp"
#include "imagescore/core/partition.hpp"
#include "imagescore/core/progress.hpp"
#include "imagescore/core/text.hpp"
#include "imagescore/score/registry.hpp"

namespace imagescore {
namespace {

using json = nlohmann::json;
constexpr const char* kReferenceKey = "imagescore.reference";

json options_json(const FitOptions& o) {
  json j = {{"rho", o.profile.rho},
          {"norm", to_string(o.profile.norm)},
          {"scale", to_string(o.profile.scale)},
          {"global", o.profile.global},
          {"taps", o.taps},
          {"feature_tap", o.feature_tap},
          {"knn_k", o.knn_k},
          {"knn_index", o.knn_index},
          {"knn_nprobe", o.knn_nprobe},
          {"trust_k", o.trust_k},
          {"trust_alpha", o.trust_alpha},
          {"shrinkage", o.shrinkage},
          {"nac_bins", o.nac.bins},
          {"nac_min_count", o.nac.min_count},
          {"nac_steepness", o.nac.steepness}};
  if (o.profile.keep_sums) j["keep_sums"] = true;  // files without the key keep none
  return j;
}

FitOptions options_from(const json& j, const std::string& where) {
  FitOptions o;
  try {
    o.profile.rho = json_field<double>(j, "rho", where);
    o.profile.norm = parse_norm(json_field<std::string>(j, "norm", where));
    o.profile.scale = parse_scale(json_field<std::string>(j, "scale", where));
    o.profile.global = json_field<bool>(j, "global", where);
    o.profile.keep_sums = json_field_or<bool>(j, "keep_sums", false, where);
    o.taps = json_field<std::vector<std::string>>(j, "taps", where);
    o.feature_tap = json_field<std::string>(j, "feature_tap", where);
    o.knn_k = json_field<std::size_t>(j, "knn_k", where);
    // Files written before the option have exact search.
    o.knn_index = json_field_or<std::string>(j, "knn_index", o.knn_index, where);
    o.knn_nprobe = json_field_or<std::size_t>(j, "knn_nprobe", o.knn_nprobe, where);
    o.trust_k = json_field<std::size_t>(j, "trust_k", where);
    o.trust_alpha = json_field<double>(j, "trust_alpha", where);
    o.shrinkage = json_field<double>(j, "shrinkage", where);
    o.nac.bins = json_field<std::size_t>(j, "nac_bins", where);
    o.nac.min_count = json_field<double>(j, "nac_min_count", where);
    o.nac.steepness = json_field<double>(j, "nac_steepness", where);
    o.validate();
  } catch (const OptionError& e) {
    fail(where, "bad option in the file: " + std::string(e.what()));
  }
  return o;
}

// The fit kinds the named scores need, in registry order.
std::vector<std::string> fit_kinds(const std::vector<std::string>& names) {
  std::vector<std::string> kinds;
  for (const auto& name : canonical_score_names(names)) {
    const std::string& fit = score_info(name).fit;
    if (!fit.empty() && std::find(kinds.begin(), kinds.end(), fit) == kinds.end()) kinds.push_back(fit);
  }
  return kinds;
}

std::unique_ptr<FittedScore> new_fit(const std::string& kind, const detail::FitContext& context) {
  if (kind == "profiles") return detail::new_profiles_fit(context);
  if (kind == "features") return detail::new_features_fit(context);
  if (kind == "gaussian") return detail::new_gaussian_fit(context);
  return detail::new_nac_fit(context);
}

std::string shard_text(std::size_t index, std::size_t count) {
  return std::to_string(index) + "/" + std::to_string(count);
}

}  // namespace

const TapView& Activations::tap(const std::string& name) const {
  for (std::size_t i = 0; i < tap_names.size(); ++i)
    if (tap_names[i] == name) return out->taps[i];
  fail("activations", "tap '" + name + "' was not computed");
}

void NacOptions::validate() const {
  if (bins < 4 || bins % 2 != 0 || bins > 10000) fail_option("nac_bins", "must be an even number from 4 to 10000");
  if (!(min_count >= 1) || !std::isfinite(min_count)) fail_option("nac_min_count", "must be >= 1");
  if (!(steepness > 0) || !std::isfinite(steepness)) fail_option("nac_steepness", "must be > 0");
}

void FitOptions::validate() const {
  profile.validate();
  if (knn_index != "exact" && knn_index != "ivf") fail_option("knn_index", "must be exact or ivf, got '" + knn_index + "'");
  if (knn_nprobe == 0) fail_option("knn_nprobe", "must be >= 1");
  if (trust_k == 0) fail_option("trust_k", "must be >= 1");
  if (!(trust_alpha >= 0 && trust_alpha < 1)) fail_option("trust_alpha", "must be in [0, 1)");
  if (!(shrinkage >= 0 && shrinkage <= 1)) fail_option("shrinkage", "must be in [0, 1]");
  nac.validate();
}

const FittedScore* ReferenceSet::provider(const std::string& column) const {
  for (const auto& fit : fits) {
    const auto columns = fit->columns();
    if (std::find(columns.begin(), columns.end(), column) != columns.end()) return fit.get();
  }
  return nullptr;
}

const ProfileSet* ReferenceSet::profiles() const {
  for (const auto& fit : fits)
    if (fit->kind() == "profiles") return detail::profiles_of(*fit);
  return nullptr;
}

std::vector<std::string> ReferenceSet::columns() const {
  std::vector<std::string> columns;
  for (const auto& fit : fits) {
    const auto c = fit->columns();
    columns.insert(columns.end(), c.begin(), c.end());
  }
  return columns;
}

json ReferenceSet::summary() const {
  json out = {{"shard", {shard_index, shard_count}}, {"columns", columns()}, {"data", data_spec}};
  if (const ProfileSet* set = profiles()) {
    json list = json::array();
    for (const auto& p : set->profiles) {
      json taps = json::object();
      for (const auto& t : p.taps) taps[t.name] = {{"threshold", t.threshold}, {"mask", t.mask_count}, {"excluded", t.excluded}};
      list.push_back({{"name", p.name}, {"count", p.count}, {"taps", taps}});
    }
    out["profiles"] = list;
    out["excluded"] = set->exclusions();
  }
  return out;
}

ReferenceBuilder::ReferenceBuilder(const Model& model, const FitOptions& options, const std::vector<std::string>& scores,
                                   std::string data_spec, std::size_t images, bool shard) {
  options.validate();
  std::vector<std::string> names = scores;
  if (names.empty()) {
    names = {"image_score"};
    if (!options.profile.global) names.insert(names.end(), {"knn", "trust", "mahalanobis", "rel_mahalanobis"});
    if (!options.profile.global && model.linear_head()) names.push_back("nac");
  }
  const auto kinds = fit_kinds(names);
  if (kinds.empty()) fail_option("scores", "none of the scores asked for is fitted (msp and the like need no fit)");
  if (options.profile.global && kinds != std::vector<std::string>{"profiles"})
    fail_option("scores", "a global reference set (no labels) fits the image score only");

  const auto& meta = model.meta();
  set_.model_arch = meta.arch;
  set_.weights_hash = meta.weights_hash;
  set_.class_names = meta.class_names;
  set_.data_spec = std::move(data_spec);
  set_.options = options;
  detail::FitContext context{model, set_.options, set_.data_spec, images, shard};
  for (const auto& kind : kinds) set_.fits.push_back(new_fit(kind, context));
  std::vector<std::string> tap_names;
  for (const auto& fit : set_.fits)
    for (const auto& name : fit->taps())
      if (std::find(tap_names.begin(), tap_names.end(), name) == tap_names.end()) tap_names.push_back(name);
  tap_ids_ = resolve_taps(model, tap_names);
  for (auto id : tap_ids_) computed_.push_back(model.taps()[id].name);
}

std::size_t ReferenceBuilder::passes() const {
  std::size_t passes = 1;
  for (const auto& fit : set_.fits) passes = std::max(passes, fit->passes());
  return passes;
}

bool ReferenceBuilder::takes(std::size_t pass, std::size_t cls) const {
  for (const auto& fit : set_.fits)
    if (fit->passes() > pass && fit->takes(pass, cls)) return true;
  return false;
}

void ReferenceBuilder::begin_pass(std::size_t pass) {
  if (finished_) fail("reference set", "already finished");
  if (pass != pass_ + 1 || pass >= passes())
    fail("reference set", "pass " + std::to_string(pass + 1) + " of " + std::to_string(passes()) + " out of order");
  pass_ = pass;
  for (auto& fit : set_.fits)
    if (fit->passes() > pass) fit->begin_pass(pass);
}

void ReferenceBuilder::add(const ForwardOutput& out, const std::vector<std::size_t>& ids,
                           const std::vector<std::int64_t>& labels) {
  if (finished_) fail("reference set", "already finished");
  const Activations a{&out, computed_, ids};
  for (auto& fit : set_.fits)
    if (fit->passes() > pass_) fit->add(a, labels);
}

ReferenceSet ReferenceBuilder::finish(std::size_t shard_index, std::size_t shard_count) {
  if (finished_) fail("reference set", "already finished");
  if (pass_ + 1 != passes())
    fail("reference set", "fitted in " + std::to_string(pass_ + 1) + " of its " + std::to_string(passes()) +
                              " passes over the reference images");
  finished_ = true;
  for (auto& fit : set_.fits) fit->finish(shard_count == 1);
  set_.shard_index = shard_index;
  set_.shard_count = shard_count;
  return std::move(set_);
}

ReferenceSet fit_reference(Model& model, const ImageSource& given, const FitRunOptions& options) {
  options.fit.validate();
  const auto aligned = align_to_model(model, given);
  const ImageSource& source = *aligned;
  if (!options.fit.profile.global && !source.labelled())
    fail(source.spec(), "fitting per-class statistics needs labelled images (or build one global profile)");
  const std::size_t n = source.size();
  if (n == 0) fail(source.spec(), "no images");
  check_shard_count(source.spec(), n, options.shard_count);
  const auto [begin, end] = shard_range(n, options.shard_index, options.shard_count);
  const std::string data = options.data_part.empty() ? source.spec() : source.spec() + " (" + options.data_part + ")";
  ReferenceBuilder builder(model, options.fit, options.scores, data, end - begin, options.shard_count > 1);

  // One pass over the shard's images, or one per group of classes over the images the
  // pass takes (only labelled sources have groups).
  std::vector<std::vector<std::size_t>> parts(builder.passes());
  for (std::size_t i = begin; i < end; ++i) {
    if (parts.size() == 1) {
      parts[0].push_back(i);
      continue;
    }
    const auto cls = std::size_t(source.label(i));
    for (std::size_t pass = 0; pass < parts.size(); ++pass)
      if (builder.takes(pass, cls)) parts[pass].push_back(i);
  }
  std::size_t images = 0;
  for (const auto& part : parts) images += part.size();
  Progress progress(parts.size() > 1 ? "profile (" + std::to_string(parts.size()) + " passes)" : "profile", images, options.quiet);
  LoaderOptions lo;
  lo.batch_size = options.batch_size;
  lo.threads = options.threads;
  for (std::size_t pass = 0; pass < parts.size(); ++pass) {
    if (pass > 0) builder.begin_pass(pass);
    auto shard = subset(source, std::move(parts[pass]));
    BatchLoader loader(*shard, model.meta().normalization, lo);
    Batch batch;
    std::vector<std::size_t> ids;
    while (loader.next(batch)) {
      ids.clear();
      for (auto index : batch.indices) ids.push_back(shard->id(index));
      builder.add(model.forward(batch, builder.tap_ids()), ids, batch.labels);
      progress.advance(batch.size());
    }
  }
  progress.finish();
  return builder.finish(options.shard_index, options.shard_count);
}

ProfileSet detail::take_profiles(ReferenceSet& set) {
  for (auto& fit : set.fits)
    if (fit->kind() == "profiles") {
      ProfileSet profiles = detail::take_profiles_of(*fit);
      profiles.shard_index = set.shard_index;
      profiles.shard_count = set.shard_count;
      return profiles;
    }
  fail("reference set", "holds no profiles");
}

ReferenceSet reference_of(ProfileSet profiles) {
  ReferenceSet set;
  set.model_arch = profiles.model_arch;
  set.weights_hash = profiles.weights_hash;
  set.class_names = profiles.class_names;
  set.data_spec = profiles.data_spec;
  set.shard_index = profiles.shard_index;
  set.shard_count = profiles.shard_count;
  set.options.profile = profiles.options;
  set.options.taps = profiles.tap_names();
  set.fits.push_back(detail::profiles_fit_from(std::move(profiles)));
  return set;
}

ReferenceSet merge_reference_files(const std::vector<std::string>& paths, std::uint64_t max_bytes) {
  // Every shard is held at once, each about as large in memory as on disk.
  std::uint64_t total = 0;
  for (const auto& path : paths) {
    std::error_code ec;
    const auto size = std::filesystem::file_size(path, ec);
    if (ec) fail(path, "cannot read: " + ec.message());
    total += size;
  }
  const std::uint64_t limit = memory_limit(max_bytes);
  if (total > limit)
    fail_option("max_memory", "merging " + std::to_string(paths.size()) + " shards holds their " +
                                  format_bytes(total) + " at once, over the limit of " + format_bytes(limit) + " (raise --max-memory on a machine with the memory)");
  std::vector<ReferenceSet> shards;
  for (const auto& path : paths) shards.push_back(load_reference(path));
  return merge_references(std::move(shards), paths);
}

ReferenceSet merge_references(std::vector<ReferenceSet> shards, const std::vector<std::string>& names) {
  if (shards.empty()) fail("profile merge", "no profiles given");
  const std::size_t k = shards.front().shard_count;
  if (shards.size() != k)
    fail(names.front(), "is shard " + shard_text(shards.front().shard_index, k) + " but " + std::to_string(shards.size()) +
                            " files were given");
  std::vector<std::size_t> order(k + 1, k);  // shard index -> position in `shards`
  for (std::size_t s = 0; s < shards.size(); ++s) {
    const auto& p = shards[s];
    const auto& first = shards.front();
    const std::string& name = names[s];
    if (p.weights_hash != first.weights_hash || p.model_arch != first.model_arch)
      fail(name, "built from another model than " + names.front());
    if (options_json(p.options) != options_json(first.options)) fail(name, "built with other options than " + names.front());
    if (p.data_spec != first.data_spec) fail(name, "built from other data than " + names.front());
    if (p.class_names != first.class_names || p.fits.size() != first.fits.size())
      fail(name, "has other classes or scores than " + names.front());
    for (std::size_t f = 0; f < p.fits.size(); ++f) {
      if (p.fits[f]->kind() != first.fits[f]->kind()) fail(name, "has other scores than " + names.front());
      first.fits[f]->check_same(*p.fits[f], name);
    }
    if (p.shard_count != k) fail(name, "belongs to a split into " + std::to_string(p.shard_count) + " shards, not " + std::to_string(k));
    if (order[p.shard_index] != k) fail(name, "shard " + std::to_string(p.shard_index) + " given twice");
    order[p.shard_index] = s;
  }
  ReferenceSet merged = std::move(shards[order[1]]);
  for (std::size_t i = 2; i <= k; ++i)
    for (std::size_t f = 0; f < merged.fits.size(); ++f) merged.fits[f]->merge(*shards[order[i]].fits[f]);
  finish_reference(merged);
  return merged;
}

void finish_reference(ReferenceSet& set) {
  set.shard_index = set.shard_count = 1;
  for (auto& fit : set.fits) fit->finish(true);
}

namespace {

// The reference file's tensors (the masks as views of the set's memory) and description.
SafetensorsFile reference_file(const ReferenceSet& set) {
  SafetensorsFile file;
  json kinds = json::array();
  for (const auto& fit : set.fits) {
    kinds.push_back(fit->kind());
    fit->save(file);
  }
  file.metadata[kReferenceKey] = json{{"format", "imagescore-reference"},
                                      {"version", 1},
                                      {"model", {{"arch", set.model_arch}, {"weights_hash", set.weights_hash}}},
                                      {"classes", set.class_names},
                                      {"data", set.data_spec},
                                      {"shard", {set.shard_index, set.shard_count}},
                                      {"options", options_json(set.options)},
                                      {"fits", kinds}}
                                     .dump();
  return file;
}

}  // namespace

std::string encode_reference(const ReferenceSet& set) { return encode_safetensors(reference_file(set), "reference set"); }

void save_reference(const ReferenceSet& set, const std::string& path) { write_safetensors(path, reference_file(set)); }

namespace {

ReferenceSet reference_from(const SafetensorsFile& file) {
  const std::string& path = file.path;
  require_checksum(file, "`imagescore profile`");
  auto it = file.metadata.find(kReferenceKey);
  if (it == file.metadata.end()) {
    // A profile file of earlier versions: the image score alone.
    if (has_profiles(file)) return reference_of(profiles_from(file));
    fail(path, "not an imagescore reference (profile) file");
  }
  const json meta = parse_json(it->second, path + ": " + kReferenceKey);
  if (json_field<std::string>(meta, "format", path) != "imagescore-reference") fail(path, "not an imagescore reference file");
  if (json_field<int>(meta, "version", path) != 1) fail(path, "unsupported reference file version");
  ReferenceSet set;
  const json model = meta.contains("model") ? meta.at("model") : json();
  set.model_arch = json_field<std::string>(model, "arch", path + ": model");
  set.weights_hash = json_field<std::string>(model, "weights_hash", path + ": model");
  set.class_names = json_field<std::vector<std::string>>(meta, "classes", path);
  set.data_spec = json_field<std::string>(meta, "data", path);
  const auto shard = json_field<std::vector<std::size_t>>(meta, "shard", path);
  if (shard.size() != 2 || shard[0] < 1 || shard[0] > shard[1]) fail(path, "bad shard field");
  set.shard_index = shard[0];
  set.shard_count = shard[1];
  set.options = options_from(meta.contains("options") ? meta.at("options") : json(), path + ": options");
  std::set<std::string> seen;
  for (const auto& kind : json_field<std::vector<std::string>>(meta, "fits", path)) {
    if (!seen.insert(kind).second) fail(path, "fit '" + kind + "' appears twice");
    if (kind == "profiles") {
      set.fits.push_back(detail::profiles_fit_from(profiles_from(file)));
      continue;
    }
    auto entry = file.metadata.find(detail::fit_metadata_key(kind));
    if (entry == file.metadata.end()) fail(path, "the fit '" + kind + "' has no description");
    const json fit_meta = parse_json(entry->second, path + ": " + entry->first);
    if (kind == "features")
      set.fits.push_back(detail::features_fit_from(file, fit_meta, set.options));
    else if (kind == "gaussian")
      set.fits.push_back(detail::gaussian_fit_from(file, fit_meta, set.options));
    else if (kind == "nac")
      set.fits.push_back(detail::nac_fit_from(file, fit_meta, set.options));
    else
      fail(path, "unknown fit '" + kind + "' (a newer imagescore wrote it?)");
  }
  if (set.fits.empty()) fail(path, "holds no fitted score");
  if (const ProfileSet* profiles = set.profiles())
    if (profiles->weights_hash != set.weights_hash || profiles->class_names != set.class_names)
      fail(path, "its profiles and its header describe different models");
  if (set.shard_count == 1)
    for (auto& fit : set.fits) fit->finish(true);
  return set;
}

}  // namespace

ReferenceSet load_reference(const std::string& path) { return reference_from(map_profile_file(path)); }

void ReferenceSet::check_unchanged() const {
  if (const ProfileSet* set = profiles(); set && set->mapping) set->mapping->check_unchanged();
}

ReferenceSet decode_reference(const std::string& bytes, const std::string& where) {
  return reference_from(decode_safetensors(bytes, where));
}

void check_reference_matches(const ReferenceSet& set, const Model& model, const std::string& path) {
  const auto& meta = model.meta();
  if (set.weights_hash != meta.weights_hash || set.model_arch != meta.arch)
    fail(path, "profile from another model (built for " + set.model_arch + " with weights " + set.weights_hash +
                   ", the model is " + meta.arch + " with weights " + meta.weights_hash + ")");
  if (set.shard_count != 1)
    fail(path, "is shard " + shard_text(set.shard_index, set.shard_count) +
                   " only: merge the shards with `imagescore profile merge` first");
  if (set.class_names != meta.class_names) fail(path, "profile classes differ from the model's");
  for (const auto& fit : set.fits) fit->check_model(model, path);
}

namespace detail {

std::string fit_metadata_key(const std::string& kind) { return "imagescore.fit." + kind; }

std::size_t resolve_feature_tap(const Model& model, const std::string& name) {
  std::size_t id = 0;
  if (!name.empty()) {
    try {
      id = resolve_taps(model, {name}).front();
    } catch (const OptionError& e) {
      fail_option("feature_tap", e.problem());
    }
  } else if (auto head = model.linear_head()) {
    id = head->tap;
  } else {
    if (model.taps().size() < 2) fail_option("feature_tap", "the model has no tap before its output");
    id = model.taps().size() - 2;  // the last before `output`
  }
  const auto& tap = model.taps()[id];
  if (tap.name == "output") fail_option("feature_tap", "'output' is the softmax, not a feature tap");
  if (tap.numel() > kMaxFeatureNeurons)
    fail_option("feature_tap", "tap '" + tap.name + "' has " + std::to_string(tap.numel()) + " neurons, more than the " +
                                   std::to_string(kMaxFeatureNeurons) + " a feature score takes (choose a pooled or linear tap)");
  return id;
}

const StoredTensor& expect_tensor(const SafetensorsFile& file, const std::string& name, DType dtype,
                                  const std::vector<std::int64_t>& shape) {
  const auto& t = file.at(name);
  if (t.dtype != dtype || t.shape != shape)
    fail(file.path, "tensor " + name + " is not " + dtype_name(dtype) + " of the shape its description gives");
  return t;
}

StoredTensor make_tensor(const std::string& name, DType dtype, std::vector<std::int64_t> shape, const void* data,
                         std::size_t bytes) {
  StoredTensor t;
  t.name = name;
  t.dtype = dtype;
  t.shape = std::move(shape);
  t.bytes.assign(static_cast<const char*>(data), bytes);
  return t;
}

std::vector<std::int64_t> split_exact(const std::vector<__int128>& values) {
  std::vector<std::int64_t> halves(2 * values.size());
  for (std::size_t i = 0; i < values.size(); ++i) {
    auto u = static_cast<unsigned __int128>(values[i]);
    halves[2 * i] = static_cast<std::int64_t>(static_cast<std::uint64_t>(u));
    halves[2 * i + 1] = static_cast<std::int64_t>(static_cast<std::uint64_t>(u >> 64));
  }
  return halves;
}

std::vector<__int128> join_exact(const StoredTensor& tensor) {
  const std::size_t n = tensor.bytes.size() / 16;
  std::vector<std::int64_t> halves(2 * n);
  std::memcpy(halves.data(), tensor.bytes.data(), 16 * n);
  std::vector<__int128> values(n);
  for (std::size_t i = 0; i < n; ++i)
    values[i] = static_cast<__int128>((static_cast<unsigned __int128>(static_cast<std::uint64_t>(halves[2 * i + 1])) << 64) |
                                      static_cast<std::uint64_t>(halves[2 * i]));
  return values;
}

std::int64_t grid_units(float x, const std::string& where) {
  if (!(std::fabs(x) < float(kMaxActivation))) fail(where, "an activation is not finite or too large (|x| >= 2^19)");
  return std::int64_t(std::llround(double(x) * double(std::int64_t(1) << kFixedPointBits)));
}

}  // namespace detail
}  // namespace imagescore
