"""The queue sequencer's timing (``rtl/icu.py``, ``docs/ARCHITECTURE.md`` section 3).

The solver writes any program of ``words`` words into one MEM queue (ordinary
``READ``/``WRITE``/``RW`` words, ``NOP n``, ``REPEAT n, d, stride``, ``NOTIFY``,
``HALT``, in any order, any fields the ISA allows), then starts it. A
specification written here from the table of section 3, independently of the
sequencer, computes for every word the local cycle it is reached::

    ordinary at t   -> issues at t, next at t + 1
    NOP n at t      -> next at t + n
    REPEAT n, d, s  -> re-issues the last ordinary word (as last issued) at
                       t0 + d, .., t0 + n*d, address fields + s each time; next at t0 + n*d + 1
    NOTIFY at t     -> notify at t, next at t + 1
    HALT at t, or the end of the instruction memory -> halted from t on

and the bench asserts, in every cycle, that tile 0 issues exactly the expected
word in exactly the expected cycles and nothing else, that ``notify`` and
``halted`` follow, that no error is raised, and that tile ``k`` issues what
tile 0 issued ``k`` cycles earlier (the superlane stagger).

Only legal programs are considered (the illegal ones, with their error timing,
are covered in simulation by ``tests/test_rtl_icu.py``): fields in range, a
``REPEAT`` after an ordinary word with its first repetition not in the past,
no walk out of the address space, no ``RW`` walked into one bank, no ``SYNC``.
Counts are kept small (``nop_max``, ``rep_max``, ``dist_max``) so a whole
program fits in the cycles the solver unrolls.
"""

from amaranth.hdl import Module, Mux, Signal, Cat, Const, Assert, Assume, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In

from firmware.isa import OPS, WORD_BITS
from firmware.machine import SliceKind

from rtl.icu import InstructionQueue
from rtl.isa import fields, opcode

from .common import formal_config, no_reset, first_cycle, frozen, past
from .mutants import Edit, mutant


__all__ = ["SequencerBench", "BROKEN", "broken"]

MEM = SliceKind.MEM
WORD = WORD_BITS[MEM]
TIME = 8                       # bits of a local cycle number in the specification


def config_for(words):
    """``words`` instruction words; two banks of 4096 words, so that every 13-bit
    address is in range and only a walk past the field's width leaves it."""
    return formal_config(f"formal_icu{words}", queue_depth=words, bank_words=4096)


def _code(mnemonic):
    return OPS[MEM][mnemonic].opcode


class SequencerBench(wiring.Component):
    """One MEM :class:`~rtl.icu.InstructionQueue` (or ``queue_cls``, a broken
    variant) running a free program of ``words`` words against the specification."""

    def __init__(self, words=4, *, shape=None, nop_max=3, rep_max=2, dist_max=2, stride_max=3,
                 queue_cls=InstructionQueue):
        self._config = config_for(words)
        self._words = words
        # shape: per word, the mnemonics it may be ("ORD" = READ, WRITE or RW); None: any
        self._shape = shape
        self._nop_max, self._rep_max = nop_max, rep_max
        self._dist_max, self._stride_max = dist_max, stride_max
        self.queue = queue_cls(self._config, self._config.floorplan.queue("MEM_E0"))
        super().__init__({"program": In(data.ArrayLayout(WORD, words))})

    def elaborate(self, platform):
        m = Module()
        c, D = self._config, self._words
        no_reset(m)
        first = first_cycle(m)
        m.submodules.queue = q = self.queue
        prog = [frozen(m, self.program[i], first, f"word{i}") for i in range(D)]

        # -- the host: write the program in cycles 0..D-1, start in cycle D; the
        # sequencer decides local cycle 0 in D + 1, which is cycle D + 2 -----------------
        cycle = Signal(range(D + 3))
        with m.If(cycle != D + 2):
            m.d.sync += cycle.eq(cycle + 1)
        for i in range(D):
            with m.If(cycle == i):
                m.d.comb += [q.imem_w.en.eq(1), q.imem_w.addr.eq(i), q.imem_w.data.eq(prog[i])]
        m.d.comb += [q.start.eq(cycle == D), q.stop.eq(0), q.notified.eq(0)]
        running = cycle == D + 2
        now = Signal(TIME)                  # local cycle while running (saturates)
        with m.If(running & (now != (1 << TIME) - 1)):
            m.d.sync += now.eq(now + 1)

        # -- the specification -------------------------------------------------------------
        events, notifies, halt_at = self._spec(m, prog)
        expect_valid = Cat(v & (t == now) for v, t, _ in events).any()
        expect_word = Signal(WORD)
        for v, t, w in events:
            with m.If(v & (t == now)):
                m.d.comb += expect_word.eq(w)
        expect_notify = Cat(v & (t == now) for v, t in notifies).any()

        tile0 = q.issue[0]
        with m.If(running):
            m.d.comb += [
                Assert(tile0.valid == expect_valid),
                Assert(~expect_valid | (tile0.word == expect_word)),
                Assert(q.notify == expect_notify),
                Assert(q.halted == (now >= halt_at)),
                Assert(q.waiting == 0),
                Assert(q.err == 0),
            ]
        with m.Else():
            m.d.comb += [Assert(q.halted), Assert(~tile0.valid), Assert(~q.notify)]

        # -- the superlane stagger -----------------------------------------------------------
        for k in range(1, c.tiles):
            earlier = past(m, tile0.as_value(), f"tile0_{k}", k)
            with m.If(running & (now >= k)):
                m.d.comb += Assert(q.issue[k].as_value() == earlier)
            with m.Elif(running):
                m.d.comb += Assert(~q.issue[k].valid)
        return m

    def _spec(self, m, prog):
        """The section-3 schedule of ``prog``, word by word, as expressions.

        Returns ``(events, notifies, halt_at)``: ``events`` a list of ``(valid, cycle,
        word)`` of every issue, ``notifies`` of ``(valid, cycle)``, ``halt_at`` the
        cycle from which the queue is halted. Adds the assumptions that make the
        program legal."""
        def legal(cond):
            m.d.comb += Assume(cond)

        events, notifies = [], []
        t = Const(0, TIME)                 # the cycle word i is reached
        live = Const(1)                    # no HALT before word i
        halt_at = Signal(TIME, name="spec_halt_at")
        have_last = Const(0)
        last_t = Const(0, TIME)            # the cycle of the last ordinary issue
        last_word = Const(0, WORD)         # ... and the word it issued
        for i, w in enumerate(prog):
            op = opcode(w)
            is_ord = (op == _code("READ")) | (op == _code("WRITE")) | (op == _code("RW"))
            is_nop, is_rep = op == _code("NOP"), op == _code("REPEAT")
            is_notify, is_halt = op == _code("NOTIFY"), op == _code("HALT")
            legal(is_ord | is_nop | is_rep | is_notify | is_halt)
            if self._shape is not None:
                kinds = {"ORD": is_ord, "NOP": is_nop, "REPEAT": is_rep, "NOTIFY": is_notify,
                         "HALT": is_halt}
                legal(Cat(kinds[k] for k in self._shape[i]).any())
            with m.If(live):
                self._legal_word(m, w, op)

            nop = fields(MEM, "NOP", w)
            rep = fields(MEM, "REPEAT", w)
            with m.If(live & is_halt):
                m.d.comb += halt_at.eq(t)
            events.append((live & is_ord, t, w))
            notifies.append((live & is_notify, t))

            # REPEAT: repetitions j = 1 .. n at last_t + j*d, addresses + j*stride
            rep_t, rep_w = last_t, last_word
            with m.If(live & is_rep):
                legal(have_last & (last_t + rep.d >= t))
            for j in range(1, self._rep_max + 1):
                on = live & is_rep & (rep.n >= j)
                when = Signal(TIME, name=f"spec_w{i}_rep{j}_t")
                m.d.comb += when.eq(last_t + j * rep.d)
                word = self._advance(m, last_word, j * rep.stride, on, f"spec_w{i}_rep{j}")
                events.append((on, when, word))
                rep_t = Mux(rep.n == j, when, rep_t)
                rep_w = Mux(rep.n == j, word, rep_w)

            step = Mux(is_nop, nop.n, 1)
            t_next = Signal(TIME + 1, name=f"spec_t{i + 1}")
            m.d.comb += t_next.eq(Mux(is_rep, rep_t + 1, t + step))
            with m.If(live):
                legal(t_next < (1 << TIME) - 1)          # no wrap of the spec's clock
            last_t = Mux(live & is_ord, t, Mux(live & is_rep, rep_t, last_t))
            last_word = Mux(live & is_ord, w, Mux(live & is_rep, rep_w, last_word))
            have_last = have_last | (live & is_ord)
            t = t_next[:TIME]
            live = live & ~is_halt
        with m.If(live):                   # ran off the end of the instruction memory
            m.d.comb += halt_at.eq(t)
        return events, notifies, halt_at

    def _legal_word(self, m, w, op):
        """Assume ``w`` is a legal word of its opcode with the bench's small counts."""
        c = self._config
        with m.Switch(op):
            for mnemonic in ("HALT", "NOP", "REPEAT", "NOTIFY", "READ", "WRITE", "RW"):
                info = OPS[MEM][mnemonic]
                f = fields(MEM, mnemonic, w)
                with m.Case(info.opcode):
                    conds = []
                    if info.bits() < WORD:
                        conds.append(f.reserved == 0)
                    if mnemonic == "NOP":
                        conds += [f.n >= 1, f.n <= self._nop_max]
                    elif mnemonic == "REPEAT":
                        conds += [f.n >= 1, f.n <= self._rep_max, f.d >= 1,
                                  f.d <= self._dist_max, f.stride >= -self._stride_max,
                                  f.stride <= self._stride_max]
                    elif mnemonic in ("READ", "WRITE"):
                        conds += [f.stream < c.streams]
                    elif mnemonic == "RW":
                        bank = c.bank_words.bit_length() - 1
                        conds += [f.rstream < c.streams, f.wstream < c.streams,
                                  f.raddr[bank:] != f.waddr[bank:]]
                    for cond in conds:
                        m.d.comb += Assume(cond)

    def _advance(self, m, word, delta, on, name):
        """``word`` with its address fields moved by ``delta``; assumes, when ``on``,
        that they stay in range and an ``RW`` keeps its two banks apart."""
        c = self._config
        out = Signal(WORD, name=name)
        m.d.comb += out.eq(word)
        with m.Switch(opcode(word)):
            for mnemonic in ("READ", "WRITE", "RW"):
                info = OPS[MEM][mnemonic]
                with m.Case(info.opcode):
                    src, dst = fields(MEM, mnemonic, word), fields(MEM, mnemonic, out)
                    for fname in info.addr_fields:
                        moved = Signal(signed(16), name=f"{name}_{fname}")
                        m.d.comb += [moved.eq(src[fname] + delta), dst[fname].eq(moved)]
                        with m.If(on):
                            m.d.comb += Assume((moved >= 0) & (moved < c.mem_words))
                    if mnemonic == "RW":
                        bank = c.bank_words.bit_length() - 1
                        with m.If(on):
                            m.d.comb += Assume(dst.raddr[bank:] != dst.waddr[bank:])
        return out


#: Broken variants of ``rtl/icu.py`` the properties must catch: name -> edits.
BROKEN = {
    "nop_one_long": [Edit("m.d.sync += count.eq(2)", "m.d.sync += count.eq(1)",
                          "NOP n stalls n + 1 cycles")],
    "repeat_once_more": [Edit("m.d.comb += last_rep.eq(reps1 == rep_f.n)",
                              "m.d.comb += last_rep.eq(reps1 == rep_f.n + 1)",
                              "REPEAT n issues n + 1 times")],
    "stride_ignored": [Edit("m.d.comb += moved.eq(src + stride)",
                            "m.d.comb += moved.eq(src)",
                            "REPEAT does not advance the address")],
    "end_not_halt": [Edit("at_end = pc == depth ", "at_end = pc == depth + 1 ",
                          "running off the end of the memory does not halt")],
}


def broken(name, **kw):
    """The bench on the broken sequencer ``name`` (a key of :data:`BROKEN`)."""
    return SequencerBench(queue_cls=mutant("rtl.icu", BROKEN[name]).InstructionQueue, **kw)
