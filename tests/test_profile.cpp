// Profiles: streaming build, exact shard merging, the file format, determinism, bad input.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "imagescore/core/io.hpp"
#include "imagescore/score/profile.hpp"
#include "imagescore/score/fitted.hpp"
#include "imagescore/core/runtime.hpp"
#include "imagescore/core/text.hpp"
#include "imagescore/score/score.hpp"
#include "imagescore/stats/score_summary.hpp"
#include "test_sources.hpp"
#include "test_util.hpp"

namespace imagescore {
namespace {

using testing::separable_source;
using testing::TempDir;

const ImageShape kShape{1, 12, 12};

struct Fixture {
  std::unique_ptr<testing::MemorySource> source = separable_source(3, 20, kShape, 1);
  std::unique_ptr<Model> model =
      create_model("small-cnn", kShape, source->class_names(), compute_normalization(*source, 1), 42);
};

// The same masks, thresholds and counts; the same exact sums where both kept them.
void expect_same_profiles(const ProfileSet& a, const ProfileSet& b) {
  ASSERT_EQ(a.profiles.size(), b.profiles.size());
  for (std::size_t p = 0; p < a.profiles.size(); ++p) {
    EXPECT_EQ(a.profiles[p].count, b.profiles[p].count);
    ASSERT_EQ(a.profiles[p].taps.size(), b.profiles[p].taps.size());
    for (std::size_t l = 0; l < a.profiles[p].taps.size(); ++l) {
      const auto& x = a.profiles[p].taps[l];
      const auto& y = b.profiles[p].taps[l];
      EXPECT_TRUE(x.sum == y.sum) << x.name;
      EXPECT_EQ(unpack_mask(x), unpack_mask(y)) << x.name;
      EXPECT_EQ(x.mask_count, y.mask_count) << x.name;
      EXPECT_EQ(x.threshold, y.threshold) << x.name;
      EXPECT_EQ(x.threshold_float, y.threshold_float) << x.name;
      EXPECT_EQ(x.excluded, y.excluded) << x.name;
    }
  }
}

// Every score of every image, per-tap terms included, in the order scored.
std::vector<std::vector<double>> per_tap_scores(Model& model, const ProfileSet& set, const ImageSource& source) {
  ScoreRunOptions options;
  options.quiet = true;
  options.per_tap = true;
  std::vector<std::vector<double>> rows;
  score_images(model, set, source, options, [&](const ScoreRow& r) { rows.push_back(r.values); });
  return rows;
}

TEST(Profiles, ShardsMergeIntoExactlyOnePass) {
  Fixture f;
  ProfileRunOptions o;
  o.batch_size = 16;
  o.quiet = true;
  o.profile.keep_sums = true;  // to compare the sums too
  auto whole = build_profiles(*f.model, *f.source, o);
  ASSERT_TRUE(whole.has_sums());
  std::vector<ProfileSet> shards;
  std::vector<std::string> names;
  for (std::size_t i : {3, 1, 2}) {  // any order
    o.shard_index = i;
    o.shard_count = 3;
    shards.push_back(build_profiles(*f.model, *f.source, o));
    names.push_back("shard" + std::to_string(i));
    EXPECT_EQ(shards.back().shard_index, i);
  }
  auto merged = merge_profiles(shards, names);
  expect_same_profiles(whole, merged);
  EXPECT_EQ(merged.shard_count, 1u);
  // Without keep_sums the merged set keeps masks only, the same as one pass.
  for (auto& shard : shards) shard.options.keep_sums = false;
  o.profile.keep_sums = false;
  o.shard_index = o.shard_count = 1;
  const auto compact = merge_profiles(shards, names);
  EXPECT_FALSE(compact.has_sums());
  expect_same_profiles(build_profiles(*f.model, *f.source, o), compact);

  EXPECT_ERROR_CONTAINS(merge_profiles({shards[0], shards[1]}, {"a", "b"}), "a: is shard 3/3 but 2 files were given");
  EXPECT_ERROR_CONTAINS(merge_profiles({shards[0], shards[0], shards[1]}, {"a", "b", "c"}), "b: shard 3 given twice");
}

TEST(Profiles, GroupsOfClassesGiveExactlyOnePass) {
  // Built one class per pass (3 passes over their classes' images), two per pass, or all
  // at once: the same masks, thresholds and counts, and the same scores to the last bit.
  Fixture f;
  ProfileRunOptions o;
  o.quiet = true;
  o.batch_size = 8;
  auto once = build_profiles(*f.model, *f.source, o);
  EXPECT_FALSE(once.has_sums());
  const auto expected = per_tap_scores(*f.model, once, *f.source);
  for (std::size_t group : {1, 2}) {
    o.group = group;
    auto grouped = build_profiles(*f.model, *f.source, o);
    expect_same_profiles(once, grouped);
    EXPECT_EQ(per_tap_scores(*f.model, grouped, *f.source), expected) << group;
  }
  // The plan: 3 profiles; per neuron 24 bytes while building, 1 bit (in 64-bit words) built.
  const auto taps = f.model->default_taps();
  std::uint64_t neurons = 0, words = 0;
  for (auto id : taps) {
    neurons += f.model->taps()[id].numel();
    words += (f.model->taps()[id].numel() + 63) / 64;
  }
  const auto plan = plan_profile_memory(*f.model, taps, ProfileOptions{}, 2 * neurons * 24 + 3 * 8 * words);
  EXPECT_EQ(plan.group, 2u);
  EXPECT_EQ(plan.passes(), 2u);
  EXPECT_EQ(plan.building, neurons * 24);
  EXPECT_EQ(plan.built, 8 * words);
  EXPECT_EQ(plan.peak(), 2 * neurons * 24 + 3 * 8 * words);
  EXPECT_EQ(plan_profile_memory(*f.model, taps, ProfileOptions{}, std::uint64_t(1) << 40).group, 3u);
  EXPECT_EQ(plan_profile_memory(*f.model, taps, ProfileOptions{}, std::uint64_t(1) << 40, 1).passes(), 3u);
  // Memory for one profile at a time, and no more, refused before anything is read.
  EXPECT_EQ(plan_profile_memory(*f.model, taps, ProfileOptions{}, neurons * 24 + 3 * 8 * words).group, 1u);
  EXPECT_ERROR_CONTAINS(plan_profile_memory(*f.model, taps, ProfileOptions{}, neurons * 24 + 3 * 8 * words - 1),
                        "max_memory: the profiles need ");
  o.group = 0;
  o.max_bytes = neurons * 24 + 3 * 8 * words;  // one class per pass, chosen from the limit
  expect_same_profiles(once, build_profiles(*f.model, *f.source, o));
  // Shards keep every sum, so they are built in one group.
  o.shard_count = 2;
  EXPECT_ERROR_CONTAINS(build_profiles(*f.model, *f.source, o),
                        "max_memory: the profiles need " + format_bytes(3 * neurons * 24 + 3 * (8 * words + 16 * neurons)));
}

TEST(Profiles, ClassesAreTakenByNameFromTheData) {
  // The same images under their class names in another order give the same profiles:
  // each image goes to its class's profile by name, not by the data's class position.
  Fixture f;
  ProfileRunOptions o;
  o.quiet = true;
  expect_same_profiles(build_profiles(*f.model, *f.source, o),
                   build_profiles(*f.model, *testing::with_classes_reversed(*f.source), o));
}

TEST(Profiles, IndependentOfBatchSizeAndThreads) {
  Fixture f;
  ProfileRunOptions o;
  o.quiet = true;
  o.batch_size = 7;
  set_threads(1);
  auto a = build_profiles(*f.model, *f.source, o);
  o.batch_size = 64;
  o.threads = 3;
  set_threads(2);
  auto b = build_profiles(*f.model, *f.source, o);
  expect_same_profiles(a, b);

  // Scores too: 1 vs 2 threads, different batch sizes, written to the last digit.
  auto run = [&](std::size_t batch, int threads) {
    set_threads(threads);
    ScoreRunOptions so;
    so.batch_size = batch;
    so.quiet = true;
    so.per_tap = true;
    std::vector<std::vector<double>> rows;
    score_images(*f.model, a, *f.source, so, [&](const ScoreRow& r) { rows.push_back(r.values); });
    return rows;
  };
  auto s1 = run(5, 1);
  auto s2 = run(64, 2);
  EXPECT_EQ(s1, s2);
  set_threads(0);
}

TEST(Profiles, FileRoundTripAndCorruption) {
  Fixture f;
  ProfileRunOptions o;
  o.quiet = true;
  o.taps = {"conv2", "output"};
  o.profile.rho = 0.6;
  o.profile.norm = ThresholdNorm::L2;
  TempDir dir;
  o.profile.keep_sums = true;
  const auto with_sums = build_profiles(*f.model, *f.source, o);
  save_profiles(with_sums, dir.file("sums.safetensors"));
  expect_same_profiles(with_sums, load_profiles(dir.file("sums.safetensors")));
  o.profile.keep_sums = false;
  auto set = build_profiles(*f.model, *f.source, o);
  save_profiles(set, dir.file("p.safetensors"));
  auto back = load_profiles(dir.file("p.safetensors"));
  expect_same_profiles(set, back);
  // Masks only: 1 bit per neuron and class, about 1/200 of the file with sums.
  EXPECT_LT(testing::read_bytes(dir.file("p.safetensors")).size() * 10,
            testing::read_bytes(dir.file("sums.safetensors")).size());
  // Loaded masks stay in the file's mapping, and score exactly as the built ones.
  ASSERT_TRUE(back.mapping);
  EXPECT_NE(back.profiles[1].taps[0].mapped_mask, nullptr);
  EXPECT_TRUE(back.profiles[1].taps[0].mask.empty());
  EXPECT_EQ(per_tap_scores(*f.model, back, *f.source), per_tap_scores(*f.model, set, *f.source));
  EXPECT_EQ(back.tap_names(), (std::vector<std::string>{"conv2", "output"}));
  EXPECT_EQ(back.options.rho, 0.6);
  EXPECT_EQ(back.options.norm, ThresholdNorm::L2);
  EXPECT_EQ(back.class_names, f.source->class_names());
  EXPECT_EQ(back.weights_hash, f.model->meta().weights_hash);
  EXPECT_NO_THROW(check_profiles_match(back, *f.model, "p"));

  auto bytes = testing::read_bytes(dir.file("p.safetensors"));
  bytes[bytes.size() - 3] ^= 0x40;
  testing::write_bytes(dir.file("bad.safetensors"), bytes);
  EXPECT_ERROR_CONTAINS(load_profiles(dir.file("bad.safetensors")), "checksum mismatch");
  testing::write_bytes(dir.file("short.safetensors"), bytes.substr(0, bytes.size() / 2));
  EXPECT_ERROR_CONTAINS(load_profiles(dir.file("short.safetensors")), "short.safetensors");
}

TEST(Profiles, AMappedFileChangedOrTruncatedInUseIsAnError) {
  // Images large enough for masks beyond the file's first page (a page past the end of a
  // truncated file faults; the rest of the last page reads as zeros).
  struct {
    std::unique_ptr<testing::MemorySource> source = separable_source(3, 4, {1, 48, 48}, 1);
    std::unique_ptr<Model> model = create_model("small-cnn", {1, 48, 48}, source->class_names(),
                                                compute_normalization(*source, 1), 42);
  } f;
  ProfileRunOptions o;
  o.quiet = true;
  TempDir dir;
  const std::string path = dir.file("p.st");
  save_profiles(build_profiles(*f.model, *f.source, o), path);
  ScoreRunOptions so;
  so.quiet = true;
  so.scores = {"image_score"};
  {
    // Edited in place (a new modification time, same size): refused before any score leaves.
    const auto reference = load_reference(path);
    EXPECT_NO_THROW(reference.check_unchanged());
    const timespec times[2] = {{0, UTIME_OMIT}, {1, 0}};
    ASSERT_EQ(utimensat(AT_FDCWD, path.c_str(), times, 0), 0);
    std::size_t rows = 0;
    EXPECT_ERROR_CONTAINS(score_images(*f.model, reference, *f.source, so, [&](const ScoreRow&) { ++rows; }),
                          path + ": changed while in use (it is memory-mapped: write a new file and rename it instead "
                                 "of editing it in place)");
    EXPECT_EQ(rows, 0u);
  }
  // Replaced by renaming (as every writer of imagescore does): the mapping keeps the old file.
  save_profiles(build_profiles(*f.model, *f.source, o), path);
  {
    const auto reference = load_reference(path);
    save_profiles(build_profiles(*f.model, *f.source, o), path);
    EXPECT_NO_THROW(score_images(*f.model, reference, *f.source, so, [](const ScoreRow&) {}));
  }
  // Truncated in place: reading a mask past the new end faults; the handler names the file.
  EXPECT_EXIT(
      {
        install_mapped_file_fault_handler();
        const auto reference = load_reference(path);
        ASSERT_EQ(truncate(path.c_str(), 8), 0);
        score_images(*f.model, reference, *f.source, so, [](const ScoreRow&) {});
      },
      ::testing::ExitedWithCode(1), "imagescore: error: " + path + ": truncated while in use \\(memory-mapped\\)");
}

// Replaces the first `from` in a file by `to` of the same length.
void edit_file(const std::string& path, const std::string& from, const std::string& to) {
  ASSERT_EQ(from.size(), to.size());
  std::string bytes = testing::read_bytes(path);
  const auto at = bytes.find(from);
  ASSERT_NE(at, std::string::npos) << from;
  bytes.replace(at, from.size(), to);
  testing::write_bytes(path, bytes);
}

TEST(Profiles, EditedHeadersAndDerivedFieldsAreRefused) {
  Fixture f;
  ProfileRunOptions o;
  o.quiet = true;
  o.taps = {"conv2"};
  o.profile.keep_sums = true;
  auto set = build_profiles(*f.model, *f.source, o);
  TempDir dir;
  const std::string path = dir.file("p.safetensors");
  // The options that every score depends on, edited in the header.
  for (auto [from, to] : {std::pair<std::string, std::string>{R"(\"rho\":0.5)", R"(\"rho\":0.9)"},
                          {R"(\"norm\":\"linf\")", R"(\"norm\":\"l1\"  )"},
                          {R"(\"scale\":\"mean\")", R"(\"scale\":\"sum\" )"}}) {
    save_profiles(set, path);
    edit_file(path, from, to);
    EXPECT_ERROR_CONTAINS(load_profiles(path), path + ": checksum mismatch (file corrupted or edited)");
  }
  // Removing the checksum does not turn the check off.
  save_profiles(set, path);
  edit_file(path, "imagescore.checksum", "imagescore.comment ");
  EXPECT_ERROR_CONTAINS(load_profiles(path), path + ": has no checksum");

  // Derived fields written wrongly by a writer (the checksum is then right): each one is
  // compared with what the sums give.
  auto wrong = set;
  wrong.profiles[1].taps[0].threshold = 0.25;
  save_profiles(wrong, path);
  EXPECT_ERROR_CONTAINS(load_profiles(path), path + ": profile 1 tap 'conv2': field 'threshold' is 0.25 but the sums give ");
  wrong = set;
  wrong.profiles[0].taps[0].mask_count += 1;
  save_profiles(wrong, path);
  EXPECT_ERROR_CONTAINS(load_profiles(path), "profile 0 tap 'conv2': field 'mask_count' is " +
                                                 std::to_string(set.profiles[0].taps[0].mask_count + 1) + " but the sums give " +
                                                 std::to_string(set.profiles[0].taps[0].mask_count));
  wrong = set;
  wrong.profiles[2].taps[0].excluded = true;
  save_profiles(wrong, path);
  EXPECT_ERROR_CONTAINS(load_profiles(path), "profile 2 tap 'conv2': field 'excluded' is true but the sums give false");
  wrong = set;
  wrong.profiles[0].taps[0].mask[0] ^= 8;
  save_profiles(wrong, path);
  EXPECT_ERROR_CONTAINS(load_profiles(path), "tensor p0/conv2/mask does not match the sums (file corrupted or edited)");

  // Without sums the mask is what the file holds; its count, exclusion and padding must agree.
  for (auto& p : set.profiles)
    for (auto& t : p.taps) t.sum.clear();
  set.options.keep_sums = false;
  save_profiles(set, path);
  expect_same_profiles(set, load_profiles(path));
  wrong = set;
  wrong.profiles[1].taps[0].mask[0] ^= 1;
  save_profiles(wrong, path);
  EXPECT_ERROR_CONTAINS(load_profiles(path), path + ": profile 1 tap 'conv2': field 'mask_count' is " +
                                                 std::to_string(set.profiles[1].taps[0].mask_count) + " but the mask holds ");
  wrong = set;
  wrong.profiles[0].taps[0].excluded = true;
  wrong.profiles[0].taps[0].exclusion_reason = "edited";
  save_profiles(wrong, path);
  EXPECT_ERROR_CONTAINS(load_profiles(path), "profile 0 tap 'conv2': field 'excluded' does not agree with the mask");
  wrong = set;
  wrong.profiles[0].taps[0].threshold = -1;
  save_profiles(wrong, path);
  EXPECT_ERROR_CONTAINS(load_profiles(path), "profile 0 tap 'conv2': threshold -1.0 is not a finite number >= 0");
  const std::size_t n = set.profiles[2].taps[0].numel();
  if (n % 64) {  // a bit past the last neuron, inside the last stored byte or beyond
    wrong = set;
    wrong.profiles[2].taps[0].mask.back() |= std::uint64_t(1) << (n % 64);
    wrong.profiles[2].taps[0].mask_count += 1;
    save_profiles(wrong, path);
    if (n % 8) EXPECT_ERROR_CONTAINS(load_profiles(path), "tensor p2/conv2/mask has bits beyond the tap's neurons");
  }
}

TEST(Profiles, MemoryIsBoundedBeforeBuilding) {
  Fixture f;
  const auto taps = resolve_taps(*f.model, {"conv1", "output"});
  std::uint64_t neurons = 0, words = 0;
  for (auto id : taps) {
    neurons += f.model->taps()[id].numel();
    words += (f.model->taps()[id].numel() + 63) / 64;
  }
  ProfileOptions global;
  global.global = true;
  EXPECT_EQ(plan_profile_memory(*f.model, taps, global, 1 << 30).peak(), neurons * 24 + 8 * words);
  ProfileOptions keep;
  keep.keep_sums = true;  // every profile's sums at once, and kept
  const auto kept = plan_profile_memory(*f.model, taps, keep, 1 << 30);
  EXPECT_EQ(kept.group, 3u);
  EXPECT_EQ(kept.file_bytes(), 3 * (8 * words + 16 * neurons));
  EXPECT_ERROR_CONTAINS(plan_profile_memory(*f.model, taps, keep, kept.peak() - 1),
                        "max_memory: the profiles need " + format_bytes(kept.peak()) + " to build (3 profiles x " +
                            std::to_string(neurons) + " neurons: " + std::to_string(8 * words + 16 * neurons) +
                            " bytes each once built, " + std::to_string(24 * neurons) +
                            " while building, all at once to keep the sums), over the limit of " +
                            format_bytes(kept.peak() - 1) + ": choose fewer or smaller taps (--taps), or one global profile");
  // The limit of --max-memory holds for the image score's fit too, before any pass.
  FitRunOptions o;
  o.quiet = true;
  o.scores = {"image_score"};
  o.fit.taps = {"conv1", "output"};
  o.fit.max_bytes = 1000;
  EXPECT_ERROR_CONTAINS(fit_reference(*f.model, *f.source, o), "max_memory: the profiles need ");
}

TEST(Profiles, TheFuzzSeedsAreValidProfiles) {
  // fuzz/make_corpus.py writes them with an independent checksum and derived fields, in
  // version 1 of the format (one byte per mask neuron, references and sums): it still
  // loads, checked against its sums.
  auto set = load_profiles("fuzz/corpus/profile/per_class.st");
  ASSERT_EQ(set.profiles.size(), 2u);
  EXPECT_EQ(set.profiles[0].taps[0].threshold, 0.5 * 4.0 / 3.0);
  EXPECT_EQ(unpack_mask(set.profiles[0].taps[0]), (std::vector<std::uint8_t>{0, 1, 1, 1}));
  EXPECT_TRUE(set.has_sums());
  TempDir dir;
  save_profiles(set, dir.file("v2.st"));
  expect_same_profiles(set, load_profiles(dir.file("v2.st")));
  // Version 2 without sums, bit-packed by the script's own code: kept in the mapping.
  const auto packed = load_profiles("fuzz/corpus/profile/packed.st");
  ASSERT_EQ(packed.profiles.size(), 2u);
  std::vector<std::uint8_t> a(15), b(15);
  for (std::size_t i = 0; i < 15; ++i) {
    a[i] = i % 3 == 0;
    b[i] = (i + 1) % 3 == 0;
  }
  EXPECT_EQ(unpack_mask(packed.profiles[0].taps[0]), a);
  EXPECT_EQ(unpack_mask(packed.profiles[1].taps[0]), b);
  EXPECT_NE(packed.profiles[1].taps[0].mapped_mask, nullptr);
  EXPECT_EQ(packed.profiles[1].taps[0].threshold_float, 0.75f);
  EXPECT_FALSE(packed.has_sums());
  EXPECT_NO_THROW(load_profiles("fuzz/corpus/profile/global.st"));
  EXPECT_NO_THROW(load_profiles("fuzz/corpus/profile/shard.st"));
}

TEST(Profiles, BadInput) {
  Fixture f;
  ProfileRunOptions o;
  o.quiet = true;
  // A class without reference images.
  testing::MemorySource two(kShape, f.source->class_names());
  for (std::size_t i = 0; i < f.source->size(); ++i)
    if (f.source->label(i) != 2) {
      std::vector<std::uint8_t> px(kShape.pixels());
      f.source->read(i, px.data());
      two.add(px, f.source->label(i));
    }
  EXPECT_ERROR_CONTAINS(build_profiles(*f.model, two, o), "memory: class 'class2' has no reference images (empty class)");
  // Unknown tap.
  o.taps = {"conv9"};
  EXPECT_ERROR_CONTAINS(build_profiles(*f.model, *f.source, o), "taps: unknown tap 'conv9' (the model has: conv1, conv2, fc1, output)");
  o.taps.clear();
  // A profile from another model.
  auto set = build_profiles(*f.model, *f.source, o);
  auto other = create_model("small-cnn", kShape, f.source->class_names(), compute_normalization(*f.source, 1), 43);
  EXPECT_ERROR_CONTAINS(check_profiles_match(set, *other, "p.safetensors"), "p.safetensors: profile from another model");
  // A shard alone cannot score.
  o.shard_index = 1;
  o.shard_count = 2;
  auto shard = build_profiles(*f.model, *f.source, o);
  EXPECT_ERROR_CONTAINS(check_profiles_match(shard, *f.model, "s"), "s: is shard 1/2 only");
  o.shard_index = 3;
  EXPECT_ERROR_CONTAINS(build_profiles(*f.model, *f.source, o), "shard: expected I/K with 1 <= I <= K, got 3/2");
  o.shard_index = 1;
  o.shard_count = f.source->size() + 1;
  EXPECT_ERROR_CONTAINS(build_profiles(*f.model, *f.source, o),
                        ": cannot be cut into " + std::to_string(f.source->size() + 1) + " shards: it has " +
                            std::to_string(f.source->size()) + " images");
  // Unlabelled data cannot make per-class profiles; global mode can.
  testing::MemorySource pool(kShape, {});
  std::vector<std::uint8_t> px(kShape.pixels(), 7);
  pool.add(px, kNoLabel);
  o.shard_index = o.shard_count = 1;
  EXPECT_ERROR_CONTAINS(build_profiles(*f.model, pool, o), "per-class statistics needs labelled images");
  o.profile.global = true;
  auto global = build_profiles(*f.model, pool, o);
  ASSERT_EQ(global.profiles.size(), 1u);
  EXPECT_EQ(global.profiles[0].name, "global");
  EXPECT_EQ(global.profiles[0].count, 1u);
}

TEST(Profiles, ScoringChoosesTheProfile) {
  Fixture f;
  ProfileRunOptions o;
  o.quiet = true;
  auto set = build_profiles(*f.model, *f.source, o);
  ScoreRunOptions so;
  so.quiet = true;
  so.by = ProfileChoice::Global;
  EXPECT_ERROR_CONTAINS(score_images(*f.model, set, *f.source, so, [](const ScoreRow&) {}), "by: the profile file holds per-class profiles");
  so.by = ProfileChoice::Label;
  ScoreTable table;
  table.value_columns = score_columns();
  auto images = score_images(*f.model, set, *f.source, so, [&](const ScoreRow& r) {
    EXPECT_EQ(r.values.size(), score_columns().size());
    table.rows.push_back(r);
  });
  EXPECT_EQ(table.rows.size(), f.source->size());
  EXPECT_EQ(images, table.rows.size());
  auto summary = summarize_scores(table);
  EXPECT_EQ(summary.images, images);
  EXPECT_EQ(summary.labelled, images);
  EXPECT_EQ(summary.auroc.size(), score_columns().size());
}

TEST(Profiles, ScoresOfASubsetKeepTheOriginalIds) {
  Fixture f;
  ProfileRunOptions o;
  o.quiet = true;
  auto set = build_profiles(*f.model, *f.source, o);
  auto part = subset(*f.source, {5, 17, 42});
  ScoreRunOptions so;
  so.quiet = true;
  std::vector<std::size_t> ids;
  std::vector<std::string> paths;
  score_images(*f.model, set, *part, so, [&](const ScoreRow& r) {
    ids.push_back(r.id);
    paths.push_back(r.path);
  });
  EXPECT_EQ(ids, (std::vector<std::size_t>{5, 17, 42}));
  EXPECT_EQ(paths, (std::vector<std::string>{"memory#5", "memory#17", "memory#42"}));
}

}  // namespace
}  // namespace imagescore
