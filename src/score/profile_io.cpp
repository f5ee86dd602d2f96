// The profile file format (documented in docs/formats.md).
#include <nlohmann/json.hpp>

#include <cstring>

#include "imagescore/core/error.hpp"
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
StoredTensor make_tensor(const std::string& name, DType dtype, std::vector<std::int64_t> shape, const std::vector<T>& values) {
  StoredTensor t;
  t.name = name;
  t.dtype = dtype;
  t.shape = std::move(shape);
  t.bytes.assign(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
  return t;
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

void check_derived_tensor(const SafetensorsFile& file, const std::string& name, const std::string& bytes) {
  if (file.at(name).bytes != bytes) fail(file.path, "tensor " + name + " does not match the sums (file corrupted or edited)");
}

void check_derived_fields(const SafetensorsFile& file, std::size_t profile, const TapProfile& tap,
                          const nlohmann::json& stored) {
  const std::string where = "profile " + std::to_string(profile) + " tap '" + tap.name + "'";
  check_field(file.path, where, "threshold", stored, tap.threshold);
  check_field(file.path, where, "mask_count", stored, tap.mask_count);
  check_field(file.path, where, "excluded", stored, tap.excluded);
  check_derived_tensor(file, tensor_name(profile, tap.name, "reference"),
                       std::string(reinterpret_cast<const char*>(tap.reference.data()), tap.reference.size() * sizeof(double)));
  check_derived_tensor(file, tensor_name(profile, tap.name, "mask"),
                       std::string(reinterpret_cast<const char*>(tap.mask.data()), tap.mask.size()));
}

}  // namespace

void save_profiles(const ProfileSet& set, const std::string& path) {
  SafetensorsFile file;
  add_profiles(set, file);
  write_safetensors(path, file);
}

ProfileSet load_profiles(const std::string& path) { return profiles_from(read_safetensors(path)); }

void add_profiles(const ProfileSet& set, SafetensorsFile& file) {
  nlohmann::json meta = {
      {"format", "imagescore-profile"},
      {"version", 1},
      {"model", {{"arch", set.model_arch}, {"weights_hash", set.weights_hash}}},
      {"data", set.data_spec},
      {"options",
       {{"rho", set.options.rho}, {"norm", to_string(set.options.norm)}, {"scale", to_string(set.options.scale)}, {"global", set.options.global}}},
      {"classes", set.class_names},
      {"shard", {set.shard_index, set.shard_count}},
      {"fixed_point_bits", kFixedPointBits},
      {"profiles", nlohmann::json::array()}};
  for (std::size_t p = 0; p < set.profiles.size(); ++p) {
    const auto& prof = set.profiles[p];
    nlohmann::json taps = nlohmann::json::array();
    for (const auto& tap : prof.taps) {
      taps.push_back({{"name", tap.name}, {"shape", tap.shape}, {"threshold", tap.threshold},
                      {"mask_count", tap.mask_count}, {"excluded", tap.excluded}, {"reason", tap.exclusion_reason}});
      // The exact sum as (low 64 bits, high 64 bits) pairs.
      std::vector<std::int64_t> halves(2 * tap.numel());
      for (std::size_t i = 0; i < tap.numel(); ++i) {
        auto u = static_cast<unsigned __int128>(tap.sum[i]);
        halves[2 * i] = static_cast<std::int64_t>(static_cast<std::uint64_t>(u));
        halves[2 * i + 1] = static_cast<std::int64_t>(static_cast<std::uint64_t>(u >> 64));
      }
      file.tensors.push_back(make_tensor(tensor_name(p, tap.name, "sum"), DType::I64, {std::int64_t(tap.numel()), 2}, halves));
      file.tensors.push_back(make_tensor(tensor_name(p, tap.name, "reference"), DType::F64, tap.shape, tap.reference));
      file.tensors.push_back(make_tensor(tensor_name(p, tap.name, "mask"), DType::U8, tap.shape, tap.mask));
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
  std::vector<nlohmann::json> stored_taps;  // the derived fields as written, checked below
  try {
    auto meta = nlohmann::json::parse(it->second);
    if (meta.at("format") != "imagescore-profile") fail(path, "not an imagescore profile file");
    if (meta.at("version").get<int>() != 1) fail(path, "unsupported profile version " + meta.at("version").dump());
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
        const auto& st = file.at(tensor_name(set.profiles.size(), tap.name, "sum"));
        if (st.dtype != DType::I64 || st.shape.size() != 2 || st.shape[1] != 2)
          fail(path, "tensor " + st.name + " is not an I64 [n,2] sum");
        // The shape comes from the file: every dimension must be positive and the
        // product must equal the stored sum count without ever overflowing.
        std::size_t n = 1;
        for (auto d : tap.shape) {
          if (d < 1 || std::size_t(d) > std::size_t(st.shape[0]) / n)
            fail(path, "tap '" + tap.name + "' has a bad shape " + shape_text(tap.shape));
          n *= std::size_t(d);
        }
        if (std::size_t(st.shape[0]) != n) fail(path, "tensor " + st.name + " does not match the tap shape");
        std::vector<std::int64_t> halves(2 * n);
        std::memcpy(halves.data(), st.bytes.data(), st.bytes.size());
        tap.sum.resize(n);
        for (std::size_t i = 0; i < n; ++i) {
          auto u = (static_cast<unsigned __int128>(static_cast<std::uint64_t>(halves[2 * i + 1])) << 64) |
                   static_cast<std::uint64_t>(halves[2 * i]);
          tap.sum[i] = static_cast<ExactSum>(u);
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
  // Everything derived is recomputed from the exact sums, never trusted from the file,
  // and must agree with what the file says (an edited field is a corrupt file).
  set.finalize();
  std::size_t t = 0;
  for (std::size_t p = 0; p < set.profiles.size(); ++p)
    for (const auto& tap : set.profiles[p].taps) check_derived_fields(file, p, tap, stored_taps[t++]);
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
