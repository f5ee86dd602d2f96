"""imagescore.torch against the command line: a PyTorch module profiled and scored in Python
gives the numbers the CLI gives for the module's TorchScript export, on the same images."""
import json

import numpy as np
import pytest
import torch

import imagescore as isc
import imagescore.torch as ist
from conftest import FIXTURES, fixture_module, preprocessing, run_cli

# The normalisation of the CLI's preprocessing file, and the same for Python's batches.
MEAN = {"sequential_cnn": [0.2], "sequential_cnn_twin": [0.2], "resnet_like": [0.3, 0.4, 0.5]}
STD = {"sequential_cnn": [0.3], "sequential_cnn_twin": [0.3], "resnet_like": [0.25, 0.2, 0.3]}


def loader(spec, split, name, batch_size):
    """A DataLoader of (images, labels, ids): the images normalised by the library's loader
    (exactly what the CLI feeds the model), batched by torch at `batch_size`."""
    source = isc.open_data(spec, split)
    parts = list(source.batches(mean=MEAN[name], std=STD[name], batch_size=64))
    dataset = torch.utils.data.TensorDataset(*(torch.from_numpy(np.concatenate([p[k] for p in parts])) for k in range(3)))
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False)


def assert_tables_equal(python, cli):
    """Same rows, ids, labels and predictions; every value column within 1e-12."""
    assert len(python) == len(cli)
    for column in ("id", "label", "pred"):
        np.testing.assert_array_equal(python[column], cli[column], err_msg=column)
    assert python.value_columns == cli.value_columns
    for column in cli.value_columns:
        np.testing.assert_allclose(python[column], cli[column], rtol=0, atol=1e-12, err_msg=column)


CASES = [("sequential_cnn", "idx_data"), ("sequential_cnn_twin", "idx_data"), ("resnet_like", "png_data")]


@pytest.mark.parametrize("name,data", CASES)
def test_profiles_and_scores_equal_the_cli(name, data, request, tmp_path):
    spec = request.getfixturevalue(data)
    model = FIXTURES / f"{name}.pt"
    prep = preprocessing(tmp_path / "prep.json", name, MEAN[name], STD[name])
    run_cli("profile", "--model", model, "--preprocess", prep, "--data", spec, "--out", tmp_path / "cli.st")
    run_cli("score", "--model", model, "--preprocess", prep, "--profiles", tmp_path / "cli.st", "--data", spec,
            "--split", "test", "--per-tap", "--out", tmp_path / "cli.csv")
    cli_profiles = isc.load_reference(str(tmp_path / "cli.st"))
    cli_scores = isc.read_scores(str(tmp_path / "cli.csv"))

    module = fixture_module(name)
    # 7 images a batch: the module still runs in the CLI's chunks of 32 by position.
    profiles = ist.profile(module, loader(spec, "train", name, 7), classes=cli_profiles.classes, data=spec)
    profiles.save(str(tmp_path / "python.st"))
    assert (tmp_path / "python.st").read_bytes() == (tmp_path / "cli.st").read_bytes()

    scores = ist.score(module, profiles, loader(spec, "test", name, 7), per_tap=True)
    assert_tables_equal(scores, cli_scores)
    # The CLI's profile file scores the same in Python.
    assert_tables_equal(ist.score(module, cli_profiles, loader(spec, "test", name, 13), per_tap=True), cli_scores)
    assert scores["image_score"].std() > 0  # the images are told apart


@pytest.mark.parametrize("name", ["sequential_cnn", "resnet_like", "control_flow"])
def test_taps_defaults_and_weights_hash_are_the_cli_s(name):
    module = MODELS_FOR_INFO[name]()
    module.load_state_dict(torch.jit.load(str(FIXTURES / f"{name}.pt")).state_dict())
    info = json.loads(run_cli("model", "info", "--model", FIXTURES / f"{name}.pt", "--json"))
    model = ist.TorchModel(module, info["input"], info["classes"])
    assert model.describe().weights_hash == info["weights_hash"]
    defaults = [t["name"] for t in info["taps"] if t["default"]]
    tapped = [(t["name"], tuple(t["shape"])) for t in info["taps"]]
    if name == "control_flow":
        # Hooks see no control flow: the branch a blank image takes is a tap like any other
        # (TorchScript refuses both branches).
        assert [t[0] for t in tapped] == ["stem", "stem.0", "stem.1", "head", "output"]
        assert model.taps == tapped[:3] + [("right", (4, 8, 8))] + tapped[3:]
        assert model.default_taps == ["stem.1", "right", "output"] and defaults == ["stem.1", "output"]
    else:
        assert model.taps == tapped
        assert model.default_taps == defaults


MODELS_FOR_INFO = {
    "sequential_cnn": lambda: fixture_module("sequential_cnn"),
    "resnet_like": lambda: fixture_module("resnet_like"),
    "control_flow": lambda: __import__("fixture_models").ControlFlow(),
}


def test_taps_by_name_a_module_called_twice_and_global_profiles(png_data, tmp_path):
    name, model = "resnet_like", FIXTURES / "resnet_like.pt"
    prep = preprocessing(tmp_path / "prep.json", name, MEAN[name], STD[name])
    taps = "layer1.0.relu#2,layer1.1.conv1,output"
    run_cli("profile", "--model", model, "--preprocess", prep, "--data", png_data, "--taps", taps, "--global",
            "--rho", "0.3", "--norm", "l2", "--scale", "sum", "--out", tmp_path / "cli.st")
    run_cli("score", "--model", model, "--preprocess", prep, "--profiles", tmp_path / "cli.st", "--data", png_data,
            "--split", "test", "--by", "global", "--overlap", "jaccard", "--floor", "0.01", "--out", tmp_path / "cli.csv")
    module = fixture_module(name)
    profiles = ist.profile(module, loader(png_data, "train", name, 32), classes=["a", "b", "c", "d"],
                           taps=taps.split(","), global_profile=True, rho=0.3, norm="l2", scale="sum", data=png_data)
    profiles.save(str(tmp_path / "python.st"))
    assert (tmp_path / "python.st").read_bytes() == (tmp_path / "cli.st").read_bytes()
    scores = ist.score(module, profiles, loader(png_data, "test", name, 10), by="global", overlap="jaccard", floor=0.01)
    assert_tables_equal(scores, isc.read_scores(str(tmp_path / "cli.csv")))
    # A global profile needs no labels: batches of images alone give the same.
    images = loader(png_data, "train", name, 1000).dataset.tensors[0]
    unlabelled = ist.profile(module, [images[:40], images[40:]], classes=["a", "b", "c", "d"], taps=taps.split(","),
                             global_profile=True, rho=0.3, norm="l2", scale="sum", data=png_data)
    unlabelled.save(str(tmp_path / "unlabelled.st"))
    assert (tmp_path / "unlabelled.st").read_bytes() == (tmp_path / "cli.st").read_bytes()


def test_shards_merge_into_one_pass(idx_data, tmp_path):
    """Profiles of three parts of the reference set, merged, are the one-pass profiles bit
    for bit, in Python and with the CLI's `profile merge`."""
    name = "sequential_cnn"
    module = fixture_module(name)
    images, labels, ids = (t for t in loader(idx_data, "train", name, 1000).dataset.tensors)
    whole = ist.profile(module, [(images, labels)], data=idx_data)
    cuts = [0, 32, 64, 90]  # at chunk boundaries (docs/python.md: shards)
    # Each shard's images carry their ids (positions in the whole set), which the kNN
    # scores keep to name the reference images.
    shards = [ist.profile(module, [(images[a:b], labels[a:b], ids[a:b])], data=idx_data, shard=(i + 1, 3))
              for i, (a, b) in enumerate(zip(cuts, cuts[1:]))]
    assert [s.shard for s in shards] == [(1, 3), (2, 3), (3, 3)]
    merged = isc.merge_references([shards[2], shards[0], shards[1]])
    whole.save(str(tmp_path / "whole.st"))
    merged.save(str(tmp_path / "merged.st"))
    assert (tmp_path / "merged.st").read_bytes() == (tmp_path / "whole.st").read_bytes()
    for i, s in enumerate(shards):
        s.save(str(tmp_path / f"shard{i}.st"))
    run_cli("profile", "merge", *(tmp_path / f"shard{i}.st" for i in range(3)), "--out", tmp_path / "cli.st")
    assert (tmp_path / "cli.st").read_bytes() == (tmp_path / "whole.st").read_bytes()


def test_the_dataloader_s_batch_size_does_not_change_a_number(idx_data, tmp_path):
    module = fixture_module("sequential_cnn")
    one = ist.profile(module, loader(idx_data, "train", "sequential_cnn", 90))
    one.save(str(tmp_path / "one.st"))
    for batch_size in (1, 31, 33):
        ist.profile(module, loader(idx_data, "train", "sequential_cnn", batch_size)).save(str(tmp_path / "other.st"))
        assert (tmp_path / "other.st").read_bytes() == (tmp_path / "one.st").read_bytes()
    a = ist.score(module, one, loader(idx_data, "test", "sequential_cnn", 50))
    b = ist.score(module, one, loader(idx_data, "test", "sequential_cnn", 3))
    for column in a.columns:
        np.testing.assert_array_equal(a[column], b[column])


def test_scores_come_as_arrays_and_as_a_dataframe(idx_data):
    module = fixture_module("sequential_cnn")
    profiles = ist.profile(module, loader(idx_data, "train", "sequential_cnn", 32))
    # Batches of images only (no labels, no ids): ids are positions, labels unknown.
    images = loader(idx_data, "test", "sequential_cnn", 50).dataset.tensors[0]
    table = ist.score(module, profiles, [images[:20], images[20:]])
    assert table.columns == ["id", "path", "label", "pred", "image_score", "msp", "margin", "neg_entropy", "energy",
                             "max_logit", "doctor", "knn", "trust", "mahalanobis", "rel_mahalanobis"]
    np.testing.assert_array_equal(table["id"], np.arange(50))
    np.testing.assert_array_equal(table["label"], np.full(50, -1))
    assert table["image_score"].dtype == np.float64 and table["pred"].dtype == np.int64
    assert set(table.to_dict()) == set(table.columns)
    pandas = pytest.importorskip("pandas", reason="pandas is optional (python3-pandas)")
    frame = table.to_pandas()
    assert isinstance(frame, pandas.DataFrame) and list(frame.columns) == table.columns
    np.testing.assert_array_equal(frame["msp"].to_numpy(), table["msp"])


def test_module_state_is_left_as_it_was(idx_data):
    module = fixture_module("sequential_cnn").train()
    before = {k: v.clone() for k, v in module.state_dict().items()}
    ist.profile(module, loader(idx_data, "train", "sequential_cnn", 45))
    assert module.training
    assert all(torch.equal(before[k], v) for k, v in module.state_dict().items())
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in module.modules())
