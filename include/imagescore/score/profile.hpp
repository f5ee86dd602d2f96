// Profiles: per reference set (a class, or all labelled images in global mode) and per
// tap, the mean activation A, the threshold t and the "correct activation" mask M of
// SPEC section 2, steps 1-3. See docs/method.md for the exact formulas.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "imagescore/core/safetensors.hpp"
#include "imagescore/models/model.hpp"

namespace imagescore {

// Activations are summed exactly, in 128-bit fixed point with 2^-32 units (each value
// rounded to the nearest multiple of 2^-32): integer addition is associative, so shards,
// threads and MPI ranks give bit-identical sums in any order. (A plain double sum would
// depend on the order of additions.)
__extension__ typedef __int128 ExactSum;
constexpr int kFixedPointBits = 32;
constexpr double kMaxActivation = 524288.0;  // 2^19: every |x| must stay below it

enum class ThresholdNorm { Linf, L1, L2 };
enum class ProfileScale { Mean, Sum };
ThresholdNorm parse_norm(const std::string& name);
ProfileScale parse_scale(const std::string& name);
std::string to_string(ThresholdNorm norm);
std::string to_string(ProfileScale scale);

struct ProfileOptions {
  double rho = 0.5;                        // t = rho * ||A||, in (0, 1]
  ThresholdNorm norm = ThresholdNorm::Linf;
  ProfileScale scale = ProfileScale::Mean; // Sum is the paper's literal reading
  bool global = false;                     // one profile from all images
  void validate() const;                   // throws Error naming the option
};

struct TapProfile {
  std::string name;
  std::vector<std::int64_t> shape;
  std::vector<ExactSum> sum;        // fixed-point sum over the reference set
  // Derived by finalize():
  std::vector<double> reference;    // A: the mean (or the sum, with scale=sum)
  double threshold = 0;             // t
  float threshold_float = 0;        // smallest float >= t: x >= it  <=>  double(x) >= t
  std::vector<std::uint8_t> mask;   // M
  std::size_t mask_count = 0;       // |M|
  bool excluded = false;            // max(A) <= 0 or |M| = 0: not part of the score
  std::string exclusion_reason;
  std::size_t numel() const { return sum.size(); }
};

struct ClassProfile {
  std::string name;                 // class name, or "global"
  std::uint64_t count = 0;          // |R|
  std::vector<TapProfile> taps;
};

struct ProfileSet {
  ProfileOptions options;
  std::string model_arch;
  std::string weights_hash;
  std::vector<std::string> class_names;  // the model's classes
  std::string data_spec;
  std::size_t shard_index = 1, shard_count = 1;  // which part of the reference set
  std::vector<ClassProfile> profiles;    // one per class, or one global profile

  // Recomputes reference, thresholds, masks and exclusions from the sums (idempotent).
  void finalize();
  std::vector<std::string> tap_names() const;
  // Taps excluded in some profile, as "profile/tap: reason" lines.
  std::vector<std::string> exclusions() const;
};

// Bytes that building profiles over `tap_ids` holds: per profile (one per class, or one
// global) and neuron, the 128-bit exact sum, the 64-bit partial sum, the reference and the
// mask (33 bytes); the file stores 25 of them (sum, reference, mask).
std::uint64_t profile_build_bytes(const Model& model, const std::vector<std::size_t>& tap_ids, bool global);
std::uint64_t profile_file_bytes(const Model& model, const std::vector<std::size_t>& tap_ids, bool global);
// Fails (OptionError "max_memory") before anything is allocated when building needs more
// than `limit` bytes, naming the sizes and the ways out (fewer taps, a global profile).
void check_profile_memory(const Model& model, const std::vector<std::size_t>& tap_ids, bool global, std::uint64_t limit);

// Accumulates activations batch by batch (streaming; memory independent of |R|).
class ProfileBuilder {
 public:
  ~ProfileBuilder();
  // Fails (check_profile_memory) when the sums would take more than half the memory.
  ProfileBuilder(const Model& model, const std::vector<std::size_t>& tap_ids, const ProfileOptions& options);
  // Adds the images of one forward pass; class_of[i] is image i's reference set (its
  // label), ignored in global mode.
  void add(const ForwardOutput& out, const std::vector<std::int64_t>& class_of);
  // `data_spec` names the reference images in the file and in errors. Fails if a class
  // has no reference image, unless allow_empty_classes (a shard may lack a class).
  ProfileSet finish(const std::string& data_spec, bool allow_empty_classes = false);

 private:
  void flush(std::size_t profile, std::size_t tap);
  ProfileSet set_;
  // Per profile and tap: a 64-bit partial sum in 2^-32 units (each value is below 2^51
  // of them, so 4096 images cannot overflow it), folded into the 128-bit sum in time.
  std::vector<std::vector<std::vector<std::int64_t>>> partial_;
  std::vector<std::vector<std::size_t>> partial_images_;
};

// Builds profiles with one streamed forward pass over `source` (labelled unless global).
struct ProfileRunOptions {
  ProfileOptions profile;
  std::vector<std::string> taps;        // empty: default taps
  std::size_t shard_index = 1, shard_count = 1;
  std::size_t batch_size = 256;
  int threads = 0;
  bool quiet = false;
};
ProfileSet build_profiles(Model& model, const ImageSource& source, const ProfileRunOptions& options);

// After the sums of every shard were added into `set`: marks it whole, checks that every
// class has reference images, and derives thresholds and masks.
void finish_merge(ProfileSet& set);

// Merges the shards 1..K of one reference set into what one pass gives. Fails on
// profiles of different models, options, data or taps, and on missing or repeated shards.
ProfileSet merge_profiles(const std::vector<ProfileSet>& shards, const std::vector<std::string>& names);

// The profile file: safetensors with a JSON description in the metadata and, per profile
// p and tap, the tensors "p<p>/<tap>/sum" (I64 [n,2]: low 64 bits, high 64 bits of the
// fixed-point sum), "p<p>/<tap>/reference" (F64) and "p<p>/<tap>/mask" (U8).
void save_profiles(const ProfileSet& set, const std::string& path);
ProfileSet load_profiles(const std::string& path);
// The same within a safetensors file that may hold other tensors (a reference file).
void add_profiles(const ProfileSet& set, SafetensorsFile& file);
bool has_profiles(const SafetensorsFile& file);
ProfileSet profiles_from(const SafetensorsFile& file);  // errors name file.path

// Fails unless the profiles were built from this model (same weights hash) and its taps.
void check_profiles_match(const ProfileSet& set, const Model& model, const std::string& path);

}  // namespace imagescore
