// Nearest-neighbour search of the knn and trust scores on random features: faiss's exact
// flat index (what `--knn-index exact` uses, per-pair distances), the same with faiss's
// default BLAS path, the IVF index of `--knn-index ivf` (knn_ivf_lists(N) lists, several
// nprobe) and a plain LibTorch matrix product (squared distances by mm, then topk). Times
// are the best of R runs, printed as ratios to the exact flat search measured in the same
// run; recall@k is the share of the exact k neighbours that a method finds.
//
// Two kinds of features, normalised to unit length as knn does: a mixture of 10 Gaussian
// classes (like a classifier's last features) and one isotropic Gaussian (no clusters:
// the worst case of an inverted file).
#include <faiss/IndexFlat.h>
#include <faiss/IndexIVFFlat.h>
#include <faiss/utils/distances.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "imagescore/core/runtime.hpp"
#include "imagescore/score/fitted.hpp"

namespace {

using Labels = faiss::Index::idx_t;

struct Args {
  std::vector<std::size_t> sizes = {5000, 50000};
  std::size_t d = 128, queries = 2000, k = 10;
  int repeats = 3, threads = 0;
};

// Rows of d floats, unit length: class centres N(0, 1), points centre + N(0, 0.7^2); or,
// without classes, N(0, 1).
std::vector<float> features(std::size_t n, std::size_t d, std::uint64_t seed, bool classes) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.f, 1.f);
  std::mt19937_64 centre_rng(7);  // the same classes for the reference set and the queries
  std::vector<float> centres(10 * d);
  for (auto& c : centres) c = classes ? normal(centre_rng) : 0.f;
  std::vector<float> x(n * d);
  for (std::size_t i = 0; i < n; ++i) {
    const float* c = centres.data() + (i % 10) * d;
    double norm = 0;
    for (std::size_t j = 0; j < d; ++j) {
      x[i * d + j] = c[j] + (classes ? 0.7f : 1.f) * normal(rng);
      norm += double(x[i * d + j]) * x[i * d + j];
    }
    for (std::size_t j = 0; j < d; ++j) x[i * d + j] = float(x[i * d + j] / std::sqrt(norm));
  }
  return x;
}

double best_of(int repeats, const std::function<void()>& f) {
  double best = 1e300;
  for (int r = 0; r < repeats; ++r) {
    const auto start = std::chrono::steady_clock::now();
    f();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  return best;
}

double recall(const std::vector<Labels>& exact, const std::vector<Labels>& found, std::size_t queries, std::size_t k) {
  std::size_t hits = 0;
  for (std::size_t i = 0; i < queries; ++i) {
    const std::set<Labels> truth(exact.begin() + long(i * k), exact.begin() + long((i + 1) * k));
    for (std::size_t j = 0; j < k; ++j) hits += truth.count(found[i * k + j]);
  }
  return double(hits) / double(queries * k);
}

void run(std::size_t n, bool classes, const Args& a) {
  auto row = [&](const char* method, const std::string& nprobe, double seconds, double flat, const std::string& recall) {
    std::printf("| %zu | %s | %s | %s | %.4f | %.3f | %s |\n", n, classes ? "10 classes" : "isotropic", method, nprobe.c_str(),
                seconds, seconds / flat, recall.c_str());
    std::fflush(stdout);
  };
  const std::size_t d = a.d, q = a.queries, k = a.k;
  const auto x = features(n, d, 1, classes), queries = features(q, d, 2, classes);
  std::vector<float> dist(q * k);
  std::vector<Labels> exact(q * k), found(q * k);

  faiss::IndexFlatL2 flat{int(d)};
  flat.add(Labels(n), x.data());
  faiss::distance_compute_blas_threshold = INT_MAX;  // per pair, as the library searches
  const double t_flat = best_of(a.repeats, [&] { flat.search(Labels(q), queries.data(), Labels(k), dist.data(), exact.data()); });
  row("faiss IndexFlatL2 (exact, per pair)", "", t_flat, t_flat, "1");

  faiss::distance_compute_blas_threshold = 20;  // faiss's default: BLAS above 20 queries
  const double t_blas = best_of(a.repeats, [&] { flat.search(Labels(q), queries.data(), Labels(k), dist.data(), found.data()); });
  char r[32];
  std::snprintf(r, sizeof r, "%.4f", recall(exact, found, q, k));
  row("faiss IndexFlatL2 (BLAS, faiss default)", "", t_blas, t_flat, r);
  faiss::distance_compute_blas_threshold = INT_MAX;

  // Built as `--knn-index ivf` builds it (src/score/fit_features.cpp).
  const std::size_t lists = imagescore::knn_ivf_lists(n);
  faiss::IndexFlatL2 quantizer{int(d)};
  faiss::IndexIVFFlat ivf(&quantizer, d, lists);
  ivf.cp.seed = 1234;
  ivf.cp.min_points_per_centroid = 1;
  const double t_build = best_of(1, [&] {
    ivf.train(Labels(n), x.data());
    ivf.add(Labels(n), x.data());
  });
  row(("IVF build: k-means + add, nlist " + std::to_string(lists)).c_str(), "", t_build, t_flat, "");
  for (std::size_t nprobe : {std::size_t(1), std::size_t(4), std::size_t(16), std::size_t(64)}) {
    if (nprobe > lists) break;
    ivf.nprobe = nprobe;
    const double t = best_of(a.repeats, [&] { ivf.search(Labels(q), queries.data(), Labels(k), dist.data(), found.data()); });
    std::snprintf(r, sizeof r, "%.4f", recall(exact, found, q, k));
    row("faiss IndexIVFFlat", std::to_string(nprobe), t, t_flat, r);
  }

  // ||q||^2 - 2 q.x + ||x||^2 by one matrix product per block of 256 queries, then topk.
  torch::NoGradGuard no_grad;
  const auto xt = torch::from_blob(const_cast<float*>(x.data()), {long(n), long(d)}, torch::kFloat);
  const auto qt = torch::from_blob(const_cast<float*>(queries.data()), {long(q), long(d)}, torch::kFloat);
  const auto x_norm = xt.pow(2).sum(1);
  torch::Tensor ids;
  const double t_torch = best_of(a.repeats, [&] {
    std::vector<torch::Tensor> parts;
    for (long i0 = 0; i0 < long(q); i0 += 256) {
      const auto qb = qt.slice(0, i0, std::min<long>(long(q), i0 + 256));
      const auto d2 = torch::addmm(x_norm.unsqueeze(0) + qb.pow(2).sum(1, true), qb, xt.t(), 1, -2);
      parts.push_back(std::get<1>(d2.topk(long(k), 1, false, true)));
    }
    ids = torch::cat(parts);
  });
  const auto acc = ids.contiguous();
  for (std::size_t i = 0; i < q * k; ++i) found[i] = acc.data_ptr<std::int64_t>()[i];
  std::snprintf(r, sizeof r, "%.4f", recall(exact, found, q, k));
  row("LibTorch mm + topk", "", t_torch, t_flat, r);
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "bench_knn: %s needs a value\n", arg.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (arg == "--sizes") {
      a.sizes.clear();
      std::string list = next();
      for (std::size_t p = 0; p < list.size();) {
        const auto comma = list.find(',', p);
        a.sizes.push_back(std::stoul(list.substr(p, comma - p)));
        p = comma == std::string::npos ? list.size() : comma + 1;
      }
    } else if (arg == "--queries") {
      a.queries = std::stoul(next());
    } else if (arg == "--k") {
      a.k = std::stoul(next());
    } else if (arg == "--repeats") {
      a.repeats = std::stoi(next());
    } else if (arg == "--threads") {
      a.threads = std::stoi(next());
    } else {
      std::puts(
          "usage: bench_knn [--sizes 5000,50000] [--queries 2000] [--k 10] [--repeats 3] [--threads T]\n"
          "  times of 2,000 queries among N reference features (d = 128) as ratios to faiss's exact flat search");
      return arg == "--help" ? 0 : 2;
    }
  }
  const int threads = imagescore::set_threads(a.threads);
  std::printf("bench_knn: d %zu, %zu queries, k %zu, %d threads, best of %d runs (IVF build: one run)\n\n", a.d, a.queries,
              a.k, threads, a.repeats);
  std::puts("| N | features | method | nprobe | seconds | ratio to exact flat | recall@k |");
  std::puts("| ---: | --- | --- | ---: | ---: | ---: | ---: |");
  for (auto n : a.sizes)
    for (bool classes : {true, false}) run(n, classes, a);
  return 0;
}
