"""The whole TSP: the ICU's queues, the slices of the floorplan, the stream fabric, the host port.

The host port (``docs/ARCHITECTURE.md`` section 9) is one command per cycle
on ``host``; every command except ``NONE`` is ignored while the machine runs.

==============  =========================================================
``cmd``         meaning of ``sel`` / ``lane`` / ``addr`` / ``data``
==============  =========================================================
``WRITE_INSTR`` queue ``sel`` (index in ``Floorplan.queues``), word ``addr`` = ``data``
``WRITE_MEM``   MEM slice at position ``sel``, word ``addr`` = ``data`` (lane 0 in bits 0..7)
``READ_MEM``    MEM slice at position ``sel``, word ``addr``: on ``rdata`` ``read_mem_latency`` cycles later
``WRITE_LUT``   VXM table of lane ``lane``, entry ``addr`` = ``data[0:8]``
``WRITE_MAP``   SXM at position ``sel``: ``map[addr][lane] = data`` (a source lane)
``START``       clear fabric, sequencers and errors; local cycle 0 is ``START_TO_RUN`` cycles later
==============  =========================================================

Status: ``running``, ``done``, ``cycles`` (counts the running cycles, so it
reads ``H + T`` once ``done``), ``errors`` (sticky ``ErrorFlag`` bits),
``err_queue`` and ``err_cycle`` (the first error: index of the queue that
raised it, or of the first queue of the slice that raised it, or the number
of queues for ``DEADLOCK``; the lowest such index when several raise in that
cycle; and its local cycle as tile 0 sees it; both settle one cycle after
``errors``, so at the latest one cycle after ``done``). ECC (``firmware/ecc.py``):
``ecc_corrected`` counts the single-bit errors the MEM reads corrected;
``errors.MEM_ECC`` says a read found an uncorrectable one (it does not stop
the machine and is not an ``err_queue``/``err_cycle`` error), and
``ecc_slice``, ``ecc_tile``, ``ecc_addr`` say where the first was. All of them
are cleared by ``START``. They settle one cycle after ``done`` (and so does the
``MEM_ECC`` bit of ``errors``): the MEM tiles' reports are registered before they
are counted, which keeps the counting off the read path.
"""


import importlib

import numpy as np

from amaranth.hdl import Module, Signal, Cat
from amaranth.lib import data, enum, wiring
from amaranth.lib.wiring import In, Out

from firmware.isa import ERROR_BITS, ErrorFlag
from firmware.machine import SliceKind

from .icu import InstructionQueue, flag_bit
from .fabric import StreamFabric
from .mem import MemSlice


__all__ = ["HostCmd", "host_layout", "load_commands", "TSP", "slice_class", "START_TO_RUN",
           "read_mem_latency"]

#: Width of the cycle counters (``cycles``, ``err_cycle``).
CYCLE_BITS = 32

#: Clock cycles from the cycle of the host's ``START`` to local cycle 0: the queues take
#: ``start`` in the next cycle (loading word 0 into a fetch register) and their
#: sequencers decide cycle 0 in the one after (``rtl/icu.py``).
START_TO_RUN = 3


def read_mem_latency(config):
    """Clock cycles from a ``READ_MEM`` command to its word on ``rdata``: the MEM slice's
    read latency (``Latencies.mem_read``; 2 with ``Config.mem_read_reg``). The top adds
    no register of its own, so a host reads every word the way a ``READ`` does."""
    return config.latency.mem_read


#: Width of ``host.addr``: the widest index it carries (instruction words up to 2**16).
HOST_ADDR_BITS = 16


class HostCmd(enum.Enum, shape=3):
    NONE = 0
    WRITE_INSTR = 1
    WRITE_MEM = 2
    READ_MEM = 3
    WRITE_LUT = 4
    WRITE_MAP = 5
    START = 6


def host_layout(config):
    """One host command: ``cmd`` and its operands (see the module docstring)."""
    fp = config.floorplan
    return data.StructLayout({
        "cmd":  HostCmd,
        "sel":  range(max(len(fp.queues), fp.width)),
        "lane": range(config.vl),
        "addr": HOST_ADDR_BITS,
        "data": max(8 * config.vl, 64),
    })


def load_commands(image):
    """The host commands that load ``image`` into a freshly reset TSP, in order, as
    ``(cmd, {"sel": .., "lane": .., "addr": .., "data": ..})``: every queue's words,
    the initial MEM words, then the table entries and map lanes that differ from
    the reset state (tables reset to zero, maps to the identity), which saves
    thousands of host cycles on the larger configurations."""
    c = image.config
    fp = c.floorplan
    for name, words in image.queues.items():
        index = fp.queues.index(fp.queue(name))
        if len(words) > c.queue_depth:
            raise ValueError(f"queue {name}: {len(words)} words, its instruction memory "
                             f"holds {c.queue_depth}")
        for i, w in enumerate(words):
            yield HostCmd.WRITE_INSTR, {"sel": index, "addr": i, "data": int(w)}
    for name, words in image.memory.items():
        pos = fp.slice(name).pos
        for a, v in sorted(words.items()):
            yield HostCmd.WRITE_MEM, {"sel": pos, "addr": a,
                                      "data": int.from_bytes(np.asarray(v, np.uint8).tobytes(),
                                                             "little")}
    if image.lut is not None:
        lut = np.asarray(image.lut, np.int8).reshape(c.vl, -1).view(np.uint8)
        for lane, index in zip(*np.nonzero(lut)):
            yield HostCmd.WRITE_LUT, {"lane": int(lane), "addr": int(index),
                                      "data": int(lut[lane, index])}
    for name, maps in image.perms.items():
        pos = fp.slice(name).pos
        for map_id, lanes in maps.items():
            for lane, src in enumerate(lanes):
                if src != lane:
                    yield HostCmd.WRITE_MAP, {"sel": pos, "lane": lane, "addr": map_id,
                                              "data": int(src)}


_SLICE_MODULES = {SliceKind.VXM: ("rtl.vxm", "VxmSlice"),
                  SliceKind.MXM: ("rtl.mxm", "MxmSlice"),
                  SliceKind.SXM: ("rtl.sxm", "SxmSlice")}


def slice_class(kind):
    """The component class of a slice kind, or ``None`` while its module is not written yet."""
    if kind is SliceKind.MEM:
        return MemSlice
    module, name = _SLICE_MODULES[kind]
    try:
        return getattr(importlib.import_module(module), name)
    except ModuleNotFoundError:
        return None


class TSP(wiring.Component):
    """The tensor streaming processor of ``config``.

    ``kinds`` limits the slice kinds built (tests of the MEM path alone); a
    position without a component only passes its streams through, and its
    queues still run (they issue to nobody). ``classes`` builds other components
    in their place: ``{slice name or SliceKind or "fabric": class}`` (the broken
    variants of ``sim/broken.py`` that prove the debugging tools find a fault).

    Members
    -------
    host : In(host_layout(config))
    rdata : Out(8 * VL)
        ``READ_MEM`` result, :func:`read_mem_latency` cycles after the command.
    running, done : Out(1)
    cycles, err_cycle : Out(32)
    errors : Out(ERROR_BITS)
    err_queue : Out(range(queues + 1))
    ecc_corrected : Out(32)
        Single-bit errors corrected by the reads of this run (one per tile codeword).
    ecc_slice, ecc_tile, ecc_addr : Out
        The first uncorrectable read (``errors.MEM_ECC``): slice position, tile, address.
    """

    def __init__(self, config, kinds=tuple(SliceKind), classes=None):
        self._config = config
        fp = config.floorplan
        super().__init__({
            "host":      In(host_layout(config)),
            "rdata":     Out(8 * config.vl),
            "running":   Out(1),
            "done":      Out(1),
            "cycles":    Out(CYCLE_BITS),
            "errors":    Out(ERROR_BITS),
            "err_queue": Out(range(len(fp.queues) + 1)),
            "err_cycle": Out(CYCLE_BITS),
            "ecc_corrected": Out(CYCLE_BITS),
            "ecc_slice": Out(range(fp.width)),
            "ecc_tile":  Out(range(config.tiles)),
            "ecc_addr":  Out(range(config.mem_words)),
        })
        self.queues = [InstructionQueue(config, q) for q in fp.queues]
        classes = classes or {}
        self.fabric = classes.get("fabric", StreamFabric)(config)
        #: position -> slice component (``None``: not in ``kinds``, or its module is not written yet)
        self.slices = {}
        for s in fp.slices:
            cls = slice_class(s.kind) if s.kind in kinds else None
            if cls is not None:
                cls = classes.get(s.name, classes.get(s.kind, cls))
            if cls is None:
                self.slices[s.pos] = None
            elif s.kind is SliceKind.VXM:
                self.slices[s.pos] = cls(config)
            else:
                self.slices[s.pos] = cls(config, s)

    @property
    def config(self):
        return self._config

    @property
    def mem_slices(self):
        """MEM slice name -> :class:`MemSlice` (simulation reads their banks)."""
        fp = self._config.floorplan
        return {s.name: self.slices[s.pos] for s in fp.of_kind(SliceKind.MEM)}

    def elaborate(self, platform):
        m = Module()
        c = self._config
        fp = c.floorplan
        host = self.host
        # START in cycle S (``go``): the queues take ``start`` in S + 1 (a queue with a
        # fetch register loads word 0, which the block RAM read in S, a cycle in which
        # the host wrote nothing), their sequencers decide local cycle 0 in S + 2
        # (``prime``), and the machine runs from S + 3 (local cycle 0).
        assert START_TO_RUN == 3, "start and prime cycles between START and local cycle 0"
        start = Signal()
        prime = Signal()
        idle = ~self.running & ~start & ~prime
        go = idle & (host.cmd == HostCmd.START)
        m.d.sync += [start.eq(go), prime.eq(start)]

        running = Signal()
        m.d.comb += self.running.eq(running)
        errors = Signal(ERROR_BITS)       # the stopping errors (all but MEM_ECC)

        m.submodules.fabric = fabric = self.fabric
        m.d.comb += fabric.clear.eq(prime)

        # -- queues --------------------------------------------------------------
        notified = Signal()
        # a queue's notify output is a register: the OR is all that runs between queues
        any_notify = Cat(q.notify for q in self.queues).any()
        for i, q in enumerate(self.queues):
            m.submodules[f"q_{q.queue.name}"] = q
            m.d.comb += [
                q.imem_w.en.eq(idle & (host.cmd == HostCmd.WRITE_INSTR) & (host.sel == i)),
                q.imem_w.addr.eq(host.addr),
                q.imem_w.data.eq(host.data),
                q.start.eq(start),
                q.stop.eq(errors.any()),
                q.notified.eq(notified | any_notify),
            ]
        with m.If(start):
            m.d.sync += notified.eq(0)
        with m.Elif(any_notify):
            m.d.sync += notified.eq(1)

        # -- slices --------------------------------------------------------------
        raised = []                    # (queue index, err value) in queue order
        for s in fp.slices:
            comp = self.slices[s.pos]
            if comp is None:
                continue
            mine = [(i, q) for i, q in enumerate(self.queues)
                    if q.queue.slice == s]
            first_queue = mine[0][0]
            m.submodules[s.name] = comp
            m.d.comb += [comp.e_in.eq(fabric.e_in[s.pos]), comp.w_in.eq(fabric.w_in[s.pos]),
                         fabric.e_out[s.pos].eq(comp.e_out), fabric.w_out[s.pos].eq(comp.w_out),
                         fabric.e_emit[s.pos].eq(comp.e_emit),
                         fabric.w_emit[s.pos].eq(comp.w_emit)]
            if s.kind is SliceKind.VXM:          # one queue per ALU: issue[tile][alu]
                for _i, q in mine:
                    for k in range(c.tiles):
                        m.d.comb += comp.issue[k][q.queue.alu].eq(q.issue[k])
            else:
                (_i, q), = mine
                m.d.comb += comp.issue.eq(q.issue)
            if "err" in comp.signature.members:
                raised.append((first_queue, comp.err))
            self._host_slice(m, s, comp, idle)
        raised += [(i, q.err) for i, q in enumerate(self.queues)]
        raised.sort(key=lambda r: r[0])

        # -- errors ----------------------------------------------------------------
        in_flight = [q.halted | q.waiting for q in self.queues]
        deadlock = (Cat(q.waiting for q in self.queues).any() & Cat(*in_flight).all()
                    & ~notified)
        now = Signal(ERROR_BITS)
        m.d.comb += now.eq(_or_all([e for _, e in raised]))
        with m.If(deadlock):
            m.d.comb += now[flag_bit(ErrorFlag.DEADLOCK)].eq(1)
        # Which queue raised the first error, and when, is worked out a cycle later from
        # registers: the slices' error outputs come from all over the chip, and only the
        # OR that stops the machine (``errors``) has to reach its register in the cycle.
        # So ``err_queue`` and ``err_cycle`` settle one cycle after ``errors`` does.
        first = Signal()                          # this cycle's errors are the run's first
        hits = Signal(len(raised))                # ... raised by these (in queue order)
        m.d.sync += [first.eq(running & now.any() & ~errors.any()),
                     hits.eq(Cat(e.any() for _, e in raised))]
        where = Signal.like(self.err_queue)
        m.d.comb += where.eq(len(fp.queues))
        for n, (i, _e) in reversed(list(enumerate(raised))):
            with m.If(hits[n]):
                m.d.comb += where.eq(i)
        with m.If(start):
            m.d.sync += [errors.eq(0), self.err_queue.eq(0), self.err_cycle.eq(0)]
        with m.Else():
            with m.If(running & now.any()):
                m.d.sync += errors.eq(errors | now)
            with m.If(first):
                # ... in the cycle before this one, which ran (``first``), so
                # ``cycles`` has counted it
                m.d.sync += [self.err_queue.eq(where), self.err_cycle.eq(self.cycles - 1)]

        # -- run control: H is the first cycle with every queue halted; T-1 more to drain
        all_halted = Cat(q.halted for q in self.queues).all()
        draining = Signal()
        drain = Signal(range(c.tiles))
        with m.If(go | start):          # `done` falls in the cycle after START's
            m.d.sync += [self.done.eq(0), self.cycles.eq(0), draining.eq(0)]
        with m.Elif(prime):
            m.d.sync += running.eq(1)
        with m.Elif(running):
            m.d.sync += self.cycles.eq(self.cycles + 1)
            finish = Signal()
            with m.If(draining):
                m.d.comb += finish.eq(drain == 0)
                m.d.sync += drain.eq(drain - 1)
            with m.Elif(all_halted):
                if c.tiles == 1:
                    m.d.comb += finish.eq(1)
                else:
                    m.d.sync += [draining.eq(1), drain.eq(c.tiles - 2)]
            with m.If(finish):
                m.d.sync += [running.eq(0), self.done.eq(1), draining.eq(0)]

        ecc_failed = self._ecc(m, start)
        m.d.comb += self.errors.eq(errors | ecc_failed << flag_bit(ErrorFlag.MEM_ECC))

        # -- host reads of MEM: the slice asked for follows its word through the slice's
        # read pipeline (read_mem_latency cycles) --------------------------------------
        read_sel = Signal.like(host.sel)
        with m.If(idle & (host.cmd == HostCmd.READ_MEM)):
            m.d.sync += read_sel.eq(host.sel)
        for stage in range(1, read_mem_latency(c)):
            later = Signal.like(host.sel, name=f"read_sel_{stage}")
            m.d.sync += later.eq(read_sel)
            read_sel = later
        for s in fp.of_kind(SliceKind.MEM):
            with m.If(read_sel == s.pos):
                m.d.comb += self.rdata.eq(self.slices[s.pos].host_rdata)
        return m

    def _ecc(self, m, start):
        """Count the corrections the MEM tiles report; record the first uncorrectable
        read (first in clock cycles, then lowest position, then lowest tile).
        Returns the sticky ``MEM_ECC`` bit."""
        c = self._config
        failed = Signal()
        events = []
        for s in c.floorplan.of_kind(SliceKind.MEM):
            if self.slices[s.pos] is None:
                continue
            for k, report in enumerate(self.slices[s.pos].ecc):
                # Registered first: a report comes straight from the decoder at the end of
                # the read path (block RAM -> decoder), the counting gets a cycle of its own.
                event = Signal(report.shape(), name=f"ecc_{s.name}_{k}")
                m.d.sync += event.eq(report)
                events.append((s.pos, k, event))
        if not events:
            return failed
        where = [self.ecc_slice, self.ecc_tile, self.ecc_addr]
        with m.If(start):
            m.d.sync += [failed.eq(0), self.ecc_corrected.eq(0)] + [w.eq(0) for w in where]
        with m.Else():
            m.d.sync += self.ecc_corrected.eq(self.ecc_corrected
                                              + sum(e.corrected for _, _, e in events))
            with m.If(~failed):
                for i, (pos, k, e) in enumerate(events):
                    with (m.Elif if i else m.If)(e.uncorrectable):
                        m.d.sync += [failed.eq(1), self.ecc_slice.eq(pos), self.ecc_tile.eq(k),
                                     self.ecc_addr.eq(e.addr)]
        return failed

    def _host_slice(self, m, s, comp, idle):
        """Connect the slice's host-side port (``idle`` only) to the host command."""
        host = self.host
        if s.kind is SliceKind.MEM:
            m.d.comb += [comp.host.addr.eq(host.addr),
                         comp.host.we.eq(idle & (host.cmd == HostCmd.WRITE_MEM)
                                         & (host.sel == s.pos)),
                         comp.host.wdata.eq(host.data)]
        elif s.kind is SliceKind.VXM:
            m.d.comb += [comp.lut_w.en.eq(idle & (host.cmd == HostCmd.WRITE_LUT)),
                         comp.lut_w.lane.eq(host.lane), comp.lut_w.index.eq(host.addr),
                         comp.lut_w.data.eq(host.data)]
        elif s.kind is SliceKind.SXM:
            m.d.comb += [comp.map_w.en.eq(idle & (host.cmd == HostCmd.WRITE_MAP)
                                          & (host.sel == s.pos)),
                         comp.map_w.map.eq(host.addr), comp.map_w.lane.eq(host.lane),
                         comp.map_w.src.eq(host.data)]


def _or_all(values):
    out = values[0]
    for v in values[1:]:
        out = out | v
    return out
