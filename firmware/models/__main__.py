"""``python -m firmware.models [CONFIG [ENGINE]]``: the example MLP, compiled, run and checked."""

import sys

from . import demo_mlp


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    report = demo_mlp(*argv[:2])
    print(report)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
