#!/usr/bin/env bash
# Install vid2model and run the whole pipeline on a generated demo video.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/vid2model demo "$@"
