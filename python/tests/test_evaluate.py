"""evaluate(): the paper's protocol (per-set rows, mean/std over draws, the mean row)."""

import json
import subprocess

import numpy as np
import pytest

import energy_ood as eo


def _sets(rng):
    a = rng.normal(1.0, 1.0, 1000)
    return a, {"near": rng.normal(0.6, 1.0, 900), "far": rng.normal(-1.0, 1.0, 400)}


def test_all_scores_once_equals_metrics(rng):
    a, sets = _sets(rng)
    r = eo.evaluate(a, sets, draws=1, samples=10_000)  # more than any set: every score once
    for name, b in sets.items():
        row = r[name]
        assert row.samples == len(b) and row.draws == 1
        assert row.mean == pytest.approx(eo.metrics(a, b), abs=1e-15)
        assert all(v == 0.0 for v in row.std.values())


def test_draws_mean_std_and_mean_row(rng):
    a, sets = _sets(rng)
    r = eo.evaluate(a, sets, draws=7, seed=3)
    assert [row.name for row in r.rows] == ["near", "far"]
    for row in r.rows:
        assert row.samples == len(a) // 5 and len(row.per_draw) == 7
        for k in row.mean:
            vals = np.array([d[k] for d in row.per_draw])
            assert row.mean[k] == pytest.approx(vals.mean(), abs=1e-12)
            assert row.std[k] == pytest.approx(vals.std(ddof=0), abs=1e-12)
        assert row.std["auroc"] > 0  # the draws differ
    for k in r.mean:
        assert r.mean[k] == pytest.approx(np.mean([row.mean[k] for row in r.rows]), abs=1e-12)
    # a row depends on its own set and the seed only
    alone = eo.evaluate(a, {"far": sets["far"]}, draws=7, seed=3)
    assert alone["far"].mean == r["far"].mean
    assert eo.evaluate(a, sets, draws=7, seed=4)["near"].mean != r["near"].mean


def test_markdown_and_pandas(rng):
    a, sets = _sets(rng)
    r = eo.evaluate(a, sets, draws=3)
    md = r.to_markdown()
    lines = md.strip().splitlines()
    assert lines[0].startswith("| OOD set | FPR95 (%)") and len(lines) == 5
    near = r["near"]
    assert lines[2].startswith(f"| near | {100 * near.mean['fpr95']:.2f} ± {100 * near.std['fpr95']:.2f} |")
    assert lines[4].startswith(f"| **mean** | {100 * r.mean['fpr95']:.2f} |")
    pd = pytest.importorskip("pandas")
    df = r.to_pandas()
    assert isinstance(df, pd.DataFrame)
    assert list(df.index) == ["near", "far", "mean"]
    assert df.loc["far", "auroc"] == r["far"].mean["auroc"]
    assert df.loc["near", "auroc_std"] == r["near"].std["auroc"]


def test_single_array_and_errors(rng):
    a, sets = _sets(rng)
    assert [row.name for row in eo.evaluate(a, sets["far"], draws=2).rows] == ["ood"]
    with pytest.raises(ValueError, match="no OOD sets"):
        eo.evaluate(a, {})
    with pytest.raises(ValueError, match="draws must be at least 1"):
        eo.evaluate(a, sets, draws=0)
    with pytest.raises(ValueError, match="samples per draw must be at least 1"):
        eo.evaluate(a, sets, samples=0)
    with pytest.raises(ValueError, match="draws must be a non-negative integer"):
        eo.evaluate(a, sets, draws=-1)
    bad = dict(sets, broken=np.r_[1.0, np.nan])
    with pytest.raises(ValueError, match=r"OOD set \"broken\": OOD score at index 1 is NaN"):
        eo.evaluate(a, bad)


def test_same_numbers_as_the_cli(eood, tmp_path, rng):
    a, sets = _sets(rng)
    np.save(tmp_path / "id.npy", a)
    for name, b in sets.items():
        np.save(tmp_path / f"{name}.npy", b)
    out = subprocess.run(
        [eood, "metrics", "--id", str(tmp_path / "id.npy"), "--ood", str(tmp_path / "near.npy"),
         "--ood", str(tmp_path / "far.npy"), "--draws", "10", "--seed", "5", "--format", "json"],
        check=True, capture_output=True, text=True).stdout
    cli = json.loads(out)
    r = eo.evaluate(a, sets, draws=10, seed=5)
    assert [row["name"] for row in cli["sets"]] == ["near", "far"]
    for row, c in zip(r.rows, cli["sets"]):
        assert c["samples"] == row.samples
        for k in row.mean:  # the CLI prints percentages; the package returns fractions
            assert c[k] == pytest.approx(100 * row.mean[k], rel=1e-12, abs=1e-12)
            assert c[f"{k}_std"] == pytest.approx(100 * row.std[k], rel=1e-9, abs=1e-12)
    for k in r.mean:
        assert cli[k] == pytest.approx(100 * r.mean[k], rel=1e-12, abs=1e-12)
