"""The ``tsp`` command: assemble, disassemble, run and build.

Every sub-command turns bad input into one line on stderr and exit status 2;
a traceback from this tool is a bug.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from sim.engines import ENGINES

from . import boards_cli




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
    from sim.engines import run_on
    return run_on(engine, image, waves=waves)


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
    if args.board:
        from .boards_cli import cmd_run_board
        return cmd_run_board(args, image)
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
    """The main job: the example int8 MLP (ONNX) compiled for ulx3s, run on the
    golden model and on the RTL, checked against ONNX's reference evaluator and
    against the compiler's predicted cycle count."""
    from .models import demo_mlp
    status = 0
    for engine in args.engines:
        report = demo_mlp(args.config, engine)
        print(report)
        status |= 0 if report.ok else 1
    return status


def _import_model(path):
    """An ONNX model file -> the imported program, input names and shapes checked."""
    import onnx
    from .compiler.onnx_import import OnnxImportError, import_onnx
    path = Path(path)
    if not path.exists():
        raise UsageError(f"{path}: no such file")
    try:
        model = onnx.load(str(path))
        return model, import_onnx(model)
    except OnnxImportError as e:
        raise UsageError(f"{path}: {e}") from None
    except Exception as e:          # a protobuf that is not an ONNX model
        raise UsageError(f"{path}: not a readable ONNX model ({e})") from None


def _compile_model(path, imported, feeds, config):
    from .compiler.gemm import CompileError
    from .compiler.lower import compile_graph
    from .compiler.onnx_import import OnnxImportError
    try:
        return compile_graph(imported.graph, imported.host_inputs(feeds), config)
    except (CompileError, OnnxImportError) as e:
        raise UsageError(f"{path}: {e}") from None


def cmd_compile(args):
    """Compile an ONNX model: image (.bin), assembler text (.s), schedule summary (.json).
    Without --inputs the image carries zero inputs; the summary says where the host
    stores each input (the schedule does not depend on the values)."""
    from .asm import disassemble
    model, imported = _import_model(args.model)
    feeds = _load_feeds(args.inputs, imported) if args.inputs else {
        vi.name: np.zeros([d.dim_value for d in vi.type.tensor_type.shape.dim], np.float32)
        for vi in model.graph.input if vi.name in imported.inputs}
    compiled = _compile_model(args.model, imported, feeds, args.config)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    stem = Path(args.model).stem
    compiled.image.save(out / f"{stem}.bin")
    (out / f"{stem}.s").write_text(disassemble(compiled.image))
    summary = compiled.summary()
    summary["host_quantize"] = imported.quantize
    summary["host_dequantize"] = imported.dequantize
    (out / f"{stem}.json").write_text(json.dumps(summary, indent=1))
    print(f"{out / stem}.bin/.s/.json: {len(compiled.phases)} phases, "
          f"{compiled.predicted_cycles} cycles predicted on config {compiled.config.name}")


def _load_feeds(path, imported):
    path = Path(path)
    if not path.exists():
        raise UsageError(f"{path}: no such file")
    with np.load(path) as data:
        feeds = {k: data[k] for k in data.files}
    missing = [n for n in imported.inputs if n not in feeds]
    if missing:
        raise UsageError(f"{path}: no array for model input(s) {', '.join(missing)} "
                         f"(it has {', '.join(feeds) or 'none'})")
    return feeds


def cmd_run_onnx(args):
    """Compile an ONNX model for its inputs, run it, compare with onnx.reference."""
    from onnx.reference import ReferenceEvaluator
    model, imported = _import_model(args.model)
    feeds = _load_feeds(args.inputs, imported)
    compiled = _compile_model(args.model, imported, feeds, args.config)
    if args.board:
        from .boards_cli import cmd_run_onnx_board
        return cmd_run_onnx_board(args, model, imported, feeds, compiled)
    if args.waves:                      # the same run as compiled.run(), with a wave file
        from sim.engines import run_on
        result = run_on(args.engine, compiled.image, waves=args.waves)
        values = compiled.results(result.memory)
    else:
        result, values = compiled.run(args.engine)
    outs = imported.host_outputs(values)
    ref = dict(zip([o.name for o in model.graph.output],
                   ReferenceEvaluator(model).run(None, {n: feeds[n] for n in imported.inputs})))
    report = {"model": str(args.model), "config": compiled.config.name, "engine": args.engine,
              "predicted_cycles": compiled.predicted_cycles, "cycles": int(result.cycles),
              "errors": _error_names(result.errors),
              "outputs": {n: list(np.shape(v)) for n, v in outs.items()},
              "reference_mismatches": {n: int(np.sum(np.asarray(v) != ref[n]))
                                       for n, v in outs.items()}}
    if getattr(result, "golden_cycles", None) is not None:
        report["golden_cycles"] = int(result.golden_cycles)
        report["agree"] = bool(result.agree)
    show_onnx_report(args, report, outs, f"{args.model}: config {report['config']}, engine "
                     f"{args.engine}: {report['cycles']} cycles")
    bad = (result.errors or result.cycles != compiled.predicted_cycles
           or any(report["reference_mismatches"].values()))
    return 1 if bad else 0


def show_onnx_report(args, report, outs, head):
    """The end of ``tsp run-onnx``: write ``--outputs``, then print the report as JSON
    or as text (``head``, then per output how many elements differ from the golden model,
    where the report has that, and from ONNX's reference evaluator)."""
    if args.outputs:
        np.savez(args.outputs, **outs)
    if args.json:
        print(json.dumps(report))
        return
    print(f"{head} (predicted {report['predicted_cycles']}), errors: "
          f"{', '.join(report['errors']) or 'none'}")
    golden = report.get("golden_mismatches")
    for n, shape in report["outputs"].items():
        versus = f"{golden[n]} elements differ from the golden model, " if golden else ""
        ref = report["reference_mismatches"][n]
        print(f"  {n} {shape}: {versus}{ref}{'' if golden else ' elements'} differ from the "
              "ONNX reference evaluator")


def cmd_bench(args):
    """The benchmark suite (:mod:`firmware.bench`); exit status 1 when a check failed."""
    from .bench import BenchError, run
    try:
        return run(args)[1]
    except BenchError as e:
        raise UsageError(str(e)) from None


def cmd_fuzz(args):
    """Differential fuzzing (:mod:`sim.fuzz`); exit status 1 on any mismatch."""
    from sim.fuzz import main
    try:
        return main(args)
    except ValueError as e:
        raise UsageError(str(e)) from None


def cmd_diff(args):
    """Golden model vs gateware, cycle by cycle (:mod:`sim.diff`); exit status 1 if they differ."""
    from sim.diff import main
    return main(args)


def cmd_schedule(args):
    """Pictures of a compiled program's schedule (:mod:`firmware.compiler.schedule_view`)."""
    from .compiler.schedule_view import main
    return main(args)


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
    s.add_argument("--engine", choices=ENGINES, default="golden")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.add_argument("--waves", help="RTL engine: write an FST wave file here")
    s.set_defaults(func=cmd_run)
    boards_cli.add_board_args(s)

    s = sub.add_parser("verilog", help="write the gateware as Verilog")
    s.add_argument("--config", required=True)
    s.add_argument("-o", "--output", default="tsp.v")
    s.add_argument("--name", default="tsp")
    s.set_defaults(func=cmd_verilog)

    s = sub.add_parser("demo", help="the main job: the example int8 MLP on the golden model "
                                    "and the RTL, checked against ONNX's reference")
    s.add_argument("--config", default="ulx3s")
    s.add_argument("--engines", nargs="+", choices=ENGINES, default=["golden", "amaranth"],
                   help="engines to run, in order (default: golden amaranth)")
    s.set_defaults(func=cmd_demo)

    s = sub.add_parser("compile", help="compile an int8 ONNX model to a program image")
    s.add_argument("model")
    s.add_argument("--config", default="ulx3s")
    s.add_argument("-o", "--output", required=True, help="directory for .bin, .s and .json")
    s.add_argument("--inputs", help=".npz of input arrays to store in the image (default zeros)")
    s.set_defaults(func=cmd_compile)

    s = sub.add_parser("run-onnx", help="compile and run an int8 ONNX model, check it")
    s.add_argument("model")
    s.add_argument("--inputs", required=True, help=".npz with one array per model input")
    s.add_argument("--config", default="ulx3s")
    s.add_argument("--engine", choices=ENGINES, default="golden")
    s.add_argument("--outputs", help="write the outputs to this .npz")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.add_argument("--waves", help="RTL engines: write a wave file (and its .gtkw) here")
    s.set_defaults(func=cmd_run_onnx)
    boards_cli.add_board_args(s)

    boards_cli.add_build_parser(sub).set_defaults(func=boards_cli.cmd_build)

    s = sub.add_parser("bench", help="run the benchmark suite, write BENCHMARKS.md and JSON")
    from .bench import add_arguments as bench_arguments
    bench_arguments(s)
    s.set_defaults(func=cmd_bench)

    s = sub.add_parser("diff", help="golden model vs gateware in lockstep: the first divergence, "
                                    "with a wave file around it")
    s.add_argument("program", help=".s, .bin, .onnx, or a folder written by tsp compile")
    s.add_argument("--config")
    s.add_argument("--inputs", help="ONNX model: .npz of inputs (default zeros)")
    s.add_argument("--engine", choices=("rtl", "amaranth"), default="rtl",
                   help="rtl: the Verilog on Icarus (FST waves); amaranth: Amaranth's simulator (VCD)")
    s.add_argument("--variant", help="run a deliberately broken gateware (sim/broken.py)")
    s.add_argument("--waves", help="wave file around the divergence (default PROGRAM-diff.fst)")
    s.add_argument("--no-waves", action="store_true", help="write no wave file")
    s.add_argument("--window", type=int, default=12, help="cycles before and after (default 12)")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.set_defaults(func=cmd_diff)

    s = sub.add_parser("schedule", help="picture (PNG + HTML) of a compiled program's schedule")
    s.add_argument("program", help="a folder written by tsp compile, or .bin, .s, .onnx")
    s.add_argument("--config")
    s.add_argument("--inputs", help="ONNX model: .npz of inputs (default zeros)")
    s.add_argument("-o", "--output", default="schedule.png", help="the PNG (default schedule.png)")
    s.add_argument("--html", help="the HTML page (default: the PNG's name with .html)")
    s.set_defaults(func=cmd_schedule)

    s = sub.add_parser("fuzz", help="random programs on the golden model and the RTL, compared")
    from sim.fuzz import add_arguments as fuzz_arguments
    fuzz_arguments(s)
    s.set_defaults(func=cmd_fuzz)
    return p


#: Options whose value is another tool's options, so may start with a dash
#: (``--nextpnr-opts "--no-tmdriv"``), which argparse would take for an option of ours.
TOOL_OPTION_FLAGS = ("--nextpnr-opts",)


def join_tool_options(argv):
    """``[..., "--nextpnr-opts", "--no-tmdriv", ...]`` -> ``[..., "--nextpnr-opts=--no-tmdriv",
    ...]``: the value after a :data:`TOOL_OPTION_FLAGS` flag is its value, dash or not."""
    out = []
    args = iter(argv)
    for arg in args:
        if arg in TOOL_OPTION_FLAGS:
            value = next(args, None)
            out.append(arg if value is None else f"{arg}={value}")
        else:
            out.append(arg)
    return out


def main(argv=None):
    from .asm import AsmError
    from .image import ImageError
    from .machine import ConfigError
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(join_tool_options(argv))
    try:
        return args.func(args) or 0
    except (UsageError, AsmError, ImageError, ConfigError, OSError) as e:
        print(f"tsp {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
