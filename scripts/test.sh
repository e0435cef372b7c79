#!/usr/bin/env bash
# Set-up + the test suite (2 worker processes; extra arguments go to pytest).
# Tests marked slow (minutes each on a CPU) are skipped; run them with: scripts/test.sh -m slow
set -euo pipefail
here="$(dirname "${BASH_SOURCE[0]}")"
"$here/setup.sh"
cd "$here/.."
exec .venv/bin/python -m pytest -n 2 -m "not slow" "$@"
