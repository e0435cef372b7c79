#!/usr/bin/env bash
# Set-up + the test suite (2 worker processes; extra arguments go to pytest).
# Tests marked slow (minutes each on a CPU) are skipped; run them with: scripts/test.sh -m slow
set -euo pipefail
here="$(dirname "${BASH_SOURCE[0]}")"
"$here/setup.sh"
cd "$here/.."
# One thread per worker: two workers of torch's default two threads each oversubscribe 2 cores,
# and OpenMP's waiting threads then make small models' tests ten times slower.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
exec .venv/bin/python -m pytest -n 2 -m "not slow" "$@"
