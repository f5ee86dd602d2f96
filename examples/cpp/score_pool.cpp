// Fits every cheap fitted score of a model on its labelled reference images, scores a pool
// of images into a scores file (the command line's format) and prints how well each score
// tells right from wrong predictions: `imagescore profile` and `imagescore score` in one
// program.
//
// usage: score_pool MODEL REFERENCE_DATA POOL_DATA SCORES_CSV
//   e.g. score_pool model.st fashion-mnist fashion-mnist scores.csv   (train split, then test split)
#include <cstdio>
#include <vector>

#include "imagescore/core/error.hpp"
#include "imagescore/core/runtime.hpp"
#include "imagescore/core/version.hpp"
#include "imagescore/models/model.hpp"
#include "imagescore/score/fitted.hpp"
#include "imagescore/score/score.hpp"
#include "imagescore/score/scores_table.hpp"
#include "imagescore/stats/metrics.hpp"

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: %s MODEL REFERENCE_DATA POOL_DATA SCORES_CSV (imagescore %s)\n", argv[0],
                 IMAGESCORE_VERSION);
    return 2;
  }
  try {
    imagescore::set_threads(0);  // every core, as the command line
    auto model = imagescore::load_model(argv[1]);
    auto reference = imagescore::open_data(argv[2], imagescore::SplitName::Train);
    auto pool = imagescore::open_data(argv[3], imagescore::SplitName::Test);

    // Every cheap fitted score: the image score's profiles, kNN, trust score, Mahalanobis...
    imagescore::FitRunOptions fit_options;
    fit_options.quiet = true;
    const imagescore::ReferenceSet fitted = imagescore::fit_reference(*model, *reference, fit_options);

    imagescore::ScoreRunOptions score_options;
    score_options.quiet = true;
    const auto columns = imagescore::score_value_columns(fitted, *model, score_options);
    imagescore::ScoreWriter writer(argv[4], columns, model->meta().class_names);
    // Rows stream past: neither the scores nor the AUROCs hold the pool in memory.
    std::vector<imagescore::StreamingAuroc> aurocs(columns.size());
    const std::size_t images =
        imagescore::score_images(*model, fitted, *pool, score_options, [&](const imagescore::ScoreRow& row) {
          writer.write(row);
          for (std::size_t c = 0; c < columns.size(); ++c) aurocs[c].add(row.values[c], row.label == row.pred);
        });
    writer.commit();

    std::printf("%zu images scored into %s; AUROC of telling right from wrong predictions:\n", images, argv[4]);
    for (std::size_t c = 0; c < columns.size(); ++c)
      std::printf("  %-12s %.4f\n", columns[c].c_str(), aurocs[c].finish());
    return 0;
  } catch (const imagescore::Error& e) {
    std::fprintf(stderr, "score_pool: %s\n", e.what());
    return 1;
  }
}
