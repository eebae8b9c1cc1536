"""energy / msp / max_logit against their formulas in NumPy, and the input rule."""

import numpy as np
import pytest

import energy_ood as eo


def _ref(logits, t=1.0):
    z = logits / t
    m = z.max(axis=1, keepdims=True)
    lse = (m + np.log(np.exp(z - m).sum(axis=1, keepdims=True)))[:, 0]
    p = np.exp(z - m)
    p /= p.sum(axis=1, keepdims=True)
    return t * lse, p.max(axis=1), logits.max(axis=1)


@pytest.mark.parametrize("t", [1.0, 0.5, 1000.0])
def test_scores_match_formulas(rng, t):
    logits = rng.normal(scale=5.0, size=(200, 10))
    e, p, m = _ref(logits, t)
    np.testing.assert_allclose(eo.energy(logits, temperature=t), e, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(eo.msp(logits, temperature=t), p, rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(eo.max_logit(logits), m)


def test_energy_does_not_overflow():
    logits = np.array([[1000.0, 1000.0], [-1000.0, -1000.0]])
    np.testing.assert_allclose(eo.energy(logits), [1000.0 + np.log(2), -1000.0 + np.log(2)])


def test_dtypes_are_converted_by_the_rule(rng):
    logits = rng.normal(size=(20, 4)).astype(np.float32)
    want = eo.energy(logits.astype(np.float64))
    np.testing.assert_array_equal(eo.energy(logits), want)
    h = logits.astype(np.float16)
    np.testing.assert_array_equal(eo.energy(h), eo.energy(h.astype(np.float64)))
    ints = np.array([[1, 2, 3], [0, 0, 5]], dtype=np.int32)
    np.testing.assert_array_equal(eo.max_logit(ints), [3.0, 5.0])
    np.testing.assert_array_equal(eo.max_logit([[1, 2], [4, 3]]), [2.0, 4.0])  # lists too


@pytest.mark.parametrize("bad", [np.array([[True, False]]), np.array([[1 + 2j, 0j]]),
                                 np.array([["a", "b"]]), np.array([[None, 1.0]], dtype=object)])
def test_non_real_dtypes_are_refused(bad):
    with pytest.raises(TypeError, match="expected real numbers"):
        eo.energy(bad)


def test_any_layout_gives_the_same_scores(rng):
    base = rng.normal(size=(30, 8))
    want = eo.energy(base)
    fortran = np.asfortranarray(base)
    assert not fortran.flags.c_contiguous
    np.testing.assert_array_equal(eo.energy(fortran), want)
    wide = np.zeros((30, 16))
    wide[:, ::2] = base
    np.testing.assert_array_equal(eo.energy(wide[:, ::2]), want)  # strided columns
    np.testing.assert_array_equal(eo.energy(base[::-1])[::-1], want)  # negative strides


def test_nonfinite_names_row_and_column(rng):
    logits = rng.normal(size=(5, 3))
    logits[3, 2] = np.inf
    with pytest.raises(ValueError, match=r"row 3, column 2 is inf"):
        eo.energy(logits)
    logits[1, 0] = np.nan
    with pytest.raises(ValueError, match=r"row 1, column 0 is NaN"):
        eo.msp(logits)


def test_shapes_and_empty():
    with pytest.raises(ValueError, match=r"must be a 2-D array, got shape \(3,\)"):
        eo.energy(np.ones(3))
    with pytest.raises(ValueError, match="no columns"):
        eo.energy(np.ones((3, 0)))
    # an empty batch (e.g. an empty partition) scores to an empty array
    assert eo.energy(np.ones((0, 4))).shape == (0,)
    with pytest.raises(ValueError, match="temperature must be a positive"):
        eo.energy(np.ones((2, 2)), temperature=0.0)
    with pytest.raises(ValueError, match="temperature must be a positive"):
        eo.msp(np.ones((2, 2)), temperature=float("nan"))


def test_unaligned_buffers_are_copied(rng):
    # arrays received over a network (pickle protocol 5) can be unaligned views
    a = rng.normal(size=(6, 3))
    buf = np.zeros(a.nbytes + 1, dtype=np.uint8)
    un = buf[1:].view(np.float64).reshape(6, 3)
    un[...] = a
    assert not un.flags.aligned
    np.testing.assert_array_equal(eo.energy(un), eo.energy(a))
    s = un.reshape(-1)
    assert not s.flags.aligned
    assert eo.metrics(s, s + 1.0) == eo.metrics(a.reshape(-1), a.reshape(-1) + 1.0)
    det = eo.Detector.calibrate(a.reshape(-1))
    np.testing.assert_array_equal(det.accept(s), det.accept(a.reshape(-1)))


def test_row_parallel_scoring_equals_serial(rng):
    # 300k values: scored in chunks on several threads; small slices are scored serially
    logits = rng.normal(size=(30_000, 10))
    serial = np.concatenate([eo.energy(logits[i:i + 1000]) for i in range(0, 30_000, 1000)])
    np.testing.assert_array_equal(eo.energy(logits), serial)
    bad = logits.copy()
    bad[25_000, 3] = np.nan
    bad[29_999, 0] = np.inf
    with pytest.raises(ValueError, match=r"row 25000, column 3 is NaN"):
        eo.energy(bad)


def test_row_parallel_mahalanobis_errors_name_the_row(rng):
    from energy_ood import detectors as D

    det = D.Mahalanobis().fit(features=rng.normal(size=(500, 8)), labels=rng.integers(0, 3, 500))
    x = rng.normal(size=(40_000, 8))
    serial = np.concatenate([det.score(features=x[i:i + 2000]) for i in range(0, 40_000, 2000)])
    np.testing.assert_array_equal(det.score(features=x), serial)
    x[31_234, 5] = -np.inf
    with pytest.raises(ValueError, match=r"row 31234, column 5 is -inf"):
        det.score(features=x)
