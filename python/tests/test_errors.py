"""Bad input raises a Python exception with the library's one-line message; none crashes
the interpreter (each case runs in this process)."""
import re

import numpy as np
import pytest
import torch

import imagescore as isc
import imagescore.torch as ist
from conftest import fixture_module
from test_profiles_and_scores import hand_profiles, two_class_model


def raises(exception, message):
    """pytest.raises for an exact message."""
    return pytest.raises(exception, match="^" + re.escape(message) + "$")


X = np.zeros((2, 3), np.float32)
LOGITS = np.zeros((2, 2), np.float32)


def test_activations():
    builder = isc.ProfileBuilder(two_class_model(), ["x", "y"])
    y = np.zeros((2, 2, 2), np.float32)
    cases = [
        ({"x": X.astype(np.float64), "y": y},
         "tap 'x': activations must be float32, got float64 (convert with .astype(numpy.float32) or .float())"),
        ({"x": np.zeros((2, 4), np.float32), "y": y}, "tap 'x': activations must have the shape [images, 3], got [2, 4]"),
        ({"x": X, "y": np.zeros((2, 2, 3), np.float32)},
         "tap 'y': activations must have the shape [images, 2, 2] or [images, 4], got [2, 2, 3]"),
        ({"x": X[:1], "y": y}, "tap 'x': has activations of 1 images, expected 2"),
        ({"x": X}, "tap 'y': missing from the activations"),
        ({"x": X, "y": y, "z": X}, "tap 'z': is not a tap of the profiles (they have: x, y)"),
        ([X], "activations: expected 2 taps, got 1"),
        ("x", "activations: expected a dict by tap name or a list in tap order"),
        ({"x": [X[:1], X[:1], X[:1]], "y": y},
         "tap 'x': activation blocks hold 3 rows for 2 images (only the last block may have padding rows)"),
        ({"x": [X[:1], X], "y": y}, "tap 'x': activation blocks must have the same number of rows (block 0 has 1, block 1 has 2)"),
        ({"x": [], "y": y}, "tap 'x': an empty list of activation blocks"),
        ({"x": None, "y": y}, "tap 'x': missing (got None)"),
        ({"x": np.full((2, 3), np.inf, np.float32), "y": y},
         "tap x: an activation is not finite or too large (|x| >= 2^19)"),
    ]
    for activations, message in cases:
        with raises(isc.ImageScoreError, message):
            isc.ProfileBuilder(two_class_model(), ["x", "y"]).add(activations, [0, 1])
    with raises(isc.ImageScoreError, "profile: image label 2 outside the model's classes"):
        builder.add({"x": X, "y": y}, [0, 2])
    with raises(isc.ImageScoreError, "labels: must hold integers, got float64"):
        builder.add({"x": X, "y": y}, [0.0, 1.0])
    with raises(isc.ImageScoreError, "labels: per-class profiles need a label for every image"):
        builder.add({"x": X, "y": y})
    with raises(isc.ImageScoreError, "hand: class 'b' has no reference images (empty class)"):
        b = isc.ProfileBuilder(two_class_model(), ["x"])
        b.add([X], [0, 0])
        b.finish("hand")


def test_options_name_their_field():
    cases = [
        (dict(rho=0), "rho", "rho: must be in (0, 1], got 0"),
        (dict(norm="l3"), "norm", "norm: unknown norm 'l3' (expected linf, l1 or l2)"),
        (dict(scale="max"), "scale", "scale: unknown scale 'max' (expected mean or sum)"),
        (dict(taps=["nope"]), "taps", "taps: unknown tap 'nope' (the model has: x, y, output)"),
        (dict(taps=["x", "x"]), "taps", "taps: tap 'x' given twice"),
    ]
    for options, field, message in cases:
        with raises(isc.OptionError, message) as caught:
            isc.ProfileBuilder(two_class_model(), **options)
        assert caught.value.field == field
    p = hand_profiles()
    for options, message in [(dict(overlap="dice"), "overlap: unknown overlap 'dice' (expected recall, literal or jaccard)"),
                             (dict(floor=2), "floor: must be in (0, 1] (or 0 for half a neuron)"),
                             (dict(by="global"), "by: the profile file holds per-class profiles, not a global one"),
                             (dict(by="best"), "by: unknown choice 'best' (expected predicted, label or global)")]:
        with raises(isc.OptionError, message):
            isc.Scorer(p, **options)
    with raises(isc.OptionError, "shard: must be (i, k) with 1 <= i <= k, got (3, 2)"):
        isc.ProfileBuilder(two_class_model(), ["x"]).finish("d", (3, 2))
    with raises(isc.OptionError, "classes: a model needs at least one class"):
        isc.Model.describe([], [], [], "h")
    with raises(isc.OptionError, "taps: tap 'x' needs positive sizes and fewer than 2^32 values per image"):
        isc.Model.describe(["a"], [("x", (65536, 65536))], [], "h")
    with raises(isc.OptionError, "taps: a hidden tap needs a name other than 'output'"):
        isc.Model.describe(["a"], [("output", (2,))], [], "h")


def test_scoring_input():
    scorer = isc.Scorer(hand_profiles())
    with raises(isc.ImageScoreError, "logits: must have the shape [images, 2], got [2, 3]"):
        scorer.score(np.zeros((2, 3), np.float32), [X])
    with raises(isc.ImageScoreError, "logits: must be float32, got float64"):
        scorer.score(np.zeros((2, 2)), [X])
    with raises(isc.ImageScoreError, "tap 'x': has activations of 2 images, expected 1"):
        scorer.score(LOGITS[:1], [X])
    with raises(isc.ImageScoreError, "image 1 of the batch: a score is not finite (non-finite logits?)"):
        scorer.score(np.array([[0, 0], [np.nan, 0]], np.float32), [X])
    with raises(isc.ImageScoreError, "image 0 of the batch: has no usable label to score by label"):
        isc.Scorer(hand_profiles(), by="label").score(LOGITS, [X], labels=[-1, 0])
    with raises(isc.ImageScoreError, "labels: has 3 values, expected 2"):
        scorer.score(LOGITS, [X], labels=[0, 1, 1])


def test_files_tables_and_merges(tmp_path):
    missing = str(tmp_path / "none.st")
    with pytest.raises(isc.ImageScoreError, match="^" + missing):
        isc.load_reference(missing)
    (tmp_path / "bad.st").write_bytes(b"not a profile")
    with pytest.raises(isc.ImageScoreError, match="^" + str(tmp_path / "bad.st")):
        isc.load_reference(str(tmp_path / "bad.st"))
    with pytest.raises(isc.ImageScoreError, match="^" + str(tmp_path / "none.csv")):
        isc.read_scores(str(tmp_path / "none.csv"))
    p = hand_profiles()
    with raises(isc.ImageScoreError, "profiles[0]: is shard 1/1 but 2 files were given"):
        isc.merge_profiles([p, p])
    shard = isc.ProfileBuilder(two_class_model(), ["x"])
    shard.add([X], [0, 1])
    one, two = shard.finish("d", (1, 2)), shard.finish("d", (1, 2))
    with raises(isc.ImageScoreError, "profiles[1]: shard 1 given twice"):
        isc.merge_profiles([one, two])
    other = isc.ProfileBuilder(two_class_model("h2"), ["x"])
    other.add([X], [0, 1])
    with raises(isc.ImageScoreError, "profiles[1]: built from another model than profiles[0]"):
        isc.merge_profiles([one, other.finish("d", (2, 2))])
    with raises(isc.ImageScoreError, "merge_profiles: shard 1 is None"):
        isc.merge_profiles([one, None])
    with raises(isc.ImageScoreError, "profile merge: no profiles given"):
        isc.merge_profiles([])
    with raises(isc.ImageScoreError, "preds: has 1 values, expected 2"):
        isc.ScoreTable([0, 1], [0], {})
    table = isc.ScoreTable([0, 1], [0, 1], {"s": [1.0, 2.0]})
    with raises(isc.ImageScoreError, "scores: 'correct' needs a label on every row"):
        table["correct"]
    with raises(isc.ImageScoreError, ": no column 'msp' (columns: s)"):
        table["msp"]
    with raises(isc.ImageScoreError, "select: give only one of fraction, alpha, top and min_score"):
        isc.select(table, "s", fraction=0.5, top=1)
    with raises(isc.ImageScoreError, "selected: row 2 outside the 2 rows"):
        isc.selection_stats(table, [2])
    with raises(isc.ImageScoreError, "correct: has 1 values, expected 2"):
        isc.auroc([0.1, 0.2], [True])
    with pytest.raises(IndexError):
        p.tap(5, "x")


def test_pytorch_modules(idx_data, tmp_path):
    module = fixture_module("sequential_cnn")
    images = torch.zeros(4, 1, 28, 28)
    labels = torch.tensor([0, 1, 2, 3])
    with raises(isc.ImageScoreError, "batches: no images"):
        ist.profile(module, [])
    with raises(isc.ImageScoreError, "classes: 3 class names for a model that outputs 10 classes"):
        ist.profile(module, [(images, labels)], classes=["a", "b", "c"])
    with raises(isc.ImageScoreError, "images: expected [batch, 1, 28, 28], got [4, 1, 28, 27]"):
        ist.profile(module, [(images, labels), (images[..., 1:], labels)])
    with raises(isc.ImageScoreError, "labels: per-class profiles need a label for every image"):
        ist.profile(module, [images])
    with raises(isc.ImageScoreError, "batches: every batch must carry labels (and ids) if one does"):
        ist.profile(module, [(images, labels), images])
    with raises(isc.ImageScoreError, "batches: labels of shape [3] for 4 images"):
        ist.profile(module, [(images, labels[:3])])
    with raises(isc.ImageScoreError, "profile: image label 12 outside the model's classes"):
        ist.profile(module, [(images, torch.tensor([0, 1, 2, 12]))])
    with raises(isc.OptionError, "taps: unknown tap 'features.9' (the model has: features, features.0, features.1, "
                "features.2, features.3, features.4, features.5, features.6, classifier, classifier.0, classifier.1, "
                "classifier.2, classifier.3, classifier.4, output)"):
        ist.profile(module, [(images, labels)], taps=["features.9"])
    with raises(isc.ImageScoreError, "model: must return logits [batch, classes] or (logits, features) with features a dict or list"):
        ist.profile(_Strange(), [(images, labels)])
    with pytest.raises(TypeError, match="expected a torch.nn.Module, got function"):
        ist.TorchModel(lambda x: x, (1, 28, 28))

    twin = fixture_module("resnet_like")
    rgb = torch.zeros(4, 3, 16, 16)
    # Blank images: only the image score has something to fit (their covariance is singular).
    resnet_profiles = ist.profile(twin, [(rgb, torch.tensor([0, 1, 2, 3]))], classes=list("abcd"), scores=["image_score"])
    with raises(isc.ImageScoreError, "profiles: profiles of 4 classes, the model outputs 10"):
        ist.score(module, resnet_profiles, [images])
    changed = fixture_module("resnet_like")
    with torch.no_grad():
        changed.fc.bias[0] += 1
    hash_before, hash_after = ist.weights_hash(twin), ist.weights_hash(changed)
    with raises(isc.ImageScoreError, f"profiles: profile from another model (built for torchscript with weights "
                f"{hash_before}, the model is torchscript with weights {hash_after})"):
        ist.score(changed, resnet_profiles, [rgb])
    resnet_profiles.save(str(tmp_path / "r.st"))
    loaded = isc.load_reference(str(tmp_path / "r.st"))
    with pytest.raises(isc.ImageScoreError, match="^" + str(tmp_path / "r.st") + ": profile from another model"):
        ist.score(changed, loaded, [rgb])
    with raises(isc.OptionError, "by: the profile file holds per-class profiles, not a global one"):
        ist.score(twin, resnet_profiles, [rgb], by="global")
    with raises(isc.OptionError, "scores: 'knn' was not fitted: the reference set has image_score (fit it with "
                "`imagescore profile --scores knn`)"):
        ist.score(twin, resnet_profiles, [rgb], scores=["knn"])
    with raises(isc.OptionError, "scores: 'tta' needs forward passes of its own: score it with a library model"):
        ist.score(twin, resnet_profiles, [rgb], scores=["msp", "tta"])
    with pytest.raises(isc.OptionError, match=r"^scores: unknown score 'best'"):
        ist.score(twin, resnet_profiles, [rgb], scores=["best"])
    with raises(isc.OptionError, "scores: a global reference set (no labels) fits the image score only"):
        ist.profile(twin, [rgb], global_profile=True, scores=["knn"])
    with raises(isc.OptionError, "scores: none of the scores asked for is fitted (msp and the like need no fit)"):
        ist.profile(twin, [(rgb, torch.tensor([0, 1, 2, 3]))], scores=["msp"])
    # A TorchModel hashes the weights as they are at each run: trained further, it is another model.
    tapped = ist.TorchModel(twin, (3, 16, 16), list("abcd"))
    before = ist.profile(tapped, [(rgb, torch.tensor([0, 1, 2, 3]))], scores=["image_score"])
    with torch.no_grad():
        twin.fc.weight[0, 0] += 1
    with pytest.raises(isc.ImageScoreError, match=r"^profiles: profile from another model"):
        ist.score(tapped, before, [rgb])


class _Strange(torch.nn.Module):
    def forward(self, x):
        return {"logits": x}


class _Branching(torch.nn.Module):
    """Takes `right` on a blank image and `left` on a bright one."""

    def __init__(self):
        super().__init__()
        self.left, self.right, self.head = torch.nn.Conv2d(1, 2, 1), torch.nn.Conv2d(1, 2, 1), torch.nn.Linear(8, 2)

    def forward(self, x):
        x = self.left(x) if bool(x.mean() > 0.5) else self.right(x)
        return self.head(torch.relu(x).flatten(1))


def test_a_tap_a_batch_does_not_reach():
    module = _Branching()
    assert "right" in ist.TorchModel(module, (1, 2, 2)).default_taps
    with raises(isc.ImageScoreError, "tap 'right': was not called in this forward pass (a branch of the module's "
                "control flow?): choose taps that every image passes through"):
        ist.profile(module, [(torch.ones(32, 1, 2, 2), torch.arange(32) % 2)])


def test_odd_arguments(idx_data):
    with raises(isc.ImageScoreError, "logits: expected an array, got <class 'object'>"):
        isc.baseline_scores(object())
    with raises(isc.ImageScoreError, "score: must be one value per image, got the shape [1, 1]"):
        isc.auroc([[0.1]], [True])
    with raises(isc.ImageScoreError, "ids: must not be negative"):
        isc.ScoreTable([-1], [0], {})
    with raises(isc.ImageScoreError, f"{idx_data}: index 99 outside the 50 images"):
        isc.open_data(idx_data, "test").subset([99])
    with pytest.raises(IndexError):
        isc.open_data(idx_data, "test").read(50)
    with raises(isc.OptionError, "taps: default tap 'z' is not a tap"):
        isc.Model.describe(["a"], [("x", (2,))], ["z"], "h")
    with raises(isc.ImageScoreError, "model: a model described from Python runs in Python (imagescore.torch), not in the library"):
        isc.Model.describe(["a"], [], [], "h", input_shape=[1, 1, 1]).forward(np.zeros((1, 1, 1, 1), np.float32))


def test_a_reference_builder_is_spent_once_finished():
    builder = isc.ReferenceBuilder(two_class_model(), scores=["image_score"], taps=["x"])
    assert builder.taps == [("x", (3,))]
    builder.add([X], [0, 1])
    assert builder.finish().columns == ["image_score"]
    with raises(isc.ImageScoreError, "reference set: already finished"):
        builder.finish()
    with raises(isc.ImageScoreError, "reference set: already finished"):
        builder.add([X], [0, 1])
