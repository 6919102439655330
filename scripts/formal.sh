#!/usr/bin/env bash
# Every formal check (tests/formal): the properties at their deepest bounds and every
# deliberately broken variant, through yowasp-sby with Boolector. Prints, per check,
# the depth reached (or "proved") and the time. Arguments go to `python -m tests.formal`
# (--quick, -k NAME, --workdir DIR). About 10 minutes of CPU when the machine is idle.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/setup.sh"
cd "$root"
exec python -m tests.formal "$@"
