#!/usr/bin/env bash
# Set-up + `skelmae demo`: synthetic data -> MAE pre-training -> linear probes -> results table.
set -euo pipefail
here="$(dirname "${BASH_SOURCE[0]}")"
"$here/setup.sh"
exec "$here/../.venv/bin/skelmae" demo "$@"
