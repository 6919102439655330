"""Run a :class:`~firmware.image.ProgramImage` on the gateware, in Amaranth's simulator.

This is the host's side of the ``TSP`` host port (``rtl/top.py``), as an
async testbench: write every queue's words, the initial MEM words, the VXM
tables and the SXM maps; ``START``; wait for ``done``; read the cycle counter
and the error flags, and every MEM word (from the simulated block RAMs, or
through the host port with ``readback="host"``). The result has the same fields
as the golden model's (``sim.golden.run_image``), so the two compare directly.

Only what differs from the reset state is written: the tables reset to zero
and the maps to the identity, so zero table entries and identity map lanes
are skipped (it saves thousands of host cycles on the larger configurations).
"""

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from amaranth.hdl import Value
from amaranth.sim import Simulator

from firmware.ecc import EccStatus, correct_memory, encode_word
from firmware.isa import ErrorFlag
from firmware.machine import SliceKind

from rtl.top import START_TO_RUN, TSP, HostCmd, load_commands, read_mem_latency


__all__ = ["AmaranthResult", "SimulationTimeout", "run_image_amaranth"]


class SimulationTimeout(RuntimeError):
    """The gateware did not raise ``done`` within ``max_cycles`` cycles of ``START``."""


@dataclass
class AmaranthResult:
    cycles: int              # the TSP's cycle counter at done: H + T
    errors: int              # sticky ErrorFlag bits
    err_queue: int           # first error: queue index (len(queues) for DEADLOCK)
    err_cycle: int           # ... and its local cycle
    memory: dict             # MEM slice name -> uint8 [mem_words, VL]
    outputs: dict            # output name -> ndarray (ProgramImage.read_output)
    hops: np.ndarray | None = None   # with trace: [cycles, 2, N, T, S, L] hop registers
    ecc: EccStatus = EccStatus()     # the TSP's ECC status at done

    @property
    def error_flags(self):
        return ErrorFlag(self.errors)


def run_image_amaranth(image, max_cycles=100_000, vcd_path=None, kinds=tuple(SliceKind),
                       readback="direct", timings=None, trace=False, faults=(), classes=None):
    """Load ``image`` into a fresh ``TSP(image.config)``, run it, read everything back.

    ``max_cycles`` bounds the run (not the loading); past it
    :class:`SimulationTimeout` is raised instead of simulating forever.
    ``vcd_path`` writes the waveforms and their GTKWave save file (``sim/waves.py``);
    by default the folder of ``pytest --waves DIR`` gets one, else none is written.
    ``kinds`` and ``classes`` are passed to :class:`~rtl.top.TSP` (MEM-only runs in
    tests, broken variants).
    ``trace``: record every hop register of every running cycle in ``hops``
    (``[cycles, 2, N, T, S, L]``, the layout of :func:`sim.rtl_runner.first_divergence`).
    ``timings``: a dict that receives ``run_s``, the wall time from ``START`` to
    ``done`` (for speed measurements).
    ``readback``: ``"direct"`` takes the final memories from the simulator's block
    RAM state (fast); ``"host"`` reads every word through the host port, as a
    real host would (one simulated cycle per word and slice).
    ``faults``: :class:`firmware.ecc.Fault` s, flipped in the block RAMs in clock
    cycle ``fault.cycle + fault.tile`` after ``START`` (its local cycle), or
    after ``done`` if the run ends first (the golden model's ``faults``).
    """
    if readback not in ("direct", "host"):
        raise ValueError(f"readback must be 'direct' or 'host', not {readback!r}")
    c = image.config
    fp = c.floorplan
    dut = TSP(c, kinds=kinds, classes=classes)
    pending = {}                    # clock cycle -> [Fault]
    for fault in faults:
        fault.validate(c)
        # ``waited`` counts from the cycle after START's: local cycle 0 is START_TO_RUN - 1
        pending.setdefault(fault.cycle + fault.tile + START_TO_RUN - 1, []).append(fault)
    nbytes = fp.width * c.tiles * c.streams * c.lanes
    out = {}

    async def command(ctx, cmd, sel=0, lane=0, addr=0, data=0):
        ctx.set(dut.host, {"cmd": cmd, "sel": sel, "lane": lane, "addr": addr, "data": data})
        await ctx.tick()

    async def testbench(ctx):
        for cmd, operands in load_commands(image):
            await command(ctx, cmd, **operands)

        await command(ctx, HostCmd.START)
        ctx.set(dut.host.cmd, HostCmd.NONE)
        started = time.perf_counter()
        waited = 0
        hops = []
        while not ctx.get(dut.done):
            for fault in pending.pop(waited, ()):
                dut.mem_slices[fault.slice].inject(ctx, fault)
            if trace and ctx.get(dut.running):
                hops.append([_bytes(ctx.get(Value.cast(port)), nbytes)
                             for port in (dut.fabric.e_in, dut.fabric.w_in)])
            if waited > max_cycles:
                raise SimulationTimeout(f"{image.source or 'program'}: no done after "
                                        f"max_cycles = {max_cycles} cycles")
            await ctx.tick()
            waited += 1
        if timings is not None:
            timings["run_s"] = time.perf_counter() - started
        await ctx.tick()              # the ECC status settles one cycle after done
        if trace:
            out["hops"] = np.asarray(hops, np.uint8).reshape(
                len(hops), 2, fp.width, c.tiles, c.streams, c.lanes)
        out["cycles"] = ctx.get(dut.cycles)
        out["errors"] = ctx.get(dut.errors)
        out["err_queue"] = ctx.get(dut.err_queue)
        out["err_cycle"] = ctx.get(dut.err_cycle)
        out["ecc"] = EccStatus(corrected=ctx.get(dut.ecc_corrected),
                               failed=bool(out["errors"] & ErrorFlag.MEM_ECC),
                               slice=ctx.get(dut.ecc_slice), tile=ctx.get(dut.ecc_tile),
                               addr=ctx.get(dut.ecc_addr))
        for cycle in sorted(pending):       # faults the run did not reach
            for fault in pending.pop(cycle):
                dut.mem_slices[fault.slice].inject(ctx, fault)

        memory = {}
        for s in fp.of_kind(SliceKind.MEM):
            if readback == "host":
                memory[s.name] = await read_mem_host(ctx, s)
            else:
                memory[s.name] = read_mem_direct(ctx, dut.mem_slices[s.name])
        out["memory"] = memory
        # What a host reads back: the block RAMs hold flipped bits as flipped.
        out["readable"] = memory
        if faults and readback == "direct" and c.ecc:
            out["readable"] = {s.name: correct_memory(c, memory[s.name], read_checks_direct(
                ctx, dut.mem_slices[s.name], memory[s.name])) for s in fp.of_kind(SliceKind.MEM)}

    async def read_mem_host(ctx, s):
        """Every word through the host port, pipelined: READ_MEM's word is on ``rdata``
        ``read_mem_latency`` clock edges after its cycle (one simulated cycle per word)."""
        words = np.zeros((c.mem_words, c.vl), np.uint8)
        lat = read_mem_latency(c)
        ctx.set(dut.host.cmd, HostCmd.READ_MEM)
        ctx.set(dut.host.sel, s.pos)
        for a in range(c.mem_words + lat - 1):
            if a < c.mem_words:
                ctx.set(dut.host.addr, a)     # one field per cycle: the simulator's cost
            await ctx.tick()
            if a >= lat - 1:
                words[a - lat + 1] = np.frombuffer(ctx.get(dut.rdata).to_bytes(c.vl, "little"),
                                                   np.uint8)
        return words

    def read_mem_direct(ctx, mem_slice):
        """Every word from the simulator's view of the block RAMs (no clock cycles)."""
        L, bank_words = c.lanes, c.bank_words
        words = np.zeros((c.mem_words, c.vl), np.uint8)
        for k, banks in enumerate(mem_slice.banks):
            for b, bank in enumerate(banks):
                for row in range(bank_words):
                    words[b * bank_words + row, k * L:(k + 1) * L] = list(ctx.get(bank.data[row]))
        return words

    def read_checks_direct(ctx, mem_slice, words):
        """``{addr: [check bits per tile]}`` of the words whose stored check bits are
        not those of their data (after faults), from the simulated check RAMs."""
        out = {}
        for a in range(c.mem_words):
            stored = [ctx.get(mem.data[a]) for mem in mem_slice.checks]
            if stored != encode_word(c, words[a]):
                out[a] = stored
        return out

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    if vcd_path is None:
        from sim.waves import waves_for_test
        vcd_path = waves_for_test(".vcd")
    if vcd_path is not None:
        from sim.waves import write_gtkw
        Path(vcd_path).parent.mkdir(parents=True, exist_ok=True)
        with sim.write_vcd(str(vcd_path)):
            sim.run()
        write_gtkw(vcd_path, image)
    else:
        sim.run()

    outputs = {name: image.read_output(name, out["readable"]) for name in image.outputs}
    return AmaranthResult(cycles=out["cycles"], errors=out["errors"],
                          err_queue=out["err_queue"], err_cycle=out["err_cycle"],
                          memory=out["memory"], outputs=outputs, hops=out.get("hops"),
                          ecc=out["ecc"])


def _bytes(value, nbytes):
    return np.frombuffer(int(value).to_bytes(nbytes, "little"), np.uint8)
