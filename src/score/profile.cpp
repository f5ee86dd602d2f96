#include "imagescore/score/profile.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>

#include "imagescore/core/text.hpp"
#include "imagescore/core/partition.hpp"
#include "imagescore/core/error.hpp"
#include "imagescore/core/names.hpp"
#include "imagescore/core/progress.hpp"
#include "imagescore/core/io.hpp"
#include "imagescore/core/runtime.hpp"
#include "fits.hpp"
#include "imagescore/score/fitted.hpp"
#include "imagescore/score/scores_table.hpp"

namespace imagescore {

namespace {
const EnumName<ThresholdNorm> kNormNames[] = {{ThresholdNorm::Linf, "linf"}, {ThresholdNorm::L1, "l1"}, {ThresholdNorm::L2, "l2"}};
const EnumName<ProfileScale> kScaleNames[] = {{ProfileScale::Mean, "mean"}, {ProfileScale::Sum, "sum"}};
}  // namespace

ThresholdNorm parse_norm(const std::string& name) { return enum_from_name(kNormNames, name, "norm"); }
ProfileScale parse_scale(const std::string& name) { return enum_from_name(kScaleNames, name, "scale"); }
std::string to_string(ThresholdNorm norm) { return enum_name(kNormNames, norm); }
std::string to_string(ProfileScale scale) { return enum_name(kScaleNames, scale); }

void ProfileOptions::validate() const {
  if (!(rho > 0 && rho <= 1)) fail_option("rho", "must be in (0, 1], got " + format_double(rho));
}

namespace {

constexpr double kFixedScale = double(std::int64_t(1) << kFixedPointBits);
// Adding 1.5 * 2^52 to x * 2^32 (exact) rounds it to the nearest integer, half to even,
// and leaves that integer in the low bits of the double when |x| < 2^19. This is the
// 2^-32 grid rounding, done without a double-to-int64 conversion, which AVX2 lacks.
constexpr double kIntegerRounder = 1.5 * 4503599627370496.0;
// Images a 64-bit partial sum takes before it must be folded: each adds below 2^51.
constexpr std::size_t kPartialImages = 4096;

// partial[k] += x[k] in 2^-32 units. Returns the largest |x| as a bit pattern: with the
// sign cleared, the integer order of floats is their numeric order, and infinities and
// NaNs have the largest patterns, so the caller can reject values this did not add
// correctly. Also compiled for AVX2, chosen at run time where the CPU has it: the same
// IEEE operations, so the same bits.
__attribute__((target_clones("avx2", "default"))) std::uint32_t add_grid_units(
    std::int64_t* __restrict partial, const float* __restrict x, std::size_t n) {
  std::int64_t offset;
  std::memcpy(&offset, &kIntegerRounder, sizeof offset);
  std::uint32_t largest = 0;
  for (std::size_t k = 0; k < n; ++k) {
    const double shifted = double(x[k]) * kFixedScale + kIntegerRounder;
    std::int64_t units;
    std::memcpy(&units, &shifted, sizeof units);
    partial[k] += units - offset;
    std::uint32_t bits;
    std::memcpy(&bits, x + k, sizeof bits);
    bits &= 0x7fffffffu;
    largest = bits > largest ? bits : largest;
  }
  return largest;
}

// Moves neurons [begin, end) of a partial sum into the exact sum.
void fold(std::vector<std::int64_t>& partial, std::vector<ExactSum>& sum, std::size_t begin, std::size_t end) {
  for (std::size_t k = begin; k < end; ++k) {
    sum[k] += ExactSum(partial[k]);
    partial[k] = 0;
  }
}

// A of neuron i: the exact sum in 2^-32 units over the divisor (count, or 1 with scale=sum).
double reference_value(const TapProfile& tap, std::size_t i, double divisor) {
  return double(tap.sum[i]) / kFixedScale / divisor;
}

double reference_divisor(std::uint64_t count, const ProfileOptions& o) {
  return o.scale == ProfileScale::Mean ? double(count) : 1.0;
}

void finalize_tap(TapProfile& tap, std::uint64_t count, const ProfileOptions& o) {
  const std::size_t n = tap.numel();
  tap.mask.assign(mask_words(n), 0);
  tap.mask_count = 0;
  tap.excluded = false;
  tap.exclusion_reason.clear();
  tap.threshold = 0;
  tap.threshold_float = 0;
  if (count == 0) {
    tap.excluded = true;
    tap.exclusion_reason = "no reference images";
    return;
  }
  const double divisor = reference_divisor(count, o);
  double max_value = -std::numeric_limits<double>::infinity();
  double max_abs = 0, sum_abs = 0, sum_sq = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const double a = reference_value(tap, i, divisor);
    max_value = std::max(max_value, a);
    max_abs = std::max(max_abs, std::fabs(a));
    sum_abs += std::fabs(a);
    sum_sq += a * a;
  }
  double norm = 0;
  switch (o.norm) {
    case ThresholdNorm::Linf: norm = max_abs; break;
    case ThresholdNorm::L1: norm = sum_abs / double(n); break;
    case ThresholdNorm::L2: norm = std::sqrt(sum_sq / double(n)); break;
  }
  tap.threshold = o.rho * norm;
  tap.threshold_float = threshold_as_float(tap.threshold);
  if (!(max_value > 0)) {
    tap.excluded = true;
    tap.exclusion_reason = "max of the reference activation is <= 0";
    return;
  }
  // A is recomputed rather than stored: the same operations give the same doubles.
  for (std::size_t i = 0; i < n; ++i)
    if (reference_value(tap, i, divisor) >= tap.threshold) {
      tap.mask[i >> 6] |= std::uint64_t(1) << (i & 63);
      ++tap.mask_count;
    }
  if (tap.mask_count == 0) {
    tap.excluded = true;
    tap.exclusion_reason = "no neuron reaches the threshold";
  }
}

// Derives the masks of every tap that holds sums; frees the sums unless `keep`.
void finalize_profiles(ProfileSet& set, bool keep) {
  for (auto& p : set.profiles)
    for (auto& t : p.taps) {
      if (t.sum.size() != t.numel()) continue;
      finalize_tap(t, p.count, set.options);
      if (!keep) std::vector<ExactSum>().swap(t.sum);
    }
}

void check_no_empty_class(const ProfileSet& set) {
  for (const auto& p : set.profiles)
    if (p.count == 0) fail(set.data_spec, "class '" + p.name + "' has no reference images (empty class)");
}

}  // namespace

float threshold_as_float(double threshold) {
  float f = float(threshold);
  if (double(f) < threshold) f = std::nextafter(f, std::numeric_limits<float>::infinity());
  return f;
}

std::vector<std::uint8_t> unpack_mask(const TapProfile& tap) {
  std::vector<std::uint8_t> bytes(tap.numel());
  for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = tap.in_mask(i);
  return bytes;
}

std::vector<double> reference_activation(const TapProfile& tap, std::uint64_t count, const ProfileOptions& options) {
  if (tap.sum.size() != tap.numel())
    fail("tap '" + tap.name + "'", "the profile kept no exact sums, so its reference activation is gone (build it with keep_sums)");
  std::vector<double> a(tap.numel());
  const double divisor = reference_divisor(count, options);
  for (std::size_t i = 0; i < a.size(); ++i) a[i] = reference_value(tap, i, divisor);
  return a;
}

bool ProfileSet::has_sums() const {
  for (const auto& p : profiles)
    for (const auto& t : p.taps)
      if (t.sum.size() != t.numel()) return false;
  return !profiles.empty();
}

void ProfileSet::finalize() { finalize_profiles(*this, true); }

std::vector<std::string> ProfileSet::tap_names() const {
  std::vector<std::string> names;
  if (!profiles.empty())
    for (const auto& t : profiles.front().taps) names.push_back(t.name);
  return names;
}

std::vector<std::string> ProfileSet::exclusions() const {
  std::vector<std::string> lines;
  for (const auto& p : profiles)
    for (const auto& t : p.taps)
      if (t.excluded) lines.push_back(p.name + "/" + t.name + ": " + t.exclusion_reason);
  return lines;
}

ProfileMemory plan_profile_memory(const Model& model, const std::vector<std::size_t>& tap_ids, const ProfileOptions& options,
                                  std::uint64_t limit, std::size_t group) {
  ProfileMemory m;
  std::uint64_t mask_bytes = 0;
  for (auto id : tap_ids) {
    m.neurons += model.taps().at(id).numel();
    mask_bytes += 8 * mask_words(model.taps()[id].numel());
  }
  m.profiles = options.global ? 1 : model.meta().num_classes();
  m.building = m.neurons * (sizeof(ExactSum) + sizeof(std::int64_t));
  m.built = mask_bytes + (options.keep_sums ? m.neurons * sizeof(ExactSum) : 0);
  // < 2^20 classes x 2^40 neurons x 24 bytes: no overflow.
  const std::uint64_t built_all = m.profiles * m.built;
  const std::uint64_t room = limit > built_all ? limit - built_all : 0;
  const std::size_t fits = std::size_t(std::min<std::uint64_t>(m.profiles, room / std::max<std::uint64_t>(m.building, 1)));
  m.group = options.keep_sums ? m.profiles : group ? std::min(group, m.profiles) : fits;
  if (m.group == 0 || m.group > fits)
    fail_option("max_memory", "the profiles need " + format_bytes(std::max<std::size_t>(m.group, 1) * m.building + built_all) +
                                  " to build (" + std::to_string(m.profiles) + " profiles x " + std::to_string(m.neurons) +
                                  " neurons: " + std::to_string(m.built) + " bytes each once built, " +
                                  std::to_string(m.building) + " while building" +
                                  (options.keep_sums ? ", all at once to keep the sums" : "") + "), over the limit of " +
                                  format_bytes(limit) + ": choose fewer or smaller taps (--taps), or one global profile");
  return m;
}

ProfileBuilder::ProfileBuilder(const Model& model, const std::vector<std::size_t>& tap_ids, const ProfileOptions& options,
                               std::uint64_t max_bytes, std::size_t group, bool shard) {
  options.validate();
  ProfileOptions planned = options;
  planned.keep_sums = options.keep_sums || shard;
  memory_ = plan_profile_memory(model, tap_ids, planned, memory_limit(max_bytes), group);
  const auto& meta = model.meta();
  set_.options = options;
  set_.model_arch = meta.arch;
  set_.weights_hash = meta.weights_hash;
  set_.class_names = meta.class_names;
  std::vector<std::string> names = options.global ? std::vector<std::string>{"global"} : meta.class_names;
  for (const auto& name : names) {
    ClassProfile p;
    p.name = name;
    for (auto id : tap_ids) {
      TapProfile t;
      t.name = model.taps().at(id).name;
      t.shape = model.taps()[id].shape;
      t.neurons = model.taps()[id].numel();
      p.taps.push_back(std::move(t));
    }
    set_.profiles.push_back(std::move(p));
  }
  partial_.assign(set_.profiles.size(), std::vector<std::vector<std::int64_t>>(tap_ids.size()));
  partial_images_.assign(set_.profiles.size(), std::vector<std::size_t>(tap_ids.size(), 0));
  begin_pass(0);
}

ProfileBuilder::~ProfileBuilder() = default;

bool ProfileBuilder::takes(std::size_t pass, std::size_t cls) const {
  return set_.options.global || cls / memory_.group == pass;
}

void ProfileBuilder::begin_pass(std::size_t pass) {
  if (pass >= passes() || (pass > 0 && pass != pass_ + 1))
    fail("profile", "pass " + std::to_string(pass + 1) + " of " + std::to_string(passes()) + " out of order");
  if (pass > 0) close_group();
  pass_ = pass;
  for (std::size_t c = 0; c < set_.profiles.size(); ++c)
    if (takes(pass, c))
      for (auto& t : set_.profiles[c].taps) t.sum.assign(t.numel(), 0);
}

// Folds the open group's partial sums into its exact sums and frees them; unless it is
// the last group, derives its masks and frees its exact sums too (only a build in one
// group keeps them: keep_sums and shards).
void ProfileBuilder::close_group() {
  const bool last = pass_ + 1 == passes();
  for (std::size_t c = 0; c < set_.profiles.size(); ++c) {
    if (!takes(pass_, c)) continue;
    for (std::size_t l = 0; l < partial_[c].size(); ++l) {
      flush(c, l);
      std::vector<std::int64_t>().swap(partial_[c][l]);
      if (last) continue;
      TapProfile& tap = set_.profiles[c].taps[l];
      finalize_tap(tap, set_.profiles[c].count, set_.options);
      std::vector<ExactSum>().swap(tap.sum);
    }
  }
}

void ProfileBuilder::flush(std::size_t profile, std::size_t tap) {
  auto& partial = partial_[profile][tap];
  if (partial.empty()) return;
  auto& sum = set_.profiles[profile].taps[tap].sum;
  parallel_for(sum.size(), 1 << 14, [&](std::size_t begin, std::size_t end) { fold(partial, sum, begin, end); });
  partial_images_[profile][tap] = 0;
}

void ProfileBuilder::add(const ForwardOutput& out, const std::vector<std::int64_t>& class_of) {
  const std::size_t taps = set_.profiles.front().taps.size();
  if (out.taps.size() != taps) fail("profile", "forward output has the wrong taps");
  // The images of each reference set in this batch.
  std::vector<std::vector<std::size_t>> members(set_.profiles.size());
  for (std::size_t i = 0; i < out.batch; ++i) {
    std::size_t cls = 0;
    if (!set_.options.global) {
      if (class_of[i] < 0 || std::size_t(class_of[i]) >= set_.profiles.size())
        fail("profile", "image label " + std::to_string(class_of[i]) + " outside the model's classes");
      cls = std::size_t(class_of[i]);
    }
    if (takes(pass_, cls)) members[cls].push_back(i);
  }
  for (std::size_t c = 0; c < members.size(); ++c) set_.profiles[c].count += members[c].size();
  std::uint32_t limit_bits;
  const float limit = float(kMaxActivation);
  std::memcpy(&limit_bits, &limit, sizeof limit_bits);
  for (std::size_t l = 0; l < taps; ++l) {
    const std::size_t n = set_.profiles.front().taps[l].numel();
    const TapView& tap = out.taps[l];
    // Runs of a class's images that its 64-bit partial sum can take, and whether the
    // partial must be folded into the exact sum before the run.
    struct Run {
      std::size_t cls, first, last;
      bool fold_before;
    };
    std::vector<Run> runs;
    for (std::size_t c = 0; c < members.size(); ++c) {
      if (members[c].empty()) continue;
      if (partial_[c][l].empty()) partial_[c][l].assign(n, 0);
      std::size_t& held = partial_images_[c][l];
      for (std::size_t first = 0; first < members[c].size();) {
        const bool fold_before = held == kPartialImages;
        if (fold_before) held = 0;
        const std::size_t last = std::min(members[c].size(), first + (kPartialImages - held));
        held += last - first;
        runs.push_back({c, first, last, fold_before});
        first = last;
      }
    }
    // One parallel pass over the neurons: each chunk of partial sums stays in cache while
    // every image adds into it. Values that are not finite or too large are found in the
    // same pass; the run then fails, so what they added does not matter.
    std::atomic<std::uint32_t> largest{0};
    parallel_for(n, 1 << 12, [&](std::size_t begin, std::size_t end) {
      std::uint32_t local = 0;
      for (const Run& run : runs) {
        auto& partial = partial_[run.cls][l];
        if (run.fold_before) fold(partial, set_.profiles[run.cls].taps[l].sum, begin, end);
        for (std::size_t j = run.first; j < run.last; ++j)
          local = std::max(local, add_grid_units(partial.data() + begin, tap.row(members[run.cls][j]) + begin, end - begin));
      }
      std::uint32_t seen = largest.load();
      while (local > seen && !largest.compare_exchange_weak(seen, local)) {
      }
    });
    if (largest.load() >= limit_bits)
      fail("tap " + set_.profiles.front().taps[l].name, "an activation is not finite or too large (|x| >= 2^19)");
  }
}

ProfileSet ProfileBuilder::finish(const std::string& data_spec, bool shard) & {
  finish_in_place(data_spec, shard);
  return set_;
}

ProfileSet ProfileBuilder::finish(const std::string& data_spec, bool shard) && {
  finish_in_place(data_spec, shard);
  return std::move(set_);
}

void ProfileBuilder::finish_in_place(const std::string& data_spec, bool shard) {
  if (pass_ + 1 != passes())
    fail("profile", "built in " + std::to_string(pass_ + 1) + " of its " + std::to_string(passes()) +
                        " passes over the reference images");
  if (shard && passes() > 1)
    fail("profile", "a shard keeps the exact sums of every class, which need " + format_bytes(memory_.profiles * memory_.building) +
                        " here, over the memory limit: give the limit (--max-memory) on a machine with the memory");
  close_group();
  set_.data_spec = data_spec;
  if (!shard) check_no_empty_class(set_);
  finalize_profiles(set_, set_.options.keep_sums || shard);
}

ProfileSet build_profiles(Model& model, const ImageSource& source, const ProfileRunOptions& options) {
  FitRunOptions run;
  run.fit.profile = options.profile;
  run.fit.taps = options.taps;
  run.fit.max_bytes = options.max_bytes;
  run.fit.profile_group = options.group;
  run.scores = {"image_score"};
  run.shard_index = options.shard_index;
  run.shard_count = options.shard_count;
  run.batch_size = options.batch_size;
  run.threads = options.threads;
  run.quiet = options.quiet;
  auto reference = fit_reference(model, source, run);
  return detail::take_profiles(reference);
}

void finish_merge(ProfileSet& set) {
  set.shard_index = set.shard_count = 1;
  check_no_empty_class(set);
  finalize_profiles(set, set.options.keep_sums);
}

ProfileSet merge_profiles(const std::vector<ProfileSet>& shards, const std::vector<std::string>& names) {
  if (shards.empty()) fail("profile merge", "no profiles given");
  const ProfileSet& first = shards.front();
  const std::size_t k = first.shard_count;
  if (shards.size() != k)
    fail(names.front(), "is shard " + std::to_string(first.shard_index) + "/" + std::to_string(k) + " but " +
                            std::to_string(shards.size()) + " files were given");
  std::vector<bool> seen(k + 1, false);
  for (std::size_t s = 0; s < shards.size(); ++s) {
    const auto& p = shards[s];
    const std::string& name = names[s];
    if (p.weights_hash != first.weights_hash || p.model_arch != first.model_arch)
      fail(name, "built from another model than " + names.front());
    if (p.options.rho != first.options.rho || p.options.norm != first.options.norm ||
        p.options.scale != first.options.scale || p.options.global != first.options.global)
      fail(name, "built with other options than " + names.front());
    if (p.data_spec != first.data_spec) fail(name, "built from other data than " + names.front());
    if (p.class_names != first.class_names || p.profiles.size() != first.profiles.size() ||
        p.tap_names() != first.tap_names())
      fail(name, "has other classes or taps than " + names.front());
    if (p.shard_count != k) fail(name, "belongs to a split into " + std::to_string(p.shard_count) + " shards, not " + std::to_string(k));
    if (seen[p.shard_index]) fail(name, "shard " + std::to_string(p.shard_index) + " given twice");
    seen[p.shard_index] = true;
  }
  ProfileSet merged = first;
  for (std::size_t s = 1; s < shards.size(); ++s)
    for (std::size_t c = 0; c < merged.profiles.size(); ++c) {
      merged.profiles[c].count += shards[s].profiles[c].count;
      for (std::size_t l = 0; l < merged.profiles[c].taps.size(); ++l) {
        auto& dst = merged.profiles[c].taps[l].sum;
        const auto& src = shards[s].profiles[c].taps[l].sum;
        for (std::size_t i = 0; i < dst.size(); ++i) dst[i] += src[i];
      }
    }
  finish_merge(merged);
  return merged;
}

}  // namespace imagescore
