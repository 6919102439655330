"""GEMM on one MXM: ``C[M, N] = A[M, K] @ B[K, N]``, int8 x int8 -> int32.

Tiling. K and N are cut into ``VL``-wide tiles (the ragged edges padded with
zeros), M into chunks of at most ``acc_slots`` rows (one accumulator slot per
row). Every (M chunk, N tile, K tile) is a *pass* of the MXM queue:

    LW x nLW     the tile's VL weight columns, ``count`` columns per LW
    IW           shadow -> active weights
    ABC x Mc     one activation row per cycle into slots 0..Mc-1:
                 ``acc=0`` on the first K tile, ``acc=1`` after; on the last
                 K tile ``emit=1`` sends the finished int32 row out (fused ACC)

so the MXM issues an ``ABC`` in all but ``nLW + 1`` cycles of each pass of
``Mc + nLW + 1`` cycles.

Data flow. MEM slices feed the MXM on the streams that run towards it: a word
read by a slice ``h`` hops away at ``t - h - mem_read`` arrives exactly when
the MXM reads it at ``t``. Each MXM cycle takes its operands from *distinct*
slices (an ``LW`` of ``count`` columns: one column from each of ``count``
slices), and a given slice's read for MXM cycle ``t`` always happens at
``t - h - mem_read``, so no MEM read port is ever asked twice in one cycle.
Every MXM cycle uses its own diagonal of the streams, so the allocator hands
out the same streams every time (0 for activations, ``0 .. count-1`` for
weight columns, SG4 group 0 for results), which keeps the instruction words
identical and ``REPEAT``-compressible. ``count`` is the number of streams,
MEM slices or lanes, whichever is least, unless a narrower LW that starts
earlier wins over the whole program (``_Gemm._lw_width``).

Results. The int32 row leaves the MXM on an SG4 group in the other
direction; its byte ``i`` is written by the ``i``-th slice of a group of four
MEM slices ("split planes", :class:`firmware.image.Output`). Output vector
``v = nt * M + m`` holds ``C[m, nt*VL : (nt+1)*VL]``; the vectors fill the
groups nearest the MXM first, so the writes of a pass walk the addresses with
stride 1, as the activation reads do, and a slice that reads and writes in
one cycle (``RW``) keeps one ``REPEAT``. The planes sit in bank 1 and the
inputs in bank 0 of those slices, so an ``RW`` never hits one bank twice;
when bank 1 of every group cannot hold C, the planes take both banks of
slices that then only write.
"""

from dataclasses import dataclass

import numpy as np

from ..image import Output
from ..isa import Instr
from ..machine import Dir, SliceKind, get_config
from .hazards import check_schedule
from .schedule import Part, Schedule


__all__ = ["compile_gemm", "CompiledGemm", "CompileError"]


class CompileError(ValueError):
    """A GEMM that this machine cannot hold or run as asked."""


def _ceil(a, b):
    return -(-a // b)


@dataclass
class CompiledGemm:
    """A compiled GEMM: the image to run and what it is expected to do.

    ``bound`` is the MXM's lower bound ``M * ceil(K/VL) * ceil(N/VL)`` cycles
    (one ``ABC`` per activation row per tile); ``predicted_cycles`` is the
    exact run time ``H + T`` the golden model and the hardware will count.
    """
    config: object
    M: int
    K: int
    N: int
    A: np.ndarray
    B: np.ndarray
    image: object
    schedule: Schedule
    predicted_cycles: int
    bound: int
    reads_checked: int
    outputs: tuple      # names of the image outputs holding C's vectors, in order

    @property
    def utilisation(self):
        return self.bound / self.predicted_cycles

    def expected(self):
        """numpy's ``A @ B``, wrapped to int32 as the accumulators wrap."""
        return (self.A.astype(np.int64) @ self.B.astype(np.int64)).astype(np.int32)

    def problems(self, run):
        """What is wrong with a run of :attr:`image` (anything with ``cycles``,
        ``errors`` and ``memory``, e.g. the golden model's result): a list of
        messages, empty when the run is exact."""
        out = []
        if run.errors:
            out.append(f"error flags {run.errors:#x}")
        if run.cycles != self.predicted_cycles:
            out.append(f"ran {run.cycles} cycles, predicted {self.predicted_cycles}")
        wrong = np.argwhere(self.result(run.memory) != self.expected())
        if len(wrong):
            m, n = wrong[0]
            out.append(f"{len(wrong)} wrong elements of C, first C[{m}, {n}]")
        return out

    def result(self, memory):
        """``C`` (int32 ``[M, N]``) from final memories (slice -> uint8 [words, VL])."""
        vl = self.config.vl
        nt = _ceil(self.N, vl)
        v = np.concatenate([self.image.outputs[name].read(memory) for name in self.outputs])
        return v.reshape(nt, self.M, vl).transpose(1, 0, 2).reshape(self.M, nt * vl)[:, :self.N]


class _Arena:
    """The free input words of one MEM slice: ranges handed out front to back."""

    def __init__(self, ranges):
        self.ranges = [list(r) for r in ranges]

    @property
    def free(self):
        return sum(hi - lo for lo, hi in self.ranges)

    def alloc(self, n):
        for r in self.ranges:
            if r[1] - r[0] >= n:
                r[0] += n
                return r[0] - n
        return None


@dataclass(frozen=True)
class _Pass:
    """One (M chunk, N tile, K tile) pass of the MXM."""
    index: int
    m0: int
    rows: int
    nt: int
    kt: int
    first: bool         # first K tile: overwrite the slots
    last: bool          # last K tile: the rows are finished


class _Gemm:
    """Plans one GEMM: memory layout, the MXM's timeline, then every placement."""

    def __init__(self, config, M, K, N, A, B, side, fused_emit):
        self.cfg = config
        self.M, self.K, self.N = M, K, N
        self.A, self.B = A, B
        self.fused = fused_emit
        fp = config.floorplan
        self.fp, self.lat, self.vl = fp, config.latency, config.vl
        self.mxm = fp.slice(f"MXM_{side}")
        self.toward = Dir.E if side == "E" else Dir.W       # MEM -> MXM
        self.away = Dir.W if side == "E" else Dir.E         # MXM -> MEM
        self.kt_n, self.nt_n = _ceil(K, self.vl), _ceil(N, self.vl)
        self.sched = Schedule(config)
        self.memory = {}                                    # slice -> {addr: uint8[VL]}
        self.start = 0              # no instruction before this cycle (a phase of a longer program)

    def hops(self, sl):
        return abs(sl.pos - self.mxm.pos)

    # -- memory --------------------------------------------------------------

    def plan_memory(self):
        cfg = self.cfg
        mems = sorted(self.fp.of_kind(SliceKind.MEM), key=lambda s: (self.hops(s), s.pos))
        if len(mems) < 4:
            raise CompileError(f"config {cfg.name}: int32 results need 4 MEM slices, it has {len(mems)}")
        self._plan_output(mems)
        writer_free = [(0, cfg.bank_words)] if self.out_base else []
        writers = {s for group in self.out_groups for s in group}
        arenas = {s.name: _Arena(writer_free if s in writers else [(0, cfg.mem_words)])
                  for s in mems}
        readers = [s for s in mems if arenas[s.name].free]
        if not readers:
            raise CompileError(f"{self.shape}: C takes both banks of all {len(mems)} MEM slices of "
                               f"config {cfg.name}, none is left for A and B")
        self.count = self._lw_width(readers)
        self.b_readers = readers[:self.count]
        self.n_lw = _ceil(self.vl, self.count)
        self.b_home = {}            # (nt, kt, j) -> address in b_readers[j]
        for nt in range(self.nt_n):
            for kt in range(self.kt_n):
                for j, sl in enumerate(self.b_readers):
                    self.b_home[nt, kt, j] = self._alloc(arenas, [sl], len(range(j, self.vl, self.count)))
        self.a_home = {}            # (m0, kt) -> (slice, address)
        for m0 in range(0, self.M, cfg.acc_slots):
            rows = min(cfg.acc_slots, self.M - m0)
            for kt in range(self.kt_n):
                by_room = sorted(readers, key=lambda s: -arenas[s.name].free)
                self.a_home[m0, kt] = self._alloc(arenas, by_room, rows, where=True)
        self._store_operands()

    def _lw_width(self, readers):
        """Columns per LW: each pass spends ``ceil(VL/count)`` MXM cycles on
        LWs, but ``count`` columns come from the ``count`` nearest slices, and
        the farthest of them delays the first LW by its hops. Wide LWs win for
        many passes; for one pass on a big floorplan narrower ones can start
        earlier."""
        passes = _ceil(self.M, self.cfg.acc_slots) * self.nt_n * self.kt_n
        widest = min(self.cfg.streams, len(readers), self.vl)
        return min(range(widest, 0, -1),
                   key=lambda n: passes * _ceil(self.vl, n) + self.hops(readers[n - 1]))

    def _plan_output(self, mems):
        """C's vectors go, ``cap`` at a time, to groups of four MEM slices (the
        nearest first), one byte plane per slice: in bank 1 when that holds
        them, so that bank 0 still feeds the MXM; else in both banks of
        slices that then only write."""
        cfg = self.cfg
        groups = [mems[i:i + 4] for i in range(0, len(mems) - 3, 4)]
        vectors = self.M * self.nt_n
        for cap, base in ((cfg.bank_words, cfg.bank_words), (cfg.mem_words, 0)):
            if _ceil(vectors, cap) <= len(groups):
                break
        else:
            raise CompileError(f"{self.shape}: C needs {vectors} words per byte plane; config "
                               f"{cfg.name} has {len(groups)} group(s) of 4 MEM slices of "
                               f"{cfg.mem_words} words")
        self.out_groups = groups[:_ceil(vectors, cap)]
        self.out_cap, self.out_base = cap, base

    @property
    def shape(self):
        return f"GEMM {self.M}x{self.K}x{self.N}"

    def _alloc(self, arenas, slices, n, where=False):
        for sl in slices:
            addr = arenas[sl.name].alloc(n)
            if addr is not None:
                return (sl, addr) if where else addr
        free = sum(a.free for a in arenas.values())
        raise CompileError(f"{self.shape} does not fit config {self.cfg.name}: no MEM slice has "
                           f"{n} consecutive free words left ({free} free in all; A takes "
                           f"{self.M * self.kt_n}, B {self.nt_n * self.kt_n * self.vl} and C "
                           f"4 x {self.M * self.nt_n} words)")

    def _store(self, sl, addr, words):
        mem = self.memory.setdefault(sl.name, {})
        for i, w in enumerate(np.asarray(words).astype(np.uint8)):
            mem[addr + i] = w

    def _store_operands(self):
        vl = self.vl
        a = np.zeros((self.M, self.kt_n * vl), np.int8)
        a[:, :self.K] = self.A
        b = np.zeros((self.kt_n * vl, self.nt_n * vl), np.int8)
        b[:self.K, :self.N] = self.B
        for (m0, kt), (sl, addr) in self.a_home.items():
            rows = min(self.cfg.acc_slots, self.M - m0)
            self._store(sl, addr, a[m0:m0 + rows, kt * vl:(kt + 1) * vl])
        for (nt, kt, j), addr in self.b_home.items():
            cols = [nt * vl + c for c in range(j, vl, self.count)]
            # word c of a weight tile is column c of B: lane r holds B[r][c]
            self._store(self.b_readers[j], addr, b[kt * vl:(kt + 1) * vl, cols].T)

    # -- the MXM's timeline ----------------------------------------------------

    def passes(self):
        i = 0
        for m0 in range(0, self.M, self.cfg.acc_slots):
            rows = min(self.cfg.acc_slots, self.M - m0)
            for nt in range(self.nt_n):
                for kt in range(self.kt_n):
                    yield _Pass(i, m0, rows, nt, kt, kt == 0, kt == self.kt_n - 1)
                    i += 1

    def timeline(self):
        """MXM operations at cycles relative to the first: ``(t, op, pass, arg)``."""
        lat = self.lat
        ops, t = [], 0
        for p in self.passes():
            for i in range(self.n_lw):
                ops.append((t, "LW", p, i))
                t += 1
            ops.append((t, "IW", p, None))
            t += 1
            abc = []
            for r in range(p.rows):
                ops.append((t, "ABC", p, r))
                abc.append(t)
                t += 1
            if p.last and not self.fused:
                # ACC at t reads every accumulate up to t: the row is whole at its ABC + mxm_abc
                for r, ta in enumerate(abc):
                    t = max(t, ta + lat.mxm_abc)
                    ops.append((t, "ACC", p, r))
                    t += 1
        return ops

    def _sources(self, op, p, arg):
        """The MEM slices feeding one MXM operation (farthest decides the start)."""
        if op == "LW":
            return self.b_readers[:len(self._cols(arg))]
        if op == "ABC":
            return [self.a_home[p.m0, p.kt][0]]
        return []

    def _cols(self, i):
        return range(i * self.count, min(self.vl, (i + 1) * self.count))

    # -- placement ---------------------------------------------------------------

    def build(self):
        ops = self.timeline()
        # the first reads must not lie before cycle `start` (0 for a program of its own)
        shift = max([self.start] + [self.start + self.hops(s) + self.lat.mem_read - t
                                    for t, op, p, arg in ops for s in self._sources(op, p, arg)])
        self.reads, self.writes = {}, {}
        mxm = self.mxm.name
        for t, op, p, arg in ops:
            t += shift
            if op == "LW":
                self.sched.place(mxm, t, self._lw(t, p, arg), expects=[("B", p.index, c)
                                                                      for c in self._cols(arg)])
            elif op == "IW":
                self.sched.place(mxm, t, Instr(SliceKind.MXM, "IW"))
            elif op == "ABC":
                instr, row = self._abc(t, p, arg)
                self.sched.place(mxm, t, instr, produces=row, expects=[("A", p.index, p.m0 + arg)])
            else:
                g, row = self._results(t + self.lat.mxm_acc, p, arg)
                self.sched.place(mxm, t, Instr(SliceKind.MXM, "ACC", dict(
                    dir=self.away.value, stream=g, slot=arg)), produces=row)
        self._place_mem()

    @staticmethod
    def _port(table, sl, t, entry, what):
        """Book the read or write port of ``sl`` in cycle ``t``. Each MXM cycle
        draws on distinct slices and each result row on its own cycles, so a
        port asked twice is a bug of this planner, not of the user's shape."""
        if (sl.name, t) in table:
            raise AssertionError(f"{sl.name} {what} port booked twice in cycle {t}: "
                                 f"{table[sl.name, t]} and {entry}")
        table[sl.name, t] = entry

    def _read(self, sl, t_arrive, addr, value, stream):
        """Read ``addr`` on ``sl`` onto ``stream`` so that it reaches the MXM at ``t_arrive``."""
        t = t_arrive - self.hops(sl) - self.lat.mem_read
        self._port(self.reads, sl, t, (addr, stream, value), "read")

    def _lw(self, t, p, i):
        cols = self._cols(i)
        segs = [(self.b_readers[j].pos, t - self.hops(self.b_readers[j]), self.mxm.pos)
                for j in range(len(cols))]
        base = self.sched.alloc_streams(self.toward, segs, value=("B", p.index))
        for j, c in enumerate(cols):
            self._read(self.b_readers[j], t, self.b_home[p.nt, p.kt, j] + i, ("B", p.index, c),
                       base + j)
        return Instr(SliceKind.MXM, "LW", dict(dir=self.toward.value, stream=base,
                                               count=len(cols) - 1, col=cols[0]))

    def _abc(self, t, p, r):
        sl, addr = self.a_home[p.m0, p.kt]
        value = ("A", p.index, p.m0 + r)
        s = self.sched.alloc_stream(self.toward, sl.pos, t - self.hops(sl), self.mxm.pos, value=value)
        self._read(sl, t, addr + r, value, s)
        fields = dict(dir=self.toward.value, stream=s, acc=int(not p.first), slot=r,
                      emit=0, edir=0, estream=0)
        row = None
        if p.last and self.fused:
            g, row = self._results(t + self.lat.mxm_abc + self.lat.mxm_acc, p, r)
            fields.update(emit=1, edir=self.away.value, estream=g)
        return Instr(SliceKind.MXM, "ABC", fields), row

    def _results(self, e, p, r):
        """The finished row ``r`` of pass ``p`` leaves the MXM at ``e``: one
        SG4 group, byte ``i`` written by writer ``i`` as it passes."""
        m = p.m0 + r
        row = ("C", m, p.nt)
        v = p.nt * self.M + m
        writers = self.out_groups[v // self.out_cap]
        addr = self.out_base + v % self.out_cap
        g = self.sched.alloc_streams(self.away, [(self.mxm.pos, e, w.pos) for w in writers],
                                     align=4, value=row)
        for i, w in enumerate(writers):
            self._port(self.writes, w, e + self.hops(w), (addr, g + i, Part(row, i)), "write")
        return g, row

    def _place_mem(self):
        """One READ, WRITE or (both in one cycle) RW per slice and cycle."""
        for key in sorted(set(self.reads) | set(self.writes)):
            name, t = key
            rd, wr = self.reads.get(key), self.writes.get(key)
            if rd and wr:
                instr = Instr(SliceKind.MEM, "RW", dict(
                    rdir=self.toward.value, rstream=rd[1], raddr=rd[0],
                    wdir=self.away.value, wstream=wr[1], waddr=wr[0]))
                self.sched.place(name, t, instr, produces=rd[2], expects=[wr[2]])
            elif rd:
                self.sched.place(name, t, Instr(SliceKind.MEM, "READ", dict(
                    dir=self.toward.value, stream=rd[1], addr=rd[0])), produces=rd[2])
            else:
                self.sched.place(name, t, Instr(SliceKind.MEM, "WRITE", dict(
                    dir=self.away.value, stream=wr[1], addr=wr[0])), expects=[wr[2]])

    def outputs(self):
        """One split-plane int32 output per group: ``C``, or ``C0, C1 ..``."""
        vectors = self.M * self.nt_n
        names = ["C"] if len(self.out_groups) == 1 else [f"C{i}" for i in range(len(self.out_groups))]
        return [Output(name, "/".join(w.name for w in group), self.out_base,
                       min(self.out_cap, vectors - i * self.out_cap), "i32")
                for i, (name, group) in enumerate(zip(names, self.out_groups))]


def _operand(x, shape, name, rng):
    if x is None:
        return rng.integers(-128, 128, size=shape, dtype=np.int64).astype(np.int8)
    x = np.asarray(x)
    if x.shape != shape:
        raise CompileError(f"{name} has shape {x.shape}, expected {shape}")
    if x.size and (x.min() < -128 or x.max() > 127):
        raise CompileError(f"{name} has values outside int8")
    return x.astype(np.int8)


def compile_gemm(config, M, K, N, A=None, B=None, *, seed=0, mxm=None, fused_emit=True):
    """Compile ``C = A @ B`` (``A``: int8 ``[M, K]``, ``B``: int8 ``[K, N]``;
    random with ``seed`` when omitted) for one MXM (side ``mxm``, "E" by
    default when the config has one).

    ``fused_emit=False`` emits the results with separate ``ACC``
    instructions instead of ``ABC ... emit=1`` (slower: the MXM spends a
    cycle per result row). The schedule is checked by
    :func:`~.hazards.check_schedule` before the image is returned.
    """
    cfg = get_config(config)
    for name, v in (("M", M), ("K", K), ("N", N)):
        if not isinstance(v, int) or v < 1:
            raise CompileError(f"{name} = {v!r}: GEMM dimensions must be positive integers")
    side = mxm or ("E" if "E" in cfg.mxm else cfg.mxm[0])
    if side not in cfg.mxm:
        raise CompileError(f"config {cfg.name} has no MXM on side {side!r} (it has {cfg.mxm})")
    rng = np.random.default_rng(seed)
    A = _operand(A, (M, K), "A", rng)
    B = _operand(B, (K, N), "B", rng)
    g = _Gemm(cfg, M, K, N, A, B, side, fused_emit)
    g.plan_memory()
    g.build()
    for name, words in g.sched.emit().items():
        if len(words) > cfg.queue_depth:
            raise CompileError(f"{g.shape} does not fit config {cfg.name}: queue {name} needs "
                               f"{len(words)} instruction words, it holds {cfg.queue_depth} "
                               f"({sum(1 for _ in g.passes())} passes of the MXM)")
    checked = check_schedule(g.sched)
    outputs = g.outputs()
    image = g.sched.to_image(memory=g.memory, outputs=outputs, source=g.shape)
    bound = M * g.kt_n * g.nt_n
    return CompiledGemm(cfg, M, K, N, A, B, image, g.sched, g.sched.predicted_cycles(), bound,
                        checked, tuple(o.name for o in outputs))
