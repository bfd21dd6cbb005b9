#!/usr/bin/env bash
# Install what the tests need and run the default test suite (slow end-to-end runs: add -m slow).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
set +e
.venv/bin/python -m pytest "$@"
rc=$?
set -e
# pytest exits 5 when it collected no test: that is a failure of the suite, not a pass.
if [ "$rc" = 5 ]; then echo "no tests were collected"; exit 1; fi
exit "$rc"
