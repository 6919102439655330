"""Run program images on the gateware: Verilog from ``rtl/``, Icarus through cocotb.

:func:`run_image_rtl` converts ``TSP(config)`` to Verilog (cached under
``build/rtl/``, keyed by a hash of the gateware sources; the flat simulation
Verilog of :mod:`sim.icarus_verilog`, or Amaranth's own for wave runs), compiles
it with Icarus once per configuration, runs :mod:`sim.cocotb_tb` on one image and
compares what comes back with the golden model: final memory of every MEM
slice, error flags and the cycle count, exactly. With ``trace=True`` it also
records every hop register in every cycle and, where the two disagree, names
the first divergence (:func:`first_divergence`).
"""

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from firmware.ecc import EccStatus
from firmware.isa import ErrorFlag


__all__ = ["RtlResult", "Divergence", "run_image_rtl", "first_divergence", "build_dir_for"]

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build" / "rtl"
TOPLEVEL = "tsp"


@dataclass
class Divergence:
    """The first cycle where the RTL's hop registers differ from the golden model's."""
    cycle: int           # global clock cycle after START
    local_cycle: int     # = cycle - tile
    tile: int
    position: int
    slice: str           # the slice that reads this hop register
    direction: str       # "E" or "W"
    stream: int
    lane: int            # lane of the whole vector (tile * L + lane in tile)
    expected: int
    actual: int
    in_flight: dict      # queue name -> instruction the golden model issued at that local cycle

    def __str__(self):
        flight = "; ".join(f"{q}: {i}" for q, i in self.in_flight.items()) or "none"
        return (f"first divergence at cycle {self.cycle} (tile {self.tile}, local cycle "
                f"{self.local_cycle}): {self.slice} (position {self.position}) reads "
                f"{self.direction}{self.stream} lane {self.lane} = {self.actual:#04x}, golden model "
                f"has {self.expected:#04x}; issued at that local cycle: {flight}")


@dataclass
class RtlResult:
    cycles: int
    errors: int
    err_queue: int
    err_cycle: int
    memory: dict
    outputs: dict
    golden_cycles: int
    golden_errors: int
    mismatches: list = field(default_factory=list)   # human-readable differences
    divergence: Divergence | None = None
    hops: np.ndarray | None = None                     # [cycles, 2, N, T, S, L] with trace
    waves: Path | None = None
    # load_s, run_s, readback_s: wall time; load_cpu_s, ...: CPU time of the simulator process
    timings: dict = field(default_factory=dict)
    ecc: EccStatus = EccStatus()                      # the TSP's ECC status at done

    @property
    def agree(self):
        return not self.mismatches

    def summary(self):
        if self.agree:
            return f"RTL and golden model agree: {self.cycles} cycles"
        text = "RTL and golden model disagree:\n  " + "\n  ".join(self.mismatches)
        if self.divergence is not None:
            text += f"\n  {self.divergence}"
        return text


def _source_hash(config):
    h = hashlib.sha1(repr(config).encode())
    for path in sorted((ROOT / "rtl").glob("*.py")) + [ROOT / "firmware" / "isa.py",
                                                       ROOT / "firmware" / "machine.py"]:
        h.update(path.read_bytes())
    return h.hexdigest()[:12]


def _build_key(config, variant=None):
    """``<config>-<hash of the gateware sources>[-<variant>-<hash>]``."""
    tag = ""
    if variant:
        tag = f"-{variant}-{hashlib.sha1((ROOT / 'sim' / 'broken.py').read_bytes()).hexdigest()[:6]}"
    return f"{config.name}-{_source_hash(config)}{tag}"


def build_dir_for(config, waves=False, variant=None):
    """The build folder of ``config``: ``-flat<hash>`` for the simulation Verilog of
    ``sim/icarus_verilog.py``, ``-waves<hash>`` for its wave build (the hash of its
    recipe in the name). ``variant``: a broken variant of ``sim/broken.py``, built in
    its own folder."""
    from sim.icarus_verilog import recipe_hash
    kind = "-waves" if waves else "-flat"
    return BUILD / f"{_build_key(config, variant)}{kind}{recipe_hash()}"


def _verilog(config, build_dir, variant=None, waves=False):
    """The flat simulation Verilog a build compiles (``sim/icarus_verilog.py``, 80
    times as fast on Icarus as Amaranth's own), with every named signal kept for a
    wave build. Both come from one RTLIL (``build/rtl/<key>.il``), made once per
    gateware."""
    from sim import icarus_verilog
    path = build_dir / f"{TOPLEVEL}.v"
    if path.exists():
        return path
    build_dir.mkdir(parents=True, exist_ok=True)
    rtlil = BUILD / f"{_build_key(config, variant)}.il"
    if not rtlil.exists():
        tmp = rtlil.with_name(f"{rtlil.name}.{os.getpid()}.tmp")
        tmp.write_text(icarus_verilog.rtlil_text(config, TOPLEVEL, variant))
        tmp.replace(rtlil)
    tmp = path.with_name(path.name + ".tmp")
    icarus_verilog.sim_verilog(rtlil, tmp, config, TOPLEVEL, names=waves)
    tmp.replace(path)
    return path


def _write_if_changed(path, text):
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path


def _runner(config, waves, variant=None):
    from cocotb_tools.runner import get_runner
    from sim import icarus_verilog
    build_dir = build_dir_for(config, waves, variant)
    BUILD.mkdir(parents=True, exist_ok=True)
    # One build at a time per folder (pytest -n runs cases of one config side by side).
    with _lock(BUILD / f"{build_dir.name}.lock"):
        source = _verilog(config, build_dir, variant, waves)
        # A second top level dumps the block RAMs at done (sim/icarus_verilog.py),
        # a third (wave builds) the signals the save file shows.
        sources = [source, _write_if_changed(build_dir / f"{icarus_verilog.READBACK_TOP}.v",
                                             icarus_verilog.readback_verilog(config, TOPLEVEL))]
        tops = [icarus_verilog.READBACK_TOP]
        if waves:
            from sim.waves import traced_paths
            dump = icarus_verilog.dump_verilog(source.read_text(), traced_paths(config), TOPLEVEL)
            sources.append(_write_if_changed(build_dir / f"{icarus_verilog.DUMP_TOP}.v", dump))
            tops.append(icarus_verilog.DUMP_TOP)
        runner = get_runner("icarus")
        # cocotb recompiles only when a source is newer than its sim.vvp.
        runner.build(sources=sources, hdl_toplevel=TOPLEVEL,
                     build_args=[a for top in tops for a in ("-s", top)], timescale=("1ns", "1ps"),
                     build_dir=build_dir, log_file=build_dir / "build.log")
    return runner, build_dir


def run_image_rtl(image, waves=None, trace=False, max_cycles=1_000_000, golden=None,
                  readback="direct", variant=None):
    """Run ``image`` on the Verilog of ``TSP(image.config)`` under Icarus and compare
    with the golden model (``golden``: a precomputed golden result, else it is run).

    ``waves``: a path for the FST wave file (with its GTKWave save file next to it,
    ``sim/waves.py``); by default the folder of ``pytest --waves DIR`` gets one, else
    none is written. ``variant``: build a broken variant of the gateware
    (``sim/broken.py``). ``trace``: record every hop register
    each cycle and report the first divergence from the golden model's trace.
    ``readback``: ``"direct"`` (from the simulated block RAMs) or ``"host"``
    (every word through the host port).
    """
    from sim.golden import run_image
    config = image.config
    if golden is None or (trace and golden.trace is None):
        golden = run_image(image, trace=trace)
    if waves is None:
        from sim.waves import waves_for_test
        waves = waves_for_test(".fst")
    runner, build_dir = _runner(config, waves=bool(waves), variant=variant)
    with tempfile.TemporaryDirectory(prefix="tsp-rtl-") as tmp:
        tmp = Path(tmp)
        img_path, res_path, host_path = tmp / "image.bin", tmp / "result.npz", tmp / "host.json"
        image.save(img_path)
        host_path.write_text(json.dumps(_host_plan(image)))
        env = {"TSP_IMAGE": str(img_path), "TSP_RESULT": str(res_path), "TSP_HOST": str(host_path),
               "TSP_TRACE": "1" if trace else "0", "TSP_MAX_CYCLES": str(max_cycles),
               "TSP_READBACK": readback,
               # cocotb rewrites the asserts of every module imported after it starts,
               # through pytest and its plugins: 2 s of CPU per run; the testbench has no
               # asserts to rewrite.
               "COCOTB_REWRITE_ASSERTION_FILES": "",
               "PYTHONPATH": os.pathsep.join([str(ROOT)] + sys.path)}
        runner.test(test_module="sim.cocotb_tb", hdl_toplevel=TOPLEVEL,
                    hdl_toplevel_lang="verilog", build_dir=build_dir,
                    test_dir=tmp, extra_env=env, waves=bool(waves), timescale=("1ns", "1ps"),
                    plusargs=[f"+dumpfile_path={tmp / 'waves.fst'}"] if waves else [],
                    log_file=tmp / "sim.log")
        if not res_path.exists():
            log = (tmp / "sim.log").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"the cocotb run produced no result; end of its log:\n{log}")
        got = dict(np.load(res_path))
        wave_path = None
        if waves:
            fst = tmp / "waves.fst"
            wave_path = Path(waves)
            wave_path.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(fst, wave_path)
            from sim.waves import write_gtkw
            write_gtkw(wave_path, image)
    memory = {k[4:]: v for k, v in got.items() if k.startswith("mem_")}
    result = RtlResult(
        cycles=int(got["cycles"]), errors=int(got["errors"]), err_queue=int(got["err_queue"]),
        err_cycle=int(got["err_cycle"]), memory=memory,
        outputs={name: image.read_output(name, memory) for name in image.outputs},
        golden_cycles=golden.cycles, golden_errors=golden.errors,
        hops=got.get("hops"), waves=wave_path,
        timings={k: float(got[k]) for k in ("load_s", "run_s", "readback_s", "load_cpu_s",
                                            "run_cpu_s", "readback_cpu_s")},
        ecc=EccStatus(corrected=int(got["ecc_corrected"]),
                      failed=bool(int(got["errors"]) & ErrorFlag.MEM_ECC),
                      slice=int(got["ecc_slice"]), tile=int(got["ecc_tile"]),
                      addr=int(got["ecc_addr"])))
    result.mismatches = compare(result, golden)
    if trace and result.mismatches:
        result.divergence = first_divergence(golden.trace, result.hops)
    return result


def _host_plan(image):
    """What the testbench needs of the host port, so that it does not import Amaranth
    (``rtl.top``: a second of start-up per run): the fields of the packed ``host``
    vector as (offset, width), the command codes, and the commands that load ``image``."""
    from rtl.top import HostCmd, host_layout, load_commands
    layout = host_layout(image.config)
    return {"fields": {name: [layout[name].offset, layout[name].width]
                       for name in ("cmd", "sel", "lane", "addr", "data")},
            "codes": {cmd.name: cmd.value for cmd in HostCmd},
            "load": [[cmd.value, operands] for cmd, operands in load_commands(image)]}


@contextlib.contextmanager
def _lock(path):
    """An exclusive lock on ``path`` for the block."""
    import fcntl
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def compare(rtl, golden):
    """Differences between an RTL result and the golden model's, as sentences."""
    out = []
    if rtl.cycles != golden.cycles:
        out.append(f"cycles: RTL {rtl.cycles}, golden model {golden.cycles}")
    if rtl.errors != golden.errors:
        out.append(f"errors: RTL {ErrorFlag(rtl.errors)!r}, golden model {ErrorFlag(golden.errors)!r}")
    if rtl.ecc != golden.ecc:
        out.append(f"ECC status: RTL {rtl.ecc}, golden model {golden.ecc}")
    for name, want in golden.memory.items():
        have = rtl.memory.get(name)
        if have is None:
            out.append(f"{name}: not read back from the RTL")
            continue
        bad = np.argwhere(have != want)
        if len(bad):
            a, lane = bad[0]
            out.append(f"{name}: {len(np.unique(bad[:, 0]))} words differ, first word {a:#x} "
                       f"lane {lane}: RTL {have[a, lane]:#04x}, golden model {want[a, lane]:#04x}")
    return out


def first_divergence(trace, hops):
    """The earliest (global cycle, then position) hop register where the RTL's
    ``hops`` ([cycles, 2, N, T, S, L]) differ from the golden ``trace``."""
    config = trace.config
    fp = config.floorplan
    T, L = config.tiles, config.lanes
    for g in range(len(hops)):
        for k in range(T):
            local = g - k
            if local >= trace.ncycles:
                continue
            for d, name in enumerate(("E", "W")):
                if local < 0:
                    want = np.zeros((fp.width, config.streams, L), np.uint8)
                else:
                    arr = trace.east if d == 0 else trace.west
                    want = arr[local, :, :, k * L:(k + 1) * L]
                have = hops[g, d, :, k]
                diff = np.argwhere(have != want)
                if len(diff):
                    p, s, lane = diff[0]
                    return Divergence(
                        cycle=g, local_cycle=local, tile=k, position=int(p),
                        slice=fp.slices[p].name, direction=name, stream=int(s),
                        lane=int(k * L + lane), expected=int(want[p, s, lane]),
                        actual=int(have[p, s, lane]),
                        in_flight={q: str(i) for q, i in
                                   (trace.issued[local].items() if 0 <= local < trace.ncycles
                                    else ())})
    return None


def main(argv=None):
    """``python -m sim.rtl_runner prog.s``: one program on the RTL, compared."""
    import argparse
    from firmware.asm import assemble_file
    p = argparse.ArgumentParser()
    p.add_argument("program")
    p.add_argument("--trace", action="store_true")
    args = p.parse_args(argv)
    res = run_image_rtl(assemble_file(args.program), trace=args.trace)
    print(res.summary())
    return 0 if res.agree else 1


if __name__ == "__main__":
    sys.exit(main())
