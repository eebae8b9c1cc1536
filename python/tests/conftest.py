"""Shared fixtures. Two switches make CI strict where a developer's run may skip:
EOOD_REQUIRE_TORCH=1 fails the torch tests instead of skipping them when torch is missing;
EOOD_BIN names the `eood` binary for the CLI round trips (they fail when it is set but
missing, and skip when it is unset and no target/{debug,release}/eood exists)."""

from __future__ import annotations

import os
import pathlib

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
GOLDEN = pathlib.Path(__file__).resolve().parent / "golden"


def _find_eood():
    env = os.environ.get("EOOD_BIN")
    if env:
        if not os.access(env, os.X_OK):
            pytest.fail(f"EOOD_BIN={env} is not an executable")
        return env
    for p in (REPO / "target" / "debug" / "eood", REPO / "target" / "release" / "eood"):
        if os.access(p, os.X_OK):
            return str(p)
    return None


@pytest.fixture(scope="session")
def eood():
    path = _find_eood()
    if path is None:
        pytest.skip("no eood binary (cargo build -p eood --no-default-features, or EOOD_BIN=...)")
    return path


@pytest.fixture(scope="session")
def torch():
    if os.environ.get("EOOD_REQUIRE_TORCH") == "1":
        import torch as t  # an ImportError fails the test, as CI wants
        return t
    return pytest.importorskip("torch")


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
