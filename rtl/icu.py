"""The instruction control unit: one :class:`InstructionQueue` per queue of the floorplan.

A queue is a block RAM of instruction words (written by the host before
``start``) and a sequencer that walks it as ``docs/ARCHITECTURE.md`` section 3
describes: one ordinary instruction per cycle, ``NOP n``, ``REPEAT n, d,
stride``, ``NOTIFY``/``SYNC``, ``HALT``. Every word the sequencer would issue
first goes through :class:`LegalityCheck`, the gateware twin of
:func:`firmware.isa.decode` + :func:`firmware.isa.check`; an illegal word is
not issued and raises its error flags instead.

The sequencer produces tile 0's instruction in each cycle; a chain of
registers hands it to tile ``k`` ``k`` cycles later (the superlane stagger).
"""

from amaranth.hdl import Module, Signal, Cat, Const, Mux, signed
from amaranth.lib import data, wiring, memory
from amaranth.lib.wiring import In, Out

from firmware.isa import (OPS, WORD_BITS, ErrorFlag, ERROR_BITS, OperandKind, VXM_TYPED,
                          VXM_CONVERT, VXM_UNARY, vxm_alu_can)
from firmware.machine import SliceKind

from .isa import fields, opcode, op_code, issue_layout


__all__ = ["LegalityCheck", "InstructionQueue", "flag_bit"]


def flag_bit(flag):
    """Bit index of an :class:`~firmware.isa.ErrorFlag` in an ``ERROR_BITS`` vector."""
    return flag.value.bit_length() - 1


class _Problems:
    """Collects ``(flag, condition)`` pairs of one opcode, like ``check()``'s list."""

    def __init__(self):
        self.items = []

    def bad(self, flag, cond):
        self.items.append((flag, cond))

    def any(self):
        conds = [c for _, c in self.items]
        return Cat(*conds).any() if conds else Const(0)

    def stream(self, config, idx, group=1, sg4=False):
        """``idx .. idx+group-1`` must be streams; an SG4 group (int32) must also be
        4-aligned. ``group`` may be a value (``LW``'s ``count + 1``), ``sg4`` a
        constant or a value (a VXM operand's ``dtype``), as in ``check()``."""
        if isinstance(sg4, bool):
            if sg4:
                self.bad(ErrorFlag.ILLEGAL_INSTR, (idx + 4 > config.streams) | (idx[:2] != 0))
            else:
                self.bad(ErrorFlag.ILLEGAL_INSTR, idx + group > config.streams)
        else:
            self.bad(ErrorFlag.ILLEGAL_INSTR, Mux(sg4, (idx + 4 > config.streams) | (idx[:2] != 0),
                                                  idx + group > config.streams))


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
        items = self._problems(mnemonic, f).items
        problems = Cat(*(Cat(*(cond for flag, cond in items if flag_bit(flag) == bit)).any()
                         for bit in range(ERROR_BITS)))
        if not pads:
            return problems
        return Mux(Cat(*pads).any(), ErrorFlag.ILLEGAL_INSTR, problems)

    def _problems(self, mnemonic, f):
        """``check()``'s conditions for one opcode, as ``(flag, condition)`` pairs."""
        p = _Problems()
        kind = self._queue.kind
        if mnemonic == "NOP":
            p.bad(ErrorFlag.ILLEGAL_INSTR, f.n < 1)
        elif mnemonic == "REPEAT":
            p.bad(ErrorFlag.ILLEGAL_INSTR, f.n < 1)
            p.bad(ErrorFlag.ILLEGAL_INSTR, f.d < 1)
        elif OPS[kind][mnemonic].is_icu:
            pass
        elif kind is SliceKind.MEM:
            self._mem(p, mnemonic, f)
        elif kind is SliceKind.MXM:
            self._mxm(p, mnemonic, f)
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
            p.bad(ErrorFlag.ADDR_RANGE, f[af] >= c.mem_words)
        if mnemonic == "RW":
            # config.bank_of: the high half of the address space is bank 1; bank_words is a
            # power of two, so the bank is the address bit just above a bank's index.
            bank_bit = c.bank_words.bit_length() - 1
            other = p.any()
            p.bad(ErrorFlag.BANK_CONFLICT,
                  ~other & (f.raddr[bank_bit:] == f.waddr[bank_bit:]))

    def _mxm(self, p, mnemonic, f):
        c = self._config
        if mnemonic == "LW":
            p.stream(c, f.stream, f.count + 1)
            p.bad(ErrorFlag.ADDR_RANGE, f.col + f.count + 1 > c.vl)
        elif mnemonic in ("ABC", "ACC"):
            p.stream(c, f.stream, sg4=mnemonic == "ACC")
            if mnemonic == "ABC":          # the fused ACC's SG4 destination
                ep = _Problems()
                ep.stream(c, f.estream, sg4=True)
                p.bad(ErrorFlag.ILLEGAL_INSTR, f.emit & ep.any())
                p.bad(ErrorFlag.ILLEGAL_INSTR, ~f.emit & (f.edir | (f.estream != 0)))
            p.bad(ErrorFlag.ADDR_RANGE, f.slot >= c.acc_slots)

    def _sxm(self, p, mnemonic, f):
        c = self._config
        n = c.lanes if mnemonic == "TRANS" else 1
        p.stream(c, f.sstream, n)
        p.stream(c, f.dstream, n)
        if mnemonic in ("SHUP", "SHDN", "ROT"):
            p.bad(ErrorFlag.ILLEGAL_INSTR, f.arg >= c.vl)
        elif mnemonic == "PERM":
            p.bad(ErrorFlag.ILLEGAL_INSTR, f.arg >= c.sxm_maps)
        elif mnemonic == "DIST":
            p.bad(ErrorFlag.ILLEGAL_INSTR, f.arg >= c.lanes)
        elif mnemonic == "TRANS":
            p.bad(ErrorFlag.ILLEGAL_INSTR, f.arg != 0)

    def _vxm(self, p, mnemonic, f):
        c = self._config
        typed = mnemonic in VXM_TYPED
        dt_in, dt_out = VXM_CONVERT.get(mnemonic, (f.dtype, f.dtype))
        if not typed:
            p.bad(ErrorFlag.ILLEGAL_INSTR, f.dtype != 0)
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
            p.bad(ErrorFlag.ILLEGAL_INSTR, f.shift > 63)


    def _operand_bad(self, raw, dtype):
        """A VXM source field that names no stream / ALU of this machine, or has junk bits."""
        c = self._config
        kind = raw[6:8]
        sp = _Problems()
        sp.stream(c, raw[:5], sg4=_sg4(dtype))
        return (((kind == OperandKind.STREAM) & sp.any()) |
                ((kind == OperandKind.ALU) & ((raw[:4] >= c.vxm_alus) | (raw[4:6] != 0))) |
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

    The instruction memory has a synchronous read port, so the sequencer
    always presents the address of the *next* cycle's instruction
    (``pc_next``) and sees that word one cycle later. While idle it keeps
    reading address 0, so instruction 0 is already on the read port in local
    cycle 0 and the queue issues back to back from the first cycle. The host
    must not write the memory in the cycle it asserts ``start``.

    Members
    -------
    imem_w : In(en, addr, data)
        Host write of one instruction word (only while idle).
    start : In(1)
        Pulse: the next cycle is local cycle 0; clears the sequencer and the stagger.
    stop : In(1)
        An error was raised in an earlier cycle: halt now, issue nothing.
    notified : In(1)
        The machine's sticky flag: some queue issued ``NOTIFY`` in an earlier cycle.
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
        self.imem = memory.Memory(shape=WORD_BITS[kind], depth=config.queue_depth, init=[])
        self._imem_wr = self.imem.write_port()
        self._imem_rd = self.imem.read_port()

    @property
    def queue(self):
        return self._queue

    def elaborate(self, platform):
        m = Module()
        c = self._config
        kind = self._queue.kind
        depth = c.queue_depth
        word_bits = WORD_BITS[kind]
        code = lambda mnemonic: op_code(kind, mnemonic)

        m.submodules.imem = self.imem
        wr, rd = self._imem_wr, self._imem_rd
        m.d.comb += [wr.en.eq(self.imem_w.en), wr.addr.eq(self.imem_w.addr),
                     wr.data.eq(self.imem_w.data)]

        # pc: index of the instruction occupying this cycle; rd.data holds its word.
        pc = Signal(range(depth + 1))
        pc_next = Signal(range(depth + 1))
        m.d.comb += [pc_next.eq(pc), rd.addr.eq(pc_next)]
        m.d.sync += pc.eq(pc_next)
        word = rd.data
        at_end = pc == depth           # ran off the end of the memory: halt there

        # REPEAT state. `since` counts cycles since the last ordinary issue (saturating
        # above the largest distance) so a REPEAT can tell whether t0 + d already passed.
        rep_op = OPS[kind]["REPEAT"]
        rep_f = fields(kind, "REPEAT", word)
        d_bits = dict((n, w) for n, w, _ in rep_op.fields)["d"]
        since = Signal(d_bits + 1, init=(1 << (d_bits + 1)) - 1)
        last = Signal(word_bits)
        have_last = Signal()
        rep_left = Signal.like(rep_f.n)
        rep_wait = Signal.like(rep_f.d)
        rep_d = Signal.like(rep_f.d)
        rep_stride = Signal.like(rep_f.stride)
        nop_left = Signal.like(fields(kind, "NOP", word).n)

        # The word a repetition issues: `last` with every address field advanced.
        stride = Signal.like(rep_f.stride)
        adv = Signal(word_bits)
        adv_oob = Signal()
        m.d.comb += adv.eq(last)
        with m.Switch(opcode(last)):
            for mnemonic, info in OPS[kind].items():
                if not info.addr_fields:
                    continue
                with m.Case(info.opcode):
                    src = fields(kind, mnemonic, last)
                    dst = fields(kind, mnemonic, adv)
                    for name in info.addr_fields:
                        width = len(src[name])
                        moved = Signal(signed(max(width, len(stride)) + 2),
                                       name=f"moved_{name}")
                        m.d.comb += [moved.eq(src[name] + stride), dst[name].eq(moved)]
                        with m.If((moved < 0) | (moved >= (1 << width))):
                            m.d.comb += adv_oob.eq(1)

        # One checker per queue: it sees the repetition while a REPEAT runs (also in
        # the cycle the REPEAT word itself is reached), else the fetched word. The
        # REPEAT word's own few conditions are checked beside it.
        m.submodules.check = check = LegalityCheck(c, self._queue)
        repeating = Signal()
        m.d.comb += check.word.eq(Mux(repeating, adv, word))
        fetch_flags = Signal(ERROR_BITS)
        with m.If(opcode(word) == code("REPEAT")):
            m.d.comb += fetch_flags.eq(check.op_flags("REPEAT", word))
        with m.Else():
            m.d.comb += fetch_flags.eq(check.flags)
        # A field walked past its width is ADDR_RANGE alone (the truncated word means
        # nothing); otherwise the repetition is checked like any issued word.
        rep_flags = Signal(ERROR_BITS)
        with m.If(adv_oob):
            m.d.comb += rep_flags.eq(ErrorFlag.ADDR_RANGE)
        with m.Else():
            m.d.comb += rep_flags.eq(check.flags)

        tile0 = self.issue[0]
        issued = Signal()              # an ordinary instruction or a repetition issues now
        m.d.comb += issued.eq(tile0.valid)
        with m.If(issued):
            m.d.sync += [last.eq(tile0.word), have_last.eq(1), since.eq(1)]
        with m.Elif(since != since.init):
            m.d.sync += since.eq(since + 1)

        def advance():
            m.d.comb += pc_next.eq(pc + 1)
            m.next = "FETCH"

        def repeat_step(wait, left, d, allowed=1):
            """One cycle of a REPEAT: issue when the wait is over, else count down."""
            with m.If(wait == 0):
                with m.If(rep_flags.any()):
                    with m.If(allowed):
                        m.d.comb += self.err.eq(rep_flags)
                with m.Else():
                    m.d.comb += [tile0.valid.eq(allowed), tile0.word.eq(adv)]
                with m.If(left == 1):
                    advance()
                with m.Else():
                    m.d.sync += [rep_wait.eq(d - 1), rep_left.eq(left - 1)]
                    m.next = "REPEAT"
            with m.Else():
                m.d.sync += [rep_wait.eq(wait - 1), rep_left.eq(left)]
                m.next = "REPEAT"

        def restart():
            # Only an idle or halted queue takes `start` (the top ignores it while running).
            with m.If(self.start):
                m.d.comb += pc_next.eq(0)
                m.next = "FETCH"

        with m.FSM(init="IDLE") as fsm:
            with m.State("IDLE"):
                m.d.comb += [self.halted.eq(1), pc_next.eq(0)]
                restart()

            with m.State("FETCH"):
                # The check only gates what this cycle shows (issue, notify, waiting,
                # halted, err), never pc_next: after an error `stop` halts the queue in
                # the next cycle anyway, so the block RAM's address does not wait for the
                # check (the loop RAM -> check -> address would set the clock rate).
                legal = ~fetch_flags.any()
                with m.If(self.stop | at_end):
                    m.d.comb += self.halted.eq(1)
                    m.next = "HALTED"
                with m.Else():
                    m.d.comb += self.err.eq(fetch_flags)
                    with m.Switch(opcode(word)):
                        with m.Case(code("HALT")):
                            m.d.comb += self.halted.eq(legal)
                            m.next = "HALTED"
                        with m.Case(code("NOP")):
                            n = fields(kind, "NOP", word).n
                            with m.If(n == 1):
                                advance()
                            with m.Else():
                                m.d.sync += nop_left.eq(n - 2)
                                m.next = "NOP"
                        with m.Case(code("REPEAT")):
                            # nothing to repeat, or the first repetition (t0 + d) is past
                            misplaced = ~have_last | (rep_f.d < since)
                            with m.If(misplaced):
                                m.d.comb += self.err.eq(fetch_flags | ErrorFlag.ILLEGAL_INSTR)
                            m.d.sync += [rep_d.eq(rep_f.d), rep_stride.eq(rep_f.stride)]
                            repeat_step(rep_f.d - since, rep_f.n, rep_f.d,
                                        allowed=legal & ~misplaced)
                        with m.Case(code("NOTIFY")):
                            m.d.comb += self.notify.eq(legal)
                            advance()
                        with m.Case(code("SYNC")):
                            with m.If(self.notified):
                                advance()
                            with m.Else():
                                m.d.comb += self.waiting.eq(legal)
                        with m.Default():
                            m.d.comb += [tile0.valid.eq(legal), tile0.word.eq(word)]
                            advance()

            with m.State("NOP"):
                with m.If(self.stop):
                    m.d.comb += self.halted.eq(1)
                    m.next = "HALTED"
                with m.Elif(nop_left == 0):
                    advance()
                with m.Else():
                    m.d.sync += nop_left.eq(nop_left - 1)

            with m.State("REPEAT"):
                with m.If(self.stop):
                    m.d.comb += self.halted.eq(1)
                    m.next = "HALTED"
                with m.Else():
                    repeat_step(rep_wait, rep_left, rep_d)

            with m.State("HALTED"):
                m.d.comb += self.halted.eq(1)
                restart()

        # The stride comes from the REPEAT word in the cycle it is reached, then from its
        # register; chosen by the state alone, so it does not depend on the word's check.
        m.d.comb += stride.eq(Mux(fsm.ongoing("REPEAT"), rep_stride, rep_f.stride))
        m.d.comb += repeating.eq(fsm.ongoing("REPEAT") |
                                 (fsm.ongoing("FETCH") & (opcode(word) == code("REPEAT"))))
        with m.If(self.start):
            m.d.sync += [have_last.eq(0), since.eq(since.init)]

        # The superlane stagger: tile k executes tile k-1's instruction one cycle later.
        for k in range(1, c.tiles):
            m.d.sync += self.issue[k].eq(self.issue[k - 1])
            with m.If(self.start):
                m.d.sync += self.issue[k].valid.eq(0)
        return m
