// imagescore eval: accuracy, per-class accuracy and the confusion matrix.
#include "common.hpp"
#include "imagescore/models/model.hpp"
#include "imagescore/data/split.hpp"
#include "imagescore/train/train.hpp"

namespace imagescore::cli {

void add_eval_command(CLI::App& app) {
  struct Options {
    std::string model, preprocess;
    DataOptions data;
    std::size_t batch_size = 256;
  };
  auto opt = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("eval", "Evaluate a model on labelled images");
  cmd->add_option("--model", opt->model, "Model checkpoint or TorchScript file")->required();
  cmd->add_option("--preprocess", opt->preprocess, "TorchScript: preprocessing JSON (default: MODEL.json)");
  add_data_options(*cmd, opt->data, "test");
  cmd->add_option("--batch-size", opt->batch_size, "Batch size")->default_val(256)->check(CLI::PositiveNumber);
  add_global_options(*cmd);
  add_device_option(*cmd);
  cmd->callback([opt] {
    run_command([&] {
      auto model = load_model(opt->model, opt->preprocess);
      auto source = open_selected_data(opt->data, "", model.get());
      auto ev = evaluate(*model, *source, opt->batch_size, global_options().threads, global_options().quiet);
      const auto& names = model->meta().class_names;
      if (!global_options().json) {
        std::printf("accuracy %.4f on %zu images\n\n%-16s %8s\n", ev.accuracy, ev.images, "class", "accuracy");
        for (std::size_t c = 0; c < names.size(); ++c)
          std::printf("%-16s %8s\n", names[c].c_str(), fixed(ev.per_class_accuracy[c], 4).c_str());
        std::printf("\nconfusion (rows: true class, columns: predicted)\n");
        for (const auto& row : ev.confusion) {
          for (auto v : row) std::printf(" %6zu", v);
          std::printf("\n");
        }
      }
      nlohmann::json per_class = nlohmann::json::object();
      for (std::size_t c = 0; c < names.size(); ++c)
        per_class[names[c]] = std::isnan(ev.per_class_accuracy[c]) ? nlohmann::json(nullptr) : nlohmann::json(ev.per_class_accuracy[c]);
      return nlohmann::json{{"images", ev.images}, {"accuracy", ev.accuracy}, {"per_class_accuracy", per_class},
                            {"classes", names}, {"confusion", ev.confusion}};
    });
  });
}

}  // namespace imagescore::cli
