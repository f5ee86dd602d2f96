// Distributed profile building and scoring over MPI. Ranks started by `mpirun` each take
// a disjoint, contiguous shard of the images; profile sums are exact integers, so their
// reduction gives the single-process result bit for bit in any order; rank 0 writes the
// outputs. Without mpirun (or in a build without MPI) the cluster is one process.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <utility>

#include "imagescore/score/fitted.hpp"
#include "imagescore/score/scores_table.hpp"

namespace imagescore::dist {

struct Cluster {
  int rank = 0;
  int size = 1;
  int local_size = 1;  // ranks on this machine
  int local_rank = 0;  // this rank's position among them (picks its GPU)
  bool distributed() const { return size > 1; }
};

// Starts MPI when the process was launched by mpirun. Fails when it was launched by
// mpirun but the build has no MPI (every rank would otherwise redo the whole job).
const Cluster& init(int& argc, char**& argv);
const Cluster& cluster();
void finalize();
// Ends every rank after an error on one of them, so that none waits forever.
[[noreturn]] void abort_all(int code);
void barrier();

// Rank 0 receives every rank's shard of a reference set and merges them in rank order
// into `set` (exact: what one process fits); the other ranks keep theirs.
void gather_reference(ReferenceSet& set);

// Rank 0 joins the scores files each rank wrote to part_path(path, rank) into `path`, in
// rank order and atomically, streaming the rows (each also to `on_row`), and removes the
// parts.
std::string part_path(const std::string& path, int rank);
// `class_names`: the model's, written as in every scores file.
void join_score_parts(const std::string& path, const std::vector<std::string>& class_names,
                      const std::function<void(const ScoreRow&)>& on_row);

}  // namespace imagescore::dist
