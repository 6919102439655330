"""Fault-injection campaign on the MEM's SECDED ECC: injected / corrected / detected counts.

    .venv/bin/python scripts/fault_inject.py [--config tiny] [--engine golden|amaranth|both]
                                             [--count N] [--seed S]

The program copies ``WORDS`` words of random data from ``MEM_W0`` to ``MEM_E1``
(``MEM_W0`` reads word ``a`` in local cycle ``a``). Every trial flips one or two
random bits (data or check bits, 50/50) of one random tile codeword of one random
source word, at a random local cycle before or after that word's read, and runs the
program (``firmware.ecc.Fault``, docs/ARCHITECTURE.md section 11). What must happen:

* a single-bit fault the read sees is corrected: ``ecc_corrected`` is 1 and the copy
  is the fault-free one;
* a double-bit fault the read sees is detected: ``MEM_ECC`` with that slice, tile and
  address, the run goes to its end, and the copy differs only in the flipped data bits;
* a fault after the read changes nothing the program sees (a latent fault).

``golden`` runs the golden model per trial; ``amaranth`` runs the MEM-only TSP in
Amaranth's simulator, one machine for every trial (the host rewrites the source words
between trials, which also rewrites their check bits), and compares each trial with the
golden model too. The script prints the counts and exits 1 if any fault was missed or
the engines disagree.
"""

import argparse
import os
import sys
import time
from dataclasses import dataclass

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from firmware.ecc import EccStatus, Fault, code_for  # noqa: E402
from firmware.image import Output, ProgramImage  # noqa: E402
from firmware.isa import ErrorFlag, Instr, encode  # noqa: E402
from firmware.machine import ConfigError, SliceKind, get_config  # noqa: E402
from sim.golden import run_image  # noqa: E402


WORDS = 16
SRC, DST = "MEM_W0", "MEM_E1"
DST_ADDR = 0x40


def program(config, seed):
    """The copy program: ``MEM_W0`` reads words 0..WORDS-1 in cycles 0..WORDS-1;
    ``MEM_E1`` writes each to ``DST_ADDR + a`` as it passes. Output ``y``: the copies."""
    fp = config.floorplan
    img = ProgramImage(config)
    rng = np.random.default_rng(seed)
    img.set_words(SRC, 0, rng.integers(0, 256, (WORDS, config.vl), dtype=np.uint8))
    hops = abs(fp.slice(DST).pos - fp.slice(SRC).pos)

    def mem(mnemonic, **fields):
        return encode(Instr(SliceKind.MEM, mnemonic, fields))
    img.queues[SRC] = [mem("READ", addr=0), mem("REPEAT", n=WORDS - 1, d=1, stride=1)]
    img.queues[DST] = [mem("NOP", n=config.latency.mem_read + hops), mem("WRITE", addr=DST_ADDR),
                       mem("REPEAT", n=WORDS - 1, d=1, stride=1)]
    img.outputs["y"] = Output("y", DST, DST_ADDR, WORDS, "u8")
    return img


def random_faults(config, count, seed):
    """``count`` faults, one per trial: half single-bit, half double-bit; four in five
    before (or in) the cycle their word is read, the rest after it."""
    rng = np.random.default_rng(seed)
    width = code_for(config).codeword_bits
    out = []
    for i in range(count):
        bits = tuple(int(b) for b in rng.choice(width, 1 + i % 2, replace=False))
        addr = int(rng.integers(0, WORDS))
        cycle = int(rng.integers(0, addr + 1) if rng.random() < 0.8 else
                    rng.integers(addr + 1, WORDS + 2))
        out.append(Fault(cycle=cycle, slice=SRC, tile=int(rng.integers(0, config.tiles)),
                         addr=addr, bits=bits))
    return out


@dataclass
class Trial:
    """What one run shows the host: flags, ECC status, the copies, the stored source word."""
    errors: int
    ecc: object
    copies: np.ndarray
    source: np.ndarray


def golden_trial(image, fault):
    res = run_image(image, faults=[fault])
    return Trial(res.errors, res.ecc, res.outputs["y"], res.memory[SRC][fault.addr])


def judge(config, fault, trial, clean):
    """``(kind, ok)``: whether ``trial`` is what ``fault`` must cause (module docstring)."""
    seen = fault.cycle <= fault.addr             # the read of word a is in local cycle a
    double = len(fault.bits) == 2
    W0 = config.floorplan.slice(SRC).pos
    want_copies = clean.copy()
    if double and seen:
        mask, _ = fault.masks(config)
        L = config.lanes
        lanes = slice(fault.tile * L, (fault.tile + 1) * L)
        v = int.from_bytes(want_copies[fault.addr, lanes].tobytes(), "little") ^ mask
        want_copies[fault.addr, lanes] = np.frombuffer(v.to_bytes(L, "little"), np.uint8)
    if not seen:
        ok = trial.errors == 0 and trial.ecc.corrected == 0
    elif double:
        ok = (trial.errors == ErrorFlag.MEM_ECC and trial.ecc.corrected == 0
              and (trial.ecc.slice, trial.ecc.tile, trial.ecc.addr) == (W0, fault.tile, fault.addr))
    else:
        ok = trial.errors == 0 and trial.ecc.corrected == 1 and not trial.ecc.failed
    ok = ok and np.array_equal(trial.copies, want_copies)
    kind = ("double" if double else "single", "read" if seen else "latent")
    return kind, ok


def amaranth_trials(config, image, faults, progress):
    """Every fault in turn on one MEM-only TSP in Amaranth's simulator."""
    from amaranth.sim import Simulator
    from rtl.top import START_TO_RUN, TSP, HostCmd, load_commands
    dut = TSP(config, kinds=(SliceKind.MEM,))
    dst, src = dut.mem_slices[DST], dut.mem_slices[SRC]
    L, bank_words = config.lanes, config.bank_words
    out = []

    def word(ctx, mem_slice, addr):
        return np.concatenate([np.asarray(list(ctx.get(banks[addr // bank_words].data[addr % bank_words])),
                                          np.uint8) for banks in mem_slice.banks])

    async def command(ctx, cmd, **ops):
        ctx.set(dut.host, {"cmd": cmd, "sel": 0, "lane": 0, "addr": 0, "data": 0, **ops})
        await ctx.tick()

    async def testbench(ctx):
        commands = list(load_commands(image))
        restore = [(cmd, ops) for cmd, ops in commands if cmd is HostCmd.WRITE_MEM]
        for cmd, ops in commands:
            await command(ctx, cmd, **ops)
        for i, fault in enumerate(faults):
            if i:
                for cmd, ops in restore:         # the source words and their check bits, clean
                    await command(ctx, cmd, **ops)
            await command(ctx, HostCmd.START)
            ctx.set(dut.host.cmd, HostCmd.NONE)
            # g counts from the cycle after START's; local cycle 0 is START_TO_RUN - 1
            at, g = fault.cycle + fault.tile + START_TO_RUN - 1, 0
            while not ctx.get(dut.done):
                if g == at:
                    src.inject(ctx, fault)
                await ctx.tick()
                g += 1
                if g > 10 * WORDS:
                    raise RuntimeError(f"trial {i}: no done after {g} cycles")
            await ctx.tick()                       # the ECC status settles a cycle after done
            if at >= g:                            # after the run's end
                src.inject(ctx, fault)
            errors = ctx.get(dut.errors)
            ecc = EccStatus(corrected=ctx.get(dut.ecc_corrected),
                            failed=bool(errors & ErrorFlag.MEM_ECC), slice=ctx.get(dut.ecc_slice),
                            tile=ctx.get(dut.ecc_tile), addr=ctx.get(dut.ecc_addr))
            copies = np.stack([word(ctx, dst, DST_ADDR + a) for a in range(WORDS)])
            out.append(Trial(errors, ecc, copies, word(ctx, src, fault.addr)))
            progress(i + 1)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    assert len(out) == len(faults)
    return out


def same(a, b):
    return (a.errors == b.errors and a.ecc == b.ecc and np.array_equal(a.copies, b.copies)
            and np.array_equal(a.source, b.source))


def campaign(config, engine, count, seed, out=sys.stdout):
    """Run the campaign; return ``(counts, failures)``."""
    image = program(config, seed)
    clean = run_image(image).outputs["y"]
    faults = random_faults(config, count, seed + 1)
    counts = {}
    failures = []

    def progress(done, total=count, started=time.time()):
        if out is not None and out.isatty() and (done % 25 == 0 or done == total):
            out.write(f"\r  {done}/{total} trials, {time.time() - started:.0f} s")
            out.flush()

    golden = []
    for i, f in enumerate(faults):
        golden.append(golden_trial(image, f))
        if engine == "golden":
            progress(i + 1)
    runs = {"golden": golden}
    if engine in ("amaranth", "both"):
        runs["amaranth"] = amaranth_trials(config, image, faults, progress)
    if out is not None and out.isatty():
        out.write("\n")
    for i, f in enumerate(faults):
        kind, _ = judge(config, f, golden[i], clean)
        counts[kind] = counts.get(kind, [0, 0])
        counts[kind][0] += 1
        good = True
        for name, trials in runs.items():
            _, ok = judge(config, f, trials[i], clean)
            if not ok:
                failures.append(f"{name}: {f}: unexpected {trials[i].errors=}, {trials[i].ecc}")
                good = False
            if name != "golden" and not same(trials[i], golden[i]):
                failures.append(f"{name} differs from the golden model: {f}")
                good = False
        counts[kind][1] += good
    return counts, failures


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="tiny")
    ap.add_argument("--engine", choices=("golden", "amaranth", "both"), default="golden")
    ap.add_argument("--count", type=int, default=1000, help="trials, one fault each")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    try:
        config = get_config(args.config)
    except ConfigError as e:
        ap.error(str(e))
    if not config.ecc:
        ap.error(f"config {config.name!r} has no ECC (Config.ecc is false)")
    if config.mem_slices < 2:
        ap.error(f"config {config.name!r}: the campaign copies MEM_W0 -> MEM_E1, which needs "
                 "2 MEM slices per hemisphere")
    if args.count < 1:
        ap.error("--count must be at least 1")
    engines = "golden model and gateware" if args.engine == "both" else args.engine
    print(f"{args.count} trials on {config.name} ({engines}), seed {args.seed}")
    started = time.time()
    counts, failures = campaign(config, args.engine, args.count, args.seed)
    single = [counts.get(("single", s), [0, 0]) for s in ("read", "latent")]
    double = [counts.get(("double", s), [0, 0]) for s in ("read", "latent")]
    print(f"injected: {sum(n for n, _ in single + double)} faults "
          f"({sum(n for n, _ in single)} single-bit, {sum(n for n, _ in double)} double-bit)")
    print(f"single-bit: {single[0][0]} read by the program, {single[0][1]} corrected "
          f"(copy unchanged, counted once); {single[1][0]} after the read, "
          f"{single[1][1]} without effect")
    print(f"double-bit: {double[0][0]} read by the program, {double[0][1]} detected "
          f"(MEM_ECC at the right slice, tile and address, run completed); "
          f"{double[1][0]} after the read, {double[1][1]} without effect")
    print(f"failures: {len(failures)}  ({time.time() - started:.1f} s)")
    for line in failures[:20]:
        print("  " + line)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
