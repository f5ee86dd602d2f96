// The profile file format (documented in docs/formats.md).
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstring>

#include "fits.hpp"
#include "imagescore/core/error.hpp"
#include "imagescore/core/io.hpp"
#include "imagescore/score/profile.hpp"
#include "imagescore/core/safetensors.hpp"

namespace imagescore {
namespace {

constexpr const char* kMetaKey = "imagescore.profile";

std::string tensor_name(std::size_t profile, const std::string& tap, const char* what) {
  return "p" + std::to_string(profile) + "/" + tap + "/" + what;
}

std::string shape_text(const std::vector<std::int64_t>& shape) {
  std::string text;
  for (auto d : shape) text += (text.empty() ? "" : ", ") + std::to_string(d);
  return "[" + text + "]";
}

template <typename T>
void check_field(const std::string& path, const std::string& where, const char* field, const nlohmann::json& stored,
                 const T& derived) {
  bool same = false;
  try {
    same = stored.at(field).get<T>() == derived;
  } catch (const nlohmann::json::exception&) {
  }
  if (!same)
    fail(path, where + ": field '" + field + "' is " + (stored.contains(field) ? stored.at(field).dump() : "missing") +
                   " but the sums give " + nlohmann::json(derived).dump() + " (file corrupted or edited)");
}

void check_derived_tensor(const SafetensorsFile& file, const std::string& name, std::string_view bytes) {
  if (file.at(name).data() != bytes) fail(file.path, "tensor " + name + " does not match the sums (file corrupted or edited)");
}

void check_derived_fields(const SafetensorsFile& file, int version, std::size_t profile, const TapProfile& tap,
                          std::uint64_t count, const ProfileOptions& options, const nlohmann::json& stored) {
  const std::string where = "profile " + std::to_string(profile) + " tap '" + tap.name + "'";
  check_field(file.path, where, "threshold", stored, tap.threshold);
  check_field(file.path, where, "mask_count", stored, tap.mask_count);
  check_field(file.path, where, "excluded", stored, tap.excluded);
  if (version == 1) {
    const auto reference = count > 0 ? reference_activation(tap, count, options) : std::vector<double>(tap.numel(), 0.0);
    check_derived_tensor(file, tensor_name(profile, tap.name, "reference"),
                         std::string(reinterpret_cast<const char*>(reference.data()), reference.size() * sizeof(double)));
    const auto bytes = unpack_mask(tap);  // version 1 stored one byte per mask neuron
    check_derived_tensor(file, tensor_name(profile, tap.name, "mask"), std::string(bytes.begin(), bytes.end()));
  } else {
    check_derived_tensor(file, tensor_name(profile, tap.name, "mask"),
                         std::string_view(reinterpret_cast<const char*>(tap.mask_bytes()), (tap.numel() + 7) / 8));
  }
}

// A version 2 mask without sums, left in the file's mapping where it is mapped: its bits,
// their count and the exclusion must agree.
void read_packed_mask(const SafetensorsFile& file, std::size_t profile, TapProfile& tap, const nlohmann::json& stored) {
  const std::string name = tensor_name(profile, tap.name, "mask");
  const auto& t = detail::expect_tensor(file, name, DType::U8, {std::int64_t((tap.numel() + 7) / 8)});
  const std::string_view bytes = t.data();
  if (t.view.data()) {
    tap.mapped_mask = reinterpret_cast<const unsigned char*>(bytes.data());
  } else {
    tap.mask.assign(mask_words(tap.numel()), 0);
    std::memcpy(tap.mask.data(), bytes.data(), bytes.size());
  }
  if (tap.numel() % 8 && static_cast<unsigned char>(bytes.back()) >> (tap.numel() % 8))
    fail(file.path, "tensor " + name + " has bits beyond the tap's neurons (file corrupted or edited)");
  std::size_t count = 0;
  for (std::size_t i = 0; i < bytes.size(); ++i) count += std::size_t(__builtin_popcount(static_cast<unsigned char>(bytes[i])));
  const std::string where = "profile " + std::to_string(profile) + " tap '" + tap.name + "'";
  try {
    tap.threshold = stored.at("threshold").get<double>();
    tap.mask_count = stored.at("mask_count").get<std::size_t>();
    tap.excluded = stored.at("excluded").get<bool>();
    tap.exclusion_reason = stored.at("reason").get<std::string>();
  } catch (const nlohmann::json::exception& e) {
    fail(file.path, where + ": " + e.what());
  }
  if (!std::isfinite(tap.threshold) || tap.threshold < 0)
    fail(file.path, where + ": threshold " + stored.at("threshold").dump() + " is not a finite number >= 0");
  if (tap.mask_count != count)
    fail(file.path, where + ": field 'mask_count' is " + std::to_string(tap.mask_count) + " but the mask holds " +
                        std::to_string(count) + " neurons (file corrupted or edited)");
  if (tap.excluded != (count == 0) || tap.excluded == tap.exclusion_reason.empty())
    fail(file.path, where + ": field 'excluded' does not agree with the mask (file corrupted or edited)");
  tap.threshold_float = threshold_as_float(tap.threshold);
}

}  // namespace

void save_profiles(const ProfileSet& set, const std::string& path) {
  SafetensorsFile file;
  add_profiles(set, file);
  write_safetensors(path, file);
}

ProfileSet load_profiles(const std::string& path) { return profiles_from(map_profile_file(path)); }

SafetensorsFile map_profile_file(const std::string& path) {
  return map_safetensors(path, [](const StoredTensor& t) {
    const std::string suffix = "/mask";
    return t.dtype == DType::U8 && t.name.size() > suffix.size() &&
           t.name.compare(t.name.size() - suffix.size(), suffix.size(), suffix) == 0;
  });
}

void add_profiles(const ProfileSet& set, SafetensorsFile& file) {
  const bool sums = set.has_sums();
  nlohmann::json options = {{"rho", set.options.rho}, {"norm", to_string(set.options.norm)},
                            {"scale", to_string(set.options.scale)}, {"global", set.options.global}};
  if (set.options.keep_sums) options["keep_sums"] = true;
  nlohmann::json meta = {
      {"format", "imagescore-profile"},
      {"version", 2},
      {"model", {{"arch", set.model_arch}, {"weights_hash", set.weights_hash}}},
      {"data", set.data_spec},
      {"options", options},
      {"classes", set.class_names},
      {"shard", {set.shard_index, set.shard_count}},
      {"fixed_point_bits", kFixedPointBits},
      {"exact_sums", sums},
      {"profiles", nlohmann::json::array()}};
  for (std::size_t p = 0; p < set.profiles.size(); ++p) {
    const auto& prof = set.profiles[p];
    nlohmann::json taps = nlohmann::json::array();
    for (const auto& tap : prof.taps) {
      taps.push_back({{"name", tap.name}, {"shape", tap.shape}, {"threshold", tap.threshold},
                      {"mask_count", tap.mask_count}, {"excluded", tap.excluded}, {"reason", tap.exclusion_reason}});
      if (sums) {
        const auto halves = detail::split_exact(tap.sum);
        file.tensors.push_back(detail::make_tensor(tensor_name(p, tap.name, "sum"), DType::I64,
                                                   {std::int64_t(tap.numel()), 2}, halves.data(), halves.size() * 8));
      }
      // The mask is written from the profile's memory (or mapping), not copied.
      StoredTensor mask;
      mask.name = tensor_name(p, tap.name, "mask");
      mask.dtype = DType::U8;
      mask.shape = {std::int64_t((tap.numel() + 7) / 8)};
      mask.view = std::string_view(reinterpret_cast<const char*>(tap.mask_bytes()), (tap.numel() + 7) / 8);
      file.tensors.push_back(std::move(mask));
    }
    meta["profiles"].push_back({{"name", prof.name}, {"count", prof.count}, {"taps", taps}});
  }
  file.metadata[kMetaKey] = meta.dump();
}

bool has_profiles(const SafetensorsFile& file) { return file.metadata.count(kMetaKey) > 0; }

ProfileSet profiles_from(const SafetensorsFile& file) {
  const std::string& path = file.path;
  require_checksum(file, "`imagescore profile`");
  auto it = file.metadata.find(kMetaKey);
  if (it == file.metadata.end()) fail(path, "not an imagescore profile file");
  ProfileSet set;
  int version = 0;
  bool sums = true;  // version 1 always has them
  std::vector<nlohmann::json> stored_taps;  // the derived fields as written, checked below
  try {
    auto meta = nlohmann::json::parse(it->second);
    if (meta.at("format") != "imagescore-profile") fail(path, "not an imagescore profile file");
    version = meta.at("version").get<int>();
    if (version != 1 && version != 2) fail(path, "unsupported profile version " + meta.at("version").dump());
    if (meta.at("fixed_point_bits").get<int>() != kFixedPointBits) fail(path, "unsupported fixed-point format");
    set.model_arch = meta.at("model").at("arch").get<std::string>();
    set.weights_hash = meta.at("model").at("weights_hash").get<std::string>();
    set.data_spec = meta.at("data").get<std::string>();
    const auto& o = meta.at("options");
    try {
      set.options.rho = o.at("rho").get<double>();
      set.options.norm = parse_norm(o.at("norm").get<std::string>());
      set.options.scale = parse_scale(o.at("scale").get<std::string>());
      set.options.validate();
    } catch (const Error& e) {
      fail(path, std::string("bad options in the file: ") + e.what());
    }
    set.options.global = o.at("global").get<bool>();
    set.options.keep_sums = o.value("keep_sums", false);
    if (version == 2) sums = meta.at("exact_sums").get<bool>();
    set.class_names = meta.at("classes").get<std::vector<std::string>>();
    auto shard = meta.at("shard").get<std::vector<std::size_t>>();
    if (shard.size() != 2 || shard[0] < 1 || shard[0] > shard[1]) fail(path, "bad shard field");
    set.shard_index = shard[0];
    set.shard_count = shard[1];
    for (const auto& pj : meta.at("profiles")) {
      ClassProfile prof;
      prof.name = pj.at("name").get<std::string>();
      prof.count = pj.at("count").get<std::uint64_t>();
      for (const auto& tj : pj.at("taps")) {
        TapProfile tap;
        tap.name = tj.at("name").get<std::string>();
        tap.shape = tj.at("shape").get<std::vector<std::int64_t>>();
        // The shape comes from the file: every dimension must be positive and the
        // product must equal the stored tensor's without ever overflowing.
        const auto& st = file.at(tensor_name(set.profiles.size(), tap.name, sums ? "sum" : "mask"));
        if (sums && (st.dtype != DType::I64 || st.shape.size() != 2 || st.shape[1] != 2))
          fail(path, "tensor " + st.name + " is not an I64 [n,2] sum");
        if (st.shape.empty()) fail(path, "tensor " + st.name + " does not match the tap shape");
        const std::size_t stored = sums ? std::size_t(st.shape[0]) : 8 * std::size_t(st.shape[0]);
        std::size_t n = 1;
        for (auto d : tap.shape) {
          if (d < 1 || std::size_t(d) > stored / n)
            fail(path, "tap '" + tap.name + "' has a bad shape " + shape_text(tap.shape));
          n *= std::size_t(d);
        }
        tap.neurons = n;
        if (sums) {
          if (std::size_t(st.shape[0]) != n) fail(path, "tensor " + st.name + " does not match the tap shape");
          tap.sum = detail::join_exact(st);
        } else {
          read_packed_mask(file, set.profiles.size(), tap, tj);
        }
        prof.taps.push_back(std::move(tap));
        stored_taps.push_back(tj);
      }
      set.profiles.push_back(std::move(prof));
    }
  } catch (const nlohmann::json::exception& e) {
    fail(path, std::string("bad profile description: ") + e.what());
  }
  if (set.profiles.empty()) fail(path, "holds no profile");
  if (set.options.global && set.profiles.size() != 1) fail(path, "a global profile file must hold exactly one profile");
  if (!set.options.global && set.profiles.size() != set.class_names.size())
    fail(path, "holds " + std::to_string(set.profiles.size()) + " profiles for " + std::to_string(set.class_names.size()) + " classes");
  for (const auto& p : set.profiles) {
    if (p.taps.size() != set.profiles.front().taps.size()) fail(path, "profiles have different taps");
    if (p.count == 0 && set.shard_count == 1) fail(path, "profile '" + p.name + "' has no reference images (empty class)");
  }
  if (!sums && set.shard_count > 1) fail(path, "is a shard without its exact sums, which a merge adds up");
  if (!sums) {
    set.mapping = file.mapping;
    if (file.mapping) file.mapping->release_pages();  // the checks above read every mask
    return set;
  }
  // Everything derived is recomputed from the exact sums, never trusted from the file,
  // and must agree with what the file says (an edited field is a corrupt file).
  set.finalize();
  std::size_t t = 0;
  for (std::size_t p = 0; p < set.profiles.size(); ++p)
    for (const auto& tap : set.profiles[p].taps)
      check_derived_fields(file, version, p, tap, set.profiles[p].count, set.options, stored_taps[t++]);
  return set;
}

void check_profiles_match(const ProfileSet& set, const Model& model, const std::string& path) {
  const auto& meta = model.meta();
  if (set.weights_hash != meta.weights_hash || set.model_arch != meta.arch)
    fail(path, "profile from another model (built for " + set.model_arch + " with weights " + set.weights_hash +
                   ", the model is " + meta.arch + " with weights " + meta.weights_hash + ")");
  if (set.shard_count != 1)
    fail(path, "is shard " + std::to_string(set.shard_index) + "/" + std::to_string(set.shard_count) +
                   " only: merge the shards with `imagescore profile merge` first");
  if (set.class_names != meta.class_names) fail(path, "profile classes differ from the model's");
  for (const auto& tap : set.profiles.front().taps) {
    auto ids = resolve_taps(model, {tap.name});
    if (model.taps()[ids[0]].shape != tap.shape) fail(path, "tap '" + tap.name + "' has another shape than in the model");
  }
}

}  // namespace imagescore
