"""docs/python.md is true: its Python blocks run, in order, as they stand, and the CLI
takes the model it exports."""
import json
import os
import re

import pytest

from conftest import ROOT, run_cli


def test_the_notebook_workflow_of_docs_python_md_runs(tmp_path, monkeypatch):
    if not os.path.isdir("/usr/share/datasets/fashion-mnist"):
        pytest.skip("Debian's dataset-fashion-mnist is not installed (scripts/setup.sh installs it)")
    page = (ROOT / "docs" / "python.md").read_text()
    blocks = re.findall(r"^```python\n(.*?)^```", page, flags=re.M | re.S)
    assert len(blocks) >= 6
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "docs_python_md"}
    for block in blocks:
        exec(compile(block, "docs/python.md", "exec"), namespace)
    assert namespace["tapped"].default_taps == ["2", "5", "8", "output"]
    assert len(namespace["scores"]) == 3000
    info = json.loads(run_cli("model", "info", "--model", tmp_path / "model.pt", "--json"))
    assert info["weights_hash"] == namespace["reference"].weights_hash
    assert info["classes"] == namespace["reference"].classes
