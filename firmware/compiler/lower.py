"""Lowering a :class:`~.graph.Graph` to one static schedule.

Phases. The ops run one *phase* after another in time: a phase starts in the
cycle after the last instruction of the previous one, so everything it reads
is in MEM and nothing of two phases shares a cycle. Three kinds:

* **GEMM phase**: a ``matmul`` on the MXM, planned by :mod:`.gemm`; its
  finished int32 rows either go to MEM (four byte planes, as
  :func:`~.gemm.compile_gemm` stores C), or, when the next ops are
  elementwise (bias add, requantise, ReLU, clip), straight from the MXM's
  fused emit into a VXM chain: the rows never touch MEM as int32.
* **Elementwise phase**: MEM -> VXM chain -> MEM, one vector word per cycle
  (or every ``s`` cycles when one MEM slice would have to serve two reads in
  one cycle).
* **Table phase**: when a lookup-table op needs a table other than the one in
  the VXM, ``LUTW`` rewrites the entries that differ (the first table is
  loaded by the host with the image).

VXM chains. Step ``k`` of a chain runs on ALU ``k``, ``3k`` cycles after ALU 0
(``Latencies.vxm``), reading ALU ``k-1``'s result register. A stream operand
of step ``k`` is read by its MEM slice ``hops + mem_read`` cycles before it
must be at the VXM. In a GEMM chain a row-broadcast operand (a bias ``[1, N]``
or a scalar) is held in the result register of a spare ALU: one ``MOV`` per
MXM pass loads it, in the gap the pass's ``LW``/``IW`` leave between rows,
instead of a MEM read per row competing with the GEMM's own reads.

Layout. A tensor is ``rows x cols`` (``cols`` along the lanes, cut into
``VL``-wide tiles, zero padded): word ``ft * rows + r`` holds row ``r`` of
feature tile ``ft``, int8 in one MEM slice, int32 as four byte planes in four
slices at the same addresses ("split planes", :class:`firmware.image.Output`).
That is the layout the MXM reads activations in and writes results in, so a
GEMM's output feeds the next GEMM with no data movement. A scalar operand is
one word with the value in every lane.

Placement. Constants and inputs go to bank 0 while it has room (weights in
the column layout :mod:`.gemm` reads them in); produced tensors to the
roomiest (slice, bank), int8 in bank 0 first and int32 in bank 1 first, whose
writes never meet a same-bank read of that slice in one cycle (the ``RW`` rule); every MEM slice gets at
most one read and one write per cycle, merged into ``RW`` where both happen.
The hazard checker (:func:`~.hazards.check_schedule`) runs on every compiled
schedule.
"""

from dataclasses import dataclass

import numpy as np

from ..image import Output
from ..isa import Instr, Operand, OperandKind, vxm_alu_can
from ..machine import Dir, SliceKind, get_config
from .gemm import CompileError, _Gemm, _ceil
from .graph import DTYPES, Graph, GraphError, Tensor
from .hazards import check_schedule
from .schedule import Part, Schedule, ScheduleError


__all__ = ["compile_graph", "CompiledGraph", "CompileError"]


# -- memory ----------------------------------------------------------------------

@dataclass(frozen=True)
class Loc:
    """Where a tensor lives: ``slices`` (one for int8, four byte planes for
    int32), first word ``addr``, ``rows`` words per feature tile, ``tiles``."""
    slices: tuple
    addr: int
    rows: int
    tiles: int
    splat: bool = False     # one word, the value in every lane

    @property
    def words(self):
        return self.rows * self.tiles

    def word(self, ft, r):
        return self.addr + ft * self.rows + r


class _Memory:
    """Bump allocation per (slice, bank), and the initial memory image."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.mems = cfg.floorplan.of_kind(SliceKind.MEM)
        self.next = {(s.name, b): b * cfg.bank_words for s in self.mems for b in (0, 1)}
        self.data = {}

    def room(self, slices, bank):
        return min((bank + 1) * self.cfg.bank_words - self.next[s.name, bank] for s in slices)

    def alloc(self, slices, bank, n, what):
        if self.room(slices, bank) < n:
            raise CompileError(f"{what}: no room for {n} words in bank {bank} of "
                               f"{'/'.join(s.name for s in slices)} (config {self.cfg.name})")
        addr = max(self.next[s.name, bank] for s in slices)
        for s in slices:
            self.next[s.name, bank] = addr + n
        return addr

    def checkpoint(self):
        """Where every (slice, bank) allocates next: :meth:`rollback` frees what was
        allocated (and stored) after it."""
        return dict(self.next)

    def rollback(self, checkpoint):
        for (name, bank), top in checkpoint.items():
            mem = self.data.get(name, {})
            for addr in range(top, self.next[name, bank]):
                mem.pop(addr, None)
            if not mem:
                self.data.pop(name, None)
        self.next = dict(checkpoint)

    def store(self, sl, addr, words):
        mem = self.data.setdefault(sl.name, {})
        for i, w in enumerate(np.asarray(words).astype(np.int64).astype(np.uint8)):
            mem[addr + i] = w


class _Ports:
    """At most one READ and one WRITE per MEM slice and cycle, never both in
    one bank (``BANK_CONFLICT``)."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.reads, self.writes = {}, {}       # (slice name, t) -> (addr, Dir, stream, value)

    def read_ok(self, name, t, addr, extra=()):
        w = self.writes.get((name, t))
        return ((name, t) not in self.reads and (name, t) not in extra
                and (w is None or self.cfg.bank_of(w[0]) != self.cfg.bank_of(addr)))

    def write_ok(self, name, t, addr, reads=None):
        r = (reads or {}).get((name, t)) or self.reads.get((name, t))
        return ((name, t) not in self.writes
                and (r is None or self.cfg.bank_of(r[0]) != self.cfg.bank_of(addr)))

    def place(self, sched):
        for key in sorted(set(self.reads) | set(self.writes)):
            name, t = key
            rd, wr = self.reads.get(key), self.writes.get(key)
            if rd and wr:
                sched.place(name, t, Instr(SliceKind.MEM, "RW", dict(
                    rdir=rd[1].value, rstream=rd[2], raddr=rd[0],
                    wdir=wr[1].value, wstream=wr[2], waddr=wr[0])), produces=rd[3], expects=[wr[3]])
            elif rd:
                sched.place(name, t, Instr(SliceKind.MEM, "READ", dict(
                    dir=rd[1].value, stream=rd[2], addr=rd[0])), produces=rd[3])
            else:
                sched.place(name, t, Instr(SliceKind.MEM, "WRITE", dict(
                    dir=wr[1].value, stream=wr[2], addr=wr[0])), expects=[wr[3]])


# -- VXM chains ------------------------------------------------------------------

@dataclass
class _Step:
    """One ALU op of a chain: ``a``/``b`` are ``("prev",)``, ``("head",)``,
    ``("stream", Tensor)``, ``("reg", Tensor)``, ``("imm", int)`` or ``("zero",)``."""
    mnemonic: str
    dtype: int              # dtype bit: 0 int8, 1 int32 (0 for fixed-type ops)
    a: tuple
    b: tuple = ("zero",)
    imm: int = 0
    extra: dict = None      # REQUANT's mult/shift/zp/zr


class _NoLoadSlot(CompileError):
    """A GEMM chain's held operand has no cycle to be loaded between two MXM passes."""


@dataclass
class _Chain:
    """A phase: ``head`` (the matmul op, or None for a MEM-fed chain), the
    graph ops it covers, its ALU steps and the tensor it writes."""
    head: object
    ops: list
    steps: list
    out: Tensor


@dataclass
class CompiledGraph:
    """A compiled tensor program: the image to run and how to read it back.

    ``predicted_cycles`` is the exact run time ``H + T``; ``phases`` lists
    what each phase does and the cycle it starts in.
    """
    graph: Graph
    config: object
    image: object
    schedule: Schedule
    predicted_cycles: int
    reads_checked: int
    layouts: dict           # output name -> (image output name, Loc, shape, dtype)
    phases: list
    placements: dict        # tensor name -> MEM slices, bank, address (inputs: where the host
                            # stores a new run's values; weights are not listed)

    def results(self, memory):
        """``{output name: array}`` (logical shapes) from final memories."""
        out = {}
        for name, (oname, loc, shape, dtype) in self.layouts.items():
            v = self.image.outputs[oname].read(memory)
            vl = self.config.vl
            cols = shape[-1] if shape else 1
            v = np.asarray(v).reshape(loc.tiles, loc.rows, vl).transpose(1, 0, 2)
            v = v.reshape(loc.rows, loc.tiles * vl)[:, :cols]
            out[name] = v.astype(DTYPES[dtype]).reshape(shape)
        return out

    def run(self, engine="golden"):
        """Run on an engine: ``(run result, {name: array})``.

        ``golden``: the golden model; ``rtl``: the gateware's Verilog on Icarus
        through cocotb; ``amaranth``: the gateware in Amaranth's simulator."""
        from sim.engines import run_on
        r = run_on(engine, self.image)
        return r, self.results(r.memory)

    def summary(self):
        return {"config": self.config.name, "graph": self.graph.name,
                "predicted_cycles": self.predicted_cycles, "reads_checked": self.reads_checked,
                "phases": self.phases, "tensors": self.placements,
                "queues": {q: len(w) for q, w in self.image.queues.items()},
                "outputs": {n: {"shape": list(s), "dtype": d}
                            for n, (_, _, s, d) in self.layouts.items()}}


#: The value name of table words in the hazard checker's data flow.
_LUT_TENSOR = Tensor("lut", (1,), "i8")


def _elementwise(op):
    return op.kind in ("add", "relu", "clip", "requant", "lut")


class _Lowering:
    def __init__(self, graph, inputs, cfg):
        self.g, self.cfg = graph, cfg
        self.fp, self.lat, self.vl = cfg.floorplan, cfg.latency, cfg.vl
        self.vxm = self.fp.vxm
        self.sched = Schedule(cfg)
        self.mem = _Memory(cfg)
        self.ports = _Ports(cfg)
        self.now = 0                # first cycle of the next phase
        self.end = 0                # last cycle anything of the current phase happens in
        self.loc = {}
        self.host_views = {}        # tensor -> view op of an input, laid out by the host
        self.lut = None             # the table in the VXM at the current phase
        self.first_lut = None       # the table the host loads before the start
        self.phases = []
        self.inputs = inputs
        self.consumers = {}
        for op in graph.ops:
            for t in op.inputs:
                self.consumers.setdefault(t, []).append(op)
        for a in ("lo", "hi"):
            for op in graph.ops:
                if isinstance(op.attrs.get(a), Tensor) and op.attrs[a] not in op.inputs:
                    self.consumers.setdefault(op.attrs[a], []).append(op)

    # -- values on the host side -------------------------------------------------

    def value(self, t):
        if t.is_const:
            return t.value
        if t in self.host_views:
            op = self.host_views[t]
            x = self.value(op.inputs[0])
            return (np.transpose(x, op.attrs["perm"]) if op.kind == "transpose"
                    else x.reshape(t.shape))
        if t in self.g.inputs:
            v = np.asarray(self.inputs[t.name])
            if v.size != int(np.prod(t.shape)):
                raise CompileError(f"input {t.name!r} has shape {v.shape}, the graph says {t.shape}")
            info = np.iinfo(DTYPES[t.dtype])
            if v.size and (v.min() < info.min or v.max() > info.max):
                raise CompileError(f"input {t.name!r} has values outside {t.dtype}")
            return v.astype(DTYPES[t.dtype]).reshape(t.shape)
        return None

    def _tiles_of(self, t):
        return _ceil(t.cols, self.vl)

    def _groups(self, one_side):
        """Groups of four MEM slices for int32 planes: one side each (a VXM
        operand's SG4 group arrives from one direction), nearest the VXM first;
        without ``one_side`` also the slices nearest the MXM (for results only
        the MXM writes)."""
        out = []
        for side in ("E", "W"):
            ss = sorted((s for s in self.mem.mems if s.side == side), key=lambda s: s.index)
            out += [tuple(ss[i:i + 4]) for i in range(0, len(ss) - 3, 4)]
        if not out and not one_side:
            mxm = self.fp.slice(f"MXM_{self.cfg.mxm[0]}")
            ss = sorted(self.mem.mems, key=lambda s: (abs(s.pos - mxm.pos), s.pos))
            out = [tuple(ss[i:i + 4]) for i in range(0, len(ss) - 3, 4)]
        return out

    def _need_groups(self, t, one_side=True):
        groups = self._groups(one_side)
        if not groups:
            raise CompileError(f"tensor {t.name}: an int32 tensor in MEM that the VXM reads or "
                               f"writes needs four MEM slices on one side of the VXM; config "
                               f"{self.cfg.name} has {self.cfg.mem_slices}")
        return groups

    def store_tensor(self, t, splat=False, avoid=None):
        """Place an input or constant, bank 0 first, in the row-tile layout
        (``splat``: as one word with the value in every lane). With ``avoid`` (a set
        of MEM slices) this stores a second copy outside those slices and returns its
        location, or None if there is no room; the tensor's home stays where it was."""
        v = self.value(t)
        vl = self.vl
        rows, tiles = (1, 1) if splat else (t.rows, self._tiles_of(t))
        words = np.zeros((tiles, rows, vl), np.int64)
        if splat:
            words[:] = int(v.reshape(-1)[0])
        else:
            flat = np.zeros((rows, tiles * vl), np.int64)
            flat[:, :t.cols] = v.reshape(rows, t.cols)
            words = flat.reshape(rows, tiles, vl).transpose(1, 0, 2)
        words = words.reshape(rows * tiles, vl)
        n = rows * tiles
        if t.dtype == "i8":
            places = [((s,), b) for s in self.mem.mems for b in (0, 1)]
        else:
            places = [(g, b) for g in self._need_groups(t) for b in (0, 1)]
        if avoid is not None:
            places = [(g, b) for g, b in places
                      if not set(g) & avoid and self.mem.room(list(g), b) >= n]
            if not places:
                return None
        if t.dtype == "i8":
            (sl,), bank = max(places, key=lambda c: (self.mem.room(list(c[0]), c[1]) >= n, -c[1],
                                                     self.mem.room(list(c[0]), c[1]),
                                                     -c[0][0].pos))
            addr = self.mem.alloc([sl], bank, n, f"tensor {t.name}")
            self.mem.store(sl, addr, words)
            loc = Loc((sl,), addr, rows, tiles, splat)
        else:
            grp, bank = max(places, key=lambda c: (self.mem.room(*c) >= n, -c[1],
                                                   self.mem.room(*c)))
            addr = self.mem.alloc(grp, bank, n, f"tensor {t.name}")
            u = words.astype(np.uint32)
            for i, sl in enumerate(grp):
                self.mem.store(sl, addr, (u >> (8 * i)) & 0xFF)
            loc = Loc(grp, addr, rows, tiles, splat)
        if avoid is None:
            self.loc[(t, True) if splat else t] = loc
        return loc

    def locate(self, t, splat=False):
        """The MEM location of a tensor that a phase reads (``splat``: the
        broadcast form of a one-element tensor)."""
        key = (t, True) if splat else t
        if key in self.loc:
            return self.loc[key]
        if t.is_const or t in self.g.inputs or t in self.host_views:
            return self.store_tensor(t, splat)
        if splat:
            raise CompileError(f"tensor {t.name}: broadcasting a computed scalar over lanes is "
                               "not supported")
        raise CompileError(f"tensor {t.name} is read before it is computed")

    def operand_loc(self, t, out):
        """Where a chain operand is read from: a one-element operand of a
        bigger result is broadcast, so it is stored with its value in every lane."""
        return self.locate(t, splat=int(np.prod(t.shape)) == 1 and int(np.prod(out.shape)) > 1)

    # -- chains --------------------------------------------------------------------

    def _operand(self, t, in_gemm):
        """How a chain reads a second operand: immediate for a constant scalar,
        a held register in a GEMM chain (row broadcast), else a stream."""
        if t.is_const and t.value.size == 1:
            return ("imm", int(t.value.reshape(-1)[0]))
        if in_gemm:
            if int(np.prod(t.shape[:-1], dtype=np.int64)) != 1:
                return None
            return ("reg", t)
        return ("stream", t)

    def _steps(self, op, src, cur, in_gemm):
        """The ALU steps of one graph op on the chain value ``src`` (tensor
        ``cur``); None if the op cannot join this chain."""
        dt = 1 if op.inputs[0].dtype == "i32" else 0
        k = op.kind
        if k == "add":
            a, b = op.inputs
            other = b if a is cur else a
            opnd = self._operand(other, in_gemm)
            if opnd is None:
                return None
            if opnd[0] == "imm":
                return [_Step("ADD", dt, src, ("imm",), imm=opnd[1])]
            return [_Step("ADD", dt, src, opnd)]
        if k == "relu":
            return [_Step("RELU", dt, src)]
        if k == "requant":
            return [_Step("REQUANT", 0, src, extra=dict(
                mult=op.attrs["mult"], shift=op.attrs["shift"], zp=op.attrs["zp"],
                zr=op.attrs["zr"]))]
        if k == "lut":
            return [_Step("LUT", 0, src)] if src != ("prev",) else None
        if k == "clip":
            info = np.iinfo(DTYPES[op.output.dtype])
            steps, cur = [], src
            for mn, bound, skip in (("MAX", op.attrs["lo"], info.min), ("MIN", op.attrs["hi"], info.max)):
                if isinstance(bound, Tensor):
                    opnd = self._operand(bound, in_gemm)
                    if opnd is None:
                        return None
                    if opnd[0] == "imm":
                        bound = opnd[1]
                    else:
                        steps.append(_Step(mn, dt, cur, opnd))
                        cur = ("prev",)
                        continue
                if bound != skip:
                    steps.append(_Step(mn, dt, cur, ("imm",), imm=int(bound)))
                    cur = ("prev",)
            return steps or [_Step("MOV", dt, src)]
        return None

    def assign_alus(self, steps, spare=0):
        """The ALUs of a chain: ``(ALU of each step, {held tensor: ALU})``, or None
        if the VXM cannot run it with ``spare`` more plain steps.

        ``LUT`` runs on ALU 0, ``MUL``/``MULS``/``REQUANT`` on an ALU with a
        multiplier (``isa.vxm_alu_can``, ``Config.mul_alus``). Step ``k`` on
        ALU ``k`` and the held operands on the ALUs after the steps when that
        is legal; otherwise the steps that only some ALUs can run choose first.
        The step's cycle does not depend on its ALU (``3k`` after step 0)."""
        cfg, A = self.cfg, self.cfg.vxm_alus
        held = list(dict.fromkeys(st.b[1] for st in steps if st.b[0] == "reg"))
        n = len(steps)
        # (budget as the chain planner always counted it: one ALU per held-operand use)
        if n + sum(st.b[0] == "reg" for st in steps) + spare > A:
            return None
        if all(vxm_alu_can(cfg, k, st.mnemonic) for k, st in enumerate(steps)):
            return list(range(n)), {t: n + i for i, t in enumerate(held)}
        free = list(range(A))
        alus = [None] * n

        def able(k):
            return [a for a in free if vxm_alu_can(cfg, a, steps[k].mnemonic)]
        for k in sorted(range(n), key=lambda k: len(able(k))):
            cands = able(k)
            if not cands:
                return None
            alus[k] = cands[0]
            free.remove(cands[0])
        return alus, {t: free[i] for i, t in enumerate(held)}

    def plan_chain(self, first, alus=None):
        """Grow a chain from ``first`` (a matmul or an elementwise op) while the
        next op is the single consumer, elementwise, and ``alus`` ALUs suffice."""
        A = alus or self.cfg.vxm_alus
        in_gemm = first.kind == "matmul"
        ops, steps = ([first], []) if in_gemm else ([], [])
        cur = first.output if in_gemm else first.inputs[0]
        nxt = None if in_gemm else first
        while True:
            if nxt is None:
                users = self.consumers.get(cur, [])
                if len(users) != 1 or cur in self.g.outputs.values() or not _elementwise(users[0]):
                    break
                nxt = users[0]
                if nxt.inputs[0] is not cur and not (nxt.kind == "add" and nxt.inputs[1] is cur
                                                     and nxt.inputs[0].shape == cur.shape):
                    break
            src = ("prev",) if steps else (("head",) if in_gemm else ("stream", cur))
            new = self._steps(nxt, src, cur, in_gemm)
            if new is None:
                break
            trial = steps + new
            if self.assign_alus(trial, spare=self.cfg.vxm_alus - A) is None:
                break
            steps, cur = trial, nxt.output
            ops.append(nxt)
            nxt = None
        if not in_gemm and not steps:
            raise CompileError(f"{first.kind} {first.output.name}: cannot run on the VXM "
                               f"(a lookup table runs on ALU 0 and so must read MEM)")
        return _Chain(first if in_gemm else None, ops, steps, cur)

    # -- phases ----------------------------------------------------------------------

    def lower(self):
        done = set()
        for op in self.g.ops:
            if op in done:
                continue
            if op.kind in ("reshape", "transpose"):
                if not self.view(op):
                    self.transpose_phase(op)
                done.add(op)
                continue
            chain = self.plan_chain(op)
            if chain.head is None and self._shares_port(chain) \
                    and self.assign_alus(chain.steps, spare=1) is None:
                chain = self.plan_chain(op, self.cfg.vxm_alus - 1)     # room for the extra MOV
            if any(s.mnemonic == "LUT" for s in chain.steps):
                self.use_lut(chain)
            if chain.head is not None:
                self.gemm_phase(chain)
            else:
                self.eltwise_phase(chain)
            done.update(chain.ops)
        self.ports.place(self.sched)

    def view(self, op):
        """Reshape/transpose as a new view, if it is one: of an input, the host
        stores the new view; of a computed tensor, reshapes that keep every
        row's lanes and transposes of axes of size 1. False for a transpose
        that moves data."""
        x, y = op.inputs[0], op.output
        if x.producer is None or x in self.host_views:
            self.host_views[y] = op
            return True
        if op.kind == "transpose":
            moved = [d for d in op.attrs["perm"] if x.shape[d] != 1]
            if moved != sorted(moved) or y.cols != x.cols:
                return False
        loc = self.locate(x)
        if y.cols != x.cols:
            raise CompileError(f"{op.kind} {y.name}: {x.shape} -> {y.shape} changes the last axis "
                               "of a computed tensor, which moves data across lanes; not supported")
        self.loc[y] = Loc(loc.slices, loc.addr, y.rows, loc.tiles)
        return True

    def use_lut(self, chain):
        """The first table is loaded by the host before the start; a later,
        different one is written by a LUTW phase."""
        table = next(o for o in chain.ops if o.kind == "lut").attrs["table"]
        if self.lut is None:
            self.lut = self.first_lut = table
        elif not np.array_equal(self.lut, table):
            self.lut_phase(table)

    def lut_phase(self, table):
        """Rewrite the entries that change, ``LUTW`` on ALU 0 one per cycle.
        ``LUTW`` takes its value from a stream (it has no immediate), so entry
        ``i`` comes from a MEM word holding it in every lane; the entries from
        the first to the last change are written in order, so the MEM reads
        and the ``LUTW``s each walk their addresses with stride 1 (one
        ``REPEAT`` each)."""
        changed = np.flatnonzero(self.lut != table)
        lo, hi = int(changed[0]), int(changed[-1]) + 1
        words = np.repeat(table[lo:hi, None].astype(np.int64), self.vl, axis=1)
        sl = max(self.mem.mems, key=lambda m: (max(self.mem.room([m], b) for b in (0, 1)), -m.pos))
        bank = max((0, 1), key=lambda b: self.mem.room([sl], b))
        addr = self.mem.alloc([sl], bank, hi - lo, "lookup table")
        self.mem.store(sl, addr, words)
        loc = Loc((sl,), addr, hi - lo, 1)
        t0 = self.now + abs(sl.pos - self.vxm.pos) + self.lat.mem_read
        for i in range(hi - lo):
            opnd, ex = self._stream_in(_LUT_TENSOR, loc, addr + i, t0 + i)
            self.sched.place("VXM0", t0 + i, Instr(SliceKind.VXM, "LUTW", dict(
                dtype=0, a=opnd.encode(), b=0, we=0, wdir=0, wstream=0, index=lo + i)),
                expects=ex)
            self._touch(t0 + i)
        self.phases.append({"kind": "lut", "start": self.now, "entries": hi - lo})
        self.lut = table
        self.now = self.end + 1

    def _touch(self, t):
        self.end = max(self.end, t)

    # -- reading and writing streams ---------------------------------------------

    def _stream_in(self, t, loc, word, arrive):
        """Book the MEM reads bringing word ``word`` of ``t`` (at ``loc``) to the
        VXM at ``arrive``; return the operand and the values the VXM expects."""
        if len(loc.slices) == 4 and len({s.side for s in loc.slices}) != 1:
            self._need_groups(t)
            raise CompileError(f"tensor {t.name}: its int32 planes straddle the VXM")
        d = Dir.E if loc.slices[0].pos < self.vxm.pos else Dir.W
        segs, names = [], []
        for plane, sl in enumerate(loc.slices):
            h = abs(sl.pos - self.vxm.pos)
            segs.append((sl.pos, arrive - h, self.vxm.pos))
            names.append(("rd", t.name, word, plane))
        base = self.sched.alloc_streams(d, segs, align=len(segs), value=names[0])
        for plane, sl in enumerate(loc.slices):
            h = abs(sl.pos - self.vxm.pos)
            rt = arrive - h - self.lat.mem_read
            if (sl.name, rt) in self.ports.reads:
                raise AssertionError(f"{sl.name} read port booked twice in cycle {rt}")
            self.ports.reads[sl.name, rt] = (word, d, base + plane, names[plane])
            self._touch(rt)
        return Operand(OperandKind.STREAM, d, base), [Part(n, 0) for n in names]

    def _write_out(self, dst, word, emit, value):
        """Book the writes of the VXM result emitted at ``emit``; return (Dir, stream)."""
        d = Dir.E if dst.slices[0].pos > self.vxm.pos else Dir.W
        segs = [(self.vxm.pos, emit, sl.pos) for sl in dst.slices]
        base = self.sched.alloc_streams(d, segs, align=len(segs), value=value)
        for plane, sl in enumerate(dst.slices):
            wt = emit + abs(sl.pos - self.vxm.pos)
            self.ports.writes[sl.name, wt] = (dst.addr + word, d, base + plane, Part(value, plane))
            self._touch(wt)
        return d, base

    def _place_step(self, k, step, t, ops_in, head_expects, dst_info, value, regs, alus):
        """Place step ``k``'s instruction of one word at ``t`` on ALU ``alus[k]``."""
        fields = dict(dtype=step.dtype, we=0, wdir=0, wstream=0)
        expects = []
        for name, src in (("a", step.a), ("b", step.b)):
            kind = src[0]
            if kind == "prev":
                op = Operand(OperandKind.ALU, Dir.E, alus[k - 1])
            elif kind == "head":
                op, ex = head_expects
                expects += ex
            elif kind == "stream":
                op, ex = ops_in[name]
                expects += ex
            elif kind == "reg":
                op = Operand(OperandKind.ALU, Dir.E, regs[src[1]])
            elif kind == "imm":
                op = Operand(OperandKind.IMM)
            else:
                op = Operand(OperandKind.ZERO)
            fields[name] = op.encode()
        if step.mnemonic == "REQUANT":          # its b field holds the shift
            del fields["b"]
            fields.update(step.extra)
        else:
            fields["imm"] = step.imm
        if dst_info is not None:
            d, s = dst_info
            fields.update(we=1, wdir=d.value, wstream=s)
        self.sched.place(f"VXM{alus[k]}", t, Instr(SliceKind.VXM, step.mnemonic, fields),
                         produces=value if dst_info is not None else None, expects=expects)
        self._touch(t)

    def _choose_dst(self, out, rows, tiles, write_times, extra_reads, groups=None, streams_ok=None):
        """The first (slices, bank) whose writes meet no other write and no read
        of the same bank in one cycle; ``write_times(slices) -> [(slice, cycle,
        word)]``. int8 tensors (the MXM's activations, read with its weights)
        try bank 0 first and int32 ones bank 1, so that the writes of a GEMM's
        results meet its reads in the other bank, as in :mod:`.gemm`; the
        roomiest first within a bank. ``streams_ok(slices)``: whether the
        result can reach those slices (streams free at its emit cycles)."""
        words = rows * tiles
        first = 0 if out.dtype == "i8" else 1
        if out.dtype == "i8":
            cands = [((s,), b) for b in (0, 1) for s in self.mem.mems]
        else:
            cands = [(g, b) for b in (0, 1) for g in (groups or self._need_groups(out))]
        cands = [c for c in cands if self.mem.room(*c) >= words]
        cands.sort(key=lambda c: (c[1] != first, -self.mem.room(*c)))
        for slices, bank in cands:
            addr = max(self.mem.next[s.name, bank] for s in slices)
            if all(self.ports.write_ok(sl.name, t, addr + w, extra_reads)
                   for sl, t, w in write_times(slices)) \
                    and (streams_ok is None or streams_ok(slices)):
                self.mem.alloc(slices, bank, words, f"tensor {out.name}")
                return Loc(slices, addr, rows, tiles)
        raise CompileError(f"tensor {out.name}: no MEM slice has room for its {words} words in a "
                           f"bank not read in the cycles it is written (config {self.cfg.name})")

    # -- elementwise phase ------------------------------------------------------------

    def _shares_port(self, chain):
        """Whether the first step's two stream operands live in one MEM slice."""
        s0 = chain.steps[0]
        if s0.a[0] != "stream" or s0.b[0] != "stream":
            return False
        sa = {sl.name for sl in self.operand_loc(s0.a[1], chain.out).slices}
        return bool(sa & {sl.name for sl in self.operand_loc(s0.b[1], chain.out).slices})

    def _split_shared_port(self, chain):
        """A step whose two stream operands live in one MEM slice would need
        two reads of that slice in one cycle; moving the first operand
        through an extra ``MOV`` step reads them 3 cycles apart instead."""
        if not self._shares_port(chain):
            return
        if self.assign_alus(chain.steps, spare=1) is None:
            raise CompileError(f"{chain.ops[0].kind} {chain.out.name}: both operands are in one "
                               "MEM slice and the VXM has no ALU to spare")
        s0 = chain.steps[0]
        chain.steps[0:1] = [_Step("MOV", s0.dtype, s0.a),
                            _Step(s0.mnemonic, s0.dtype, ("prev",), s0.b, s0.imm, s0.extra)]

    def eltwise_phase(self, chain):
        self._split_shared_port(chain)
        out = chain.out
        rows, tiles = out.rows, self._tiles_of(out)
        n = len(chain.steps)
        operands = []               # (step k, field, Tensor)
        for k, s in enumerate(chain.steps):
            for name in ("a", "b"):
                src = getattr(s, name)
                if src[0] == "stream":
                    operands.append((k, name, src[1]))
        locs = {id(t): self.operand_loc(t, out) for _, _, t in operands}

        def word_of(t, i):
            loc = locs[id(t)]
            if loc.splat:
                return 0
            if loc.rows == rows:
                return i
            return i // rows                    # row broadcast: the feature tile

        lead = max(abs(sl.pos - self.vxm.pos) for loc in locs.values() for sl in loc.slices)
        t0 = self.now + lead + self.lat.mem_read
        words = rows * tiles
        for stride in range(1, 2 * len(operands) + 2):
            reads = {}
            ok = True
            for k, _, t in operands:
                loc = locs[id(t)]
                for i in range(words):
                    arrive = t0 + stride * i + 3 * k
                    for sl in loc.slices:
                        rt = arrive - abs(sl.pos - self.vxm.pos) - self.lat.mem_read
                        if (sl.name, rt) in reads:
                            ok = False
                        reads[sl.name, rt] = (loc.word(0, word_of(t, i)),)
            if ok:
                break
        else:
            raise CompileError(f"{chain.ops[0].kind} {out.name}: two operands are in one MEM "
                               "slice and always meet in its read port")

        emit0 = t0 + 3 * n

        def write_times(slices):
            return [(sl, emit0 + stride * i + abs(sl.pos - self.vxm.pos), i)
                    for sl in slices for i in range(words)]

        dst = self._choose_dst(out, rows, tiles, write_times, reads)
        self.loc[out] = dst
        self._run_chain(chain, dst, [(i, t0 + stride * i) for i in range(words)], word_of, {}, None)
        self.phases.append({"kind": "eltwise", "ops": [repr(o) for o in chain.ops],
                            "start": self.now, "words": words, "stride": stride})
        self.now = self.end + 1

    def _run_chain(self, chain, dst, starts, word_of, regs, heads):
        """Place the chain for every ``(word, ALU 0 cycle)`` of ``starts``: the
        MEM reads of its stream operands, its ALU steps 3 cycles apart, and the
        writes of its result into ``dst``. ``heads``: per word, the MXM row
        ALU 0 reads (GEMM chains); ``regs``: ALU of each held operand."""
        n = len(chain.steps)
        alus, _ = self.assign_alus(chain.steps)
        for i, t in starts:
            value = ("v", chain.out.name, i)
            ins = {}
            for k, s in enumerate(chain.steps):
                per = {}
                for name in ("a", "b"):
                    src = getattr(s, name)
                    if src[0] == "stream":
                        loc = self.operand_loc(src[1], chain.out)
                        per[name] = self._stream_in(src[1], loc, loc.addr + word_of(src[1], i),
                                                    t + 3 * k)
                ins[k] = per
            dst_info = self._write_out(dst, i, t + 3 * n, value)
            for k, s in enumerate(chain.steps):
                self._place_step(k, s, t + 3 * k, ins[k], heads[i] if heads else None,
                                 dst_info if k == n - 1 else None, value, regs, alus)

    # -- GEMM phase -------------------------------------------------------------------

    def gemm_phase(self, chain):
        op = chain.head
        a, b = op.inputs
        if b.producer is not None:
            raise CompileError(f"matmul {op.output.name}: its right operand {b.name} is computed "
                               "on the chip; the MXM loads weights from constants or inputs")
        self._gemm(chain, a, b.shape[1], lambda probe: self._store_weights(probe, b))

    def transpose_phase(self, op):
        """``Y = X^T`` of a computed int8 matrix on the MXM: ``I @ X^T``. Word
        ``c`` of a weight tile is column ``c`` of B, and column ``n`` of
        ``X^T`` is row ``n`` of X, so the MXM loads X's own words as its
        weights (one column per LW, from X's slice); the identity's rows pick
        one feature each, and the int32 rows narrow back to int8 (exact: they
        are int8 values). Lanes past the end of X pick up neighbouring words:
        they land in Y's padding lanes, which every later GEMM multiplies by
        the zero rows that pad its weights."""
        x, y = op.inputs[0], op.output
        if x.dtype != "i8" or len(x.shape) != 2 or tuple(op.attrs["perm"]) != (1, 0):
            raise CompileError(f"transpose {y.name}: of a computed tensor only the 2-D int8 "
                               "transpose runs on the chip (constants and inputs of any rank "
                               "are transposed by the host)")
        M, F = x.shape
        xl = self.locate(x)
        eye = self.g.const(np.eye(F, dtype=np.int8), "i8", f"{y.name}_eye")
        vl = self.vl
        last = xl.addr + (_ceil(F, vl) - 1) * M + (_ceil(M, vl) - 1) * vl + vl - 1
        if last >= self.cfg.mem_words:
            raise CompileError(f"transpose {y.name}: the MXM would load words past the end of "
                               f"MEM ({last}) as padding columns")

        def homes(probe):
            return 1, [xl.slices[0]], {(nt, kt, 0): xl.addr + kt * M + nt * vl
                                       for nt in range(probe.nt_n) for kt in range(probe.kt_n)}
        chain = _Chain(op, [op], [_Step("NARROW", 0, ("head",))], y)
        self._gemm(chain, eye, M, homes)

    def _gemm(self, chain, a, N, weights):
        """A GEMM phase ``a @ B`` (``N`` columns), with ``weights(probe)``
        giving B's homes ``(count, readers, {(nt, kt, j): addr})``."""
        op = chain.head
        M, K = a.rows, a.cols
        a_loc = self.locate(a)
        if len(a_loc.slices) != 1:
            raise CompileError(f"matmul {op.output.name}: {a.name} must be int8 rows")
        side = "E" if "E" in self.cfg.mxm else self.cfg.mxm[0]
        probe = _PhaseGemm(self, M, K, N, side, a_loc, None, Schedule(self.cfg))
        homes = weights(probe)
        fused = bool(chain.steps)

        def dry_run():
            """The phase on a scratch schedule: the cycles of every read and of the rows."""
            dry = _PhaseGemm(self, M, K, N, side, a_loc, homes, Schedule(self.cfg), fused)
            if not fused:           # any group: only the cycles of its writes matter here
                dry.out_groups = [self._groups(False)[0]]
                dry.out_cap, dry.out_base = chain.out.rows * self._tiles_of(chain.out), 0
            dry.build()
            return dry, dict(dry.reads)

        dry, reads = dry_run()
        regs, reg_loads = {}, []
        if fused:
            try:
                regs, reg_loads = self._plan_regs(chain, dry, reads)
            except _NoLoadSlot:
                if len(chain.ops) == 1:
                    raise
                # The held operand cannot be loaded between two passes: the GEMM writes
                # its int32 result to MEM, and the ops after it run as phases of their own.
                chain.ops, chain.steps, chain.out = [op], [], op.output
                fused = False
                dry, reads = dry_run()
        out = chain.out
        rows, tiles = out.rows, self._tiles_of(out)
        n = len(chain.steps)
        if fused:
            def write_times(slices):
                return [(sl, ta + 3 * n + abs(sl.pos - self.vxm.pos), v)
                        for sl in slices for v, ta in dry.arrivals.items()]

            def streams_ok(slices):
                # the chain's results leave the VXM while this phase's weights and
                # rows are on the streams (the dry run's) and earlier phases' are
                # still in flight (the program's): free streams in both
                d = Dir.E if slices[0].pos > self.vxm.pos else Dir.W
                return all(sched.streams_free(d, [(self.vxm.pos, ta + 3 * n, sl.pos) for sl in slices],
                                              align=len(slices))
                           for ta in dry.arrivals.values() for sched in (self.sched, dry.sched))
            dst = self._choose_dst(out, rows, tiles, write_times, reads, streams_ok=streams_ok)
        else:
            def write_times(slices):
                return [(sl, e + abs(sl.pos - dry.mxm.pos), v)
                        for sl in slices for v, e in dry.emits.items()]
            dst = self._choose_dst(out, rows, tiles, write_times, reads, self._groups(False))
        self.loc[out] = dst

        g = _PhaseGemm(self, M, K, N, side, a_loc, homes, self.sched, fused)
        g.out_groups, g.out_cap, g.out_base = [dst.slices], rows * tiles, dst.addr
        g.build()
        for key, (addr, stream, value) in g.reads.items():
            self.ports.reads[key] = (addr, g.toward, stream, value)
            self._touch(key[1])
        for key, (addr, stream, part) in g.writes.items():
            self.ports.writes[key] = (addr, g.away, stream, part)
            self._touch(key[1])
        for p in self.sched.placements(g.mxm.name):
            self._touch(p.cycle + (self.lat.mxm_abc + self.lat.mxm_acc
                                   if p.instr.mnemonic == "ABC" else 0))
        if fused:
            for tensor, loc, t_mov, word in reg_loads:
                opnd, ex = self._stream_in(tensor, loc, word, t_mov)
                self.sched.place(f"VXM{regs[tensor]}", t_mov, Instr(SliceKind.VXM, "MOV", dict(
                    dtype=1 if tensor.dtype == "i32" else 0, a=opnd.encode(), b=0, we=0,
                    wdir=0, wstream=0, imm=0)), expects=ex)
                self._touch(t_mov)
            heads = {v: (Operand(OperandKind.STREAM, g.away, g.streams[v]),
                         [Part(g.rows[v], j) for j in range(4)]) for v in g.arrivals}
            # a GEMM chain reads no MEM operand per row (those are held in registers)
            self._run_chain(chain, dst, sorted(g.arrivals.items(), key=lambda x: x[1]),
                            None, regs, heads)
        self.phases.append({"kind": "gemm", "ops": [repr(o) for o in chain.ops],
                            "start": self.now, "M": M, "K": K, "N": N,
                            "bound": M * g.kt_n * g.nt_n})
        self.now = self.end + 1

    def _store_weights(self, probe, b):
        """Store ``b`` in the column layout of :mod:`.gemm`: tile (nt, kt),
        columns ``j, j + count ..`` in the ``j``-th nearest slice, bank 0."""
        readers = sorted(self.mem.mems, key=lambda s: (probe.hops(s), s.pos))
        count = probe._lw_width(readers)
        b_readers = readers[:count]
        vl = self.vl
        K, N = b.shape
        bv = np.zeros((probe.kt_n * vl, probe.nt_n * vl), np.int64)
        bv[:K, :N] = self.value(b)
        home = {}
        for nt in range(probe.nt_n):
            for kt in range(probe.kt_n):
                for j, sl in enumerate(b_readers):
                    cols = [nt * vl + c for c in range(j, vl, count)]
                    addr = self.mem.alloc([sl], 0, len(cols), f"weights {b.name}")
                    self.mem.store(sl, addr, bv[kt * vl:(kt + 1) * vl, cols].T)
                    home[nt, kt, j] = addr
        return count, b_readers, home

    def _plan_regs(self, chain, dry, reads):
        """ALU indices of the held operands and the MOVs that load them: for a
        per-column operand (a bias ``[1, N]``) one per (pass, operand), after the
        previous pass's last use and before this pass's first; a scalar (one word,
        the same in every pass) once, before the first pass."""
        regs, loads = self.assign_alus(chain.steps)[1], []
        uses = {t: [k for k, s in enumerate(chain.steps) if s.b == ("reg", t)] for t in regs}
        passes = {}
        for v, ta in dry.arrivals.items():
            nt = v // dry.M
            lo, hi = passes.get(dry.pass_of[v], (ta, ta, nt))[:2]
            passes[dry.pass_of[v]] = (min(lo, ta), max(hi, ta), nt)
        prev_last = None
        booked = dict(reads)
        copies = {t: [self.operand_loc(t, chain.out)] for t in uses}
        homes_placed = self.mem.checkpoint()    # the copies below are given back on failure

        def slot(loc, nt, hi_t, lo_t):
            """The latest cycle in ``lo_t .. hi_t`` the VXM can take word ``nt`` of
            ``loc`` from its MEM slices, with their read ports booked; or None."""
            word = loc.word(0 if loc.splat else nt, 0)
            lo_t = max(lo_t, self.now + max(abs(sl.pos - self.vxm.pos) for sl in loc.slices) + 1)
            for t_mov in range(hi_t, lo_t - 1, -1):
                rts = [(sl.name, t_mov - abs(sl.pos - self.vxm.pos) - self.lat.mem_read)
                       for sl in loc.slices]
                if all(self.ports.read_ok(nm, rt, word, booked) for nm, rt in rts):
                    for key in rts:
                        booked[key] = (word,)
                    return t_mov, word
            return None

        for p in sorted(passes):
            first, last, nt = passes[p]
            for t, ks in uses.items():
                if copies[t][0].splat and prev_last is not None:
                    continue            # still in its register from the first pass
                hi_t = first + 3 * min(ks) - self.lat.vxm
                lo_t = (prev_last + 3 * max(ks) - self.lat.vxm + 1) if prev_last is not None \
                    else self.now
                found = next(((loc, hit) for loc in copies[t]
                              if (hit := slot(loc, nt, hi_t, lo_t))), None)
                while found is None:
                    # The GEMM's own reads hold every port of the slices it is in for
                    # the whole gap: keep one more copy of it in MEM slices it is not in.
                    avoid = {sl for loc in copies[t] for sl in loc.slices}
                    loc = (self.store_tensor(t, copies[t][0].splat, avoid=avoid)
                           if t.is_const or t in self.g.inputs else None)
                    if loc is None:
                        self.mem.rollback(homes_placed)
                        raise _NoLoadSlot(
                            f"{chain.out.name}: no cycle to load {t.name} into ALU {regs[t]} "
                            f"between MXM passes {p - 1} and {p} (cycles {lo_t}..{hi_t}), "
                            f"and no other MEM slice to keep a copy in")
                    copies[t].append(loc)
                    hit = slot(loc, nt, hi_t, lo_t)
                    found = (loc, hit) if hit else None
                loc, (t_mov, word) = found
                loads.append((t, loc, t_mov, word))
            prev_last = last
        reads.update(booked)
        return regs, loads


class _PhaseGemm(_Gemm):
    """:class:`~.gemm._Gemm` as one phase of a program: operands where the
    lowering put them, the shared schedule, and (fused) its rows handed to a
    VXM chain instead of MEM."""

    def __init__(self, low, M, K, N, side, a_loc, homes, sched, fused=False):
        super().__init__(low.cfg, M, K, N, None, None, side, True)
        self.low, self.sched, self.start = low, sched, low.now
        self.to_vxm = fused
        self.arrivals, self.streams, self.rows, self.pass_of, self.emits = {}, {}, {}, {}, {}
        if homes is not None:
            self.count, self.b_readers, self.b_home = homes
            self.n_lw = _ceil(self.vl, self.count)
        (sl,) = a_loc.slices
        self.a_home = {(m0, kt): (sl, a_loc.word(kt, m0))
                       for m0 in range(0, M, self.cfg.acc_slots) for kt in range(self.kt_n)}

    def _place_mem(self):
        """The lowering merges this phase's MEM ports with the others."""

    def _results(self, e, p, r):
        m = p.m0 + r
        v = p.nt * self.M + m
        self.emits[v] = e
        if not self.to_vxm:
            return super()._results(e, p, r)
        row = ("C", self.low.g.name, id(self), m, p.nt)
        vxm = self.low.vxm
        g = self.sched.alloc_stream(self.away, self.mxm.pos, e, vxm.pos, group=4, value=row)
        self.arrivals[v] = e + abs(self.mxm.pos - vxm.pos)
        self.streams[v], self.rows[v], self.pass_of[v] = g, row, p.index
        return g, row


def compile_graph(graph, inputs, config="ulx3s"):
    """Compile ``graph`` with its input values ``{name: array}`` for ``config``.

    The inputs are part of the image (the host stores them in MEM before the
    start); the schedule is proven by :func:`~.hazards.check_schedule`.
    """
    cfg = get_config(config)
    for t in graph.inputs:
        if t.name not in inputs:
            raise CompileError(f"no value given for input {t.name!r}")
    if not graph.outputs:
        raise CompileError(f"graph {graph.name!r} has no outputs")
    low = _Lowering(graph, inputs, cfg)
    try:
        low.lower()
    except (ScheduleError, GraphError) as e:
        raise CompileError(f"graph {graph.name!r} on config {cfg.name}: {e}") from e
    for name, words in low.sched.emit().items():
        if len(words) > cfg.queue_depth:
            raise CompileError(f"graph {graph.name!r} does not fit config {cfg.name}: queue {name} "
                               f"needs {len(words)} instruction words, it holds {cfg.queue_depth}")
    checked = check_schedule(low.sched)
    outputs, layouts = [], {}
    for i, (name, t) in enumerate(graph.outputs.items()):
        loc = low.locate(t)
        oname = f"out{i}"
        if t.dtype == "i8":
            outputs.append(Output(oname, loc.slices[0].name, loc.addr, loc.words, "i8"))
        else:
            outputs.append(Output(oname, "/".join(s.name for s in loc.slices), loc.addr,
                                  loc.words, "i32"))
        layouts[name] = (oname, loc, t.shape, t.dtype)
    image = low.sched.to_image(memory=low.mem.data, outputs=outputs, source=graph.name)
    if low.first_lut is not None:
        image.lut = np.tile(low.first_lut, (cfg.vl, 1)).astype(np.int8)
    placed = {}
    for key, loc in low.loc.items():
        t = key[0] if isinstance(key, tuple) else key
        placed[t.name + (" (broadcast)" if loc.splat else "")] = {
            "slices": [s.name for s in loc.slices], "bank": cfg.bank_of(loc.addr),
            "addr": loc.addr, "rows": loc.rows, "tiles": loc.tiles, "dtype": t.dtype,
            "input": t in graph.inputs}
    return CompiledGraph(graph, cfg, image, low.sched, low.sched.predicted_cycles(), checked,
                         layouts, low.phases, placed)
