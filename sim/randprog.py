"""Random valid programs, for differential testing of the RTL against the golden model.

:func:`random_program` writes a program that uses every kind of instruction
of every queue with random fields, NOPs and REPEATs (with address strides),
often a SYNC/NOTIFY barrier at the start, random initial memory, tables and
permutation maps. The programs compute nothing in particular, but every
value they move is deterministic, so the RTL must agree with the golden
model on every hop of every cycle.

"Valid" means the program raises no error by construction:

* MEM addresses and REPEAT walks stay inside two windows, one per bank, so
  every access is in range and an ``RW`` reads one bank and writes the other;
* each VXM ALU writes only the streams of its own (direction, SG4 group)
  pairs, so two ALUs never drive one hop in one cycle;
* the MXM sends fused ``ABC`` results one way and ``ACC`` results the other
  (which way is drawn per program, so both reach the chip in some programs),
  so those two never collide either;
* fields are drawn from their legal ranges for the configuration.

Most programs (``MXM_PROLOGUE`` of them) start with a *coordinated* MXM
sequence, so that the matrix unit computes on real data rather than on
whatever random streams happen to pass: a MEM slice streams ``VL`` (at most 16)
weight columns to the MXM, timed so that ``LW`` (repeated column by column)
catches each on arrival; ``IW``; then a few activation vectors that ``ABC``
(repeated, often accumulating) multiplies; then the result goes back toward
the MEM slice (an ``ACC`` or the fused emit of the last ``ABC``, whichever of
the two directions points there) and a timed ``WRITE`` stores one byte plane
of it. The timing follows ``docs/ARCHITECTURE.md`` (a read emits at ``t + 1``,
``h`` hops later the MXM sees it; the accumulate lands ``T + 1`` after
``ABC``); the golden model and the RTL must of course agree whatever it is.

Every ordinary instruction is checked with :func:`firmware.isa.check` and
drawn again when the machine would refuse it (so a rule added there, e.g. an
ALU without a multiplier, is followed without changing this module).

With ``errors=True`` the program instead carries one deliberate fault (an
undefined opcode, or on a MEM queue a same-bank ``RW`` or a REPEAT walking off
the end of memory), to test that both engines stop the same way.
"""

import numpy as np

from firmware.image import ProgramImage
from firmware.isa import (Instr, OPS, VXM_TYPED, VXM_ALU0_ONLY, VXM_UNARY, check,
                          decode, encode, vxm_set_can, vxm_types)
from firmware.machine import Dir, SliceKind


__all__ = ["random_program", "WINDOW", "MXM_PROLOGUE"]

#: Words per bank window that random MEM accesses stay in.
WINDOW = 24

#: Share of programs that start with the coordinated MXM sequence.
MXM_PROLOGUE = 0.8

#: Most weight columns the MXM sequence loads (one MEM word each, inside a window).
PROLOGUE_COLUMNS = 16

#: Draws of an ordinary instruction before giving up on ``isa.check`` accepting one.
DRAWS = 100


class _Gen:
    def __init__(self, config, rng):
        self.c = config
        self.rng = rng
        self.fp = config.floorplan
        #: direction of fused ABC emissions; ACCs take the other one
        self.fused_dir = int(rng.integers(2))

    def pick(self, seq):
        return seq[int(self.rng.integers(len(seq)))]

    def int(self, lo, hi):
        """Uniform in ``lo .. hi`` inclusive."""
        return int(self.rng.integers(lo, hi + 1))

    def chance(self, p):
        return bool(self.rng.random() < p)

    # -- MEM ------------------------------------------------------------------

    def window(self, bank):
        """First address of the random-access window of ``bank``."""
        return bank * self.c.bank_words + min(8, self.c.bank_words - WINDOW)

    def mem_addr(self, bank, n, stride):
        """An address whose REPEAT walk of ``n`` steps of ``stride`` stays in the window."""
        lo = self.window(bank)
        span = n * abs(stride)
        a = self.int(lo, lo + WINDOW - 1 - span)
        return a + span if stride < 0 else a

    def mem(self, n, stride):
        S = self.c.streams
        op = self.pick(["READ", "WRITE", "RW"])
        if op == "RW":
            rb = self.int(0, 1)
            return Instr(SliceKind.MEM, "RW", {
                "rdir": self.int(0, 1), "rstream": self.int(0, S - 1),
                "raddr": self.mem_addr(rb, n, stride),
                "wdir": self.int(0, 1), "wstream": self.int(0, S - 1),
                "waddr": self.mem_addr(1 - rb, n, stride)})
        return Instr(SliceKind.MEM, op, {"dir": self.int(0, 1), "stream": self.int(0, S - 1),
                                         "addr": self.mem_addr(self.int(0, 1), n, stride)})

    # -- VXM ------------------------------------------------------------------

    def owned_groups(self, alu):
        """(direction, SG4 group) pairs ALU ``alu`` may write."""
        pairs = [(d, g) for g in range(self.c.streams // 4) for d in (0, 1)]
        return [p for i, p in enumerate(pairs) if i % self.c.vxm_alus == alu]

    def operand(self, width32, allow_imm=True):
        S = self.c.streams
        kinds = ["stream", "stream", "alu", "zero"] + (["imm"] if allow_imm else [])
        kind = self.pick(kinds)
        if kind == "stream":
            s = 4 * self.int(0, S // 4 - 1) if width32 else self.int(0, S - 1)
            return (1 << 6) | (self.int(0, 1) << 5) | s
        if kind == "alu":
            return (2 << 6) | self.int(0, self.c.vxm_alus - 1)
        return 3 << 6 if kind == "imm" else 0

    def vxm(self, alu):
        ops = [m for m in OPS[SliceKind.VXM] if m not in ("HALT", "NOP", "REPEAT", "NOTIFY", "SYNC")]
        if alu != 0:
            ops = [m for m in ops if m not in VXM_ALU0_ONLY]
        ops = [m for m in ops if vxm_set_can(self.c, m, 0)]     # int8-only sets
        m = self.pick(ops)
        dtype = self.int(0, 1) if m in VXM_TYPED and self.c.vxm_int32 else 0
        dt_in, dt_out = vxm_types(m, dtype)
        no_imm = m in ("SELECT", "REQUANT", "LUTW")
        f = {"dtype": dtype, "a": self.operand(dt_in, not no_imm)}
        if m not in VXM_UNARY:
            f["b"] = self.operand(dt_in, not no_imm)
        if m == "SELECT":
            f["c"] = self.operand(dt_in, False)
        elif m == "REQUANT":
            # sometimes a small scale on a chained ALU result (often a sign-extended
            # int8): exact ties inside the int8 range, the only place zr matters
            if self.chance(0.3):
                shift, mult = self.int(1, 3), self.int(1, 7)
                f["a"] = (2 << 6) | self.int(0, self.c.vxm_alus - 1)
            else:
                shift, mult = self.int(0, 63), self.int(0, (1 << 24) - 1)
            f.update(shift=shift, mult=mult, zp=self.int(-128, 127), zr=self.int(0, 1))
        elif m == "LUTW":
            f["index"] = self.int(0, 255)
        else:
            f["imm"] = self.int(-(1 << 31), (1 << 31) - 1)
        owned = self.owned_groups(alu)
        if m != "LUTW" and owned and self.chance(0.7):
            d, g = self.pick(owned)
            f.update(we=1, wdir=d, wstream=4 * g + (0 if dt_out else self.int(0, 3)))
        return Instr(SliceKind.VXM, m, f)

    # -- MXM ------------------------------------------------------------------

    def mxm(self, n, stride):
        """An MXM instruction whose REPEAT walk (``n`` steps of ``stride``) stays in range;
        ``stride`` is dropped to 0 where the weight columns or accumulator slots are too
        few for it."""
        c, S = self.c, self.c.streams
        m = self.pick(["LW", "LW", "IW", "ABC", "ABC", "ABC", "ACC"])
        if m == "IW":
            return Instr(SliceKind.MXM, "IW", {}), 0
        if m == "LW":
            count = self.int(1, min(4, S, c.vl))
            if n * abs(stride) > c.vl - count:
                stride = 0
            span = n * abs(stride)
            col = self.int(span if stride < 0 else 0, c.vl - count - (span if stride > 0 else 0))
            return Instr(SliceKind.MXM, "LW", {"dir": self.int(0, 1),
                                               "stream": self.int(0, S - count),
                                               "count": count - 1, "col": col}), stride
        if n * abs(stride) > c.acc_slots - 1:
            stride = 0
        span = n * abs(stride)
        slot = self.int(span if stride < 0 else 0, c.acc_slots - 1 - (span if stride > 0 else 0))
        if m == "ACC":      # never the fused emissions' direction: no collisions
            return Instr(SliceKind.MXM, "ACC", {"dir": 1 - self.fused_dir,
                                                "stream": 4 * self.int(0, S // 4 - 1),
                                                "slot": slot}), stride
        f = {"dir": self.int(0, 1), "stream": self.int(0, S - 1), "acc": self.int(0, 1),
             "slot": slot}
        if self.chance(0.4):
            f.update(emit=1, edir=self.fused_dir, estream=4 * self.int(0, S // 4 - 1))
        return Instr(SliceKind.MXM, "ABC", f), stride

    # -- SXM ------------------------------------------------------------------

    def sxm(self):
        c, S, L = self.c, self.c.streams, self.c.lanes
        m = self.pick(["SHUP", "SHDN", "ROT", "PERM", "DIST", "TRANS"])
        n = L if m == "TRANS" else 1
        arg = {"SHUP": self.int(0, c.vl - 1), "SHDN": self.int(0, c.vl - 1),
               "ROT": self.int(0, c.vl - 1), "PERM": self.int(0, c.sxm_maps - 1),
               "DIST": self.int(0, L - 1), "TRANS": 0}[m]
        return Instr(SliceKind.SXM, m, {"sdir": self.int(0, 1), "sstream": self.int(0, S - n),
                                        "ddir": self.int(0, 1), "dstream": self.int(0, S - n),
                                        "arg": arg})

    # -- queues ---------------------------------------------------------------

    def ordinary(self, queue, n, stride):
        """An ordinary instruction for ``queue`` that the machine accepts, and the
        REPEAT stride it can take."""
        for _ in range(DRAWS):
            ins, step = self._draw(queue, n, stride)
            ins = decode(queue.kind, encode(ins))       # every field, as the machine sees it
            if not check(ins, queue, self.c):
                return ins, step
        raise RuntimeError(f"no legal instruction for queue {queue.name} in {DRAWS} draws; "
                           f"last: {ins}: {check(ins, queue, self.c)}")

    def _draw(self, queue, n, stride):
        kind = queue.kind
        if kind is SliceKind.MEM:
            return self.mem(n, stride), stride
        if kind is SliceKind.MXM:
            return self.mxm(n, stride)
        if kind is SliceKind.SXM:
            return self.sxm(), 0
        return self.vxm(queue.alu), 0

    # -- the coordinated MXM sequence ----------------------------------------------

    def mxm_prologue(self, start):
        """``{queue name: [Instr, ...]}``: the MXM sequence of the module docstring, for
        one MXM and one MEM slice; ``start[q]`` is the cycle queue ``q`` begins it."""
        c, fp, T = self.c, self.fp, self.c.tiles
        mxm = self.pick(fp.of_kind(SliceKind.MXM))
        mem = self.pick(fp.of_kind(SliceKind.MEM))
        h = abs(mxm.pos - mem.pos)
        toward = Dir.E.value if mem.pos < mxm.pos else Dir.W.value   # MEM -> MXM
        back = 1 - toward                                            # MXM -> MEM
        prog = {mem.name: [], mxm.name: []}
        cursor = {mem.name: start[mem.name], mxm.name: start[mxm.name]}

        def at(q, t, ins, repeat=0, stride=0):
            """``ins`` in queue ``q`` at cycle ``t`` (a NOP before it if need be), then
            ``repeat`` more of it on the following cycles."""
            assert t >= cursor[q], (q, t, cursor[q])
            if t > cursor[q]:
                prog[q].append(Instr(ins.kind, "NOP", {"n": t - cursor[q]}))
            prog[q].append(ins)
            if repeat:
                prog[q].append(Instr(ins.kind, "REPEAT", {"n": repeat, "d": 1, "stride": stride}))
            cursor[q] = t + 1 + repeat

        def mem_words(count):
            bank = self.int(0, 1)
            lo = self.window(bank)
            return self.int(lo, lo + WINDOW - count)

        S = c.streams
        # weights: column j of the MXM from one MEM word, one column a cycle
        ncols = min(c.vl, PROLOGUE_COLUMNS)
        if self.chance(0.3):
            ncols = self.int(1, ncols)
        col = self.int(0, c.vl - ncols)
        sw = self.int(0, S - 1)
        tw = max(cursor[mem.name], cursor[mxm.name] - 1 - h) + self.int(0, 2)
        at(mem.name, tw, Instr(SliceKind.MEM, "READ", {"dir": toward, "stream": sw,
                                                       "addr": mem_words(ncols)}),
           repeat=ncols - 1, stride=1)
        at(mxm.name, tw + 1 + h, Instr(SliceKind.MXM, "LW", {"dir": toward, "stream": sw,
                                                             "count": 0, "col": col}),
           repeat=ncols - 1, stride=1)
        ti = cursor[mxm.name] + self.int(0, 1)
        at(mxm.name, ti, Instr(SliceKind.MXM, "IW", {}))
        # activations: m vectors, multiplied into one slot (acc) or walking the slots
        m = self.int(1, 4)
        stride = self.int(0, 1)
        if (m - 1) * stride > c.acc_slots - 1:          # more vectors than slots to walk
            stride = 0
        slot = self.int(0, c.acc_slots - 1 - (m - 1) * stride)
        sx = self.int(0, S - 1)
        ta = max(cursor[mem.name], ti - h) + self.int(0, 2)
        at(mem.name, ta, Instr(SliceKind.MEM, "READ", {"dir": toward, "stream": sx,
                                                       "addr": mem_words(m)}),
           repeat=m - 1, stride=1)
        group = 4 * self.int(0, S // 4 - 1)
        fused = self.fused_dir == back          # which result travels back to the MEM slice
        abc = {"dir": toward, "stream": sx, "acc": int(self.chance(0.5) or stride == 0),
               "slot": slot}
        if fused:
            abc.update(emit=1, edir=self.fused_dir, estream=group)
        tb = ta + 1 + h
        at(mxm.name, tb, Instr(SliceKind.MXM, "ABC", abc), repeat=m - 1, stride=stride)
        last = slot + (m - 1) * stride
        landed = tb + m - 1 + c.latency.mxm_abc     # the last ABC's accumulate
        if fused:
            arrives = landed + c.latency.mxm_acc + h
        else:
            tc = max(cursor[mxm.name], landed) + self.int(0, 1)
            at(mxm.name, tc, Instr(SliceKind.MXM, "ACC", {"dir": back, "stream": group,
                                                          "slot": last}))
            arrives = tc + c.latency.mxm_acc + h
        # one byte plane of the int32 result into the MEM slice
        at(mem.name, arrives, Instr(SliceKind.MEM, "WRITE", {
            "dir": back, "stream": group + self.int(0, 3), "addr": mem_words(1)}))
        return prog

    def queue_program(self, queue, length, barrier, notifier, prologue=()):
        """Instructions of one queue: the prologue, then ordinary ones, NOPs and REPEATs."""
        out = []
        if barrier:
            out.append(Instr(queue.kind, "NOTIFY" if notifier else "SYNC", {}))
        out += prologue
        has_addr = queue.kind in (SliceKind.MEM, SliceKind.MXM)
        for _ in range(length):
            r = self.rng.random()
            if r < 0.2:
                out.append(Instr(queue.kind, "NOP", {"n": self.int(1, 6)}))
                continue
            repeat = self.chance(0.35)
            n = self.int(1, 4) if repeat else 0
            stride = self.int(-2, 2) if repeat and has_addr else 0
            ins, stride = self.ordinary(queue, n, stride)
            out.append(ins)
            if repeat:
                out.append(Instr(queue.kind, "REPEAT", {"n": n, "d": self.int(1, 3),
                                                        "stride": stride}))
        out.append(Instr(queue.kind, "HALT", {}))
        return out


def random_program(config, seed, length=12, errors=False, idle_tables=True):
    """A random program image for ``config`` (see the module docstring).

    ``length`` is the number of steps (instructions or NOPs, each maybe
    repeated) per queue. The same arguments always give the same program.
    ``idle_tables=False`` leaves out the VXM tables when no ``LUT`` reads them and
    the SXM maps of an SXM that runs no ``PERM`` (each entry costs a host cycle
    to load, and the run cannot depend on them).
    """
    rng = np.random.default_rng(seed)
    g = _Gen(config, rng)
    c, fp = config, config.floorplan
    img = ProgramImage(c)
    barrier = g.chance(0.3)
    notifier = g.pick(fp.queues).name if barrier else None
    # the cycle each queue issues its first instruction after the barrier: the
    # notifier's NOTIFY at 0, every SYNC passes at 1 and the next issues at 2
    start = {q.name: (0 if not barrier else 1 if q.name == notifier else 2) for q in fp.queues}
    prologue = g.mxm_prologue(start) if g.chance(MXM_PROLOGUE) else {}
    programs = {}
    for q in fp.queues:
        prog = g.queue_program(q, g.int(1, length), barrier, q.name == notifier,
                               prologue.get(q.name, ()))
        programs[q.name] = prog
        img.queues[q.name] = [encode(i) for i in prog]
    for s in fp.of_kind(SliceKind.MEM):
        for bank in (0, 1):
            lo = g.window(bank)
            img.set_words(s.name, lo, rng.integers(-128, 128, WINDOW * c.vl))
    # A sparse table: every host write costs a cycle when the RTL is loaded, and
    # 16 random entries per lane are plenty for LUT ops to hit nonzero ones.
    lut = np.zeros((c.vl, 256), np.int8)
    for lane in range(c.vl):
        lut[lane, rng.choice(256, 16, replace=False)] = rng.integers(-128, 128, 16)
    if idle_tables or any(i.mnemonic == "LUT" for p in programs.values() for i in p):
        img.lut = lut
    for s in fp.of_kind(SliceKind.SXM):
        maps = {m: [int(x) for x in rng.permutation(c.vl)] for m in range(c.sxm_maps)}
        if idle_tables or any(i.mnemonic == "PERM" for i in programs[s.name]):
            img.perms[s.name] = maps
    if errors:
        _inject_fault(g, img)
    return img


def _inject_fault(g, img):
    """Put one faulty instruction into a random queue: an undefined opcode, or on a
    MEM queue a REPEAT walking off the end of memory or a same-bank RW."""
    c = g.c
    q = g.pick(g.fp.queues)
    words = img.queues[q.name]
    at = g.int(0, len(words) - 1)
    choice = g.pick(["opcode"] + (["range", "bank"] if q.kind is SliceKind.MEM else []))
    if choice == "opcode":
        words[at] = 31                              # opcode 31 is defined for no queue
    elif choice == "range":
        words[at:at + 1] = [
            encode(Instr(q.kind, "READ", {"dir": 0, "stream": 0, "addr": c.mem_words - 2})),
            encode(Instr(q.kind, "REPEAT", {"n": 3, "d": 1, "stride": 1}))]
    else:
        words[at] = encode(Instr(q.kind, "RW", {"rdir": 0, "rstream": 0, "raddr": 0,
                                                "wdir": 1, "wstream": 0, "waddr": 1}))
