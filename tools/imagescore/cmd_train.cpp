// imagescore train: train a built-in model and save a self-describing checkpoint.
#include <nlohmann/json.hpp>

#include "common.hpp"
#include "imagescore/core/error.hpp"
#include "imagescore/models/model.hpp"
#include "imagescore/data/split.hpp"
#include "imagescore/train/train.hpp"

namespace imagescore::cli {
void add_train_command(CLI::App& app) {
  struct Options {
    DataOptions data;
    std::string arch = "small-cnn";
    std::string out;
    std::string normalize = "auto";
    TrainOptions train;
    std::string optimizer = "adam";
    bool augment = false;
  };
  auto opt = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("train", "Train a built-in model");
  add_data_options(*cmd, opt->data, "train");
  cmd->add_option("--model", opt->arch, "small-cnn, vgg16 or resnet18")->default_val("small-cnn");
  cmd->add_option("--epochs", opt->train.epochs, "Training epochs")->default_val(5);
  cmd->add_option("--batch-size", opt->train.batch_size, "Batch size")->default_val(128);
  cmd->add_option("--optimizer", opt->optimizer, "adam (as in the paper) or sgd")->default_val("adam");
  cmd->add_option("--lr", opt->train.optimizer.learning_rate, "Learning rate")->default_val(1e-3);
  cmd->add_option("--momentum", opt->train.optimizer.momentum, "SGD momentum")->default_val(0.9);
  cmd->add_option("--weight-decay", opt->train.optimizer.weight_decay, "Weight decay")->default_val(0.0);
  cmd->add_option("--seed", opt->train.seed, "Random seed (initialisation, order, augmentation)")->default_val(0);
  cmd->add_flag("--augment", opt->augment, "Random crop (padding 4) and horizontal flip, as usual for CIFAR");
  cmd->add_option("--normalize", opt->normalize, "auto (from the training images), none, imagenet, or MEANS/STDS")->default_val("auto");
  cmd->add_option("--out", opt->out, "Checkpoint file to write")->required();
  add_global_options(*cmd);
  add_device_option(*cmd);
  cmd->callback([opt] {
    run_command([&] {
      auto& o = *opt;
      auto source = open_selected_data(o.data, "training");
      o.train.optimizer.kind = parse_optimizer(o.optimizer);
      if (o.augment) o.train.augmentation = {4, true};
      o.train.threads = global_options().threads;
      o.train.quiet = global_options().quiet;
      auto norm = normalization_for(o.normalize, *source, o.train.threads);
      auto model = create_model(o.arch, source->shape(), source->class_names(), norm, o.train.seed);
      train_model(*model, *source, o.train);
      save_model(*model, o.out);
      if (!global_options().json)
        std::fprintf(stderr, "trained %s on %zu images -> %s\n", o.arch.c_str(), source->size(), o.out.c_str());
      auto training = nlohmann::json::parse(model->meta().training_json);
      return nlohmann::json{{"model", o.out}, {"arch", o.arch}, {"images", source->size()},
                            {"history", training["history"]}, {"weights_hash", model->meta().weights_hash}};
    });
  });
}

}  // namespace imagescore::cli
