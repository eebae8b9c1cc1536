"""Beyond one machine: a local Dask cluster (2 worker processes) scores a partitioned data set
with a pickled fitted detector; the result equals the single-process one."""

import numpy as np
import pytest

import energy_ood as eo
from energy_ood import detectors as D

distributed = pytest.importorskip("distributed")
da = pytest.importorskip("dask.array")


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None, host="127.0.0.1")
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


def test_partitioned_scoring_equals_single_process(client, rng):
    train = rng.normal(size=(2000, 16))
    labels = rng.integers(0, 5, 2000)
    det = D.Mahalanobis(shrinkage=0.01).fit(features=train, labels=labels)
    feats = rng.normal(size=(10_000, 16))
    x = da.from_array(feats, chunks=(1500, 16))  # 7 partitions, the last one short
    remote = client.scatter(det, broadcast=True)  # pickled once, sent to both workers

    def score(block, d):
        return d.score(features=block)

    scores = x.map_blocks(score, remote, drop_axis=1, dtype=np.float64).compute()
    np.testing.assert_array_equal(scores, det.score(features=feats))

    # the calibrated detector goes the same way
    cal = eo.Detector.calibrate(det.score(features=train))
    flags = da.map_blocks(lambda s, c: c.accept(s), x.map_blocks(score, remote, drop_axis=1,
                          dtype=np.float64), client.scatter(cal, broadcast=True),
                          dtype=bool).compute()
    np.testing.assert_array_equal(flags, cal.accept(det.score(features=feats)))
    # the scoring ran in the workers' processes, not in this one: each block reports its pid
    nblocks = x.numblocks[0]
    pids = x.map_blocks(lambda b, d: np.full(1, __import__("os").getpid()), remote,
                        drop_axis=1, chunks=((1,) * nblocks,), dtype=np.int64).compute()
    workers = set(client.run(lambda: __import__("os").getpid()).values())
    assert len(pids) == nblocks and set(pids.tolist()) <= workers
    assert __import__("os").getpid() not in set(pids.tolist())
