// Profiles: per reference set (a class, or all labelled images in global mode) and per
// tap, the mean activation A, the threshold t and the "correct activation" mask M of
// SPEC section 2, steps 1-3. See docs/method.md for the exact formulas.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "imagescore/core/safetensors.hpp"
#include "imagescore/models/model.hpp"

namespace imagescore {

class MappedFile;

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
  // Keep the exact sums once the masks are derived (a file then can be merged or checked
  // against them); otherwise only masks, thresholds and counts are kept. Shards always
  // keep them. Changes no score.
  bool keep_sums = false;
  void validate() const;                   // throws Error naming the option
};

struct TapProfile {
  std::string name;
  std::vector<std::int64_t> shape;
  std::size_t neurons = 0;          // product of shape
  std::vector<ExactSum> sum;        // fixed-point sum over the reference set; empty once
                                    // the mask is derived, unless kept (keep_sums, shards)
  // Derived by finalize():
  double threshold = 0;             // t
  float threshold_float = 0;        // smallest float >= t: x >= it  <=>  double(x) >= t
  std::vector<std::uint64_t> mask;  // M, bit-packed: neuron i is bit i % 64 of word i / 64
  const unsigned char* mapped_mask = nullptr;  // instead: the same bits in a mapped file
  std::size_t mask_count = 0;       // |M|
  bool excluded = false;            // max(A) <= 0 or |M| = 0: not part of the score
  std::string exclusion_reason;
  std::size_t numel() const { return neurons; }
  // M as bytes, neuron i in bit i % 8 of byte i / 8 (the words' little-endian bytes).
  const unsigned char* mask_bytes() const {
    return mapped_mask ? mapped_mask : reinterpret_cast<const unsigned char*>(mask.data());
  }
  bool in_mask(std::size_t i) const { return (mask_bytes()[i >> 3] >> (i & 7)) & 1; }
};

// The smallest float >= t, so that for a float x: x >= it  <=>  double(x) >= t.
float threshold_as_float(double threshold);

// Words of a bit-packed mask of n neurons.
inline std::size_t mask_words(std::size_t neurons) { return (neurons + 63) / 64; }

// The mask as one 0/1 byte per neuron (for bindings and tests).
std::vector<std::uint8_t> unpack_mask(const TapProfile& tap);

// A, the reference activation of a tap whose sums are held: the mean over the profile's
// `count` images (or the sum, with scale=sum). Fails when the sums were not kept.
std::vector<double> reference_activation(const TapProfile& tap, std::uint64_t count, const ProfileOptions& options);

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
  std::shared_ptr<const MappedFile> mapping;  // the file that mapped masks point into

  // Recomputes thresholds, masks and exclusions from the sums where they are held
  // (idempotent); profiles without sums are left as they are.
  void finalize();
  bool has_sums() const;
  std::vector<std::string> tap_names() const;
  // Taps excluded in some profile, as "profile/tap: reason" lines.
  std::vector<std::string> exclusions() const;
};

// What building profiles over some taps holds (docs/method.md, "memory"). While a profile
// is built it holds, per neuron, the 128-bit exact sum and a 64-bit partial sum (24
// bytes); once built, its bit-packed mask (1 bit per neuron, in 64-bit words) and, where
// sums are kept, the exact sum (16 bytes). Profiles are built a group of classes at a
// time, each group in its own pass over its classes' images, so that
//   peak = group x building + profiles x built   stays within the limit.
struct ProfileMemory {
  std::uint64_t neurons = 0;       // of the taps, per image
  std::size_t profiles = 0;        // classes, or 1 for a global profile
  std::uint64_t building = 0;      // bytes per profile being built
  std::uint64_t built = 0;         // bytes per built profile
  std::size_t group = 0;           // profiles built at once (passes = ceil(profiles / group))
  std::size_t passes() const { return (profiles + group - 1) / group; }
  std::uint64_t peak() const { return group * building + profiles * built; }
  std::uint64_t file_bytes() const { return profiles * built; }  // the tensors of the file
};
// The plan within `limit` bytes: the largest group that fits (or `group` when it is not 0,
// and fits). keep_sums keeps every profile's sums, so all are built in one group. Fails
// (OptionError "max_memory") before anything is allocated when not even one profile at a
// time fits, naming the sizes and the ways out.
ProfileMemory plan_profile_memory(const Model& model, const std::vector<std::size_t>& tap_ids, const ProfileOptions& options,
                                  std::uint64_t limit, std::size_t group = 0);

// Accumulates activations batch by batch (streaming; memory independent of |R|), the
// profiles of one group of classes at a time.
class ProfileBuilder {
 public:
  ~ProfileBuilder();
  // Plans its memory (plan_profile_memory within memory_limit(max_bytes); `group` as
  // there; a `shard` keeps every sum, as keep_sums) and fails before allocating when it
  // does not fit.
  ProfileBuilder(const Model& model, const std::vector<std::size_t>& tap_ids, const ProfileOptions& options,
                 std::uint64_t max_bytes = 0, std::size_t group = 0, bool shard = false);
  // Passes over the reference images the groups need, and whether pass p takes class c
  // (its group). Pass 0 is open from the start; begin_pass(p) derives the masks of the
  // previous group and opens the next.
  std::size_t passes() const { return memory_.passes(); }
  bool takes(std::size_t pass, std::size_t cls) const;
  void begin_pass(std::size_t pass);
  // Adds the images of one forward pass; class_of[i] is image i's reference set (its
  // label), ignored in global mode. Images of classes outside the open group are skipped.
  void add(const ForwardOutput& out, const std::vector<std::int64_t>& class_of);
  // `data_spec` names the reference images in the file and in errors. Fails if a class
  // has no reference image, unless `shard` (a shard may lack a class; it keeps
  // every sum, so it is built in one group), or if a pass was not made.
  // Callable again (the profiles so far); finishing a builder about to go moves them out.
  ProfileSet finish(const std::string& data_spec, bool shard = false) &;
  ProfileSet finish(const std::string& data_spec, bool shard = false) &&;

 private:
  void finish_in_place(const std::string& data_spec, bool shard);
  void flush(std::size_t profile, std::size_t tap);
  void close_group();
  ProfileSet set_;
  ProfileMemory memory_;
  std::size_t pass_ = 0;
  // Per profile and tap: a 64-bit partial sum in 2^-32 units (each value is below 2^51
  // of them, so 4096 images cannot overflow it), folded into the 128-bit sum in time.
  std::vector<std::vector<std::vector<std::int64_t>>> partial_;
  std::vector<std::vector<std::size_t>> partial_images_;
};

// Builds profiles with streamed forward passes over `source` (labelled unless global):
// one pass, or one per group of classes over that group's images.
struct ProfileRunOptions {
  ProfileOptions profile;
  std::vector<std::string> taps;        // empty: default taps
  std::size_t shard_index = 1, shard_count = 1;
  std::size_t batch_size = 256;
  int threads = 0;
  bool quiet = false;
  std::uint64_t max_bytes = 0;          // memory the profiles may hold (0: half the machine's)
  std::size_t group = 0;                // classes built at once (0: as many as fit)
};
ProfileSet build_profiles(Model& model, const ImageSource& source, const ProfileRunOptions& options);

// After the sums of every shard were added into `set`: marks it whole, checks that every
// class has reference images, derives thresholds and masks, and drops the sums unless
// options.keep_sums.
void finish_merge(ProfileSet& set);

// Merges the shards 1..K of one reference set into what one pass gives. Fails on
// profiles of different models, options, data or taps, and on missing or repeated shards.
ProfileSet merge_profiles(const std::vector<ProfileSet>& shards, const std::vector<std::string>& names);

// The profile file: safetensors with a JSON description in the metadata (version 2) and,
// per profile p and tap, the tensor "p<p>/<tap>/mask" (U8 [ceil(n/8)]: the mask's bits,
// neuron i in bit i % 8 of byte i / 8) and, where sums are kept, "p<p>/<tap>/sum" (I64
// [n,2]: low 64 bits, high 64 bits of the fixed-point sum). Files of version 1 (sums,
// references and one byte per mask neuron) are read too. docs/formats.md.
void save_profiles(const ProfileSet& set, const std::string& path);
// Loading maps the file: masks stored without sums stay in the mapping and are paged in
// as images of their class are scored (ProfileSet::mapping).
ProfileSet load_profiles(const std::string& path);
// The same within a safetensors file that may hold other tensors (a reference file).
void add_profiles(const ProfileSet& set, SafetensorsFile& file);
bool has_profiles(const SafetensorsFile& file);
// The file mapped as load_profiles maps it: the masks stay in the mapping.
SafetensorsFile map_profile_file(const std::string& path);
ProfileSet profiles_from(const SafetensorsFile& file);  // errors name file.path

// Fails unless the profiles were built from this model (same weights hash) and its taps.
void check_profiles_match(const ProfileSet& set, const Model& model, const std::string& path);

}  // namespace imagescore
