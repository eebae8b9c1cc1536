# Source this file (`source scripts/env.sh`) to build and run with the project's environment.
#
# libtorch comes from the torch==2.11.0 wheel that scripts/setup-python.sh installs into .venv.
# tch (torch-sys) is pointed at it with LIBTORCH=<site-packages>/torch (the wheel's include/ and
# lib/ live there). This is the same libtorch that LIBTORCH_USE_PYTORCH=1 would find, but it does
# not run `import torch` at build time, which the minimal CPU install cannot do (see
# docs/neural.md). A user's own LIBTORCH, or LIBTORCH_USE_PYTORCH=1, is left as it is.
# tch binaries carry no rpath, so LD_LIBRARY_PATH gets torch/lib and the wheel's CUDA libraries.
_eood_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="$_eood_root/.venv/bin:$PATH"
_eood_site="$(ls -d "$_eood_root"/.venv/lib/python3*/site-packages 2>/dev/null | head -n 1)"
if [ -z "${LIBTORCH:-}" ] && [ -z "${LIBTORCH_USE_PYTORCH:-}" ] && [ -n "$_eood_site" ] \
  && [ -d "$_eood_site/torch/lib" ]; then
  export LIBTORCH="$_eood_site/torch"
fi
if [ -n "${LIBTORCH:-}" ]; then
  _eood_torch_lib="$LIBTORCH/lib"
elif [ -n "$_eood_site" ]; then
  _eood_torch_lib="$_eood_site/torch/lib"
fi
if [ -n "${_eood_torch_lib:-}" ] && [ -d "$_eood_torch_lib" ]; then
  _eood_ld="$_eood_torch_lib"
  if [ -n "$_eood_site" ]; then
    # nvidia-* wheels: CUDA 13 ones share nvidia/cu13/lib, older ones use nvidia/<name>/lib.
    for _d in "$_eood_site"/nvidia/*/lib; do
      [ -d "$_d" ] && _eood_ld="$_eood_ld:$_d"
    done
  fi
  case ":${LD_LIBRARY_PATH:-}:" in
    *":$_eood_torch_lib:"*) ;;
    *) export LD_LIBRARY_PATH="$_eood_ld${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ;;
  esac
fi
unset _eood_site _eood_torch_lib _eood_ld _d
