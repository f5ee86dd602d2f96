"""imagescore: which images a trained CNN can be trusted on, and which to add to training.

The same library as the command-line program, with the same numbers (docs/python.md):

- fitted scores: ``ReferenceBuilder`` fits the image score's profiles, kNN and trust score,
  Mahalanobis and NAC from streamed batches of activations (NumPy arrays or torch tensors,
  zero-copy for C-contiguous float32); ``merge_references``, ``load_reference`` and
  ``ReferenceSet.save`` (the files the command line reads and writes); ``ProfileBuilder``
  and ``ProfileSet`` for the image score's profiles alone;
- scores: ``Scorer`` (every score of a reference set, and the softmax scores, of batches),
  ``baseline_scores``, ``score_registry``, ``ScoreTable`` (the scores file,
  ``read_scores``, ``save``, ``to_pandas``);
- selection and analysis: ``select``, ``selection_stats``, ``write_selection``, ``auroc``
  and the other metrics, ``detection_metrics`` (bootstrap intervals), ``analyze``;
- library models and data: ``load_model``, ``open_data``, ``make_split``,
  ``fit_reference``, ``score_source``;
- ``imagescore.torch``: profile and score any ``torch.nn.Module`` over a DataLoader.

Errors raise ``ImageScoreError`` (a ``ValueError``) with the library's one-line message;
a bad option raises its subclass ``OptionError`` whose ``field`` names the option.
"""
from ._core import (
    Batches,
    DataSource,
    ImageScoreError,
    Model,
    OptionError,
    ProfileBuilder,
    ProfileSet,
    ReferenceBuilder,
    ReferenceSet,
    Scorer,
    ScoreTable,
    __version__,
    analyze,
    aupr_errors,
    aurc,
    auroc,
    baseline_scores,
    bootstrap_p_value,
    default_tap_names,
    detection_metrics,
    excess_aurc,
    fit_reference,
    fpr_at_95_tpr,
    hardware_threads,
    load_model,
    load_reference,
    make_split,
    merge_profiles,
    merge_references,
    open_data,
    output_tap,
    precision_at_top,
    read_scores,
    risk_coverage,
    score_columns,
    score_registry,
    score_source,
    select,
    selection_stats,
    set_device,
    set_threads,
    weights_hash,
    write_selection,
)


def _to_pandas(table):
    """The table as a pandas DataFrame (one column per column of the scores file)."""
    try:
        import pandas
    except ImportError as e:
        raise ImportError("ScoreTable.to_pandas needs pandas (Debian: apt-get install python3-pandas)") from e
    return pandas.DataFrame({name: table[name] for name in table.columns})


def _as_dict(table):
    """The table as a dict of NumPy arrays (paths as a list), by column."""
    return {name: table[name] for name in table.columns}


ScoreTable.to_pandas = _to_pandas
ScoreTable.to_dict = _as_dict

__all__ = [name for name in dir() if not name.startswith("_")]
