"""The MEM slice: two SRAM banks per tile, READ / WRITE / RW, and a host port.

Each tile ``k`` stores its ``L`` bytes of every word in two block RAMs of
``bank_words`` words (the bank is the high address bit, ``config.bank_of``).
One read port and one write port per bank give the pseudo-dual-ported
behaviour of the chip: an ``RW`` reads one bank and writes the other in the
same cycle (the ICU guarantees they differ, else it raised ``BANK_CONFLICT``).

Timing (``docs/ARCHITECTURE.md`` section 4, ``Latencies.mem_read``): the read
port is synchronous, so a ``READ`` issued in cycle ``g`` has its data in
``g + 1`` and emits it then; a ``WRITE`` in ``g`` is stored at the end of
``g``, so a ``READ`` in ``g + 1`` already sees it. With ``config.mem_read_reg``
the word leaving the block RAMs in ``g + 1`` is held in a register (after the
choice of bank, before ECC) and emitted in ``g + 2``: the block RAM's slow data
output then drives one flip-flop, not the correction and the stream choice.

ECC (``firmware/ecc.py``, when ``config.ecc``): every tile's ``L`` bytes of a
word are one SECDED codeword. Each tile has one more block RAM, ``checks[k]``,
``2 * bank_words`` words of ``r`` check bits for both banks: a tile does at most
one read and one write a cycle, which is what one pseudo-dual-port block RAM
does. Every store (``WRITE``, ``RW``, host write) writes the check bits of its
data; every read decodes in the cycle its data leave the block RAMs, between
the read ports (or their register) and the outgoing streams, so it adds no cycle: a
single flipped bit is corrected and reported on ``ecc[k].corrected``, anything
worse passes through as read and is reported on ``ecc[k].uncorrectable``
(only for instruction reads; a host read gets the corrected word and reports
nothing). The top (``rtl/top.py``) registers the reports before it counts
them, so the counting is not on the read path.
"""

from amaranth.hdl import Module, Signal, Cat
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from firmware.ecc import code_for
from firmware.isa import ERROR_BITS
from firmware.machine import SliceKind, Dir

from ._memory import rw_dont_care_memory
from .isa import fields, opcode, op_code, issue_layout
from .fabric import stream_layout, emit_layout


__all__ = ["MemSlice", "ecc_event_layout"]

_MEM = SliceKind.MEM


def ecc_event_layout(config):
    """What one tile's ECC decoder reports in a cycle: the instruction read whose data
    leave the block RAMs now had a corrected or an uncorrectable error, at ``addr``."""
    return data.StructLayout({"corrected": 1, "uncorrectable": 1,
                              "addr": range(config.mem_words)})


class MemSlice(wiring.Component):
    """One MEM slice (``slice.kind is SliceKind.MEM``).

    Members
    -------
    issue : In(ArrayLayout(issue_layout(MEM), tiles))
        Tile ``k``'s instruction this cycle (staggered and checked by the ICU).
    e_in, w_in : In(stream_layout)
        ``east[pos]``, ``west[pos]`` for every tile.
    e_out, w_out : Out(stream_layout); e_emit, w_emit : Out(emit_layout)
        The read data ``Latencies.mem_read`` cycles after a ``READ`` / ``RW``, on its
        stream and direction.
    err : Out(ERROR_BITS)
        Always zero: every MEM error is an issue-time error of the ICU.
    host : In(addr, we, wdata)
        Host access while the machine is idle: write ``wdata`` (``VL`` bytes,
        lane 0 first) at ``addr`` when ``we``; the read port follows ``addr``.
    host_rdata : Out(ArrayLayout(8, VL))
        The word at the ``host.addr`` of ``Latencies.mem_read`` cycles before
        (ECC-corrected).
    ecc : Out(ArrayLayout(ecc_event_layout, tiles))
        Tile ``k``'s decoder on the read data of this cycle (always zero without ECC).
    """

    def __init__(self, config, slice):
        if slice.kind is not _MEM:
            raise TypeError(f"MemSlice needs a MEM slice, not {slice.name} ({slice.kind.value})")
        # The read port is synchronous: its one cycle is the READ latency, or with
        # mem_read_reg one of its two.
        assert config.latency.mem_read == 1 + config.mem_read_reg, "MemSlice's pipeline"
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
            "ecc":        Out(data.ArrayLayout(ecc_event_layout(config), config.tiles)),
        })
        #: ``banks[k][b]``: tile ``k``'s bank ``b`` (simulation reads them directly).
        # An RW whose read and write hit one bank is not issued (BANK_CONFLICT), and a
        # host write reads nothing: a collision's read is never used.
        self.banks = [[rw_dont_care_memory(shape=data.ArrayLayout(8, config.lanes),
                                           depth=config.bank_words)
                       for _b in range(2)] for _k in range(config.tiles)]
        # Ports made once, here: a second elaboration must not add more.
        self._ports = [[(bank.read_port(), bank.write_port()) for bank in banks]
                       for banks in self.banks]
        self._code = code_for(config)
        #: ``checks[k]``: tile ``k``'s check bits of both banks, by address (``None``: no ECC).
        self.checks = [None] * config.tiles
        self._check_ports = [None] * config.tiles
        if self._code is not None:
            self.checks = [rw_dont_care_memory(shape=self._code.check_bits,  # as the banks
                                               depth=config.mem_words)
                           for _k in range(config.tiles)]
            self._check_ports = [(mem.read_port(), mem.write_port()) for mem in self.checks]

    @property
    def slice(self):
        return self._slice

    def inject(self, ctx, fault):
        """Flip the bits of ``fault`` (a validated :class:`firmware.ecc.Fault` of this
        slice) in the simulated block RAMs, now (an Amaranth testbench's ``ctx``)."""
        c = self._config
        data_mask, check_mask = fault.masks(c)
        if data_mask:
            bank = self.banks[fault.tile][fault.addr // c.bank_words]
            row = bank.data[fault.addr % c.bank_words]
            old = int.from_bytes(bytes(ctx.get(row)), "little")
            new = (old ^ data_mask).to_bytes(c.lanes, "little")
            ctx.set(row, list(new))
        if check_mask:
            row = self.checks[fault.tile].data[fault.addr]
            ctx.set(row, ctx.get(row) ^ check_mask)

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

        # One store a cycle: the instruction's, else the host's (which writes while idle only).
        # An If, not a Mux: in the Verilog on Icarus, a tile whose issue port has not changed
        # since time 0 has wr_en = x (Yosys's combinational always blocks have not run yet),
        # and `if (x)` takes the host's branch where a mux would store x.
        st_en, st_addr, st_data = Signal(), Signal(13), Signal(8 * L)
        with m.If(wr_en):
            m.d.comb += [st_en.eq(1), st_addr.eq(wr_addr), st_data.eq(wr_data)]
        with m.Else():
            m.d.comb += [st_en.eq(self.host.we), st_addr.eq(self.host.addr), st_data.eq(host_lanes)]

        rd_bank = Signal()             # bank of the read in flight (data arrives next cycle)
        m.d.sync += rd_bank.eq(rd_addr[bank_bit])
        raw = Signal(8 * L)            # the read data as stored
        for b, bank in enumerate(self.banks[k]):
            m.submodules[f"tile{k}_bank{b}"] = bank
            rp, wp = self._ports[k][b]
            m.d.comb += rp.addr.eq(rd_addr[:bank_bit])
            with m.If(rd_bank == b):
                m.d.comb += raw.eq(rp.data)
            m.d.comb += [wp.en.eq(st_en & (st_addr[bank_bit] == b)), wp.addr.eq(st_addr[:bank_bit]),
                         wp.data.eq(st_data)]

        # Emit stage (Latencies.mem_read cycles after issue): every stream of the chosen
        # direction carries the read data, the emit bit selects the one it goes on.
        em_valid, em_dir, em_stream = Signal(), Signal(), Signal(5)
        em_addr = Signal(range(c.mem_words))
        issued = [rd_en, rd_dir, rd_stream, rd_addr]
        for _stage in range(c.latency.mem_read - 1):
            issued = [_delayed(m, v) for v in issued]
        m.d.sync += [em_valid.eq(issued[0]), em_dir.eq(issued[1]), em_stream.eq(issued[2]),
                     em_addr.eq(issued[3])]

        check = None
        if self._code is not None:
            m.submodules[f"tile{k}_check"] = self.checks[k]
            crp, cwp = self._check_ports[k]
            m.d.comb += [crp.addr.eq(rd_addr), cwp.en.eq(st_en), cwp.addr.eq(st_addr),
                         cwp.data.eq(_encode(self._code, st_data))]
            check = crp.data
        if c.mem_read_reg:             # the word as read, held a cycle (Config.mem_read_reg)
            raw = _delayed(m, raw, name=f"tile{k}_held")
            if check is not None:
                check = _delayed(m, check, name=f"tile{k}_held_check")

        rdata = Signal(data.ArrayLayout(8, L))
        if self._code is None:
            m.d.comb += rdata.eq(raw)
        else:
            fixed, corrected, uncorrectable = _decode(m, self._code, raw, check)
            m.d.comb += [rdata.eq(fixed),
                         self.ecc[k].corrected.eq(em_valid & corrected),
                         self.ecc[k].uncorrectable.eq(em_valid & uncorrectable),
                         self.ecc[k].addr.eq(em_addr)]
        m.d.comb += self.host_rdata.as_value()[8 * L * k:8 * L * (k + 1)].eq(rdata)

        for s in range(c.streams):
            m.d.comb += [self.e_out[k][s].eq(rdata), self.w_out[k][s].eq(rdata)]
        with m.If(em_valid):
            with m.If(em_dir == Dir.E.value):
                m.d.comb += self.e_emit[k].eq(1 << em_stream)
            with m.Else():
                m.d.comb += self.w_emit[k].eq(1 << em_stream)


def _delayed(m, value, name=None):
    """``value`` one cycle later: a register of its shape, in ``m``'s sync domain."""
    reg = Signal.like(value, name=name) if name else Signal.like(value)
    m.d.sync += reg.eq(value)
    return reg


def _encode(code, value):
    """Check bits of ``value`` (``code.data_bits`` wide): one XOR tree per check bit."""
    return Cat(*(Cat(*(value[i] for i in covered)).xor() for covered in code.covers))


def _decode(m, code, value, check):
    """``(data, corrected, uncorrectable)`` of a stored codeword, combinationally:
    :meth:`firmware.ecc.Secded.decode` in gates. A syndrome equal to a data bit's
    column flips that bit; equal to a check bit's column, the data are right."""
    syndrome, onehot = Signal(code.check_bits), Signal(1 << code.check_bits)
    # onehot[s] = (syndrome == s): one decoder, of which only the columns are used
    m.d.comb += [syndrome.eq(check ^ _encode(code, value)), onehot.eq(1 << syndrome)]
    flips = Cat(*(onehot[col] for col in code.columns))
    single = Cat(flips, *(onehot[1 << j] for j in range(code.check_bits))).any()
    return value ^ flips, single, syndrome.any() & ~single
