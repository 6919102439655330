"""The MEM slice: two SRAM banks per tile, READ / WRITE / RW, and a host port.

Each tile ``k`` stores its ``L`` bytes of every word in two block RAMs of
``bank_words`` words (the bank is the high address bit, ``config.bank_of``).
One read port and one write port per bank give the pseudo-dual-ported
behaviour of the chip: an ``RW`` reads one bank and writes the other in the
same cycle (the ICU guarantees they differ, else it raised ``BANK_CONFLICT``).

Timing (``docs/ARCHITECTURE.md`` section 4, ``Latencies.mem_read``): the read
port is synchronous, so a ``READ`` issued in cycle ``g`` has its data in
``g + 1`` and emits it then; a ``WRITE`` in ``g`` is stored at the end of
``g``, so a ``READ`` in ``g + 1`` already sees it.
"""

from amaranth.hdl import Module, Signal, Cat
from amaranth.lib import data, wiring, memory
from amaranth.lib.wiring import In, Out

from firmware.isa import ERROR_BITS
from firmware.machine import SliceKind, Dir

from .isa import fields, opcode, op_code, issue_layout
from .fabric import stream_layout, emit_layout


__all__ = ["MemSlice"]

_MEM = SliceKind.MEM


class MemSlice(wiring.Component):
    """One MEM slice (``slice.kind is SliceKind.MEM``).

    Members
    -------
    issue : In(ArrayLayout(issue_layout(MEM), tiles))
        Tile ``k``'s instruction this cycle (staggered and checked by the ICU).
    e_in, w_in : In(stream_layout)
        ``east[pos]``, ``west[pos]`` for every tile.
    e_out, w_out : Out(stream_layout); e_emit, w_emit : Out(emit_layout)
        The read data one cycle after a ``READ`` / ``RW``, on its stream and direction.
    err : Out(ERROR_BITS)
        Always zero: every MEM error is an issue-time error of the ICU.
    host : In(addr, we, wdata)
        Host access while the machine is idle: write ``wdata`` (``VL`` bytes,
        lane 0 first) at ``addr`` when ``we``; the read port follows ``addr``.
    host_rdata : Out(ArrayLayout(8, VL))
        The word at the ``host.addr`` of the previous cycle.
    """

    def __init__(self, config, slice):
        if slice.kind is not _MEM:
            raise TypeError(f"MemSlice needs a MEM slice, not {slice.name} ({slice.kind.value})")
        # The read port is synchronous: its one cycle *is* the READ latency.
        assert config.latency.mem_read == 1, "MemSlice's pipeline implements mem_read = 1"
        self._config = config
        self._slice = slice
        word = data.ArrayLayout(8, config.vl)
        super().__init__({
            "issue":      In(data.ArrayLayout(issue_layout(_MEM), config.tiles)),
            "e_in":       In(stream_layout(config)),
            "w_in":       In(stream_layout(config)),
            "e_out":      Out(stream_layout(config)),
            "w_out":      Out(stream_layout(config)),
            "e_emit":     Out(emit_layout(config)),
            "w_emit":     Out(emit_layout(config)),
            "err":        Out(ERROR_BITS),
            "host":       In(data.StructLayout({"addr": range(config.mem_words), "we": 1,
                                                "wdata": word})),
            "host_rdata": Out(word),
        })
        #: ``banks[k][b]``: tile ``k``'s bank ``b`` (simulation reads them directly).
        self.banks = [[memory.Memory(shape=data.ArrayLayout(8, config.lanes),
                                     depth=config.bank_words, init=[])
                       for _b in range(2)] for _k in range(config.tiles)]
        # Ports made once, here: a second elaboration must not add more.
        self._ports = [[(bank.read_port(), bank.write_port()) for bank in banks]
                       for banks in self.banks]

    @property
    def slice(self):
        return self._slice

    def elaborate(self, platform):
        m = Module()
        for k in range(self._config.tiles):
            self._tile(m, k)
        return m

    def _tile(self, m, k):
        c = self._config
        L = c.lanes
        # Addresses are < mem_words = 2 * bank_words (the ICU checked them); bank_words
        # is a power of two, so the bank is bit `bank_bit` and the row the bits below it.
        bank_bit = c.bank_words.bit_length() - 1
        issue = self.issue[k]
        op = opcode(issue.word)
        read, write = fields(_MEM, "READ", issue.word), fields(_MEM, "WRITE", issue.word)
        rw = fields(_MEM, "RW", issue.word)

        rd_en, rd_addr, rd_dir, rd_stream = Signal(), Signal(13), Signal(), Signal(5)
        wr_en, wr_addr, wr_dir, wr_stream = Signal(), Signal(13), Signal(), Signal(5)
        m.d.comb += rd_addr.eq(self.host.addr)
        with m.If(issue.valid):
            with m.Switch(op):
                with m.Case(op_code(_MEM, "READ")):
                    m.d.comb += [rd_en.eq(1), rd_addr.eq(read.addr), rd_dir.eq(read.dir),
                                 rd_stream.eq(read.stream)]
                with m.Case(op_code(_MEM, "WRITE")):
                    m.d.comb += [wr_en.eq(1), wr_addr.eq(write.addr), wr_dir.eq(write.dir),
                                 wr_stream.eq(write.stream)]
                with m.Case(op_code(_MEM, "RW")):
                    m.d.comb += [rd_en.eq(1), rd_addr.eq(rw.raddr), rd_dir.eq(rw.rdir),
                                 rd_stream.eq(rw.rstream),
                                 wr_en.eq(1), wr_addr.eq(rw.waddr), wr_dir.eq(rw.wdir),
                                 wr_stream.eq(rw.wstream)]

        # The value a WRITE stores: the stream at this position, this tile's lanes.
        wr_data = Signal(data.ArrayLayout(8, L))
        with m.Switch(Cat(wr_stream, wr_dir)):
            for d in Dir:
                src = self.e_in if d is Dir.E else self.w_in
                for s in range(c.streams):
                    with m.Case(s | d.value << len(wr_stream)):
                        m.d.comb += wr_data.eq(src[k][s])
        host_lanes = self.host.wdata.as_value()[8 * L * k:8 * L * (k + 1)]

        rd_bank = Signal()             # bank of the read in flight (data arrives next cycle)
        m.d.sync += rd_bank.eq(rd_addr[bank_bit])
        rdata = Signal(data.ArrayLayout(8, L))
        for b, bank in enumerate(self.banks[k]):
            m.submodules[f"tile{k}_bank{b}"] = bank
            rp, wp = self._ports[k][b]
            m.d.comb += rp.addr.eq(rd_addr[:bank_bit])
            with m.If(rd_bank == b):
                m.d.comb += rdata.eq(rp.data)
            with m.If(wr_en):
                m.d.comb += [wp.en.eq(wr_addr[bank_bit] == b), wp.addr.eq(wr_addr[:bank_bit]),
                             wp.data.eq(wr_data)]
            with m.Else():
                m.d.comb += [wp.en.eq(self.host.we & (self.host.addr[bank_bit] == b)),
                             wp.addr.eq(self.host.addr[:bank_bit]), wp.data.eq(host_lanes)]
        m.d.comb += self.host_rdata.as_value()[8 * L * k:8 * L * (k + 1)].eq(rdata)

        # Emit stage (Latencies.mem_read = 1 cycle after issue): every stream of the
        # chosen direction carries the read data, the emit bit selects the one it goes on.
        em_valid, em_dir, em_stream = Signal(), Signal(), Signal(5)
        m.d.sync += [em_valid.eq(rd_en), em_dir.eq(rd_dir), em_stream.eq(rd_stream)]
        for s in range(c.streams):
            m.d.comb += [self.e_out[k][s].eq(rdata), self.w_out[k][s].eq(rdata)]
        with m.If(em_valid):
            with m.If(em_dir == Dir.E.value):
                m.d.comb += self.e_emit[k].eq(1 << em_stream)
            with m.Else():
                m.d.comb += self.w_emit[k].eq(1 << em_stream)
