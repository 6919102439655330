#!/usr/bin/env bash
# The main job: sets up what is missing, then runs the example workload on the
# simulated TSP and checks it against the golden model.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/setup.sh"
cd "$root"
exec tsp demo "$@"
