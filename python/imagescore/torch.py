"""imagescore.torch: profile and score any torch.nn.Module over batches (a DataLoader).

Taps are the module's submodules by their names in ``named_modules()``, recorded with
forward hooks; a module called more than once gives ``name#2``, ``name#3``... for its later
calls. The default taps follow the same rule as for TorchScript models
(docs/torchscript.md), and ``output`` is the softmax of the logits computed in double per
row. A module may instead return ``(logits, features)`` with ``features`` a dict or list of
tensors: then those are its taps. Like the library's models, the module runs in chunks of
exactly 32 images on the CPU (256 on a GPU), cut by position in the stream of batches and
the last padded with blank images, so that an image's activations do not depend on the
DataLoader's batch size: with the same pixels and thread count, the profiles and scores
equal those of the command line on the module's TorchScript export (docs/python.md).

Batches are what a DataLoader yields: the images (a float tensor or array [N, C, H, W],
already normalised), or a tuple (images, labels) or (images, labels, ids).
"""
import itertools
import sys

import numpy as np
import torch

from . import _core

CPU_CHUNK = 32
GPU_CHUNK = 256
# Profiles record the module as a TorchScript model with the hash of its parameters and
# buffers by name: its TorchScript export has the same, so that profiles move freely
# between Python and the command line.
ARCH = "torchscript"


def _error(where, what):
    return _core.ImageScoreError(f"{where}: {what}")


def weights_hash(module):
    """FNV-1a 64 of every parameter and buffer (name, then bytes), as for TorchScript models."""
    tensors = []
    for name, tensor in itertools.chain(module.named_parameters(), module.named_buffers()):
        data = tensor.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8)
        tensors.append((name, data.numpy()))
    return _core.weights_hash(tensors)


def _to_host(tensor):
    """A float32 copy on the CPU, taken at once: an in-place operation later in the
    forward pass (ReLU(inplace=True)) would otherwise change it."""
    return tensor.detach().to("cpu", torch.float32, copy=True).contiguous().numpy()


class TorchModel:
    """A torch.nn.Module as imagescore sees a model: its taps with their shapes (from one
    forward pass of a blank input of ``input_shape``), default taps and classes.
    """

    def __init__(self, module, input_shape, classes=None):
        if not isinstance(module, torch.nn.Module):
            raise TypeError(f"expected a torch.nn.Module, got {type(module).__name__}")
        self.module = module
        self.input_shape = tuple(int(d) for d in input_shape)
        if len(self.input_shape) != 3:
            raise _error("input_shape", f"expected (channels, height, width), got {self.input_shape}")
        self._names = {id(m): name for name, m in module.named_modules() if name}
        calls, shapes, features, logits = self._probe()
        self.features_convention = features is not None
        if self.features_convention:
            self._hidden = [(name, tuple(value.shape[1:])) for name, value in features]
            self._defaults = [name for name, _ in self._hidden]
        else:
            self._hidden = [(call[0], shapes[call[0]]) for call in calls if call[0] in shapes]
            self._defaults = _core.default_tap_names(calls)
        if logits.dim() != 2:
            raise _error("model", f"the output is not [batch, classes] logits (shape {tuple(logits.shape)})")
        self.num_classes = int(logits.shape[1])
        self.classes = self._class_names(classes)
        self._taps = self.describe()

    def _class_names(self, classes):
        if classes is None:
            return [str(c) for c in range(self.num_classes)]
        classes = [str(c) for c in classes]
        if len(classes) != self.num_classes:
            raise _error("classes", f"{len(classes)} class names for a model that outputs {self.num_classes} classes")
        return classes

    def describe(self, classes=None):
        """The model as the library sees it (an imagescore.Model), with these class names
        (default: the model's) and the hash of the module's weights as they are now."""
        classes = self.classes if classes is None else self._class_names(classes)
        return _core.Model.describe(classes, self._hidden, self._defaults, weights_hash(self.module), ARCH,
                                    list(self.input_shape))

    @property
    def taps(self):
        """Every tap as (name, shape) in call order; the last is ``output``."""
        return self._taps.taps

    @property
    def default_taps(self):
        return self._taps.default_taps

    @property
    def device(self):
        for tensor in itertools.chain(self.module.parameters(), self.module.buffers()):
            return tensor.device
        return torch.device("cpu")

    def _probe(self):
        """Module calls (name, type, has children, top level) in call order, the shape of
        each tensor a call returned, the features of a (logits, features) module, and the
        logits of one blank image."""
        calls, shapes, stack, counts = [], {}, [], {}

        def before(module, _inputs):
            name = self._names[id(module)]
            counts[name] = counts.get(name, 0) + 1
            call = name if counts[name] == 1 else f"{name}#{counts[name]}"
            calls.append((call, type(module).__name__, next(module.children(), None) is not None, True))
            stack.append(call)

        def after(_module, _inputs, output):
            call = stack.pop()
            if isinstance(output, torch.Tensor):
                shapes[call] = tuple(output.shape[1:])

        handles = []
        for name, m in self.module.named_modules():
            if name:
                handles.append(m.register_forward_pre_hook(before))
                handles.append(m.register_forward_hook(after))
        try:
            output = self._run(torch.zeros((1,) + self.input_shape, device=self.device))
        finally:
            for h in handles:
                h.remove()
        logits, features = self._split_output(output)
        return calls, shapes, features, logits

    def _run(self, inputs):
        was_training = self.module.training
        self.module.eval()
        try:
            with torch.no_grad():
                return self.module(inputs)
        finally:
            self.module.train(was_training)

    @staticmethod
    def _split_output(output):
        """(logits, features or None); features as [(name, tensor)]."""
        if isinstance(output, torch.Tensor):
            return output, None
        if isinstance(output, (tuple, list)) and len(output) == 2 and isinstance(output[0], torch.Tensor):
            features = output[1]
            if isinstance(features, dict):
                return output[0], [(str(k), v) for k, v in features.items()]
            if isinstance(features, (tuple, list)):
                return output[0], [(f"features.{i}", v) for i, v in enumerate(features)]
        raise _error("model", "must return logits [batch, classes] or (logits, features) with features a dict or list")

    @property
    def chunk(self):
        """Images per evaluation: 32 on the CPU, 256 on a GPU (as the library's models)."""
        return GPU_CHUNK if self.device.type == "cuda" else CPU_CHUNK

    def forward(self, images, taps):
        """Logits (float32 [N, classes]) and the activations of the named taps, for at most
        ``chunk`` images, evaluated as one chunk padded with blank images: a hidden tap as a
        one-block list [[chunk, *shape]], ``output`` as one array [N, classes]."""
        images = torch.as_tensor(images)
        if images.dim() != 4 or tuple(images.shape[1:]) != self.input_shape:
            raise _error("images", f"expected [batch, {', '.join(map(str, self.input_shape))}], got {list(images.shape)}")
        rows = images.shape[0]
        if not 0 < rows <= self.chunk:
            raise _error("images", f"{rows} images: give 1 to {self.chunk} at a time")
        x = images.to(self.device)
        if rows < self.chunk:
            x = torch.cat([x, x.new_zeros((self.chunk - rows,) + self.input_shape)])
        hidden = [name for name in taps if name != "output"]
        logits, captured = self._run_capturing(x, hidden)
        if logits.ndim != 2 or logits.shape[1] != self.num_classes:
            raise _error("model", f"returned logits of shape {list(logits.shape)}, expected [batch, {self.num_classes}]")
        activations = {}
        for name in hidden:
            if name not in captured:
                raise _error(f"tap '{name}'", "was not called in this forward pass (a branch of the module's "
                             "control flow?): choose taps that every image passes through")
            activations[name] = [captured[name]]
        logits = np.ascontiguousarray(logits[:rows])
        if "output" in taps:
            activations["output"] = _core.output_tap(logits)
        return logits, activations

    def _run_capturing(self, x, hidden):
        captured = {}
        if self.features_convention:
            logits, features = self._split_output(self._run(x))
            for name, value in features:
                if name in hidden:
                    captured[name] = _to_host(value)
            return _to_host(logits), captured
        wanted = set(hidden)
        counts = {}

        def record(module, _inputs, output):
            name = self._names[id(module)]
            counts[name] = counts.get(name, 0) + 1
            call = name if counts[name] == 1 else f"{name}#{counts[name]}"
            if call in wanted:
                captured[call] = _to_host(output)

        modules = {name.split("#")[0] for name in hidden}
        handles = [m.register_forward_hook(record) for name, m in self.module.named_modules() if name in modules]
        try:
            logits, _ = self._split_output(self._run(x))
        finally:
            for h in handles:
                h.remove()
        return _to_host(logits), captured


def _unpack(batch):
    """(images, labels or None, ids or None) of one batch."""
    if isinstance(batch, (tuple, list)):
        if not 1 <= len(batch) <= 3:
            raise _error("batch", f"expected images, (images, labels) or (images, labels, ids), got {len(batch)} items")
        images, labels, ids = list(batch) + [None] * (3 - len(batch))
    else:
        images, labels, ids = batch, None, None
    return torch.as_tensor(images), _as_numpy(labels), _as_numpy(ids)


def _as_numpy(values):
    if values is None:
        return None
    if isinstance(values, torch.Tensor):
        return values.detach().cpu().numpy()
    return np.asarray(values)


def _chunks(batches, chunk, input_shape):
    """The images of the batches in runs of exactly ``chunk`` (the last may be shorter),
    with their labels and ids: an image's chunk and its place in it depend on its position
    in the stream only, as in the command line's runs, whatever the DataLoader's batch size
    (BLAS kernels give the last bits of a linear layer's output by row position)."""
    pending, held = [], 0
    has_labels = has_ids = None
    for batch in batches:
        images, labels, ids = _unpack(batch)
        if images.dim() != 4 or tuple(images.shape[1:]) != input_shape:
            raise _error("images", f"expected [batch, {', '.join(map(str, input_shape))}], got {list(images.shape)}")
        if has_labels is None:
            has_labels, has_ids = labels is not None, ids is not None
        if (labels is not None) != has_labels or (ids is not None) != has_ids:
            raise _error("batches", "every batch must carry labels (and ids) if one does")
        rows = images.shape[0]
        for name, values in (("labels", labels), ("ids", ids)):
            if values is not None and values.shape != (rows,):
                raise _error("batches", f"{name} of shape {list(values.shape)} for {rows} images")
        pending.append((images, labels, ids))
        held += rows
        while held >= chunk:
            run, pending, held = _take(pending, chunk), _rest(pending, chunk), held - chunk
            yield run
    if held:
        yield _take(pending, held)


def _take(pending, count):
    """The first ``count`` images of the pending pieces, joined."""
    parts, need = [], count
    for images, labels, ids in pending:
        take = min(need, images.shape[0])
        parts.append((images[:take], None if labels is None else labels[:take], None if ids is None else ids[:take]))
        need -= take
        if not need:
            break
    if len(parts) == 1:
        return parts[0]
    join = lambda values: None if values[0] is None else np.concatenate(values)
    return torch.cat([p[0] for p in parts]), join([p[1] for p in parts]), join([p[2] for p in parts])


def _rest(pending, count):
    """The pending pieces without their first ``count`` images."""
    rest = []
    for images, labels, ids in pending:
        if count >= images.shape[0]:
            count -= images.shape[0]
            continue
        rest.append((images[count:], None if labels is None else labels[count:], None if ids is None else ids[count:]))
        count = 0
    return rest


class _Progress:
    def __init__(self, label, enabled):
        self.label, self.enabled, self.images = label, enabled, 0

    def advance(self, images):
        self.images += images
        if self.enabled:
            print(f"\r{self.label}: {self.images} images", end="", file=sys.stderr, flush=True)

    def finish(self):
        if self.enabled:
            print(file=sys.stderr, flush=True)


def _first(batches):
    """The first batch's images and the stream of all batches."""
    iterator = iter(batches)
    try:
        first = next(iterator)
    except StopIteration:
        raise _error("batches", "no images") from None
    return _unpack(first)[0], itertools.chain([first], iterator)


def profile(module, batches, *, classes=None, scores=None, taps=None, rho=0.5, norm="linf", scale="mean",
            global_profile=False, feature_tap=None, knn_k=0, trust_k=10, trust_alpha=0.0, shrinkage=1e-3,
            max_memory=0, images=None, data="", shard=(1, 1), progress=False, knn_index="exact", knn_nprobe=64):
    """The fitted scores of ``module`` from labelled batches: a ReferenceSet, as
    ``imagescore profile`` writes it (``.save(path)``).

    ``scores``: registry names (default: every cheap fitted score a model without a known
    linear head allows: image_score, knn, trust, mahalanobis, rel_mahalanobis; NAC needs the
    head's weights); ``taps`` (the image score's), ``rho``, ``norm``, ``scale``,
    ``global_profile`` (no labels needed), ``feature_tap``, ``knn_k``, ``trust_k``,
    ``trust_alpha``, ``shrinkage``, ``max_memory``, ``knn_index``, ``knn_nprobe``: as the
    command line's options;
    ``images``: how many reference images come (default: ``len(batches.dataset)`` where
    the batches have one), checked against ``max_memory`` before the features are stored;
    ``data`` names the reference images in the file; ``shard`` = (i, k) marks these
    batches as part i of k, for ``merge_references``.
    """
    first, stream = _first(batches)
    model = module if isinstance(module, TorchModel) else TorchModel(module, tuple(first.shape[1:]), classes)
    if images is None:
        images = len(batches.dataset) if hasattr(batches, "dataset") and hasattr(batches.dataset, "__len__") else 0
    builder = _core.ReferenceBuilder(model.describe(classes), list(scores or []), list(taps or []), rho, norm, scale,
                                     global_profile, feature_tap or "", knn_k, trust_k, trust_alpha, shrinkage,
                                     max_memory=max_memory, data=data, images=images, knn_index=knn_index,
                                     knn_nprobe=knn_nprobe)
    names = [name for name, _ in builder.taps]
    bar = _Progress("profile", progress)
    for chunk, labels, ids in _chunks(stream, model.chunk, model.input_shape):
        _, activations = model.forward(chunk, names)
        rows = chunk.shape[0]
        builder.add(activations, labels, np.arange(bar.images, bar.images + rows) if ids is None else ids, rows)
        bar.advance(rows)
    bar.finish()
    return builder.finish(tuple(shard))


def score(module, reference, batches, *, scores=None, overlap="recall", floor=0.0, by="predicted", per_tap=False,
          progress=False):
    """Every score of every image of ``batches``: a ScoreTable (``table["image_score"]``,
    ``table.to_pandas()``, ``table.save(path)``) in batch order, with the columns of
    ``imagescore score``.

    ``reference``: a ReferenceSet (or a ProfileSet); ``scores``: registry names (default:
    every cheap score the reference set allows); the options are the command line's.
    Image ids are the ids the batches carry, or positions 0, 1, ... in batch order.
    """
    first, stream = _first(batches)
    model = module if isinstance(module, TorchModel) else TorchModel(module, tuple(first.shape[1:]))
    if len(reference.classes) != model.num_classes:
        raise _error(reference.name, f"profiles of {len(reference.classes)} classes, the model outputs {model.num_classes}")
    scorer = _core.Scorer(reference, model.describe(reference.classes), list(scores or []), overlap, floor, by, per_tap)
    names = [name for name, _ in scorer.taps]
    columns = {name: [] for name in ["id", "label", "pred"] + scorer.columns}
    bar = _Progress("score", progress)
    for chunk, labels, ids in _chunks(stream, model.chunk, model.input_shape):
        logits, activations = model.forward(chunk, names)
        rows = logits.shape[0]
        values = scorer.score(logits, activations, labels)
        columns["id"].append(np.arange(bar.images, bar.images + rows) if ids is None else ids)
        columns["label"].append(np.full(rows, -1) if labels is None else labels)
        for name, column in values.items():
            columns[name].append(column)
        bar.advance(rows)
    bar.finish()
    joined = {name: np.concatenate(parts) for name, parts in columns.items()}
    ids, labels, preds = joined.pop("id"), joined.pop("label"), joined.pop("pred")
    return _core.ScoreTable(ids, preds, joined, labels)
