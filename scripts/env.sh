# Source this file (`source scripts/env.sh`) to build and run with the project's environment.
_eood_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="$_eood_root/.venv/bin:$PATH"
