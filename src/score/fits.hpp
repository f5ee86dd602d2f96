// The fitted scores behind score/fitted.hpp (internal to the score layer): one factory
// for a new fit and one reader per kind, and what they share.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "imagescore/core/safetensors.hpp"
#include "imagescore/score/fitted.hpp"

namespace imagescore::detail {

// What a new fit knows of the model and the data.
struct FitContext {
  const Model& model;
  const FitOptions& options;
  std::string data_spec;
  std::size_t images = 0;  // reference images this pass will add
  bool shard = false;      // finishes as a shard (keeps the statistics a merge adds up)
};

std::unique_ptr<FittedScore> new_profiles_fit(const FitContext& context);
std::unique_ptr<FittedScore> new_features_fit(const FitContext& context);
std::unique_ptr<FittedScore> new_gaussian_fit(const FitContext& context);
std::unique_ptr<FittedScore> new_nac_fit(const FitContext& context);

// The profile set of a "profiles" fit; take_profiles moves it out of a reference set that
// holds one.
const ProfileSet* profiles_of(const FittedScore& fit);
ProfileSet take_profiles(ReferenceSet& set);
ProfileSet take_profiles_of(FittedScore& fit);

// Readers: `meta` is the fit's metadata entry in `file` (errors name file.path).
std::unique_ptr<FittedScore> profiles_fit_from(ProfileSet profiles);
// `options` are the reference file's.
std::unique_ptr<FittedScore> features_fit_from(const SafetensorsFile& file, const nlohmann::json& meta,
                                               const FitOptions& options);
std::unique_ptr<FittedScore> gaussian_fit_from(const SafetensorsFile& file, const nlohmann::json& meta,
                                               const FitOptions& options);
std::unique_ptr<FittedScore> nac_fit_from(const SafetensorsFile& file, const nlohmann::json& meta,
                                          const FitOptions& options);

// The metadata key of a fit kind in the reference file.
std::string fit_metadata_key(const std::string& kind);

// The feature tap the options name, or the one the classifier reads, or the last before
// `output`; fails if it is unknown or larger than kMaxFeatureNeurons.
constexpr std::size_t kMaxFeatureNeurons = 65536;
std::size_t resolve_feature_tap(const Model& model, const std::string& name);

// A tensor of the file checked for its type and shape, naming the file.
const StoredTensor& expect_tensor(const SafetensorsFile& file, const std::string& name, DType dtype,
                                  const std::vector<std::int64_t>& shape);
StoredTensor make_tensor(const std::string& name, DType dtype, std::vector<std::int64_t> shape, const void* data,
                         std::size_t bytes);

// Exact 128-bit integers as (low, high) pairs of I64, for files.
std::vector<std::int64_t> split_exact(const std::vector<__int128>& values);
std::vector<__int128> join_exact(const StoredTensor& tensor);

// A value of the 2^-32 grid that profile sums use, as an integer: round(x * 2^32).
// Fails unless |x| < 2^19 and finite (what `where` names).
std::int64_t grid_units(float x, const std::string& where);

}  // namespace imagescore::detail
