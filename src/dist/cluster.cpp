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

void gather_reference(ReferenceSet& set) {
#ifdef IMAGESCORE_WITH_MPI
  if (!g_mpi_started) return;
  // Each shard as the bytes of its file: one gather of the sizes, one of the bytes.
  const std::string bytes = encode_reference(set);
  const auto size = static_cast<unsigned long long>(bytes.size());
  std::vector<unsigned long long> sizes(std::size_t(g_cluster.size));
  MPI_Gather(&size, 1, MPI_UNSIGNED_LONG_LONG, sizes.data(), 1, MPI_UNSIGNED_LONG_LONG, 0, MPI_COMM_WORLD);
  std::vector<int> counts(sizes.size()), offsets(sizes.size());
  std::string all;
  if (g_cluster.rank == 0) {
    unsigned long long total = 0;
    for (std::size_t r = 0; r < sizes.size(); ++r) {
      if (total + sizes[r] > 0x7fffffffULL) fail("mpirun", "the ranks' reference sets exceed 2 GiB together");
      offsets[r] = int(total);
      counts[r] = int(sizes[r]);
      total += sizes[r];
    }
    all.resize(total);
  }
  MPI_Gatherv(bytes.data(), int(bytes.size()), MPI_BYTE, all.data(), counts.data(), offsets.data(), MPI_BYTE, 0,
              MPI_COMM_WORLD);
  if (g_cluster.rank != 0) return;
  std::vector<ReferenceSet> shards;
  std::vector<std::string> names;
  for (std::size_t r = 0; r < sizes.size(); ++r) {
    names.push_back("rank " + std::to_string(r));
    shards.push_back(decode_reference(all.substr(std::size_t(offsets[r]), std::size_t(counts[r])), names.back()));
  }
  set = merge_references(std::move(shards), names);
#else
  (void)set;
#endif
}

std::string part_path(const std::string& path, int rank) { return path + ".rank" + std::to_string(rank); }

void join_score_parts(const std::string& path, const std::vector<std::string>& class_names,
                      const std::function<void(const ScoreRow&)>& on_row) {
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
    if (!writer) writer = std::make_unique<ScoreWriter>(path, reader.value_columns(), class_names);
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
