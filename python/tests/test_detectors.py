"""energy_ood.detectors: fit/score, equal to the functions, scikit-learn's covariance and
pytorch-ood 0.4.0's goldens; pickling and save/load."""

import json
import pickle
import subprocess

import numpy as np
import pytest
from sklearn.covariance import EmpiricalCovariance

import energy_ood as eo
from conftest import GOLDEN
from energy_ood import detectors as D


def test_logit_detectors_equal_functions(rng):
    logits = rng.normal(size=(64, 5))
    np.testing.assert_array_equal(D.Energy(temperature=2.0).fit().score(logits=logits),
                                  eo.energy(logits, temperature=2.0))
    np.testing.assert_array_equal(D.MSP().score(logits=logits), eo.msp(logits))
    np.testing.assert_array_equal(D.MaxLogit().fit(logits=logits).score(logits=logits),
                                  eo.max_logit(logits))
    with pytest.raises(TypeError, match="MSP scores logits: pass logits="):
        D.MSP().score(features=logits)


def test_logit_detectors_match_pytorch_ood():
    g = np.load(GOLDEN / "pytorch_ood.npz")
    logits = g["logits"]  # pytorch-ood returns outlier scores: ours negated
    np.testing.assert_allclose(D.Energy().score(logits=logits), -g["energy_t1"], rtol=1e-12)
    np.testing.assert_allclose(D.Energy(temperature=2.0).score(logits=logits), -g["energy_t2"],
                               rtol=1e-12)
    np.testing.assert_allclose(D.MSP().score(logits=logits), -g["msp"], rtol=1e-12)
    np.testing.assert_array_equal(D.MaxLogit().score(logits=logits), -g["maxlogit"])


def _sklearn_mahalanobis(train, labels, test):
    classes = np.unique(labels)
    means = np.stack([train[labels == c].mean(axis=0) for c in classes])
    cov = EmpiricalCovariance(assume_centered=True).fit(train - means[np.searchsorted(classes, labels)])
    return np.max([-cov.mahalanobis(test - m) for m in means], axis=0)


def test_mahalanobis_equals_sklearn_and_pytorch_ood():
    g = np.load(GOLDEN / "pytorch_ood.npz")
    train, labels, test = g["train_features"], g["train_labels"], g["test_features"]
    det = D.Mahalanobis().fit(features=train, labels=labels)
    got = det.score(features=test)
    want = _sklearn_mahalanobis(train.astype(np.float64), labels, test.astype(np.float64))
    np.testing.assert_allclose(got, want, rtol=1e-9)
    # pytorch-ood: half the squared distance under the *unnormalised* scatter matrix (sum, not
    # mean, of the centred outer products, plus 1e-6 I) in float32: ours = -2 N * theirs
    np.testing.assert_allclose(got, -2 * len(train) * g["mahalanobis"], rtol=1e-4)


def test_mahalanobis_bad_input(rng):
    x = rng.normal(size=(30, 4))
    y = rng.integers(0, 3, 30)
    with pytest.raises(ValueError, match="labels have 29 rows but the training data has 30"):
        D.Mahalanobis().fit(features=x, labels=y[:-1])
    with pytest.raises(TypeError, match="labels has dtype float64; expected integers"):
        D.Mahalanobis().fit(features=x, labels=y.astype(float))
    with pytest.raises(RuntimeError, match="not fitted"):
        D.Mahalanobis().score(features=x)
    det = D.Mahalanobis().fit(features=x, labels=y)
    with pytest.raises(ValueError, match="features have 3 columns, the detector was fitted on 4"):
        det.score(features=x[:, :3])
    bad = x.copy()
    bad[7, 2] = np.nan
    with pytest.raises(ValueError, match="row 7, column 2 is NaN"):
        det.score(features=bad)
    with pytest.raises(ValueError, match="singular"):
        D.Mahalanobis().fit(features=np.c_[x, x[:, :1]], labels=y)  # a repeated column
    with pytest.raises(ValueError, match="features is empty"):
        D.Mahalanobis().fit(features=np.empty((0, 4)), labels=np.empty(0, dtype=np.int64))
    with pytest.raises(ValueError, match="features must be a 2-D array"):
        D.Mahalanobis().fit(features=x[:, 0], labels=y)
    with pytest.raises(ValueError, match="shrinkage must be between 0 and 1, got 2"):
        D.Mahalanobis(shrinkage=2.0).fit(features=x, labels=y)
    # Fortran order and float32 follow the input rule
    np.testing.assert_allclose(det.score(features=np.asfortranarray(x)), det.score(features=x))


@pytest.mark.parametrize("make", [
    lambda x, y: D.Energy(temperature=3.0),
    lambda x, y: D.MSP(temperature=0.5),
    lambda x, y: D.MaxLogit(),
    lambda x, y: D.Mahalanobis(shrinkage=0.1).fit(features=x, labels=y),
])
def test_pickle_and_save_load(tmp_path, rng, make):
    x = rng.normal(size=(80, 6))
    y = rng.integers(0, 4, 80)
    det = make(x, y)
    kw = {"features": x} if isinstance(det, D.Mahalanobis) else {"logits": x}
    want = det.score(**kw)
    back = pickle.loads(pickle.dumps(det))
    assert type(back) is type(det) and back.get_params() == det.get_params()
    np.testing.assert_array_equal(back.score(**kw), want)
    det.save(tmp_path / "d.json")
    loaded = D.BaseDetector.load(tmp_path / "d.json")
    assert type(loaded) is type(det)
    np.testing.assert_array_equal(loaded.score(**kw), want)
    np.testing.assert_array_equal(type(det).load(tmp_path / "d.json").score(**kw), want)


def test_load_refuses_other_kinds(tmp_path):
    D.Energy().save(tmp_path / "e.json")
    with pytest.raises(ValueError, match="holds a Energy detector, not Mahalanobis"):
        D.Mahalanobis.load(tmp_path / "e.json")
    (tmp_path / "x.json").write_text(json.dumps({"format": "energy-ood-python-detector",
                                                 "version": 9, "method": "energy"}))
    with pytest.raises(ValueError, match="version 9 is not supported"):
        D.BaseDetector.load(tmp_path / "x.json")
    with pytest.raises(ValueError, match="not a regular file"):
        D.BaseDetector.load(tmp_path)


def test_mahalanobis_file_shared_with_cli(eood, tmp_path, rng):
    x = rng.normal(size=(120, 5))
    y = rng.integers(0, 3, 120)
    test = rng.normal(size=(40, 5))
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    np.save(tmp_path / "t.npy", test)
    subprocess.run([eood, "fit", "--method", "mahalanobis_features", "--features",
                    str(tmp_path / "x.npy"), "--labels", str(tmp_path / "y.npy"), "--out",
                    str(tmp_path / "m.json")],
                   check=True, capture_output=True)
    subprocess.run([eood, "score", "--method", "mahalanobis_features", "--fitted",
                    str(tmp_path / "m.json"), "--features", str(tmp_path / "t.npy"), "--out",
                    str(tmp_path / "s.npy")],
                   check=True, capture_output=True)
    det = D.MahalanobisFeatures.load(tmp_path / "m.json")
    np.testing.assert_allclose(det.score(features=test), np.load(tmp_path / "s.npy"), rtol=1e-12)
    np.testing.assert_allclose(D.Mahalanobis().fit(features=x, labels=y).score(features=test),
                               np.load(tmp_path / "s.npy"), rtol=1e-12)


def test_files_go_through_the_core(tmp_path, monkeypatch):
    # Regression (review): the package repeated the core's regular-file read and atomic write
    # in Python (os.stat + open, tempfile.mkstemp + os.replace); both are the core's now.
    import builtins
    import tempfile

    from energy_ood import _core

    calls = []
    real_read, real_write = _core.read_file, _core.write_file
    monkeypatch.setattr(_core, "read_file", lambda p: calls.append("read") or real_read(p))
    monkeypatch.setattr(_core, "write_file", lambda p, d: calls.append("write") or real_write(p, d))

    def no_python_io(*a, **k):
        raise AssertionError("Python did the file access itself")

    monkeypatch.setattr(tempfile, "mkstemp", no_python_io)
    monkeypatch.setattr(builtins, "open", no_python_io)
    det = D.Energy(temperature=2.0)
    det.save(tmp_path / "e.json")
    back = D.BaseDetector.load(tmp_path / "e.json")
    assert type(back) is D.Energy and back.temperature == 2.0
    assert calls == ["write", "read"]
    with pytest.raises(ValueError, match="not a regular file"):
        D.BaseDetector.load(tmp_path)
    with pytest.raises(ValueError, match="refusing to write over a directory"):
        det.save(tmp_path)
