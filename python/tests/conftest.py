"""Shared pieces of the Python package's tests: the command-line program, the TorchScript
fixtures with their Python modules, and small data sets written as the CLI reads them.

Run by ctest (test `python`) with the build tree's package first on sys.path; by hand:
PYTHONPATH=build/python /usr/bin/python3 -m pytest python/tests
"""
import json
import os
import pathlib
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
import torch

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "torchscript"
sys.path.insert(0, str(FIXTURES))
import fixture_models  # noqa: E402  (the fixtures' Python modules)

CLI = os.environ.get("IMAGESCORE_CLI", str(ROOT / "build" / "imagescore"))
# The command line and torch run on the same number of threads: a TorchScript model's
# linear layers (BLAS) give other last bits on another thread count.
THREADS = 2
torch.set_num_threads(THREADS)


def run_cli(*args):
    """Runs the command-line program; its stdout, or a test failure showing its stderr."""
    done = subprocess.run([CLI, *map(str, args), "--threads", str(THREADS), "-q"], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(f"imagescore {' '.join(map(str, args))} failed: {done.stderr}")
    return done.stdout


MODELS = {
    "sequential_cnn": fixture_models.SequentialCnn,
    "sequential_cnn_twin": fixture_models.SequentialCnnTwin,
    "resnet_like": fixture_models.ResNetLike,
}


def fixture_module(name):
    """The fixture's Python module with the weights of its committed TorchScript file."""
    module = MODELS[name]()
    module.load_state_dict(torch.jit.load(str(FIXTURES / f"{name}.pt")).state_dict())
    return module.eval()


def preprocessing(path, name, mean, std):
    """A preprocessing file for the fixture `name` with this normalisation."""
    description = json.loads((FIXTURES / f"{name}.pt.json").read_text())
    description.update(mean=list(mean), std=list(std))
    path.write_text(json.dumps(description))
    return path


def pattern_images(count, shape, classes, seed):
    """uint8 images whose class shows as a brighter block at a class-specific place, on noise."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 90, size=(count,) + tuple(shape), dtype=np.uint8)
    labels = np.arange(count) % classes
    c, h, w = shape
    for i, label in enumerate(labels):
        y, x = (label * 3) % (h - 4), (label * 5) % (w - 4)
        images[i, :, y:y + 4, x:x + 4] = 200 + (label % 5) * 10
    return images, labels


def write_idx(folder, images, labels, prefix):
    """IDX files (one channel) as the idx: data kind reads them."""
    folder.mkdir(parents=True, exist_ok=True)
    n, _, h, w = images.shape
    (folder / f"{prefix}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 0x803, n, h, w) + images.tobytes())
    (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 0x801, n) + labels.astype(np.uint8).tobytes())


def write_png(path, image):
    """An 8-bit RGB PNG of a [3, H, W] uint8 image."""
    _, h, w = image.shape
    rows = b"".join(b"\x00" + image[:, y, :].T.tobytes() for y in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) +
                     chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def write_folder(folder, images, labels, classes, split):
    """folder:DIR layout: DIR/<split>/<class>/<n>.png."""
    for i, (image, label) in enumerate(zip(images, labels)):
        target = folder / split / classes[label]
        target.mkdir(parents=True, exist_ok=True)
        write_png(target / f"{i:04d}.png", image)


@pytest.fixture(scope="session")
def idx_data(tmp_path_factory):
    """A 10-class 1x28x28 IDX set (train 90 images, test 50), spec idx:DIR."""
    folder = tmp_path_factory.mktemp("idx")
    write_idx(folder, *pattern_images(90, (1, 28, 28), 10, seed=1), "train")
    write_idx(folder, *pattern_images(50, (1, 28, 28), 10, seed=2), "t10k")
    return f"idx:{folder}"


@pytest.fixture(scope="session")
def png_data(tmp_path_factory):
    """A 4-class 3x16x16 folder of PNG files (train 44 images, test 30), spec folder:DIR."""
    folder = tmp_path_factory.mktemp("png")
    classes = ["a", "b", "c", "d"]
    write_folder(folder, *pattern_images(44, (3, 16, 16), 4, seed=3), classes, "train")
    write_folder(folder, *pattern_images(30, (3, 16, 16), 4, seed=4), classes, "test")
    return f"folder:{folder}"
