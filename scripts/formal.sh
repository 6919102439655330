#!/usr/bin/env bash
# Every formal check (tests/formal): the properties at their deepest bounds and every
# deliberately broken variant, through yowasp-sby with Boolector. Prints, per check,
# the depth reached (or "proved") and the time. Arguments go to `python -m tests.formal`
# (--quick, -k NAME, --workdir DIR, --timeout S). The 6-word sequencer row alone runs for
# more than 13 minutes on an idle 2-core machine (measured); the quick rows take about a
# minute. --timeout 300 bounds every row (one that runs out is reported as an error).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/setup.sh"
cd "$root"
exec python -m tests.formal "$@"
