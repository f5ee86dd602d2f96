"""The library through the low-level API: profiles and scores of hand-computed cases,
exact shard merges, file round trips, and arrays taken as they come (torch tensors,
blocks, non-contiguous arrays, several threads)."""
import math
import threading
import time

import numpy as np
import pytest
import torch

import imagescore as isc


def two_class_model(weights_hash="h1"):
    return isc.Model.describe(["a", "b"], [("x", (3,)), ("y", (2, 2))], ["x", "y"], weights_hash)


def hand_profiles():
    """Class a: x rows [1, .5, .5], [1, 0, 1] -> A = [1, .25, .75], t = .5, M = [1, 0, 1].
    Class b: x row [0, 2, 0] -> A = [0, 2, 0], t = 1, M = [0, 1, 0]."""
    builder = isc.ProfileBuilder(two_class_model(), ["x"], rho=0.5, keep_sums=True)
    builder.add({"x": np.array([[1, 0.5, 0.5], [1, 0, 1]], np.float32)}, [0, 0])
    builder.add({"x": np.array([[0, 2, 0]], np.float32)}, np.array([1]))
    return builder.finish("hand")


def test_profiles_of_a_hand_computed_case():
    p = hand_profiles()
    assert p.classes == ["a", "b"] and p.names == ["a", "b"] and p.counts == [2, 1]
    assert p.taps == [("x", (3,))] and p.tap_names == ["x"]
    assert p.options == {"rho": 0.5, "norm": "linf", "scale": "mean", "global": False}
    assert (p.arch, p.weights_hash, p.data, p.shard) == ("torchscript", "h1", "hand", (1, 1))
    a, b = p.tap(0, "x"), p.tap(1, "x")
    np.testing.assert_array_equal(a["reference"], [1, 0.25, 0.75])
    np.testing.assert_array_equal(a["mask"], [True, False, True])
    assert (a["threshold"], a["mask_count"], a["excluded"]) == (0.5, 2, False)
    np.testing.assert_array_equal(b["reference"], [0, 2, 0])
    assert (b["threshold"], b["mask_count"]) == (1.0, 1)
    assert p.exclusions() == []
    # Without keep_sums only the masks are kept: the same mask, no reference activation.
    compact = isc.ProfileBuilder(two_class_model(), ["x"], rho=0.5)
    compact.add({"x": np.array([[1, 0.5, 0.5], [1, 0, 1], [0, 2, 0]], np.float32)}, [0, 0, 1])
    c = compact.finish("hand").tap(0, "x")
    assert c["reference"] is None
    np.testing.assert_array_equal(c["mask"], [True, False, True])


def test_excluded_taps_are_named():
    builder = isc.ProfileBuilder(two_class_model(), ["y"])
    builder.add([np.array([[[-1, -1], [-1, -2]], [[1, 0], [0, 0]]], np.float32)], [0, 1])
    assert builder.finish().exclusions() == ["a/y: max of the reference activation is <= 0"]


def test_image_score_and_baselines_of_a_hand_computed_case():
    p = hand_profiles()
    logits = np.array([[2, 0], [0, 3]], np.float32)
    x = np.array([[0.9, 0.9, 0.1], [0, 0.5, 0]], np.float32)
    # Image 0 (pred a): active [1, 1, 0], M = [1, 0, 1]: recall 1/2, literal 2/2, jaccard 1/3.
    # Image 1 (pred b): nothing reaches t = 1: recall 0, floored at 1 / (2 |M|) = 1/2.
    expected = {"recall": [math.log(0.5), math.log(0.5)], "literal": [0.0, math.log(0.5)],
                "jaccard": [math.log(1 / 3), math.log(0.5)]}
    for overlap, scores in expected.items():
        out = isc.Scorer(p, overlap=overlap).score(logits, {"x": x})
        np.testing.assert_allclose(out["image_score"], scores, rtol=1e-15)
    out = isc.Scorer(p, floor=0.25, per_tap=True).score(logits, [x])
    np.testing.assert_allclose(out["image_score"], [math.log(0.5), math.log(0.25)], rtol=1e-15)
    np.testing.assert_array_equal(out["tap:x"], out["image_score"])
    np.testing.assert_array_equal(out["pred"], [0, 1])
    msp = 1 / (1 + math.exp(-2))
    np.testing.assert_allclose(out["msp"][0], msp, rtol=1e-7)
    np.testing.assert_allclose(out["margin"][0], msp - (1 - msp), rtol=1e-7)
    np.testing.assert_allclose(out["neg_entropy"][0], msp * math.log(msp) + (1 - msp) * math.log(1 - msp), rtol=1e-7)
    np.testing.assert_allclose(out["energy"][0], math.log(math.exp(2) + 1), rtol=1e-7)
    assert out["max_logit"][1] == 3.0
    assert list(out) == ["pred"] + isc.Scorer(p, per_tap=True).columns
    baselines = isc.baseline_scores(logits)
    for name in ("msp", "margin", "neg_entropy", "energy", "max_logit", "pred"):
        np.testing.assert_array_equal(baselines[name], out[name])
    # By label: image 0 against class b (nothing reaches t = 1: floor 1/2), image 1 against
    # class a (x = .5 reaches t = .5 but is outside M = [1, 0, 1]: floor 1 / (2 * 2)).
    by_label = isc.Scorer(p, by="label").score(logits, {"x": x}, labels=[1, 0])
    np.testing.assert_allclose(by_label["image_score"], [math.log(0.5), math.log(0.25)], rtol=1e-15)


def test_output_tap_is_the_double_softmax_as_float():
    logits = np.array([[1, 2, 3], [0, 0, 1000]], np.float32)
    expected = np.exp(logits.astype(np.float64) - logits.max(1, keepdims=True))
    expected /= expected.sum(1, keepdims=True)
    np.testing.assert_array_equal(isc.output_tap(logits), expected.astype(np.float32))


def random_batches(seed, count, classes=3):
    rng = np.random.default_rng(seed)
    for _ in range(count):
        n = int(rng.integers(1, 40))
        yield {"x": rng.normal(size=(n, 3)).astype(np.float32), "y": rng.normal(size=(n, 2, 2)).astype(np.float32)}, \
            rng.integers(0, 2, size=n)


def test_shards_merge_into_exactly_one_pass(tmp_path):
    batches = list(random_batches(0, 9))
    whole = isc.ProfileBuilder(two_class_model(), ["x", "y"])
    for activations, labels in batches:
        whole.add(activations, labels)
    whole.finish("data").save(str(tmp_path / "whole.st"))
    shards = []
    for i, part in enumerate((batches[:2], batches[2:7], batches[7:])):
        builder = isc.ProfileBuilder(two_class_model(), ["x", "y"])
        for activations, labels in part:
            builder.add(activations, labels)
        shards.append(builder.finish("data", shard=(i + 1, 3)))
    isc.merge_profiles(shards[::-1]).save(str(tmp_path / "merged.st"))
    assert (tmp_path / "merged.st").read_bytes() == (tmp_path / "whole.st").read_bytes()


def test_files_round_trip(tmp_path):
    p = hand_profiles()
    p.save(str(tmp_path / "a.st"))
    q = isc.load_reference(str(tmp_path / "a.st")).profiles
    assert q.name == str(tmp_path / "a.st") and q.taps == p.taps and q.counts == p.counts
    q.save(str(tmp_path / "b.st"))
    assert (tmp_path / "a.st").read_bytes() == (tmp_path / "b.st").read_bytes()
    table = isc.ScoreTable([5, 7], [0, 1], {"s": [0.5, -1.25]}, labels=[0, -1], paths=["p,q", "r"])
    table.save(str(tmp_path / "s.csv"))
    back = isc.read_scores(str(tmp_path / "s.csv"))
    assert back.columns == ["id", "path", "label", "pred", "s"] and back["path"] == ["p,q", "r"]
    for column in ("id", "label", "pred", "s"):
        np.testing.assert_array_equal(back[column], table[column])


def test_arrays_are_taken_as_they_come():
    """Torch tensors, blocks with padding rows, non-contiguous and flattened arrays give the
    profile of plain C-contiguous arrays."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(5, 3)).astype(np.float32)
    y = rng.normal(size=(5, 2, 2)).astype(np.float32)
    labels = np.array([0, 1, 1, 0, 1])
    reference = isc.ProfileBuilder(two_class_model(), ["x", "y"], keep_sums=True)
    reference.add({"x": x, "y": y}, labels)
    reference = reference.finish()
    padded = np.concatenate([y, np.full((1, 2, 2), np.nan, np.float32)])
    wide = np.zeros((5, 6), np.float32)
    wide[:, ::2] = x
    forms = [
        {"x": torch.from_numpy(x), "y": torch.from_numpy(y).requires_grad_()},
        {"x": [x[:2], x[2:4], np.concatenate([x[4:], x[:1]])], "y": [padded[:3], padded[3:]]},
        {"x": wide[:, ::2], "y": y.reshape(5, 4)},
        [x, np.asfortranarray(y)],
    ]
    for form in forms:
        builder = isc.ProfileBuilder(two_class_model(), ["x", "y"], keep_sums=True)
        builder.add(form, torch.from_numpy(labels))
        profiles = builder.finish()
        for tap in ("x", "y"):
            for c in range(2):
                np.testing.assert_array_equal(profiles.tap(c, tap)["reference"], reference.tap(c, tap)["reference"])


def test_batches_from_several_threads_add_up_exactly():
    batches = list(random_batches(2, 24))
    one = isc.ProfileBuilder(two_class_model(), ["x", "y"], keep_sums=True)
    for activations, labels in batches:
        one.add(activations, labels)
    many = isc.ProfileBuilder(two_class_model(), ["x", "y"], keep_sums=True)
    threads = [threading.Thread(target=lambda part: [many.add(*b) for b in part], args=(batches[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    a, b = one.finish(), many.finish()
    for c in range(2):
        np.testing.assert_array_equal(a.tap(c, "y")["reference"], b.tap(c, "y")["reference"])
    assert a.counts == b.counts


def test_long_calls_release_the_gil():
    """This thread keeps running while another is inside a long library call."""
    rng = np.random.default_rng(3)
    score = rng.normal(size=100_000)
    correct = rng.random(100_000) < 0.8
    started, done, ticks = threading.Event(), threading.Event(), [0]

    def work():
        started.set()
        isc.detection_metrics(score, correct, resamples=40)
        done.set()

    worker = threading.Thread(target=work)
    worker.start()
    started.wait()
    time.sleep(0.05)  # the worker takes the GIL and enters the library
    while not done.is_set():
        ticks[0] += 1
    worker.join()
    # Had the call kept the GIL, this loop would start only once the call was over.
    assert ticks[0] > 10_000


def test_default_tap_rule():
    calls = [("features", "Sequential", True, True), ("features.0", "Conv2d", False, True),
             ("features.1", "ReLU", False, True), ("features.2", "MaxPool2d", False, True),
             ("block", "BasicBlock", True, True), ("block.conv", "Conv2d", False, True),
             ("block.relu", "ReLU", False, True), ("block.relu#2", "ReLU", False, True),
             ("branch", "Conv2d", False, False), ("fc1", "Linear", False, True), ("drop", "Dropout", False, True),
             ("act", "GELU", False, True), ("fc2", "Linear", False, True)]
    assert isc.default_tap_names(calls) == ["features.2", "block", "act"]
    # A last block that ends in an activation is no classifier.
    assert isc.default_tap_names(calls[:-1]) == ["features.2", "block", "act"]
    assert isc.default_tap_names(calls[:-2] + [("fc2", "Linear", False, True), ("out", "Sigmoid", False, True)]) == \
        ["features.2", "block", "fc1", "out"]


def test_selection_metrics_and_analysis(tmp_path):
    table = isc.ScoreTable(np.arange(8), [0, 0, 0, 0, 1, 1, 1, 1],
                           {"s": [0.9, 0.8, 0.3, 0.1, 0.7, 0.6, 0.5, 0.2]}, labels=[0, 1, 0, 1, 1, 1, 0, 1])
    rows = isc.select(table, "s", fraction=0.5)
    np.testing.assert_array_equal(rows, [0, 1, 4, 5])
    np.testing.assert_array_equal(isc.select(table, "s", top=1, global_rank=True), [0])
    np.testing.assert_array_equal(isc.select(table, "s", min_score=0.65), [0, 1, 4])
    np.testing.assert_array_equal(isc.select(table, "s", alpha=[0.25, 0.75]), [0, 4, 5, 6])
    stats = isc.selection_stats(table, rows)
    assert stats["overall"] == {"candidates": 8, "selected": 4, "correct": 3, "precision": 0.75}
    assert stats["per_class"][0] == {"candidates": 4, "selected": 2, "correct": 1, "precision": 0.5}
    isc.write_selection(str(tmp_path / "sel.csv"), table, "s", rows)
    assert (tmp_path / "sel.csv").read_text().splitlines()[:2] == ["id,path,pseudo_label,score", "0,,0,0.9"]
    correct = table["correct"]
    np.testing.assert_array_equal(correct, [True, False, True, False, True, True, False, True])
    # Right predictions score 0.9, 0.3, 0.7, 0.6, 0.2; wrong ones 0.8, 0.1, 0.5:
    # 9 of the 15 pairs rank right above wrong.
    assert isc.auroc(table["s"], correct) == pytest.approx(9 / 15, abs=1e-15)
    metrics = isc.detection_metrics(table["s"], correct, resamples=200, seed=1)
    assert metrics["auroc"][0] == isc.auroc(table["s"], correct)
    assert metrics["auroc"][1] <= metrics["auroc"][0] <= metrics["auroc"][2]
    assert metrics == isc.detection_metrics(table["s"], correct, resamples=200, seed=1)
    coverage, risk = isc.risk_coverage(table["s"], correct, 8)
    assert coverage[-1] == 1 and risk[0] == 0 and risk[-1] == 3 / 8
    assert isc.bootstrap_p_value([10, 11, 12], [0, 1, 2], 100, 0) == 0.0
