#!/usr/bin/env bash
# Set-up + the test suite (2 worker processes; extra arguments go to pytest).
set -euo pipefail
here="$(dirname "${BASH_SOURCE[0]}")"
"$here/setup.sh"
cd "$here/.."
exec .venv/bin/python -m pytest -n 2 "$@"
