#!/usr/bin/env bash
# The main job on the real CIFAR-10 images (JPEG folders), with ResNet-18.
# Needs ../shared/data/cifar10-jpg.tar.zst (or pass the archive as $1). On 2 CPU cores
# training ResNet-18 is slow: the defaults here (2 epochs) only show the mechanics; use
# a GPU machine and many more epochs for meaningful accuracy.
set -euo pipefail
cd "$(dirname "$0")/.."
archive=${1:-../shared/data/cifar10-jpg.tar.zst}
data=runs/cifar10-jpg
if [[ ! -d $data/train ]]; then
  mkdir -p "$data"
  zstd -dc "$archive" | tar -x -C "$data"
fi
./build/imagescore study --data "folder:$data" --model resnet18 --epochs "${EPOCHS:-2}" \
  --reference-epochs 0 --labelled 0.6 --out runs/cifar10-resnet18
