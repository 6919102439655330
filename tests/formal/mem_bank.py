"""The bank hazard of ``RW`` (``docs/ARCHITECTURE.md`` sections 3 and 4), through the
whole MEM path: the queue (``rtl/icu.py``), the MEM slice (``rtl/mem.py``) and the
sticky error flags of the top (``rtl/top.py``).

A MEM slice has two banks with one read and one write port each, so an ``RW``
must read one bank and write the other. The ICU checks this at issue: an
``RW`` whose two addresses are in one bank raises ``BANK_CONFLICT`` and is not
executed at all (no write, no read, no emission), and the flag stays set
until the next ``START``. (There is no hazard logic in ``rtl/mem.py`` itself:
the slice relies on the ICU never issuing such an ``RW``, which this check
covers end to end.)

The bench builds a :class:`~rtl.top.TSP` of MEM slices only, on a machine with
two words per bank, and drives its host port: it writes any nonzero values
the solver picks into the four words of ``MEM_E0``, any two ``READ`` /
``WRITE`` / ``RW`` words (any legal fields) into its queue, starts the machine,
waits for ``done`` and reads the four words back. Nothing else runs, so every
stream the slice reads carries zero and every executed write stores zero.
It asserts, cycle by cycle:

- ``errors`` is ``BANK_CONFLICT`` exactly from the cycle after a same-bank
  ``RW`` issues (and for ever after), zero otherwise; ``err_queue`` and
  ``err_cycle`` name that queue and cycle from the cycle after that;
- the run ends when section 3 says (``cycles = H + T``, the error stop included);
- every word reads back as written by the executed instructions only: a
  conflicting ``RW`` (and whatever follows it) leaves memory untouched;
- if no executed instruction reads, nothing ever appears on any stream.
"""

from amaranth.hdl import Module, Signal, Cat, Mux, Assert, Assume
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In

from firmware.isa import OPS, WORD_BITS, ErrorFlag
from firmware.machine import SliceKind

from rtl.isa import fields, opcode
from rtl.top import TSP, HostCmd

from .common import formal_config, no_reset, first_cycle, frozen
from .mutants import Edit, mutant


__all__ = ["CONFIG", "BankBench", "BROKEN", "broken"]

MEM = SliceKind.MEM
WORD = WORD_BITS[MEM]
PROGRAM = 2                    # instruction words the solver writes
CONFIG = formal_config("formal_mem", bank_words=2, queue_depth=PROGRAM)
TIME = 6                       # bits of the bench's local cycle count


def _code(mnemonic):
    return OPS[MEM][mnemonic].opcode


class BankBench(wiring.Component):
    """A MEM-only :class:`~rtl.top.TSP` (or ``tsp_cls``, a broken variant) running two
    free MEM instructions on free memory contents."""

    def __init__(self, tsp_cls=TSP):
        c = CONFIG
        self.tsp = tsp_cls(c, kinds=(SliceKind.MEM,))
        super().__init__({
            "program": In(data.ArrayLayout(WORD, PROGRAM)),
            "init":    In(data.ArrayLayout(8 * c.vl, c.mem_words)),
        })

    def elaborate(self, platform):
        m = Module()
        c = CONFIG
        fp = c.floorplan
        no_reset(m)
        first = first_cycle(m)
        m.submodules.tsp = tsp = self.tsp
        host = tsp.host
        pos = fp.slice("MEM_E0").pos
        queue = fp.queues.index(fp.queue("MEM_E0"))
        prog = [frozen(m, self.program[i], first, f"word{i}") for i in range(PROGRAM)]
        init = [frozen(m, self.init[a], first, f"init{a}") for a in range(c.mem_words)]
        for a in range(c.mem_words):
            for byte in range(c.vl):      # a write of zero must be told from the old value
                m.d.comb += Assume(init[a][8 * byte:8 * byte + 8] != 0)

        # -- the specification -------------------------------------------------------------
        bank = c.bank_words.bit_length() - 1
        conflict, reads, writes, waddr = [], [], [], []
        for w in prog:
            op = opcode(w)
            rd, wr, rw = (fields(MEM, n, w) for n in ("READ", "WRITE", "RW"))
            is_read, is_write, is_rw = (op == _code(n) for n in ("READ", "WRITE", "RW"))
            m.d.comb += Assume(is_read | is_write | is_rw)
            for view, is_op, streams, addrs in ((rd, is_read, ["stream"], ["addr"]),
                                                (wr, is_write, ["stream"], ["addr"]),
                                                (rw, is_rw, ["rstream", "wstream"],
                                                 ["raddr", "waddr"])):
                with m.If(is_op):          # a legal word: only the bank may conflict
                    m.d.comb += Assume(view.reserved == 0)
                    m.d.comb += [Assume(view[n] < c.streams) for n in streams]
                    m.d.comb += [Assume(view[n] < c.mem_words) for n in addrs]
            conflict.append(is_rw & (rw.raddr[bank:] == rw.waddr[bank:]))
            reads.append(is_read | is_rw)
            writes.append(is_write | is_rw)
            waddr.append(Mux(is_rw, rw.waddr, wr.addr))
        # word 0 issues at local cycle 0; word 1 at 1 unless word 0 stopped the machine
        executed = [~conflict[0], ~conflict[0] & ~conflict[1]]
        any_conflict = conflict[0] | conflict[1]
        err_cycle = Mux(conflict[0], 0, 1)
        # H: MEM_E0 halts at 2 (end of its memory), or at err_cycle + 1 after an error
        length = Mux(any_conflict, err_cycle + 1, PROGRAM) + c.tiles
        expect = []
        for a in range(c.mem_words):
            hit = Cat(executed[i] & writes[i] & (waddr[i] == a) for i in range(PROGRAM)).any()
            expect.append(Mux(hit, 0, init[a]))

        # -- the host: load, start, wait for done, read back ---------------------------------
        step = Signal(range(c.mem_words + PROGRAM + 2))
        now = Signal(TIME)                   # local cycle since START (saturating)
        started = Signal()
        armed = Signal()                     # from START's cycle + 2
        primed = Signal()                    # from local cycle 0: START's cycle + 3
        reading = Signal(range(c.mem_words + 1))
        checking = Signal()                  # rdata holds word `reading - 1` this cycle
        with m.If(~started):
            m.d.sync += step.eq(step + 1)
            with m.If(step < c.mem_words):
                m.d.comb += [host.cmd.eq(HostCmd.WRITE_MEM), host.sel.eq(pos),
                             host.addr.eq(step), host.data.eq(Cat(*init).word_select(
                                 step[:(c.mem_words - 1).bit_length()], 8 * c.vl))]
            with m.Elif(step < c.mem_words + PROGRAM):
                index = step - c.mem_words
                m.d.comb += [host.cmd.eq(HostCmd.WRITE_INSTR), host.sel.eq(queue),
                             host.addr.eq(index), host.data.eq(Mux(index == 0, prog[0], prog[1]))]
            with m.Else():
                m.d.comb += host.cmd.eq(HostCmd.START)
                m.d.sync += started.eq(1)
        with m.Else():
            m.d.sync += [armed.eq(1), primed.eq(armed)]
            with m.If(primed & (now != (1 << TIME) - 1)):
                m.d.sync += now.eq(now + 1)
            m.d.sync += checking.eq(0)
            with m.If(tsp.done & (reading != c.mem_words)):
                m.d.comb += [host.cmd.eq(HostCmd.READ_MEM), host.sel.eq(pos),
                             host.addr.eq(reading)]
                m.d.sync += [reading.eq(reading + 1), checking.eq(1)]

        # -- the properties -------------------------------------------------------------------
        with m.If(~primed):
            m.d.comb += [Assert(tsp.errors == 0), Assert(~tsp.running)]
        with m.Else():
            flagged = (conflict[0] & (now >= 1)) | (~conflict[0] & conflict[1] & (now >= 2))
            m.d.comb += Assert(tsp.errors == Mux(flagged, ErrorFlag.BANK_CONFLICT, 0))
            # the first error's queue and cycle are recorded one cycle after `errors`
            named = (conflict[0] & (now >= 2)) | (~conflict[0] & conflict[1] & (now >= 3))
            with m.If(named):
                m.d.comb += [Assert(tsp.err_queue == queue), Assert(tsp.err_cycle == err_cycle)]
            m.d.comb += [Assert(tsp.running == (now < length)),
                         Assert(tsp.done == (now >= length))]
            with m.If(tsp.done):
                m.d.comb += Assert(tsp.cycles == length)
            with m.If(checking):
                got = Signal(8 * c.vl)
                m.d.comb += got.eq(tsp.rdata[:8 * c.vl])
                with m.Switch(reading - 1):
                    for a in range(c.mem_words):
                        with m.Case(a):
                            m.d.comb += Assert(got == expect[a])
            quiet = ~Cat(executed[i] & reads[i] for i in range(PROGRAM)).any()
            with m.If(quiet):
                fab = tsp.fabric
                m.d.comb += Assert(~Cat(fab.e_in.as_value(), fab.w_in.as_value()).any())
        return m


#: Broken variants the properties must catch: name -> (module, edits).
BROKEN = {
    "bank_bit_wrong": ("rtl.icu", [Edit(
        "bank_bit = c.bank_words.bit_length() - 1\n            other = p.any()",
        "bank_bit = c.bank_words.bit_length() - 2\n            other = p.any()",
        "the ICU compares the wrong address bit for the bank")]),
    "conflict_issued": ("rtl.icu", [Edit(
        "m.d.comb += [tile0.valid.eq(legal), tile0.word.eq(word)]",
        "m.d.comb += [tile0.valid.eq(1), tile0.word.eq(word)]",
        "an illegal word (a conflicting RW) is still executed")]),
    "flag_not_sticky": ("rtl.top", [Edit(
        "with m.If(running & now.any()):\n                m.d.sync += errors.eq(errors | now)",
        "with m.If(running):\n                m.d.sync += errors.eq(now)",
        "the error flags hold only in the cycle after the error")]),
    "write_to_read_bank": ("rtl.mem", [Edit(
        "wp.en.eq(st_en & (st_addr[bank_bit] == b))",
        "wp.en.eq(st_en & (rd_addr[bank_bit] == b))",
        "an RW writes into the bank it reads")]),
}


def broken(name):
    """The bench on the broken design ``name`` (a key of :data:`BROKEN`)."""
    module, edits = BROKEN[name]
    bad = mutant(module, edits)
    top = bad if module == "rtl.top" else mutant("rtl.top", [], deps={module: bad})
    return BankBench(tsp_cls=top.TSP)
