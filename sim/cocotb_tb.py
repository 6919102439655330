"""cocotb testbench: the host side of the TSP's host port, on the Verilog of ``rtl/top.py``.

Launched by :mod:`sim.rtl_runner` (never by hand): it reads a program image
from ``$TSP_IMAGE``, loads it through the host port exactly as a host would
(queue words, MEM words, tables, maps), starts the machine, optionally records
every hop register of the stream fabric in every cycle, waits for ``done``,
reads every MEM word back and writes everything to the ``.npz`` named by
``$TSP_RESULT``. The read-back takes the words straight from the simulated
block RAMs (``$TSP_READBACK=direct``, the default: it costs no clock cycles)
or through the host port (``host``: one cycle per word, as a real host). Comparing with the golden model is the
runner's job, in the pytest process.
"""

import json
import os
import time
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, RisingEdge

from firmware.image import ProgramImage
from firmware.machine import SliceKind
from rtl.top import START_TO_RUN, read_mem_latency
from sim.icarus_verilog import flat_name, readback_file


class TB:
    """Owns the clock, the reset and the host port of one ``tsp`` instance.

    The host drives the port at falling edges and samples at falling edges, so
    every value it reads has settled and every command it sets is taken by the
    next rising edge: one command per clock cycle, like the host link will.
    """

    def __init__(self, dut, config, host):
        self.dut = dut
        self.config = config
        self.fp = config.floorplan
        self.host_cycles = 0
        # The host port is one packed vector in the Verilog: place each field by
        # the offsets of the layout the gateware itself uses (``rtl.top.host_layout``,
        # handed over by the runner in ``host``, with the command codes and the load).
        self._fields = {name: tuple(f) for name, f in host["fields"].items()}
        self.code = host["codes"]
        self._load = host["load"]
        self._hop_handles = None

    def find(self, path):
        """The handle of ``path`` (``"fabric.east_3"``, ``"MEM_E0.tile0_bank0"``), or
        ``None``: an escaped name in the flat simulation Verilog
        (``sim/icarus_verilog.py``)."""
        return self.dut._get(flat_name(path))

    def _host(self, **values):
        word = 0
        for name, (offset, width) in self._fields.items():
            v = values.get(name, 0)
            if not 0 <= v < 1 << width:
                raise ValueError(f"host.{name} = {v} does not fit {width} bits")
            word |= v << offset
        self.dut.host.value = word

    async def reset(self):
        cocotb.start_soon(Clock(self.dut.clk, 10, unit="ns").start())
        self._host(cmd=self.code["NONE"])
        self.dut.rst.value = 1
        for _ in range(2):
            await RisingEdge(self.dut.clk)
        await FallingEdge(self.dut.clk)
        self.dut.rst.value = 0

    async def command(self, cmd, sel=0, lane=0, addr=0, data=0):
        """Set command ``cmd`` (its name) at the next falling edge; the rising edge
        after takes it."""
        await FallingEdge(self.dut.clk)
        self._host(cmd=self.code[cmd], sel=sel, lane=lane, addr=addr, data=data)
        self.host_cycles += 1

    async def load(self):
        """The commands of ``rtl.top.load_commands(image)``, one per cycle."""
        for code, operands in self._load:
            await FallingEdge(self.dut.clk)
            self._host(cmd=code, **operands)
            self.host_cycles += 1

    def _hops(self):
        """Every hop register now, uint8 [2, N, T, S, L] (east, west)."""
        c = self.config
        nbytes = c.tiles * c.streams * c.lanes
        if self._hop_handles is None:       # looked up once, read every cycle
            n = self.fp.width
            # east[0] and west[N-1] are constant zero (nothing enters at the edges).
            self._hop_handles = [(d, p, self.find(f"fabric.{prefix}_{p}"))
                                 for d, (prefix, ps) in enumerate((("east", range(1, n)),
                                                                   ("west", range(n - 1))))
                                 for p in ps]
            missing = [f"{('east', 'west')[d]}_{p}" for d, p, h in self._hop_handles if h is None]
            if missing:
                raise RuntimeError(f"hop registers not found in the Verilog: {', '.join(missing)}")
        out = np.zeros((2, self.fp.width, nbytes), np.uint8)
        for d, p, handle in self._hop_handles:
            out[d, p] = np.frombuffer(_unsigned(handle._handle).to_bytes(nbytes, "little"),
                                      np.uint8)
        return out.reshape(2, self.fp.width, c.tiles, c.streams, c.lanes)

    async def run(self, max_cycles, trace):
        """START, then one falling edge per cycle until done; the hops of every
        running cycle when ``trace``."""
        d = self.dut
        await self.command("START")
        for _ in range(START_TO_RUN):           # START was taken, then the prime cycle:
            await self.command("NONE")          # this is local cycle 0
        hops = []
        cycle = 0
        while int(d.running.value):
            if trace:
                hops.append(self._hops())
            cycle += 1
            if cycle > max_cycles:
                raise RuntimeError(f"no done after {max_cycles} cycles")
            await FallingEdge(d.clk)
        if not int(d.done.value):
            raise RuntimeError("the machine stopped running without raising done")
        return np.stack(hops) if trace else None

    def peek_memories(self):
        """Every word of every MEM slice straight from the simulator's block-RAM
        arrays (``<slice>.tile<k>_bank<b>``, ``rtl/mem.py``): no clock cycles. The
        readback module of ``sim/icarus_verilog.py`` dumps them with ``$writememh``
        1 ns after ``done`` rises, into the working directory."""
        c = self.config
        mems = {}
        for s in self.fp.of_kind(SliceKind.MEM):
            arr = np.zeros((c.mem_words, c.tiles, c.lanes), np.uint8)
            for k in range(c.tiles):
                for b in range(2):
                    path = Path(readback_file(f"{s.name}.tile{k}_bank{b}"))
                    if not path.exists():
                        raise RuntimeError(f"{path.resolve()}: the readback module wrote no "
                                           f"dump of this block RAM at done")
                    words = [w.strip() for w in path.read_text().splitlines()
                             if w.strip() and not w.startswith("//")]     # "// 0x..": addresses
                    if len(words) != c.bank_words:
                        raise RuntimeError(f"{path}: {len(words)} words, the bank has {c.bank_words}")
                    try:
                        raw = bytes.fromhex("".join(words))     # word by word, lane L-1 first
                    except ValueError:
                        raise RuntimeError(f"{path}: x or z bits in the block RAM") from None
                    arr[b * c.bank_words:(b + 1) * c.bank_words, k] = np.frombuffer(
                        raw, np.uint8).reshape(c.bank_words, c.lanes)[:, ::-1]
            mems[s.name] = arr.reshape(c.mem_words, c.vl)
        return mems

    async def read_memories(self):
        """Every word of every MEM slice through the host port, pipelined: the word
        asked for in one cycle is on ``rdata`` ``read_mem_latency`` cycles later."""
        c = self.config
        lat = read_mem_latency(c)
        mems = {}
        for s in self.fp.of_kind(SliceKind.MEM):
            arr = np.zeros((c.mem_words, c.vl), np.uint8)
            for addr in range(c.mem_words + lat):
                if addr < c.mem_words:
                    await self.command("READ_MEM", sel=s.pos, addr=addr)
                else:
                    await self.command("NONE")
                if addr >= lat:
                    arr[addr - lat] = np.frombuffer(
                        self.dut.rdata.value.to_unsigned().to_bytes(c.vl, "little"), np.uint8)
            mems[s.name] = arr
        return mems


def _unsigned(gpi_handle):
    """The value of a simulator object as an unsigned int, read from cocotb's GPI handle
    (``handle._handle``; cocotb 2.1 is pinned). ``handle.value.to_unsigned()`` builds a
    ``LogicArray`` first and costs 2.5 times as much (42 against 18 us for a 128-bit hop
    register, measured on Icarus), which the hop trace pays every cycle."""
    bits = gpi_handle.get_signal_val_binstr()
    try:
        return int(bits, 2)
    except ValueError:
        raise RuntimeError(f"{gpi_handle.get_name_string()} = {bits}: not a number "
                           f"(x or z bits in the simulation)") from None


@cocotb.test()
async def run_program(dut):
    image = ProgramImage.load(os.environ["TSP_IMAGE"])
    trace = os.environ.get("TSP_TRACE") == "1"
    max_cycles = int(os.environ.get("TSP_MAX_CYCLES", "1000000"))
    with open(os.environ["TSP_HOST"]) as f:
        tb = TB(dut, image.config, json.load(f))
    # Wall time and CPU time of this process (Icarus and cocotb's Python together):
    # the CPU time still means something on a machine shared with other jobs.
    t0, c0 = time.perf_counter(), time.process_time()
    await tb.reset()
    await tb.load()
    t1, c1 = time.perf_counter(), time.process_time()
    hops = await tb.run(max_cycles, trace)
    await FallingEdge(dut.clk)          # the ECC status settles one cycle after done
    t2, c2 = time.perf_counter(), time.process_time()
    result = {
        "cycles": int(dut.cycles.value),
        "errors": int(dut.errors.value),
        "err_queue": int(dut.err_queue.value),
        "err_cycle": int(dut.err_cycle.value),
        **{name: int(getattr(dut, name).value)
           for name in ("ecc_corrected", "ecc_slice", "ecc_tile", "ecc_addr")},
        "host_cycles": tb.host_cycles,
    }
    if os.environ.get("TSP_READBACK", "direct") == "host":
        mems = await tb.read_memories()
    else:
        mems = tb.peek_memories()
    result.update(load_s=t1 - t0, run_s=t2 - t1, readback_s=time.perf_counter() - t2,
                  load_cpu_s=c1 - c0, run_cpu_s=c2 - c1, readback_cpu_s=time.process_time() - c2)
    arrays = {f"mem_{k}": v for k, v in mems.items()}
    if hops is not None:
        arrays["hops"] = hops
    np.savez(os.environ["TSP_RESULT"], **arrays, **{k: np.asarray(v) for k, v in result.items()})
