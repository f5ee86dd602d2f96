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

// Builds the profiles of `source` and writes them atomically to `out`. Under mpirun each
// rank builds one shard (the options may not name one) and rank 0 adds the exact sums,
// which gives the file one process writes, bit for bit. Returns the profiles written, on
// rank 0; nothing on the other ranks.
std::optional<ProfileSet> profile_to_file(Model& model, const ImageSource& source, ProfileRunOptions options,
                                          const std::string& out);

// Scores every image of `source` into the scores file `out` (atomically), summarising the
// rows as they stream past. Under mpirun each rank scores a contiguous shard into its own
// part file and rank 0 joins the parts in rank order (the single-process order),
// summarising while it joins; the joined file is never held in memory. Returns the
// summary on rank 0; nothing on the other ranks.
std::optional<ScoreSummary> score_to_file(Model& model, const ProfileSet& profiles, const ImageSource& source,
                                          ScoreRunOptions options, const std::string& out);

}  // namespace imagescore
