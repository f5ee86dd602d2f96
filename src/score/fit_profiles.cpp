// The image score's profiles as a fitted score (docs/method.md: the image score).
#include <nlohmann/json.hpp>

#include "fits.hpp"
#include "imagescore/core/error.hpp"
#include "imagescore/core/io.hpp"
#include "imagescore/score/score.hpp"

namespace imagescore::detail {
namespace {

class ProfilesFit : public FittedScore {
 public:
  // Fitting.
  ProfilesFit(const FitContext& context)
      : builder_(std::make_unique<ProfileBuilder>(context.model, resolve_taps(context.model, context.options.taps),
                                                  context.options.profile, context.options.max_bytes,
                                                  context.options.profile_group, context.shard)),
        data_spec_(context.data_spec) {
    for (auto id : resolve_taps(context.model, context.options.taps)) taps_.push_back(context.model.taps()[id].name);
  }
  // Read from a file.
  explicit ProfilesFit(ProfileSet set) : set_(std::move(set)), taps_(set_.tap_names()) {}

  std::string kind() const override { return "profiles"; }
  std::vector<std::string> columns() const override { return {"image_score"}; }
  std::vector<std::string> taps() const override { return taps_; }
  void check_model(const Model& model, const std::string& where) const override {
    check_profiles_match(set_, model, where);
  }

  void add(const Activations& a, const std::vector<std::int64_t>& labels) override {
    builder_->add(view(a), labels);
  }

  std::size_t passes() const override { return builder_ ? builder_->passes() : 1; }
  bool takes(std::size_t pass, std::size_t cls) const override { return builder_ && builder_->takes(pass, cls); }
  void begin_pass(std::size_t pass) override {
    if (builder_) builder_->begin_pass(pass);
  }

  void finish(bool whole) override {
    if (builder_) {
      set_ = std::move(*builder_).finish(data_spec_, !whole);
      builder_.reset();
    } else if (whole) {
      finish_merge(set_);
    }
  }

  void merge(const FittedScore& shard) override {
    const ProfileSet& other = static_cast<const ProfilesFit&>(shard).set_;
    for (std::size_t c = 0; c < set_.profiles.size(); ++c) {
      set_.profiles[c].count += other.profiles[c].count;
      for (std::size_t l = 0; l < set_.profiles[c].taps.size(); ++l) {
        auto& dst = set_.profiles[c].taps[l].sum;
        const auto& src = other.profiles[c].taps[l].sum;
        for (std::size_t i = 0; i < dst.size(); ++i) dst[i] += src[i];
      }
    }
  }

  void score(const Activations& a, const std::vector<int>& pred, const std::vector<std::string>& columns,
             std::vector<double>& values) const override {
    values.assign(a.batch() * columns.size(), 0.0);
    if (columns.empty()) return;
    const ImageScorer scorer(set_, {});
    std::vector<const float*> rows(taps_.size());
    for (std::size_t i = 0; i < a.batch(); ++i) {
      for (std::size_t l = 0; l < taps_.size(); ++l) rows[l] = a.tap(taps_[l]).row(i);
      values[i] = scorer.score(profile_for(pred[i]), rows, nullptr);
    }
  }

  nlohmann::json explain(const Activations& a, std::size_t image, int pred) const override {
    const ImageScorer scorer(set_, {});
    std::vector<const float*> rows(taps_.size());
    for (std::size_t l = 0; l < taps_.size(); ++l) rows[l] = a.tap(taps_[l]).row(image);
    std::vector<double> terms;
    const std::size_t profile = profile_for(pred);
    const double total = scorer.score(profile, rows, &terms);
    nlohmann::json per_tap = nlohmann::json::object();
    for (std::size_t l = 0; l < taps_.size(); ++l) per_tap[taps_[l]] = terms[l];
    return {{"image_score", total}, {"profile", set_.profiles[profile].name}, {"terms", per_tap}};
  }

  void save(SafetensorsFile& file) const override { add_profiles(set_, file); }

  void check_same(const FittedScore& other, const std::string& where) const override {
    const ProfileSet& o = static_cast<const ProfilesFit&>(other).set_;
    if (o.tap_names() != set_.tap_names() || o.profiles.size() != set_.profiles.size())
      fail(where, "has other profiles or taps than the first shard");
  }

  const ProfileSet& profiles() const { return set_; }
  ProfileSet take() { return std::move(set_); }

 private:
  // The profile an image is scored against: its predicted class's, or the global one.
  std::size_t profile_for(int pred) const { return set_.options.global ? 0 : std::size_t(pred); }

  ForwardOutput view(const Activations& a) const {
    ForwardOutput out;
    out.batch = a.batch();
    out.num_classes = a.num_classes();
    for (const auto& name : taps_) out.taps.push_back(a.tap(name));
    return out;
  }

  std::unique_ptr<ProfileBuilder> builder_;
  std::string data_spec_;
  ProfileSet set_;
  std::vector<std::string> taps_;
};

}  // namespace

std::unique_ptr<FittedScore> new_profiles_fit(const FitContext& context) { return std::make_unique<ProfilesFit>(context); }

std::unique_ptr<FittedScore> profiles_fit_from(ProfileSet profiles) {
  return std::make_unique<ProfilesFit>(std::move(profiles));
}

ProfileSet take_profiles_of(FittedScore& fit) { return static_cast<ProfilesFit&>(fit).take(); }

const ProfileSet* profiles_of(const FittedScore& fit) {
  auto* profiles = dynamic_cast<const ProfilesFit*>(&fit);
  return profiles ? &profiles->profiles() : nullptr;
}

}  // namespace imagescore::detail
