"""scripts/setup-python.sh picks the CUDA build of torch on a machine with an NVIDIA GPU by
itself and keeps the minimal CPU install elsewhere. Checked with `--print-mode` (installs
nothing) and a fake `nvidia-smi` on PATH, so no GPU and no download are needed."""

import os
import platform
import stat
import subprocess

import pytest

from conftest import REPO

SCRIPT = REPO / "scripts" / "setup-python.sh"
LINUX_X86 = platform.system() == "Linux" and platform.machine() == "x86_64"


def fake_nvidia_smi(bin_dir, listing, status=0):
    bin_dir.mkdir(exist_ok=True)
    smi = bin_dir / "nvidia-smi"
    smi.write_text(f"#!/bin/sh\nprintf '{listing}'\nexit {status}\n")
    smi.chmod(smi.stat().st_mode | stat.S_IEXEC)


def mode(tmp_path, path_dirs=(), driver=None, torch=None):
    env = {
        "PATH": os.pathsep.join([*map(str, path_dirs), "/usr/bin", "/bin"]),
        "HOME": str(tmp_path),
        "EOOD_NVIDIA_DRIVER_FILE": str(driver or tmp_path / "no-driver"),
    }
    if torch is not None:
        env["EOOD_TORCH"] = torch
    return subprocess.run(
        ["bash", str(SCRIPT), "--print-mode"], env=env, capture_output=True, text=True, timeout=60
    )


def test_a_gpu_listed_by_nvidia_smi_gets_the_cuda_build(tmp_path):
    fake_nvidia_smi(tmp_path / "bin", "GPU 0: NVIDIA H200 (UUID: GPU-0)\\nGPU 1: NVIDIA H200 (UUID: GPU-1)\\n")
    r = mode(tmp_path, [tmp_path / "bin"])
    assert (r.returncode, r.stdout) == (0, "full (nvidia-smi lists 2 GPU(s))\n"), r.stderr


def test_a_loaded_driver_without_nvidia_smi_gets_the_cuda_build(tmp_path):
    driver = tmp_path / "version"
    driver.write_text("NVRM version: NVIDIA UNIX x86_64 Kernel Module  580.00\n")
    r = mode(tmp_path, driver=driver)
    assert r.stdout == f"full (NVIDIA driver loaded ({driver}))\n", r.stderr


@pytest.mark.skipif(not LINUX_X86, reason="the minimal install is for Linux x86_64")
def test_no_gpu_keeps_the_minimal_cpu_install(tmp_path):
    # nvidia-smi present but failing (no driver, no device): not a GPU machine
    fake_nvidia_smi(tmp_path / "bin", "NVIDIA-SMI has failed\\n", status=9)
    for dirs in ([], [tmp_path / "bin"]):
        r = mode(tmp_path, dirs)
        assert r.stdout == "minimal (no NVIDIA GPU (Linux x86_64))\n", r.stderr


def test_eood_torch_overrides_and_is_validated(tmp_path):
    fake_nvidia_smi(tmp_path / "bin", "GPU 0: NVIDIA H200 (UUID: GPU-0)\\n")
    r = mode(tmp_path, [tmp_path / "bin"], torch="minimal")
    assert r.stdout == "minimal (EOOD_TORCH=minimal)\n"
    r = mode(tmp_path, torch="cuda")
    assert r.returncode == 2
    assert r.stderr == "setup-python: EOOD_TORCH must be 'minimal' or 'full', got 'cuda'\n"
