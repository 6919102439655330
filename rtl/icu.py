"""The instruction control unit: one :class:`InstructionQueue` per queue of the floorplan.

A queue is a block RAM of instruction words (written by the host before
``start``) and a sequencer that walks it as ``docs/ARCHITECTURE.md`` section 3
describes: one ordinary instruction per cycle, ``NOP n``, ``REPEAT n, d,
stride``, ``NOTIFY``/``SYNC``, ``HALT``. Every word the sequencer would issue
first goes through :class:`LegalityCheck`, the gateware twin of
:func:`firmware.isa.decode` + :func:`firmware.isa.check`; an illegal word is
not issued and raises its error flags instead.

The sequencer decides tile 0's instruction one cycle ahead and registers it
(the issue register: no path runs from the instruction memory into a slice in
one cycle); a chain of registers hands it to tile ``k`` ``k`` cycles later
(the superlane stagger).
"""

from amaranth.hdl import Module, Signal, Cat, Const, Mux, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from firmware.isa import (OPS, WORD_BITS, ErrorFlag, ERROR_BITS, OperandKind, VXM_TYPED,
                          VXM_UNARY, vxm_alu_can, vxm_types, word_flags)
from firmware.machine import SliceKind

from ._memory import rw_dont_care_memory
from .isa import fields, opcode, op_code, op_layout, issue_layout


__all__ = ["LegalityCheck", "InstructionQueue", "flag_bit", "at_least"]


def flag_bit(flag):
    """Bit index of an :class:`~firmware.isa.ErrorFlag` in an ``ERROR_BITS`` vector."""
    return flag.value.bit_length() - 1


class _Problems:
    """Collects ``(flag, condition)`` pairs of one opcode, like ``check()``'s list.

    ``addr`` records a condition on an address field (a field a ``REPEAT`` stride
    moves), ``bad`` any other. With ``addr_only`` only the address conditions are
    kept: the problems a repetition of an issued (so legal) word can have.
    """

    def __init__(self, addr_only=False):
        self.items = []
        self._addr_only = addr_only

    def bad(self, flag, cond):
        if not self._addr_only:
            self.items.append((flag, cond))

    def addr(self, flag, cond):
        self.items.append((flag, cond))

    def any(self):
        conds = [c for _, c in self.items]
        return Cat(*conds).any() if conds else Const(0)

    def stream(self, config, idx, group=1, sg4=False):
        """``idx .. idx+group-1`` must be streams; an SG4 group (int32) must also be
        4-aligned. ``group`` may be a :class:`_PlusOne` (``LW``'s ``count + 1``), ``sg4`` a
        constant or a value (a VXM operand's ``dtype``), as in ``check()``."""
        S = config.streams
        # idx + group > S, i.e. idx + (group - 1) >= S; a value `group` is given as
        # `group - 1` plus one (LW's count + 1), so no adder makes the + 1
        if isinstance(group, int):
            out = at_least(idx, S - group + 1)
        else:
            out = at_least(idx + group.count, S)
        bad4 = at_least(idx, S - 3) | (idx[:2] != 0)
        if isinstance(sg4, bool):
            self.bad(ErrorFlag.ILLEGAL_INSTR, bad4 if sg4 else out)
        else:
            self.bad(ErrorFlag.ILLEGAL_INSTR, Mux(sg4, bad4, out))


class _PlusOne:
    """A group size given as ``count + 1`` (``LW``'s ``count`` field holds count - 1)."""

    def __init__(self, count):
        self.count = count


def at_least(value, k):
    """``value >= k`` for an unsigned value and a constant ``k``, as plain logic.

    Yosys maps a comparison to a carry chain (one logic cell per bit) even
    against a constant; this one is a few gates that ABC folds into a couple of
    LUT4s. From the top bit down: where ``k`` has a 1 the value needs it too,
    where ``k`` has a 0 a 1 in the value decides (given the bits above match).
    """
    n = len(value)
    if k <= 0:
        return Const(1)
    if k >= 1 << n:
        return Const(0)
    result = Const(1)                  # value[:0] >= 0
    for i in range(n):                 # result: value[:i+1] >= k[:i+1]
        if (k >> i) & 1:
            result = value[i] & result
        else:
            result = value[i] | result
        if k & ((1 << (i + 1)) - 1) == 0:
            result = Const(1)          # nothing below bit i+1 to compare yet
    return result


def _flags(items):
    """An ``ERROR_BITS`` value from ``(flag, condition)`` pairs: each bit ORs its conditions."""
    return Cat(*(Cat(*(cond for flag, cond in items if flag_bit(flag) == bit)).any()
                 for bit in range(ERROR_BITS)))


def _offset(view, name):
    """Bit position of a field of an instruction view (the key of a shared condition)."""
    return view.shape()[name].offset


def _sg4(dtype):
    """Whether a value of ``dtype`` is int32 (an SG4 group of 4 aligned streams):
    a constant for the conversion ops, the word's ``dtype`` bit otherwise."""
    return bool(dtype) if isinstance(dtype, int) else dtype


class LegalityCheck(wiring.Component):
    """Is ``word`` a legal instruction of ``queue`` on ``config``? (combinational)

    Computes, for any word, the flags :func:`firmware.isa.decode` and
    :func:`firmware.isa.check` would report: an unknown opcode or nonzero
    reserved/pad bits is ``ILLEGAL_INSTR`` alone (the word cannot be decoded);
    otherwise every problem of ``check()`` raises its flag. The sequencer's
    own conditions (``REPEAT`` with nothing to repeat, a repetition in the
    past, a stride walking out of range) are added by the sequencer.

    Members
    -------
    word : In(WORD_BITS[kind])
    flags : Out(ERROR_BITS)
        ``ErrorFlag`` bits; zero when the word is legal.
    """

    def __init__(self, config, queue):
        self._config = config
        self._queue = queue
        self._memo = {}
        super().__init__({
            "word":  In(WORD_BITS[queue.kind]),
            "flags": Out(ERROR_BITS),
        })

    def elaborate(self, platform):
        m = Module()
        self._memo = {}
        with m.Switch(opcode(self.word)):
            for mnemonic, info in OPS[self._queue.kind].items():
                with m.Case(info.opcode):
                    m.d.comb += self.flags.eq(self.op_flags(mnemonic, self.word))
            with m.Default():
                m.d.comb += self.flags.eq(ErrorFlag.ILLEGAL_INSTR)
        m.d.comb += [sig.eq(expr) for sig, expr in self._memo.values()]
        return m

    def op_flags(self, mnemonic, word):
        """The flags of ``word`` read as opcode ``mnemonic`` (whatever its opcode bits say).

        The sequencer uses this directly for ``REPEAT`` words, so that its one
        ``LegalityCheck`` is free for the repetition that issues in the same cycle.
        """
        kind = self._queue.kind
        info = OPS[kind][mnemonic]
        f = fields(kind, mnemonic, word)
        pads = [f[name] for name, *_ in info.fields if name.startswith("pad")]
        if info.bits() < WORD_BITS[kind]:
            pads.append(f.reserved)
        problems = _flags(self._problems(mnemonic, f).items)
        if not pads:
            return problems
        return Mux(Cat(*pads).any(), ErrorFlag.ILLEGAL_INSTR, problems)

    def repeat_flags(self, word, lw_end=None):
        """The flags of a repetition: ``word`` is a word that issued (so it was legal)
        with its address fields moved by a ``REPEAT`` stride, and still in their
        widths. Only the conditions on address fields can fail now, so only they
        are built (what :meth:`op_flags` would say of such a word). ``lw_end``, where
        given, is an ``LW`` word's ``col + count``, made by the caller (the sequencer
        keeps it beside the word, so no second adder follows the stride's)."""
        kind = self._queue.kind
        flags = Const(0, ERROR_BITS)
        for mnemonic, info in OPS[kind].items():
            if not info.addr_fields:
                continue
            items = self._problems(mnemonic, fields(kind, mnemonic, word), addr_only=True,
                                   lw_end=lw_end).items
            if items:
                flags = Mux(opcode(word) == info.opcode, _flags(items), flags)
        return flags

    def _problems(self, mnemonic, f, addr_only=False, lw_end=None):
        """``check()``'s conditions for one opcode, as ``(flag, condition)`` pairs
        (with ``addr_only``, those on its address fields alone; ``lw_end``: see
        :meth:`repeat_flags`)."""
        p = _Problems(addr_only)
        kind = self._queue.kind
        if mnemonic == "NOP":
            p.bad(ErrorFlag.ILLEGAL_INSTR, f.n == 0)
        elif mnemonic == "REPEAT":
            p.bad(ErrorFlag.ILLEGAL_INSTR, f.n == 0)
            p.bad(ErrorFlag.ILLEGAL_INSTR, f.d == 0)
        elif OPS[kind][mnemonic].is_icu:
            pass
        elif kind is SliceKind.MEM:
            self._mem(p, mnemonic, f)
        elif kind is SliceKind.MXM:
            self._mxm(p, mnemonic, f, lw_end)
        elif kind is SliceKind.SXM:
            self._sxm(p, mnemonic, f)
        else:
            self._vxm(p, mnemonic, f)
        return p

    def _mem(self, p, mnemonic, f):
        c = self._config
        ports = [("stream", "addr")] if mnemonic != "RW" else [("rstream", "raddr"),
                                                               ("wstream", "waddr")]
        for sf, af in ports:
            p.stream(c, f[sf])
            p.addr(ErrorFlag.ADDR_RANGE, at_least(f[af], c.mem_words))
        if mnemonic == "RW":
            # config.bank_of: the high half of the address space is bank 1; bank_words is a
            # power of two, so the bank is the address bit just above a bank's index.
            # (With addr_only, `other` lacks the stream conditions: false for a legal word.)
            bank_bit = c.bank_words.bit_length() - 1
            other = p.any()
            p.addr(ErrorFlag.BANK_CONFLICT,
                   ~other & (f.raddr[bank_bit:] == f.waddr[bank_bit:]))

    def _mxm(self, p, mnemonic, f, lw_end=None):
        c = self._config
        if mnemonic == "LW":
            p.stream(c, f.stream, _PlusOne(f.count))
            # col + count + 1 > VL, i.e. col + count >= VL
            end = f.col + f.count if lw_end is None else lw_end
            p.addr(ErrorFlag.ADDR_RANGE, at_least(end, c.vl))
        elif mnemonic in ("ABC", "ACC"):
            p.stream(c, f.stream, sg4=mnemonic == "ACC")
            if mnemonic == "ABC":          # the fused ACC's SG4 destination
                ep = _Problems()
                ep.stream(c, f.estream, sg4=True)
                p.bad(ErrorFlag.ILLEGAL_INSTR, f.emit & ep.any())
                p.bad(ErrorFlag.ILLEGAL_INSTR, ~f.emit & (f.edir | (f.estream != 0)))
            p.addr(ErrorFlag.ADDR_RANGE, at_least(f.slot, c.acc_slots))

    def _sxm(self, p, mnemonic, f):
        c = self._config
        n = c.lanes if mnemonic == "TRANS" else 1
        p.stream(c, f.sstream, n)
        p.stream(c, f.dstream, n)
        if mnemonic in ("SHUP", "SHDN", "ROT"):
            p.bad(ErrorFlag.ILLEGAL_INSTR, at_least(f.arg, c.vl))
        elif mnemonic == "PERM":
            p.bad(ErrorFlag.ILLEGAL_INSTR, at_least(f.arg, c.sxm_maps))
        elif mnemonic == "DIST":
            p.bad(ErrorFlag.ILLEGAL_INSTR, at_least(f.arg, c.lanes))
        elif mnemonic == "TRANS":
            p.bad(ErrorFlag.ILLEGAL_INSTR, f.arg != 0)

    def _vxm(self, p, mnemonic, f):
        c = self._config
        typed = mnemonic in VXM_TYPED
        dt_in, dt_out = vxm_types(mnemonic, f.dtype)
        if not typed:
            p.bad(ErrorFlag.ILLEGAL_INSTR, f.dtype != 0)
        if not c.vxm_int32:                     # an int8-only VXM (isa.vxm_set_can)
            p.bad(ErrorFlag.ILLEGAL_INSTR, f.dtype if typed else Const(int(dt_in or dt_out)))
        if not vxm_alu_can(c, self._queue.alu, mnemonic):
            p.bad(ErrorFlag.ILLEGAL_INSTR, Const(1))
        srcs = ["a"]
        if mnemonic not in VXM_UNARY:
            srcs.append("b")
        if mnemonic == "SELECT":
            srcs.append("c")
        dt_key = dt_in if isinstance(dt_in, int) else "dtype"
        for name in srcs:
            raw = f[name]
            kind = raw[6:8]
            p.bad(ErrorFlag.ILLEGAL_INSTR,
                  self._shared(("src", _offset(f, name), dt_key),
                               lambda: self._operand_bad(raw, dt_in)))
            if mnemonic in ("SELECT", "REQUANT", "LUTW"):
                p.bad(ErrorFlag.ILLEGAL_INSTR, kind == OperandKind.IMM)
        if mnemonic == "LUTW":
            p.bad(ErrorFlag.ILLEGAL_INSTR, f.we)
        dt_key = dt_out if isinstance(dt_out, int) else "dtype"
        p.bad(ErrorFlag.ILLEGAL_INSTR,
              self._shared(("dst", _offset(f, "wstream"), dt_key),
                           lambda: self._dest_bad(f, dt_out)))
        if mnemonic == "REQUANT":
            p.bad(ErrorFlag.ILLEGAL_INSTR, at_least(f.shift, 64))


    def _operand_bad(self, raw, dtype):
        """A VXM source field that names no stream / ALU of this machine, or has junk bits."""
        c = self._config
        kind = raw[6:8]
        sp = _Problems()
        sp.stream(c, raw[:5], sg4=_sg4(dtype))
        return (((kind == OperandKind.STREAM) & sp.any()) |
                ((kind == OperandKind.ALU) & (at_least(raw[:4], c.vxm_alus) | (raw[4:6] != 0))) |
                ((kind == OperandKind.ZERO) & (raw != 0)))

    def _dest_bad(self, f, dtype):
        """A destination stream (group) out of range, or one given with ``we = 0``."""
        wp = _Problems()
        wp.stream(self._config, f.wstream, sg4=_sg4(dtype))
        return (f.we & wp.any()) | (~f.we & (f.wdir | (f.wstream != 0)))

    def _shared(self, key, build):
        """One signal for a condition many opcodes share (the VXM's ops all place their
        operand and destination fields alike): less logic, and a much faster simulation."""
        if key not in self._memo:
            self._memo[key] = Signal(name="_".join(map(str, key))), build()
        return self._memo[key][0]


class InstructionQueue(wiring.Component):
    """One instruction queue: instruction memory, sequencer, legality check, stagger.

    The sequencer runs one cycle ahead of what the queue shows: in cycle
    ``t`` it decides ``t + 1``'s issue, notify, waiting, halted and err, and a
    register shows them in ``t + 1``. The instruction memory has a synchronous
    read port. With ``config.fetch_reg`` the word the sequencer decides on is in a
    register (``row``) and the port reads the next one ahead: while idle it reads
    address 0, ``start`` loads that word and reads address 1, and every move to
    the next word loads the port's word and reads the one after. Without it the
    sequencer presents the address of the word it decides next (``pc_next``) and
    sees that word on the port one cycle later. Either way instruction 0 is there
    in the cycle after ``start``, when the sequencer decides local cycle 0, and
    the queue issues back to back from the first cycle. The host must not write
    the memory in the cycle it asserts ``start`` nor in the cycle before, and
    ``start`` comes after at least one cycle idle or halted (the top's ``START``
    gives both: ``rtl.top.START_TO_RUN``).

    ``stop`` comes from the top's error register, so the sequencer learns of an
    error one cycle late; the outputs are gated by ``stop`` directly, so what
    the queue shows is as if it had known in time.

    Members
    -------
    imem_w : In(en, addr, data)
        Host write of one instruction word (only while idle).
    start : In(1)
        Pulse: the cycle after next is local cycle 0 (the next one is the
        sequencer's first, deciding cycle 0); clears the sequencer and the stagger.
    stop : In(1)
        An error was raised in an earlier cycle: halt now, issue nothing.
    notified : In(1)
        Some queue issued ``NOTIFY`` in this cycle or an earlier one (the top's
        sticky flag or any queue's ``notify`` now): a ``SYNC`` that the sequencer
        decides now, for the next cycle, goes on.
    issue : Out(ArrayLayout(issue_layout(kind), tiles))
        ``issue[0]`` is tile 0's instruction this cycle, ``issue[k]`` is ``issue[k-1]``
        of the previous cycle.
    notify : Out(1)
        ``NOTIFY`` issues in this cycle.
    waiting : Out(1)
        Waiting in ``SYNC`` in this cycle.
    halted : Out(1)
        Done (or idle): in the cycle its ``HALT`` is reached and every cycle after.
    err : Out(ERROR_BITS)
        Flags raised by this queue's issue in this cycle.
    """

    def __init__(self, config, queue):
        self._config = config
        self._queue = queue
        kind = queue.kind
        super().__init__({
            "imem_w":   In(data.StructLayout({"en": 1, "addr": range(config.queue_depth),
                                              "data": WORD_BITS[kind]})),
            "start":    In(1),
            "stop":     In(1),
            "notified": In(1),
            "issue":    Out(data.ArrayLayout(issue_layout(kind), config.tiles)),
            "notify":   Out(1),
            "waiting":  Out(1),
            "halted":   Out(1),
            "err":      Out(ERROR_BITS),
        })
        # The memory and its ports are made here, not in elaborate(): a second
        # elaboration (simulation, then conversion) must not add a second pair of ports.
        # Each row is a word and its legality flags (``stored``): the check runs on the
        # host's write, not between the memory and the sequencer.
        # A collision's read is never used: the host writes only while the queue is
        # idle, re-reading address 0 every cycle, and never in the cycle of ``start``.
        self.imem = rw_dont_care_memory(shape=WORD_BITS[kind] + ERROR_BITS,
                                        depth=config.queue_depth)
        self._imem_wr = self.imem.write_port()
        self._imem_rd = self.imem.read_port()

    @property
    def queue(self):
        return self._queue

    def stored(self, word):
        """The instruction memory's row for ``word``: the word and, above it, its
        legality flags (``firmware.isa.word_flags``), as a host write stores them
        (simulations that fill the memory directly write this)."""
        return word | word_flags(self._queue, word, self._config) << WORD_BITS[self._queue.kind]

    def elaborate(self, platform):
        m = Module()
        c = self._config
        kind = self._queue.kind
        depth = c.queue_depth
        word_bits = WORD_BITS[kind]
        code = lambda mnemonic: op_code(kind, mnemonic)

        m.submodules.imem = self.imem
        wr, rd = self._imem_wr, self._imem_rd
        # The checker sees each word as the host writes it, and the flags are stored
        # with it. A REPEAT word is checked too (its own conditions). A repetition
        # repeats `last`, a word that issued, so was legal: of its conditions only
        # those on the moved address fields can fail now, and those few are checked
        # when it issues (`repeat_flags`), not by a second full check.
        m.submodules.check = check = LegalityCheck(c, self._queue)
        m.d.comb += [check.word.eq(self.imem_w.data),
                     wr.en.eq(self.imem_w.en), wr.addr.eq(self.imem_w.addr),
                     wr.data.eq(Cat(self.imem_w.data, check.flags))]

        # pc: index of the instruction occupying this cycle; `row` holds its word.
        pc = Signal(range(depth + 1))
        pc_next = Signal(range(depth + 1))
        load = Signal()                # the sequencer moves to the word at pc_next
        m.d.comb += pc_next.eq(pc)
        m.d.sync += pc.eq(pc_next)
        if c.fetch_reg:
            # The fetch register `row` holds word pc and the read port shows word pc + 1:
            # the program is a straight line, so the next word is always known, and the
            # sequencer's decision starts at a flip-flop, not at the block RAM's slow data
            # output. A move reads pc + 2 (the new pc + 1); otherwise the port holds.
            # Idle, the port reads word 0; `start` loads it and reads word 1.
            row = Signal(len(rd.data), name="row")
            with m.If(load):
                m.d.sync += row.eq(rd.data)
            m.d.comb += [rd.addr.eq(pc + 2), rd.en.eq(load)]
        else:
            # No fetch register (an FPGA short of flip-flops): the port reads pc_next, and
            # its data is the word of this cycle.
            row = rd.data
            m.d.comb += rd.addr.eq(pc_next)
        word = row[:word_bits]
        fetch_flags = row[word_bits:]
        at_end = pc == depth           # ran off the end of the memory: halt there

        # While a NOP or a REPEAT runs, pc stays on its word, so `row` keeps showing
        # it: its fields need no registers of their own. (The host writes the
        # instruction memory only while the queue is idle.)
        nop_f = fields(kind, "NOP", word)
        rep_f = fields(kind, "REPEAT", word)
        d_bits = len(rep_f.d)
        # `since` counts the cycles since the last issue, saturating above the largest
        # distance: a repetition is due when it reaches d (t0 + d, t0 + 2d, ...: every
        # repetition is an issue too), and a REPEAT reached later is misplaced.
        since = Signal(d_bits + 1, init=(1 << (d_bits + 1)) - 1)
        last = Signal(word_bits)
        have_last = Signal()
        reps = Signal.like(rep_f.n)    # repetitions of the running REPEAT issued so far
        # reps + 1, kept in a register: the next address depends on `last_rep`, so
        # the memory -> address loop gets an equality, not an adder and an equality
        reps1 = Signal(len(reps) + 1, init=1)
        count = Signal.like(nop_f.n)   # a NOP's cycles so far (from 2)

        # The word a repetition issues: `last` with every address field advanced. One
        # adder per place an address field sits (READ's addr and RW's raddr share one);
        # a field walked out of its width shows in the adder's two top bits.
        stride = rep_f.stride
        adv = Signal(word_bits)
        adv_oob = Signal()
        places = {}
        for mnemonic, info in OPS[kind].items():
            layout = op_layout(kind, mnemonic)
            for name in info.addr_fields:
                place = (layout[name].offset, layout[name].shape.width)
                places.setdefault(place, []).append(info.opcode)
        m.d.comb += adv.eq(last)
        for (offset, width), codes in places.items():
            src = last[offset:offset + width]
            moved = Signal(signed(max(width, len(stride)) + 2), name=f"moved_{offset}")
            m.d.comb += moved.eq(src + stride)
            with m.If(Cat(*(opcode(last) == op for op in codes)).any()):
                m.d.comb += adv[offset:offset + width].eq(moved[:width])
                with m.If(moved[width:].any()):
                    m.d.comb += adv_oob.eq(1)

        # An LW's range check is on col + count. For a repetition that sum is kept in a
        # register beside `last` (`last_end`) and moved by the stride as `col` is, so
        # the check does not add count to the moved col (a second carry chain after
        # the stride's, on the sequencer's deepest path). `rep_issue`: the word that
        # issues next is a repetition (`adv`), not the word at pc.
        rep_issue = Signal()
        lw_end = None
        if "LW" in OPS[kind]:
            row_lw = fields(kind, "LW", word)
            last_end = Signal(len(row_lw.col) + 1)          # col + count < 2 ** 10
            adv_end = Signal(signed(max(len(last_end), len(stride)) + 2))
            m.d.comb += adv_end.eq(last_end + stride)
            lw_end = adv_end[:len(last_end)]                # a col out of its field: adv_oob

        legal = ~fetch_flags.any()
        # A field walked past its width is ADDR_RANGE alone (the truncated word means
        # nothing); otherwise the repetition is checked like any issued word.
        rep_flags = Signal(ERROR_BITS)
        with m.If(adv_oob):
            m.d.comb += rep_flags.eq(ErrorFlag.ADDR_RANGE)
        with m.Else():
            m.d.comb += rep_flags.eq(check.repeat_flags(adv, lw_end))

        # The sequencer works one cycle ahead: in cycle t it decides what the queue
        # shows in t + 1 (``nxt``), and registers it (``shown``). Nothing runs from
        # the instruction memory's output into a slice in one cycle: a slice sees the
        # issue register, through one gate (``stop``).
        layout = data.StructLayout({"issue": issue_layout(kind), "notify": 1, "waiting": 1,
                                    "halted": 1, "err": ERROR_BITS})
        nxt = Signal(layout, name="nxt")
        shown = Signal(layout, name="shown", init={"halted": 1})
        m.d.sync += shown.eq(nxt)
        tile0 = nxt.issue
        issued = Signal()              # an ordinary instruction or a repetition issues next
        m.d.comb += issued.eq(tile0.valid)
        with m.If(issued):
            m.d.sync += [last.eq(tile0.word), have_last.eq(1), since.eq(1)]
            if lw_end is not None:
                m.d.sync += last_end.eq(Mux(rep_issue, lw_end, row_lw.col + row_lw.count))
        with m.Elif(since != since.init):
            m.d.sync += since.eq(since + 1)

        ahead = Signal(signed(d_bits + 2))
        m.d.comb += ahead.eq(rep_f.d - since)          # cycles to the next repetition
        # the same as ahead == 0, without the subtraction (it is on the address loop)
        due = since == rep_f.d
        # nothing to repeat, or the first repetition (t0 + d) is past
        misplaced = ~have_last | ahead[-1]
        last_rep = Signal()
        m.d.comb += last_rep.eq(reps1 == rep_f.n)

        def advance():
            m.d.comb += [pc_next.eq(pc + 1), load.eq(1)]
            m.next = "FETCH"

        def repeat_step(allowed=1):
            """One cycle of a REPEAT: issue when a repetition is due, else wait."""
            with m.If(due):
                with m.If(rep_flags.any()):
                    with m.If(allowed):
                        m.d.comb += nxt.err.eq(rep_flags)
                with m.Else():
                    m.d.comb += [tile0.valid.eq(allowed), tile0.word.eq(adv), rep_issue.eq(1)]
                with m.If(last_rep):
                    m.d.sync += [reps.eq(0), reps1.eq(1)]
                    advance()
                with m.Else():
                    m.d.sync += [reps.eq(reps + 1), reps1.eq(reps1 + 1)]
                    m.next = "REPEAT"
            with m.Else():
                m.next = "REPEAT"

        def restart():
            # Only an idle or halted queue takes `start` (the top ignores it while running).
            if c.fetch_reg:
                m.d.comb += [rd.addr.eq(self.start), rd.en.eq(1)]
            with m.If(self.start):
                m.d.comb += [pc_next.eq(0), load.eq(1)]
                m.next = "FETCH"

        with m.FSM(init="IDLE"):
            with m.State("IDLE"):
                m.d.comb += [nxt.halted.eq(1), pc_next.eq(0)]
                restart()

            with m.State("FETCH"):
                # The check only gates what this cycle shows (issue, notify, waiting,
                # halted, err), never pc_next: after an error `stop` halts the queue in
                # the next cycle anyway, so the block RAM's address does not wait for the
                # check (the loop RAM -> check -> address would set the clock rate).
                with m.If(self.stop | at_end):
                    m.d.comb += nxt.halted.eq(1)
                    m.next = "HALTED"
                with m.Else():
                    m.d.comb += nxt.err.eq(fetch_flags)
                    with m.Switch(opcode(word)):
                        with m.Case(code("HALT")):
                            m.d.comb += nxt.halted.eq(legal)
                            m.next = "HALTED"
                        with m.Case(code("NOP")):
                            with m.If(nop_f.n == 1):
                                advance()
                            with m.Else():
                                m.d.sync += count.eq(2)
                                m.next = "NOP"
                        with m.Case(code("REPEAT")):
                            with m.If(misplaced):
                                m.d.comb += nxt.err.eq(fetch_flags | ErrorFlag.ILLEGAL_INSTR)
                            repeat_step(allowed=legal & ~misplaced)
                        with m.Case(code("NOTIFY")):
                            m.d.comb += nxt.notify.eq(legal)
                            advance()
                        with m.Case(code("SYNC")):
                            with m.If(self.notified):
                                advance()
                            with m.Else():
                                m.d.comb += nxt.waiting.eq(legal)
                        with m.Default():
                            m.d.comb += [tile0.valid.eq(legal), tile0.word.eq(word)]
                            advance()

            with m.State("NOP"):
                # NOP n: FETCH, then n - 1 cycles here (count = 2 .. n)
                with m.If(self.stop):
                    m.d.comb += nxt.halted.eq(1)
                    m.next = "HALTED"
                with m.Elif(count == nop_f.n):
                    advance()
                with m.Else():
                    m.d.sync += count.eq(count + 1)

            with m.State("REPEAT"):
                with m.If(self.stop):
                    m.d.comb += nxt.halted.eq(1)
                    m.next = "HALTED"
                with m.Else():
                    repeat_step()

            with m.State("HALTED"):
                m.d.comb += nxt.halted.eq(1)
                restart()

        with m.If(self.start):
            m.d.sync += [have_last.eq(0), since.eq(since.init), reps.eq(0), reps1.eq(1)]

        # What the queue shows: the register, with ``stop`` (an error raised in an
        # earlier cycle) gating it as the sequencer would have, had it known in time.
        m.d.comb += [
            self.issue[0].valid.eq(shown.issue.valid & ~self.stop),
            self.issue[0].word.eq(shown.issue.word),
            self.notify.eq(shown.notify & ~self.stop),
            self.waiting.eq(shown.waiting & ~self.stop),
            self.halted.eq(shown.halted | self.stop),
            self.err.eq(Mux(self.stop, 0, shown.err)),
        ]

        # The superlane stagger: tile k executes tile k-1's instruction one cycle later.
        for k in range(1, c.tiles):
            m.d.sync += self.issue[k].eq(self.issue[k - 1])
            with m.If(self.start):
                m.d.sync += self.issue[k].valid.eq(0)
        return m
