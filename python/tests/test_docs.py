"""The quick start of docs/python.md runs as written."""

import os
import re

import numpy as np

import energy_ood as eo
from conftest import REPO


def test_quick_start_runs(torch, tmp_path):
    text = (REPO / "docs" / "python.md").read_text()
    code = re.search(r"## Quick start.*?```python\n(.*?)```", text, re.S).group(1)
    assert len(code.strip().splitlines()) < 15
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        ns: dict = {}
        exec(compile(code, "docs/python.md", "exec"), ns)
    finally:
        os.chdir(cwd)
    report, detector = ns["report"], ns["detector"]
    assert [r.name for r in report.rows] == ["noise", "blank"]
    assert eo.Detector.load(tmp_path / "detector.json") == detector
    assert 0.0 <= report.mean["auroc"] <= 1.0 and np.isfinite(detector.tau)


def test_installed_package_is_typed_and_torch_free():
    import pathlib

    pkg = pathlib.Path(eo.__file__).parent
    assert (pkg / "py.typed").exists() and (pkg / "_core.pyi").exists()
    so = [p.name for p in pkg.iterdir() if p.name.startswith("_core.") and p.suffix in (".so", ".pyd")]
    assert so and all(".abi3." in n or n.endswith(".pyd") for n in so), so  # one abi3 build
    # no libtorch inside the wheel
    assert not any("torch" in p.name for p in pkg.rglob("*.so*"))
