// Scores fitted on the labelled reference set (SPEC section 3; docs/method.md), behind one
// interface in the spirit of faiss's Index: fit by streaming batches of activations and
// labels, merge the shards of a reference set, save and load, then score streamed
// candidates and explain a score. The image score's profiles are one implementation; the
// others are the feature-space scores (kNN distance, trust score), the Gaussian scores
// (Mahalanobis, relative Mahalanobis) and neuron activation coverage (NAC).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "imagescore/core/safetensors.hpp"
#include "imagescore/models/model.hpp"
#include "imagescore/score/profile.hpp"

namespace imagescore {

// The activations of one forward pass, with each computed tap found by its name, and the
// images' ids (their positions in the data set; empty where unknown).
struct Activations {
  const ForwardOutput* out = nullptr;
  std::vector<std::string> tap_names;  // of out->taps, in order
  std::vector<std::size_t> ids;
  std::size_t batch() const { return out->batch; }
  std::size_t num_classes() const { return out->num_classes; }
  const float* logits(std::size_t image) const { return out->logits.data() + image * out->num_classes; }
  const TapView& tap(const std::string& name) const;  // fails if the pass did not compute it
};

struct NacOptions {
  std::size_t bins = 50;      // M: histogram edges of a neuron's state
  double min_count = 50;      // O: reference images that make an interval fully covered
  double steepness = 100;     // alpha: of the sigmoid of the state
  void validate() const;      // OptionError naming nac_bins, nac_min_count, nac_steepness
};

// Every option of the fitted scores, fixed when they are fitted and kept in their file.
struct FitOptions {
  ProfileOptions profile;             // image score
  std::vector<std::string> taps;      // image score taps (empty: the model's default taps)
  std::string feature_tap;            // kNN, trust, Mahalanobis, NAC (empty: the tap the
                                      // classifier reads, else the last before `output`)
  std::size_t knn_k = 0;              // 0: round(N / 1000), at least 1 (Sun et al.: 50 for 50,000)
  // Nearest-neighbour search of knn and trust: "exact" (faiss IndexFlatL2) or "ivf" (faiss
  // IndexIVFFlat, approximate: knn_ivf_lists(N) lists, knn_nprobe of them searched).
  std::string knn_index = "exact";
  std::size_t knn_nprobe = 64;
  std::size_t trust_k = 10;           // neighbours of the trust score's density filter
  double trust_alpha = 0;             // share of each class removed as low density (Jiang et al.)
  double shrinkage = 1e-3;            // Mahalanobis: (1 - s) S + s (tr S / d) I
  NacOptions nac;
  std::uint64_t max_bytes = 0;        // what a fit may hold (the profiles' sums, the stored
                                      // reference features): at most this; 0: half the machine's memory
  std::size_t profile_group = 0;      // classes whose profiles are built at once (0: as many as
                                      // fit in max_bytes); changes no score, so not in the file
  void validate() const;
};

// The lists of an "ivf" index over n vectors: round(4 sqrt(n)) (the low end of faiss's
// 4-16 sqrt(n)), at most n / 39 so that k-means has 39 points per list (faiss's minimum),
// and at least 1.
std::size_t knn_ivf_lists(std::size_t n);

// The bytes a features fit (knn, trust) holds for n reference images of d features and
// `classes` classes: the features, their normalised copy in the kNN index, the per-class
// copies, labels and ids; with "ivf", the lists' ids and the centroids too.
std::uint64_t knn_features_bytes(std::uint64_t n, std::uint64_t d, std::uint64_t classes, const std::string& index);

// A score (or a family of columns) fitted on the reference set.
class FittedScore {
 public:
  virtual ~FittedScore() = default;
  // "profiles", "features", "gaussian" or "nac": what the file stores.
  virtual std::string kind() const = 0;
  // The score columns it provides (registry names: image_score; knn, trust; ...).
  virtual std::vector<std::string> columns() const = 0;
  // The taps it reads, by name, and a check that `model` has them with their shapes.
  virtual std::vector<std::string> taps() const = 0;
  virtual void check_model(const Model& model, const std::string& where) const = 0;

  // Fitting: adds the reference images of one pass (labels[i] is image i's class; -1 is
  // allowed only where the fit needs no class); then finish() derives what scoring needs.
  virtual void add(const Activations& activations, const std::vector<std::int64_t>& labels) = 0;
  // Ends fitting. `whole`: derives what scoring needs (every class must have reference
  // images); a shard only keeps the statistics a merge adds up.
  virtual void finish(bool whole) = 0;
  // Adds the statistics of the next shard (shards merge in shard order); finish(true)
  // after the last.
  virtual void merge(const FittedScore& shard) = 0;
  // Passes over the reference images the fit needs: the profiles hold the sums of one
  // group of classes at a time where all would not fit in memory. Pass p > 0 gives a fit
  // with more than p passes only the images of the classes it takes(p, class), after
  // begin_pass(p).
  virtual std::size_t passes() const { return 1; }
  virtual bool takes(std::size_t pass, std::size_t /*cls*/) const { return pass == 0; }
  virtual void begin_pass(std::size_t pass) { (void)pass; }

  // Scores the images of one pass: values[i * columns.size() + c] for each wanted column
  // (a subset of columns(), in that order); pred[i] is image i's predicted class.
  virtual void score(const Activations& activations, const std::vector<int>& pred,
                     const std::vector<std::string>& columns, std::vector<double>& values) const = 0;
  // Why image `image` of a pass scores what it does (nearest reference images, distances
  // per class, per-tap terms), as JSON.
  virtual nlohmann::json explain(const Activations& activations, std::size_t image, int pred) const = 0;

  // Its tensors and its metadata entry in the reference file.
  virtual void save(SafetensorsFile& file) const = 0;
  // Checks that `other` is a shard of the same fit (same options and taps), naming `where`.
  virtual void check_same(const FittedScore& other, const std::string& where) const = 0;
};

// The fitted scores of one reference set and where they come from: what `imagescore
// profile` writes and `imagescore score` reads.
struct ReferenceSet {
  std::string model_arch, weights_hash;
  std::vector<std::string> class_names;  // the model's classes
  std::string data_spec;
  std::size_t shard_index = 1, shard_count = 1;
  FitOptions options;
  std::vector<std::unique_ptr<FittedScore>> fits;

  // The fit that provides `column`, or null.
  const FittedScore* provider(const std::string& column) const;
  // The image score's profiles, or null.
  const ProfileSet* profiles() const;
  // Every column the fits provide.
  std::vector<std::string> columns() const;
  // What the file holds, for people: shard, columns, each profile's counts and taps, the
  // taps excluded from the image score.
  nlohmann::json summary() const;
  // Fails when the file its masks are mapped from was changed in place since it was loaded.
  void check_unchanged() const;
};

// The fitted scores `scores` (registry names; empty: every cheap fitted score the model
// allows) of `source` in one streamed forward pass.
struct FitRunOptions {
  FitOptions fit;
  std::vector<std::string> scores;
  // The part of the data set the source holds where it is not the whole training split
  // ("split test", "<split file> part additional"): recorded after the data spec, so that
  // shards of different parts never merge. Empty for the training split.
  std::string data_part;
  std::size_t shard_index = 1, shard_count = 1;
  std::size_t batch_size = 256;
  int threads = 0;
  bool quiet = false;
};
ReferenceSet fit_reference(Model& model, const ImageSource& source, const FitRunOptions& options);

// The same fit from forward passes made elsewhere (fit_reference's loader and model, or
// the Python package's PyTorch modules), pass by pass.
class ReferenceBuilder {
 public:
  // `scores`: registry names, empty for every cheap fitted score the model allows; `images`:
  // the reference images the passes will add, against which the memory of stored features
  // is checked before any is added; `shard`: it will finish as a shard, which keeps every
  // exact sum (so its memory is planned for them).
  ReferenceBuilder(const Model& model, const FitOptions& options, const std::vector<std::string>& scores,
                   std::string data_spec, std::size_t images, bool shard = false);
  // The taps each pass must compute, as positions in the model's taps().
  const std::vector<std::size_t>& tap_ids() const { return tap_ids_; }
  // Passes over the reference images (FittedScore::passes): pass 0 over all of them,
  // each later pass, after begin_pass(p), over the images of the classes takes(p, c).
  std::size_t passes() const;
  bool takes(std::size_t pass, std::size_t cls) const;
  void begin_pass(std::size_t pass);
  // Adds the images of one pass over tap_ids(): labels[i] is image i's class; ids (their
  // positions in the data set) may be empty.
  void add(const ForwardOutput& out, const std::vector<std::size_t>& ids, const std::vector<std::int64_t>& labels);
  // The reference set, whole or shard `shard_index` of `shard_count`; the builder is spent.
  ReferenceSet finish(std::size_t shard_index = 1, std::size_t shard_count = 1);

 private:
  ReferenceSet set_;
  std::vector<std::size_t> tap_ids_;
  std::vector<std::string> computed_;  // the names of tap_ids_, as a pass holds them
  std::size_t pass_ = 0;
  bool finished_ = false;
};

// A reference set holding only the image score's profiles (what build_profiles gives).
ReferenceSet reference_of(ProfileSet profiles);

// Merges shards 1..K (given in any order) into what one pass gives; fails on shards of
// other models, options, data or taps, and on missing or repeated shards.
ReferenceSet merge_references(std::vector<ReferenceSet> shards, const std::vector<std::string>& names);
// Loads the shard files and merges them, after checking that they fit in memory together
// (their sizes against memory_limit(max_bytes); OptionError "max_memory" otherwise).
ReferenceSet merge_reference_files(const std::vector<std::string>& paths, std::uint64_t max_bytes);
// After the statistics of every shard were added into `set` (MPI): marks it whole and
// finishes every fit.
void finish_reference(ReferenceSet& set);

// The reference file: safetensors; a profile file of earlier versions (the image score
// alone) reads as a reference set too. docs/formats.md describes both. Loading maps the
// file: the image score's masks stay in the mapping (load_profiles).
void save_reference(const ReferenceSet& set, const std::string& path);
ReferenceSet load_reference(const std::string& path);
// The same in memory (MPI).
std::string encode_reference(const ReferenceSet& set);
ReferenceSet decode_reference(const std::string& bytes, const std::string& where);

// Fails unless the reference set was fitted with this model (weights hash, classes, taps).
void check_reference_matches(const ReferenceSet& set, const Model& model, const std::string& path);

}  // namespace imagescore
