"""``python -m tests.formal``: run every formal check and print what each reached.

    python -m tests.formal                 # everything: quick, deep, broken variants
    python -m tests.formal --quick         # only what the default test run does
    python -m tests.formal -k icu          # checks whose name contains "icu"
    python -m tests.formal --workdir DIR   # keep the sby folders (traces) there
    python -m tests.formal --timeout 300   # give each check at most 300 s (default 1800)

Exit status 0 when every property holds and every broken variant is caught.
"""

import argparse
import sys
import tempfile
import time

from .checks import QUICK, DEEP, CAUGHT
from .runner import FormalError, run_sby


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tests.formal",
                                     description="Run the formal checks through yowasp-sby.")
    parser.add_argument("--quick", action="store_true", help="only the default-run checks")
    parser.add_argument("-k", dest="match", default="", help="only checks whose name has this")
    parser.add_argument("--workdir", help="folder for the sby runs (default: a temporary one)")
    parser.add_argument("--timeout", type=int, default=1800, metavar="S",
                        help="seconds each check may take; one that takes longer is reported "
                             "as an error (default %(default)s)")
    args = parser.parse_args(argv)
    if args.timeout <= 0:
        parser.error(f"--timeout {args.timeout}: must be positive")

    checks = QUICK + ([] if args.quick else DEEP + CAUGHT)
    checks = [c for c in checks if args.match in c.name]
    if not checks:
        parser.error(f"no check matches {args.match!r}")
    workdir = args.workdir or tempfile.mkdtemp(prefix="tsp-formal-")
    print(f"{len(checks)} checks, sby folders under {workdir}\n")
    print(f"{'check':<32} {'expect':<6} {'result':<6} {'reached':<34} {'wall':>7} {'CPU':>7}")
    bad = 0
    total_cpu = 0.0
    start = time.monotonic()
    for check in checks:
        try:
            v = run_sby(check.bench(), check.name.replace(":", "_"), workdir,
                        depth=check.depth, mode=check.mode, timeout=args.timeout)
        except FormalError as e:
            bad += 1
            print(f"{check.name:<32} {check.expect:<6} ERROR  {e}".splitlines()[0])
            continue
        total_cpu += v.cpu_seconds
        if v.status == "FAIL":
            reached = f"counterexample in cycle {v.steps - 1}"
        elif v.mode == "prove":
            reached = f"proved, any depth (k = {v.depth})"
        else:
            reached = f"{v.steps} cycles, no counterexample"
        ok = v.status == check.expect
        bad += not ok
        print(f"{check.name:<32} {check.expect:<6} {v.status:<6} {reached:<34} "
              f"{v.seconds:6.1f}s {v.cpu_seconds:6.1f}s{'' if ok else '   <-- WRONG'}")
    print(f"\n{len(checks) - bad} of {len(checks)} as expected; "
          f"{time.monotonic() - start:.0f} s wall, {total_cpu:.0f} s CPU")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
