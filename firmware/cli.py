"""The ``tsp`` command: assemble, disassemble, run and build.

Every sub-command turns bad input into one line on stderr and exit status 2;
a traceback from this tool is a bug.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np


KERNELS = Path(__file__).parent / "kernels"


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit status 2."""


def _load_program(path, config=None):
    """A program from ``.s`` text or a ``.bin`` image."""
    from .asm import assemble_file
    from .image import ProgramImage
    path = Path(path)
    if not path.exists():
        raise UsageError(f"{path}: no such file")
    if path.suffix == ".bin":
        image = ProgramImage.load(path)
        if config is not None and image.config.name != config:
            raise UsageError(f"{path} is built for config {image.config.name!r}, not {config!r}")
        return image
    return assemble_file(path, config=config)


def _error_names(bits):
    from .isa import ErrorFlag
    return [f.name for f in ErrorFlag if bits & f]


def _run_engine(image, engine, waves=None):
    if engine == "golden":
        from sim.golden import run_image
        return run_image(image)
    if engine == "rtl":
        from sim.rtl_runner import run_image_rtl
        return run_image_rtl(image, waves=waves)
    raise UsageError(f"unknown engine {engine!r}")


def _result_json(image, result, engine):
    out = {
        "config": image.config.name,
        "engine": engine,
        "cycles": int(result.cycles),
        "errors": _error_names(result.errors),
        "outputs": {name: np.asarray(v).tolist() for name, v in result.outputs.items()},
    }
    events = getattr(result, "events", None)
    if events:
        out["error_events"] = [{"cycle": e.cycle, "flag": e.flag.name, "where": e.where,
                                "message": e.message} for e in events]
    golden_cycles = getattr(result, "golden_cycles", None)
    if golden_cycles is not None:
        out["golden_cycles"] = int(golden_cycles)
        out["agree"] = bool(result.agree)
    return out


def cmd_asm(args):
    image = _load_program(args.program, args.config)
    out = Path(args.output or Path(args.program).with_suffix(".bin"))
    image.save(out)
    words = sum(len(w) for w in image.queues.values())
    print(f"{out}: {words} instruction words in {len(image.queues)} queues, "
          f"config {image.config.name}")


def cmd_disasm(args):
    from .asm import disassemble
    image = _load_program(args.image)
    text = disassemble(image)
    if args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)


def cmd_run(args):
    image = _load_program(args.program, args.config)
    result = _run_engine(image, args.engine, waves=getattr(args, "waves", None))
    report = _result_json(image, result, args.engine)
    if args.json:
        print(json.dumps(report))
        return
    print(f"{args.program}: config {report['config']}, engine {args.engine}: "
          f"{report['cycles']} cycles, errors: {', '.join(report['errors']) or 'none'}")
    for e in report.get("error_events", []):
        print(f"  cycle {e['cycle']}: {e['flag']} at {e['where']}: {e['message']}")
    if "golden_cycles" in report:
        print(f"  golden model: {report['golden_cycles']} cycles "
              f"({'agree' if report['agree'] else 'DISAGREE'})")
    for name, values in result.outputs.items():
        print(f"  {name} = {np.array2string(np.asarray(values), max_line_width=100)}")


def cmd_verilog(args):
    from amaranth.back import verilog
    from rtl.top import TSP
    from .machine import get_config
    config = get_config(args.config)
    if not config.rtl:
        raise UsageError(f"config {config.name!r} is for the golden model and compiler only")
    text = verilog.convert(TSP(config), name=args.name)
    Path(args.output).write_text(text)
    print(f"{args.output}: Verilog for config {config.name}, top module {args.name}")


def cmd_demo(args):
    """The main job: the matmul kernel on the golden model, checked with numpy."""
    from .asm import assemble_file
    from sim.golden import run_image
    image = assemble_file(KERNELS / "matmul.s")
    c = image.config
    a = image.memory_array("MEM_E2")[:4].view(np.int8).astype(np.int32)
    b = image.memory_array("MEM_E3")[:c.vl].view(np.int8).astype(np.int32).T
    expected = a @ b
    result = run_image(image)
    got = result.outputs["c"]
    ok = result.errors == 0 and np.array_equal(got, expected)
    print(f"matmul.s on {c.name}: C[4x{c.vl}] = A[4x{c.vl}] @ B[{c.vl}x{c.vl}] through the MXM")
    print(f"  golden model: {result.cycles} cycles, errors: "
          f"{', '.join(_error_names(result.errors)) or 'none'}")
    print(f"  result vs numpy: {'bit-exact' if ok else 'MISMATCH'}")
    if not ok:
        print(f"  expected\n{expected}\n  got\n{got}")
        return 1
    return 0


def build_parser():
    p = argparse.ArgumentParser(prog="tsp", description="Open tensor streaming processor tools")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("asm", help="assemble a program into a binary image")
    s.add_argument("program")
    s.add_argument("-o", "--output")
    s.add_argument("--config", help="configuration (default: the program's .config)")
    s.set_defaults(func=cmd_asm)

    s = sub.add_parser("disasm", help="print a program image as assembler text")
    s.add_argument("image")
    s.add_argument("-o", "--output")
    s.set_defaults(func=cmd_disasm)

    s = sub.add_parser("run", help="run a program (.s or .bin) on an engine")
    s.add_argument("program")
    s.add_argument("--config")
    s.add_argument("--engine", choices=("golden", "rtl"), default="golden")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.add_argument("--waves", help="RTL engine: write an FST wave file here")
    s.set_defaults(func=cmd_run)

    s = sub.add_parser("verilog", help="write the gateware as Verilog")
    s.add_argument("--config", required=True)
    s.add_argument("-o", "--output", default="tsp.v")
    s.add_argument("--name", default="tsp")
    s.set_defaults(func=cmd_verilog)

    s = sub.add_parser("demo", help="the main job: a kernel on the golden model, checked")
    s.set_defaults(func=cmd_demo)
    return p


def main(argv=None):
    from .asm import AsmError
    from .image import ImageError
    from .machine import ConfigError
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except (UsageError, AsmError, ImageError, ConfigError, OSError) as e:
        print(f"tsp {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
