// Building profiles and scoring images into files, in one process or over MPI ranks
// (docs/distributed.md): what `imagescore profile` and `imagescore score` do.
#pragma once

#include <optional>
#include <string>

#include "imagescore/models/model.hpp"
#include "imagescore/score/profile.hpp"
#include "imagescore/score/score.hpp"
#include "imagescore/stats/score_summary.hpp"

namespace imagescore {

// Fits the reference set of `source` (the image score's profiles and the other fitted
// scores) and writes it atomically to `out`. Under mpirun each rank fits one shard (the
// options may not name one) and rank 0 merges them, which gives the file one process
// writes, bit for bit. Returns the set written, on rank 0; nothing on the other ranks.
std::optional<ReferenceSet> profile_to_file(Model& model, const ImageSource& source, FitRunOptions options,
                                            const std::string& out);

// Scores every image of `source` into the scores file `out` (atomically), summarising the
// rows as they stream past. Under mpirun each rank scores a contiguous shard into its own
// part file and rank 0 joins the parts in rank order (the single-process order),
// summarising while it joins; the joined file is never held in memory. Returns the
// summary on rank 0; nothing on the other ranks.
std::optional<ScoreSummary> score_to_file(Model& model, const ReferenceSet& set, const ImageSource& source,
                                          ScoreRunOptions options, const std::string& out);

}  // namespace imagescore
