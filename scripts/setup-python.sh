#!/usr/bin/env bash
# Project-local Python environment (.venv): the reference tools used by golden-value scripts
# and benchmarks (numpy, scikit-learn) and libtorch for tch, from the torch==2.11.0 wheel.
# Idempotent: a second run only checks what is there (about a second).
#
#   scripts/setup-python.sh          minimal torch: what the Rust build and binaries need
#   scripts/setup-python.sh --pytest
#                                    also the Python package: maturin, pytest and the package
#                                    (`pip install ./python`) into .venv, and the pytest venv
#                                    python/.venv-test (python/requirements-test.txt: full
#                                    torch==2.11.0, scikit-learn, pandas, dask; ~5.1 GB, measured
#                                    ~7 min on a fresh 2-core machine) with the package too
#   EOOD_TORCH=full scripts/setup-python.sh
#                                    importable PyTorch with all its CUDA wheels (about 4.7 GB
#                                    installed): for regenerating golden files and the PyTorch
#                                    side of benchmarks; chosen automatically on a machine with
#                                    an NVIDIA driver
#
# Why "minimal" works (measured, docs/neural.md): the Linux x86_64 wheel from PyPI is a CUDA
# build and pulls ~2.3 GB of nvidia-* wheels plus triton. tch's binaries link libtorch_cpu.so and
# libc10.so (libtorch.so and libtorch_cuda.so are dropped by --as-needed on a CPU-only build),
# and libtorch_cpu.so needs only libcudart and libcupti. So: torch with --no-deps plus those two
# wheels. Python cannot `import torch` in that state (libtorch_python.so needs cuDNN, cuBLAS,
# NCCL, ...), which is why scripts/env.sh points tch at the wheel with LIBTORCH.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
TORCH_VERSION=2.11.0
pip_install() { .venv/bin/python -m pip install -q --disable-pip-version-check "$@"; }

if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
  pip_install --upgrade pip >/dev/null
fi
pip_install -r scripts/requirements-ref.txt

site="$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
mode=${EOOD_TORCH:-}
if [ -z "$mode" ]; then
  if [ -e /proc/driver/nvidia/version ] || command -v nvidia-smi >/dev/null 2>&1; then
    mode=full
  elif [ "$(uname -s)-$(uname -m)" = "Linux-x86_64" ]; then
    mode=minimal
  else
    mode=full # other platforms' wheels are CPU builds without CUDA dependencies
  fi
fi

have_torch() { [ -d "$site/torch-$TORCH_VERSION.dist-info" ] && [ -f "$site/torch/lib/libtorch_cpu.so" -o -f "$site/torch/lib/libtorch_cpu.dylib" ]; }

case "$mode" in
  full)
    if ! have_torch || ! .venv/bin/python -c 'import torch' >/dev/null 2>&1; then
      echo "setup-python: installing torch==$TORCH_VERSION with its dependencies" >&2
      pip_install -r scripts/requirements-torch-full.txt
    fi
    ;;
  minimal)
    if ! have_torch || ! compgen -G "$site/nvidia/cu13/lib/libcudart.so.13*" >/dev/null \
      || ! compgen -G "$site/nvidia/cu13/lib/libcupti.so.13*" >/dev/null; then
      echo "setup-python: installing torch==$TORCH_VERSION (minimal: libtorch + cudart + cupti)" >&2
      pip_install --no-deps -r scripts/requirements-torch-minimal.txt
    fi
    ;;
  *)
    echo "setup-python: EOOD_TORCH must be 'minimal' or 'full', got '$mode'" >&2
    exit 2
    ;;
esac

# The Python package (docs/python.md). pip rebuilds it from the current source each run; cargo's
# cache in python/target makes that a few seconds when nothing changed.
if [ "${1:-}" = "--pytest" ]; then
  pip_install maturin==1.16.0 pytest==9.2.0
  pip_install ./python
  # torch must be importable for the torch-helper tests, which .venv's minimal torch is not:
  # a separate venv only for pytest, with the full wheel set
  if [ ! -x python/.venv-test/bin/python ]; then
    "$PY" -m venv python/.venv-test
  fi
  test_pip() { python/.venv-test/bin/python -m pip install -q --disable-pip-version-check "$@"; }
  if ! python/.venv-test/bin/python -c 'import torch, sklearn, pandas, distributed, pytest' >/dev/null 2>&1; then
    echo "setup-python: installing the pytest environment python/.venv-test (full torch==$TORCH_VERSION)" >&2
  fi
  test_pip -r python/requirements-test.txt
  test_pip ./python
fi
