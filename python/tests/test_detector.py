"""Detector: calibration, G(x), pickling, and the JSON file shared with `eood calibrate`."""

import json
import os
import pickle
import subprocess

import numpy as np
import pytest

import energy_ood as eo


def test_calibrate_accepts_the_target_fraction(rng):
    s = rng.normal(size=1000)
    d = eo.Detector.calibrate(s, tpr=0.95)
    assert d.accept(s).sum() == 950
    assert d.accepted_fraction == 0.95 and d.target_tpr == 0.95
    srt = np.sort(s)
    assert srt[49] < d.tau < srt[50]  # between the largest rejected and smallest accepted
    assert d.method == "energy" and d.temperature == 1.0
    st = d.score_stats
    assert st["count"] == 1000 and st["mean"] == pytest.approx(s.mean(), abs=1e-12)
    assert st["std"] == pytest.approx(s.std(), abs=1e-12)
    assert (st["min"], st["max"]) == (s.min(), s.max())


def test_temperature_rule_and_ties():
    assert eo.Detector.calibrate([1.0, 2.0, 3.0], method="maxlogit").temperature is None
    assert eo.Detector.calibrate([0.2, 0.5, 0.9], method="msp").temperature == 1.0
    assert eo.Detector.calibrate([1.0, 2.0], method="energy", temperature=2.0).temperature == 2.0
    tied = eo.Detector.calibrate(np.ones(10), tpr=0.5)
    assert tied.accept(np.ones(10)).all()  # ties are accepted together


def test_accept_refuses_nonfinite_and_shapes():
    d = eo.Detector.calibrate([0.0, 1.0, 2.0, 3.0])
    np.testing.assert_array_equal(d.accept([-5.0, 5.0]), [False, True])
    assert d.accept(np.array([5.0], dtype=np.float32)).dtype == np.bool_
    with pytest.raises(ValueError, match="score at index 1 is NaN"):
        d.accept([1.0, np.nan])
    with pytest.raises(ValueError, match="score at index 0 is -inf"):
        d.accept([-np.inf, 1.0])
    with pytest.raises(ValueError, match="must be a 1-D array"):
        d.accept([[1.0]])
    with pytest.raises(ValueError, match="no calibration scores"):
        eo.Detector.calibrate([])
    with pytest.raises(ValueError, match="calibration score at index 2 is inf"):
        eo.Detector.calibrate([1.0, 2.0, np.inf])
    with pytest.raises(ValueError, match=r"target TPR must be in \(0, 1\)"):
        eo.Detector.calibrate([1.0, 2.0], tpr=0.0)


def test_pickle_and_json_are_exact(rng):
    for _ in range(20):  # tau must survive bit for bit (exact float parsing)
        d = eo.Detector.calibrate(rng.normal(size=101) * 1e3, tpr=0.9)
        back = pickle.loads(pickle.dumps(d))
        assert back == d and back.tau == d.tau
        assert eo.Detector.from_json(d.to_json()) == d


def test_save_load(tmp_path, rng):
    d = eo.Detector.calibrate(rng.normal(size=50))
    p = tmp_path / "det.json"
    d.save(p)
    assert eo.Detector.load(p) == d
    assert json.loads(p.read_text())["format"] == "eood-detector"
    with pytest.raises(ValueError, match="directory"):
        d.save(tmp_path)
    with pytest.raises(ValueError, match="not a regular file|directory"):
        eo.Detector.load(tmp_path)
    (tmp_path / "bad.json").write_text('{"format": "other"}')
    with pytest.raises(ValueError, match="bad.json: not a valid detector file"):
        eo.Detector.load(tmp_path / "bad.json")
    if os.path.exists("/dev/null"):
        with pytest.raises(ValueError):
            d.save("/dev/null")  # never replaces a device node


def test_cli_calibrate_then_python(eood, tmp_path, rng):
    s = rng.normal(size=777)
    np.save(tmp_path / "val.npy", s)
    subprocess.run([eood, "calibrate", "--id-scores", str(tmp_path / "val.npy"), "--tpr", "0.9",
                    "--out", str(tmp_path / "cli.json")], check=True, capture_output=True)
    cli = eo.Detector.load(tmp_path / "cli.json")
    py = eo.Detector.calibrate(s, tpr=0.9)
    assert cli == py and cli.tau == py.tau


def test_python_save_then_cli_detect(eood, tmp_path, rng):
    s = rng.normal(size=500)
    d = eo.Detector.calibrate(s, tpr=0.95)
    d.save(tmp_path / "py.json")
    test = rng.normal(size=300)
    np.save(tmp_path / "test.npy", test)
    subprocess.run([eood, "detect", "--detector", str(tmp_path / "py.json"), "--scores",
                    str(tmp_path / "test.npy"), "--out", str(tmp_path / "flags.npy")],
                   check=True, capture_output=True)
    flags = np.load(tmp_path / "flags.npy")
    np.testing.assert_array_equal(flags.astype(bool), d.accept(test))
    assert flags.sum() == d.accept(test).sum() > 0


def test_shipped_cli_detector_loads():
    from conftest import REPO

    d = eo.Detector.load(REPO / "models" / "fmnist-detector.json")
    raw = json.loads((REPO / "models" / "fmnist-detector.json").read_text())
    assert d.tau == raw["tau"] and d.method == raw["method"]
    np.testing.assert_array_equal(d.accept([raw["tau"], np.nextafter(raw["tau"], np.inf)]),
                                  [False, True])


def test_cli_reads_python_tau_exactly(eood, tmp_path, rng):
    # regression: the CLI parsed tau up to 1 ulp off (3 of 40 here), flipping scores next to it
    for i in range(40):
        d = eo.Detector.calibrate(rng.normal(size=101) * 1e3, tpr=0.9)
        d.save(tmp_path / "d.json")
        t = d.tau
        np.save(tmp_path / "s.npy", np.array([np.nextafter(t, -np.inf), t, np.nextafter(t, np.inf)]))
        subprocess.run([eood, "detect", "--detector", str(tmp_path / "d.json"), "--scores",
                        str(tmp_path / "s.npy"), "--out", str(tmp_path / "f.npy")],
                       check=True, capture_output=True)
        assert list(np.load(tmp_path / "f.npy")) == [0, 0, 1], (i, t)


def test_msp_detector_refuses_scores_outside_unit_interval():
    # The core refuses to calibrate an MSP detector on scores that cannot be softmax confidences.
    with pytest.raises(ValueError, match=r"msp scores lie in \[0, 1\]"):
        eo.Detector.calibrate([1.0, 2.0, 3.0], method="msp")


def test_accept_refuses_scores_of_another_method(rng):
    # Regression (review): accept applied an energy threshold to MSP scores without a word,
    # where `eood detect` refuses them (the core's check_scores).
    val = rng.normal(8.0, 1.0, 500)  # energies, all outside [0, 1]
    d = eo.Detector.calibrate(val, method="energy")
    with pytest.raises(ValueError, match="every score lies in \\[0, 1\\], as MSP scores do"):
        d.accept(np.array([0.2, 0.9, 0.5]))
    with pytest.raises(ValueError, match="calibrated on energy scores, these are declared msp"):
        d.accept(val, method="msp")
    np.testing.assert_array_equal(d.accept(val[:50], method="energy"), val[:50] > d.tau)
    # declared: the caller vouches for MSP-like values of an energy detector
    assert d.accept(np.array([0.2, 0.9]), method="energy").tolist() == [False, False]
    m = eo.Detector.calibrate(rng.uniform(0.5, 1.0, 100), method="msp")
    with pytest.raises(ValueError, match="msp scores lie in \\[0, 1\\], but score 1 is 7"):
        m.accept(np.array([0.5, 7.0]))
