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

import os
import time

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, RisingEdge

from firmware.image import ProgramImage
from firmware.machine import SliceKind
from rtl.top import HostCmd, host_layout, load_commands


class TB:
    """Owns the clock, the reset and the host port of one ``tsp`` instance.

    The host drives the port at falling edges and samples at falling edges, so
    every value it reads has settled and every command it sets is taken by the
    next rising edge: one command per clock cycle, like the host link will.
    """

    def __init__(self, dut, config):
        self.dut = dut
        self.config = config
        self.fp = config.floorplan
        self.host_cycles = 0
        # The host port is one packed vector in the Verilog: place each field by
        # the offsets of the layout the gateware itself uses.
        layout = host_layout(config)
        self._fields = {name: (layout[name].offset, layout[name].width)
                        for name in ("cmd", "sel", "lane", "addr", "data")}

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
        self._host(cmd=HostCmd.NONE.value)
        self.dut.rst.value = 1
        for _ in range(2):
            await RisingEdge(self.dut.clk)
        await FallingEdge(self.dut.clk)
        self.dut.rst.value = 0

    async def command(self, cmd, sel=0, lane=0, addr=0, data=0):
        """Set one command at the next falling edge; the rising edge after takes it."""
        await FallingEdge(self.dut.clk)
        self._host(cmd=cmd.value, sel=sel, lane=lane, addr=addr, data=data)
        self.host_cycles += 1

    async def load(self, image):
        for cmd, operands in load_commands(image):
            await self.command(cmd, **operands)

    def _hops(self):
        """Every hop register now, uint8 [2, N, T, S, L] (east, west)."""
        c = self.config
        nbytes = c.tiles * c.streams * c.lanes
        out = np.zeros((2, self.fp.width, nbytes), np.uint8)
        fabric = self.dut.fabric
        for p in range(self.fp.width):
            for d, prefix in enumerate(("east", "west")):
                handle = getattr(fabric, f"{prefix}_{p}", None)
                if handle is not None:      # the edge registers are constant zero
                    out[d, p] = np.frombuffer(
                        handle.value.to_unsigned().to_bytes(nbytes, "little"), np.uint8)
        return out.reshape(2, self.fp.width, c.tiles, c.streams, c.lanes)

    async def run(self, max_cycles, trace):
        """START, then one falling edge per cycle until done; the hops of every
        running cycle when ``trace``."""
        d = self.dut
        await self.command(HostCmd.START)
        await self.command(HostCmd.NONE)        # START was taken: this is local cycle 0
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
        arrays (``<slice>.tile<k>_bank<b>``, ``rtl/mem.py``): no clock cycles."""
        c = self.config
        mems = {}
        for s in self.fp.of_kind(SliceKind.MEM):
            handle = getattr(self.dut, s.name)
            arr = np.zeros((c.mem_words, c.tiles, c.lanes), np.uint8)
            for k in range(c.tiles):
                for b in range(2):
                    bank = getattr(handle, f"tile{k}_bank{b}")
                    for w in range(c.bank_words):
                        v = bank[w].value.to_unsigned()
                        arr[b * c.bank_words + w, k] = np.frombuffer(
                            v.to_bytes(c.lanes, "little"), np.uint8)
            mems[s.name] = arr.reshape(c.mem_words, c.vl)
        return mems

    async def read_memories(self):
        """Every word of every MEM slice through the host port, pipelined: the word
        asked for in one cycle is on ``rdata`` in the next."""
        c = self.config
        mems = {}
        for s in self.fp.of_kind(SliceKind.MEM):
            arr = np.zeros((c.mem_words, c.vl), np.uint8)
            for addr in range(c.mem_words + 1):
                if addr < c.mem_words:
                    await self.command(HostCmd.READ_MEM, sel=s.pos, addr=addr)
                else:
                    await self.command(HostCmd.NONE)
                if addr:
                    arr[addr - 1] = np.frombuffer(
                        self.dut.rdata.value.to_unsigned().to_bytes(c.vl, "little"), np.uint8)
            mems[s.name] = arr
        return mems


@cocotb.test()
async def run_program(dut):
    image = ProgramImage.load(os.environ["TSP_IMAGE"])
    trace = os.environ.get("TSP_TRACE") == "1"
    max_cycles = int(os.environ.get("TSP_MAX_CYCLES", "1000000"))
    tb = TB(dut, image.config)
    t0 = time.perf_counter()
    await tb.reset()
    await tb.load(image)
    t1 = time.perf_counter()
    hops = await tb.run(max_cycles, trace)
    t2 = time.perf_counter()
    result = {
        "cycles": int(dut.cycles.value),
        "errors": int(dut.errors.value),
        "err_queue": int(dut.err_queue.value),
        "err_cycle": int(dut.err_cycle.value),
        "host_cycles": tb.host_cycles,
    }
    if os.environ.get("TSP_READBACK", "direct") == "host":
        mems = await tb.read_memories()
    else:
        mems = tb.peek_memories()
    result.update(load_s=t1 - t0, run_s=t2 - t1, readback_s=time.perf_counter() - t2)
    arrays = {f"mem_{k}": v for k, v in mems.items()}
    if hops is not None:
        arrays["hops"] = hops
    np.savez(os.environ["TSP_RESULT"], **arrays, **{k: np.asarray(v) for k, v in result.items()})
