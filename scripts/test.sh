#!/usr/bin/env bash
# Lint and test: scripts/setup.sh (with redis-server and, where apt can, chromium for the
# browser tests), then `ruff check .`, `lint-imports` (the layer contracts in
# pyproject.toml), `mypy` (the modules listed there) and `pytest -q [args...]`.
#
#   scripts/test.sh                       # everything
#   scripts/test.sh tests/unit -k bus     # pytest arguments pass through
#
# Exit code: pytest's (5, "no tests collected", counts as a failure); 1 if pytest passed
# but ruff, lint-imports or mypy found problems.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
say() { printf '[test] %s\n' "$*"; }

TM_WITH_CHROMIUM=1 bash "$ROOT/scripts/setup.sh"

say "ruff check ."
ruff_rc=0
"$ROOT/.venv/bin/ruff" check . || ruff_rc=$?
[[ $ruff_rc == 0 ]] || say "ruff found problems (exit $ruff_rc)"

say "lint-imports (layer contracts)"
"$ROOT/.venv/bin/lint-imports" --no-cache || { ruff_rc=1; say "lint-imports: a contract is broken"; }
say "mypy"
"$ROOT/.venv/bin/mypy" || { ruff_rc=1; say "mypy found problems"; }

say "pytest -q $*"
pytest_rc=0
"$ROOT/.venv/bin/pytest" -q "$@" || pytest_rc=$?

if [[ $pytest_rc == 5 ]]; then
    say "FAILED: pytest collected no tests (exit 5)"
    exit 5
elif [[ $pytest_rc != 0 ]]; then
    say "FAILED: pytest exit $pytest_rc"
    exit "$pytest_rc"
elif [[ $ruff_rc != 0 ]]; then
    say "FAILED: tests passed but ruff, lint-imports or mypy failed"
    exit 1
fi
say "OK"
