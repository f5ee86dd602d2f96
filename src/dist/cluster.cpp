#include "imagescore/dist/dist.hpp"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <vector>

#include "imagescore/core/error.hpp"
#include "imagescore/core/io.hpp"

#ifdef IMAGESCORE_WITH_MPI
#include <mpi.h>
#endif

namespace imagescore::dist {
namespace {

Cluster g_cluster;
bool g_mpi_started = false;

int env_int(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::atoi(v) : 0;
}

#ifdef IMAGESCORE_WITH_MPI
void add_exact_sums(void* in, void* inout, int* len, MPI_Datatype*) {
  auto* a = static_cast<const ExactSum*>(in);
  auto* b = static_cast<ExactSum*>(inout);
  for (int i = 0; i < *len; ++i) b[i] += a[i];
}
#endif

}  // namespace

const Cluster& init(int& argc, char**& argv) {
  const int launched = std::max(env_int("OMPI_COMM_WORLD_SIZE"), env_int("PMI_SIZE"));
#ifdef IMAGESCORE_WITH_MPI
  if (launched > 1) {
    MPI_Init(&argc, &argv);
    g_mpi_started = true;
    MPI_Comm_rank(MPI_COMM_WORLD, &g_cluster.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_cluster.size);
    g_cluster.local_size = std::max(1, env_int("OMPI_COMM_WORLD_LOCAL_SIZE"));
    g_cluster.local_rank = std::max(0, env_int("OMPI_COMM_WORLD_LOCAL_RANK"));
  }
#else
  (void)argc;
  (void)argv;
  if (launched > 1) fail("mpirun", "this imagescore was built without MPI (install libopenmpi-dev and rebuild)");
#endif
  return g_cluster;
}

const Cluster& cluster() { return g_cluster; }

void finalize() {
#ifdef IMAGESCORE_WITH_MPI
  if (g_mpi_started) MPI_Finalize();
#endif
  g_mpi_started = false;
}

void abort_all(int code) {
#ifdef IMAGESCORE_WITH_MPI
  if (g_mpi_started) MPI_Abort(MPI_COMM_WORLD, code);
#endif
  std::exit(code);
}

void barrier() {
#ifdef IMAGESCORE_WITH_MPI
  if (g_mpi_started) MPI_Barrier(MPI_COMM_WORLD);
#endif
}

void reduce_profiles(ProfileSet& set) {
#ifdef IMAGESCORE_WITH_MPI
  if (!g_mpi_started) return;
  // One buffer of every sum and one of the counts: two collective calls in all.
  std::vector<ExactSum> sums;
  std::vector<std::uint64_t> counts;
  for (const auto& p : set.profiles) {
    counts.push_back(p.count);
    for (const auto& t : p.taps) sums.insert(sums.end(), t.sum.begin(), t.sum.end());
  }
  MPI_Datatype exact;
  MPI_Type_contiguous(int(sizeof(ExactSum)), MPI_BYTE, &exact);
  MPI_Type_commit(&exact);
  MPI_Op add;
  MPI_Op_create(&add_exact_sums, 1, &add);
  std::vector<ExactSum> total(g_cluster.rank == 0 ? sums.size() : 0);
  std::vector<std::uint64_t> total_counts(counts.size());
  // Integer sums are exact: the reduction's order cannot change the result.
  MPI_Reduce(sums.data(), total.data(), int(sums.size()), exact, add, 0, MPI_COMM_WORLD);
  MPI_Reduce(counts.data(), total_counts.data(), int(counts.size()), MPI_UINT64_T, MPI_SUM, 0, MPI_COMM_WORLD);
  MPI_Op_free(&add);
  MPI_Type_free(&exact);
  if (g_cluster.rank != 0) return;
  std::size_t at = 0;
  for (std::size_t c = 0; c < set.profiles.size(); ++c) {
    set.profiles[c].count = total_counts[c];
    for (auto& t : set.profiles[c].taps) {
      std::copy(total.begin() + long(at), total.begin() + long(at + t.sum.size()), t.sum.begin());
      at += t.sum.size();
    }
  }
#else
  (void)set;
#endif
}

std::string part_path(const std::string& path, int rank) { return path + ".rank" + std::to_string(rank); }

void join_score_parts(const std::string& path, const std::function<void(const ScoreRow&)>& on_row) {
  std::vector<std::string> parts;
  for (int r = 0; r < g_cluster.size; ++r) parts.push_back(part_path(path, r));
  std::unique_ptr<ScoreWriter> writer;
  for (int r = 0; r < g_cluster.size; ++r) {
    std::error_code ec;
    if (!std::filesystem::exists(parts[std::size_t(r)], ec))
      fail(parts[std::size_t(r)], "missing: rank " + std::to_string(r) + " wrote no scores");
    ScoreReader reader(parts[std::size_t(r)]);
    // Every part has the same columns; the joined rows are the parts' rows, written the
    // same way (format_double reads back exactly), in rank order.
    if (!writer) writer = std::make_unique<ScoreWriter>(path, reader.value_columns());
    ScoreRow row;
    while (reader.next(row)) {
      writer->write(row);
      on_row(row);
    }
  }
  writer->commit();
  for (const auto& part : parts) std::remove(part.c_str());
}

}  // namespace imagescore::dist
