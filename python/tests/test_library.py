"""The library's own models, data sources, runs, selection and analysis from Python give
the command line's files."""
import json

import numpy as np
import pytest

import imagescore as isc
from conftest import FIXTURES, THREADS, pattern_images, run_cli


def test_data_sources_read_what_was_written(idx_data, tmp_path):
    source = isc.open_data(idx_data, "test")
    images, labels = pattern_images(50, (1, 28, 28), 10, seed=2)
    assert (len(source), source.shape, source.classes) == (50, (1, 28, 28), [str(c) for c in range(10)])
    assert source.labelled and source.spec == idx_data
    np.testing.assert_array_equal(source.labels, labels)
    np.testing.assert_array_equal(source.read(7), images[7])
    part = source.subset([7, 3])
    np.testing.assert_array_equal(part.read(0), images[7])
    assert (part.id(0), part.id(1), len(part)) == (7, 3, 2)
    pixels, batch_labels, ids = next(iter(part.batches(mean=[0.5], std=[0.25], batch_size=8)))
    expected = ((images[[7, 3]].astype(np.float64) / 255 - np.float32(0.5)) / np.float32(0.25)).astype(np.float32)
    np.testing.assert_array_equal(pixels, expected)
    np.testing.assert_array_equal(batch_labels, labels[[7, 3]])
    np.testing.assert_array_equal(ids, [7, 3])
    assert len(source.batches(batch_size=16)) == 4


def test_library_runs_write_the_cli_s_files(idx_data, tmp_path):
    model_path = FIXTURES / "sequential_cnn.pt"
    run_cli("profile", "--model", model_path, "--data", idx_data, "--shard", "2/3", "--out", tmp_path / "cli.st")
    run_cli("profile", "--model", model_path, "--data", idx_data, "--out", tmp_path / "whole.st")
    run_cli("score", "--model", model_path, "--profiles", tmp_path / "whole.st", "--data", idx_data, "--split", "test",
            "--by", "label", "--out", tmp_path / "cli.csv")
    isc.set_threads(THREADS)
    model = isc.load_model(str(model_path))
    assert (model.arch, model.input_shape, model.default_taps) == \
        ("torchscript", (1, 28, 28), ["features.2", "features.6", "classifier.2", "output"])
    reference = isc.fit_reference(model, isc.open_data(idx_data), shard=(2, 3))
    reference.save(str(tmp_path / "python.st"))
    assert (tmp_path / "python.st").read_bytes() == (tmp_path / "cli.st").read_bytes()
    whole = isc.load_reference(str(tmp_path / "whole.st"))
    table = isc.score_source(model, whole, isc.open_data(idx_data, "test"), by="label")
    table.save(str(tmp_path / "python.csv"))
    assert (tmp_path / "python.csv").read_bytes() == (tmp_path / "cli.csv").read_bytes()
    logits, taps = model.forward(isc.open_data(idx_data, "test").batches(batch_size=5).__next__()[0], ["features.2"])
    assert logits.shape == (5, 10) and list(taps) == ["features.2"] and taps["features.2"].shape == (5, 8, 14, 14)


def test_the_ivf_index_is_the_cli_s(idx_data, tmp_path):
    model_path = FIXTURES / "sequential_cnn.pt"
    run_cli("profile", "--model", model_path, "--data", idx_data, "--scores", "knn", "--knn-index", "ivf",
            "--knn-nprobe", "2", "--out", tmp_path / "cli.st")
    isc.set_threads(THREADS)
    model = isc.load_model(str(model_path))
    reference = isc.fit_reference(model, isc.open_data(idx_data), scores=["knn"], knn_index="ivf", knn_nprobe=2)
    reference.save(str(tmp_path / "python.st"))
    assert (tmp_path / "python.st").read_bytes() == (tmp_path / "cli.st").read_bytes()
    with pytest.raises(isc.OptionError, match="knn_index"):
        isc.fit_reference(model, isc.open_data(idx_data), scores=["knn"], knn_index="hnsw")


def test_selection_and_analysis_are_the_cli_s(tmp_path):
    rng = np.random.default_rng(5)
    n = 60
    table = isc.ScoreTable(np.arange(n), rng.integers(0, 3, n), {"image_score": rng.normal(size=n), "msp": rng.random(n)},
                           labels=rng.integers(0, 3, n), paths=[f"img{i}.png" for i in range(n)])
    table.save(str(tmp_path / "scores.csv"))
    out = json.loads(run_cli("select", "--scores", tmp_path / "scores.csv", "--by", "msp", "--alpha", "0.2,0.5,0.1",
                             "--out", tmp_path / "cli_sel.csv", "--json"))
    rows = isc.select(table, "msp", alpha=[0.2, 0.5, 0.1])
    isc.write_selection(str(tmp_path / "sel.csv"), table, "msp", rows)
    assert (tmp_path / "sel.csv").read_bytes() == (tmp_path / "cli_sel.csv").read_bytes()
    stats = isc.selection_stats(table, rows)
    assert stats["overall"] == out["overall"]
    assert {str(c): v for c, v in stats["per_class"].items()} == out["per_class"]  # JSON keys are text
    run_cli("analyze", "--scores", tmp_path / "scores.csv", "--bins", "4", "--binning", "quantile", "--resamples", "60",
            "--seed", "9", "--out", tmp_path / "analysis.json")
    read_back = isc.read_scores(str(tmp_path / "scores.csv"))
    mine = isc.analyze(read_back, bins=4, binning="quantile", resamples=60, seed=9)
    assert mine == json.loads((tmp_path / "analysis.json").read_text())


def test_splits_are_the_cli_s(idx_data, tmp_path):
    run_cli("split", "--data", idx_data, "--fraction", "0.3", "--seed", "4", "--out", tmp_path / "split.json")
    saved = json.loads((tmp_path / "split.json").read_text())
    training, additional = isc.make_split(isc.open_data(idx_data), 0.3, seed=4)
    assert training.tolist() == saved["training"] and additional.tolist() == saved["additional"]
    part = isc.open_data(idx_data, split_file=str(tmp_path / "split.json"), part="additional")
    assert [part.id(i) for i in range(len(part))] == saved["additional"]
