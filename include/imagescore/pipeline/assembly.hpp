// Model assembly (the paper's table 3): the per-class image-score models of a
// self-training run, each claiming the test images it labels as its class, ranked by image
// score.
#pragma once

#include <string>
#include <vector>

#include "imagescore/pipeline/selftrain.hpp"
#include "imagescore/train/selftrain_records.hpp"

namespace imagescore {

// The paper's table 3 rule. For image i and model k: labels[k][i] is model k's prediction
// and scores[k][i] its class-k image score. An image labelled k by model k takes label k;
// labelled so by several models, the one with the highest score wins (ties: lowest k);
// labelled so by none, it keeps the base model's prediction.
std::vector<int> assemble_labels(const std::vector<std::vector<int>>& labels,
                                 const std::vector<std::vector<double>>& scores, const std::vector<int>& base);

// Assembles the per-class image-score models of a run (at `epoch`, 0: the last) on the
// test set, next to the base model.
AssemblyResult assemble_run(const std::string& run_dir, int epoch, const SelftrainOptions& options);

// assemble_run at each epoch (0: the last), written to run_dir/assembly.json and
// assembly.md.
std::vector<AssemblyResult> write_assembly(const std::string& run_dir, const std::vector<int>& epochs,
                                           const SelftrainOptions& options);

}  // namespace imagescore
