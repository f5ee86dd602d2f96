#include "imagescore/pipeline/profile_and_score.hpp"

#include "imagescore/core/error.hpp"
#include "imagescore/core/partition.hpp"
#include "imagescore/dist/dist.hpp"

namespace imagescore {

std::optional<ReferenceSet> profile_to_file(Model& model, const ImageSource& source, FitRunOptions options,
                                            const std::string& out) {
  const auto& cluster = dist::cluster();
  if (cluster.distributed()) {
    if (options.shard_count != 1) fail_option("shard", "cannot be combined with mpirun (each rank is a shard)");
    options.shard_index = std::size_t(cluster.rank) + 1;
    options.shard_count = std::size_t(cluster.size);
  }
  auto set = fit_reference(model, source, options);
  if (cluster.distributed()) {
    dist::gather_reference(set);
    if (cluster.rank != 0) return std::nullopt;
  }
  save_reference(set, out);
  return set;
}

std::optional<ScoreSummary> score_to_file(Model& model, const ReferenceSet& set, const ImageSource& source,
                                          ScoreRunOptions options, const std::string& out) {
  const auto& cluster = dist::cluster();
  const auto columns = score_value_columns(set, model, options);
  std::vector<std::string> scores;
  for (const auto& c : columns)
    if (c.rfind("tap:", 0) != 0) scores.push_back(c);
  ScoreSummarizer summarizer(scores);
  {
    // Distributed, each rank writes the shard it scores to its own part.
    ScoreWriter writer(cluster.distributed() ? dist::part_path(out, cluster.rank) : out, columns,
                       model.meta().class_names);
    std::unique_ptr<ImageSource> shard;
    if (cluster.distributed()) {
      auto [first, last] = shard_range(source.size(), std::size_t(cluster.rank) + 1, std::size_t(cluster.size));
      std::vector<std::size_t> part;
      for (std::size_t i = first; i < last; ++i) part.push_back(i);
      shard = subset(source, std::move(part));
    }
    score_images(model, set, shard ? *shard : source, options, [&](const ScoreRow& row) {
      writer.write(row);
      if (!cluster.distributed()) summarizer.add(row);
    });
    writer.commit();
  }
  dist::barrier();
  if (cluster.rank != 0) return std::nullopt;
  if (cluster.distributed()) dist::join_score_parts(out, model.meta().class_names, [&](const ScoreRow& row) { summarizer.add(row); });
  return summarizer.finish();
}

}  // namespace imagescore
