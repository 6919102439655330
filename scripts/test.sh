#!/usr/bin/env bash
# The test command: sets up what is missing, then runs the default test suite.
# Extra arguments go to pytest (e.g. scripts/test.sh -m slow, or -k golden).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/setup.sh"
cd "$root"
# Two workers: the machines this runs on have two cores.
exec python -m pytest -q -n 2 "$@"
