"""The hazard checker: proves a schedule right without trusting its builder.

The machine keeps no record of where a value came from (no valid bits, no
interlocks): a slice reads whatever the hop register at its position holds.
So the checker re-derives the data flow from the placed instructions alone,
using the timing rules of ``docs/ARCHITECTURE.md``: which streams each
instruction reads at issue, and which it emits, when. For every stream read it
walks the read's diagonal upstream to the nearest emission of that stream and
direction (the value that actually arrives) and compares it with the value the
consumer said it expects. The stream allocator of :mod:`.schedule` is not
consulted.

Besides that it refuses two emissions on one hop in one cycle
(``STREAM_CONFLICT``), every instruction :func:`firmware.isa.check` rejects
(same-bank ``RW``, MEM addresses, accumulator slots, weight columns, streams
out of range) and queue programs longer than the instruction memory.
"""

from ..isa import Operand, OperandKind, VXM_UNARY, check, vxm_types
from ..machine import Dir, SliceKind
from .schedule import Part


__all__ = ["HazardError", "check_schedule", "stream_effects"]


class HazardError(ValueError):
    """A schedule that would not compute what its builder intended."""


_DIRS = (Dir.E, Dir.W)      # by the 1-bit direction field


def _vxm_effects(f, mnemonic, lat):
    dt_in, dt_out = vxm_types(mnemonic, f["dtype"])
    srcs = ["a"] + ([] if mnemonic in VXM_UNARY else ["b"]) + (["c"] if mnemonic == "SELECT" else [])
    reads = []
    for name in srcs:
        op = Operand.decode(f[name])
        if op.kind is OperandKind.STREAM:
            reads += [(op.dir, op.index + i) for i in range(4 if dt_in else 1)]
    emits = []
    if f["we"] and mnemonic != "LUTW":
        emits = [(lat.vxm, _DIRS[f["wdir"]], f["wstream"] + i) for i in range(4 if dt_out else 1)]
    return reads, emits


def stream_effects(instr, config, lat=None):
    """``(reads, emits)`` of one instruction, from the architecture's rules.

    ``reads``: ``[(Dir, stream)]``, all read in the issue cycle, in operand
    order; ``emits``: ``[(delay, Dir, stream)]``, stream ``s + i`` of a group
    carrying byte ``i``. (``lat``: ``config.latency``, passed in by loops.)
    """
    f, m, lat = instr.fields, instr.mnemonic, lat or config.latency
    kind = instr.kind
    if kind is SliceKind.MEM:
        if m == "READ":
            return [], [(lat.mem_read, _DIRS[f["dir"]], f["stream"])]
        if m == "WRITE":
            return [(_DIRS[f["dir"]], f["stream"])], []
        return [(_DIRS[f["wdir"]], f["wstream"])], [(lat.mem_read, _DIRS[f["rdir"]], f["rstream"])]
    if kind is SliceKind.MXM:
        if m == "LW":
            return [(_DIRS[f["dir"]], f["stream"] + i) for i in range(f["count"] + 1)], []
        if m == "ABC":
            emits = ([(lat.mxm_abc + lat.mxm_acc, _DIRS[f["edir"]], f["estream"] + i) for i in range(4)]
                     if f["emit"] else [])
            return [(_DIRS[f["dir"]], f["stream"])], emits
        if m == "ACC":
            return [], [(lat.mxm_acc, _DIRS[f["dir"]], f["stream"] + i) for i in range(4)]
        return [], []                                           # IW
    if kind is SliceKind.SXM:
        n = config.lanes if m == "TRANS" else 1
        return ([(_DIRS[f["sdir"]], f["sstream"] + i) for i in range(n)],
                [(lat.sxm, _DIRS[f["ddir"]], f["dstream"] + i) for i in range(n)])
    return _vxm_effects(f, m, lat)


def _diagonal(direction, pos, cycle):
    return pos - cycle if direction is Dir.E else pos + cycle


def _where(fp, queue):
    s = fp.queue(queue).slice
    return f"{queue} (slice {s.name}, position {s.pos})"


def _check_instructions(schedule):
    cfg, fp = schedule.config, schedule.floorplan
    for name, words in schedule.emit().items():
        if len(words) > cfg.queue_depth:
            raise HazardError(f"queue {name}: its program is {len(words)} words, the instruction "
                              f"memory holds {cfg.queue_depth} (config {cfg.name})")
    for p in schedule.placements():
        for flag, reason in check(p.instr, fp.queue(p.queue), cfg):
            raise HazardError(f"cycle {p.cycle}: {_where(fp, p.queue)}: {p.instr}: {reason} "
                              f"({flag.name})")


def _emissions(schedule, effects):
    """``{(dir, stream, diagonal): {pos: (cycle, Part, queue)}}`` of every emission."""
    found = {}
    for p, pos, _, emits in effects:
        base = {}
        for delay, d, s in emits:
            e = p.cycle + delay
            first = base.setdefault((d, e), s)       # byte i of a group rides stream first + i
            hop = found.setdefault((d.value, s, _diagonal(d, pos, e)), {})
            if pos in hop:
                other = hop[pos]
                raise HazardError(
                    f"cycle {e}: two emissions onto {d.name}{s} at position {pos}: "
                    f"{other[2]} (issued for {other[1].value!r}) and {p.queue} at cycle {p.cycle} "
                    f"({p.instr}, value {p.produces!r}) (STREAM_CONFLICT)")
            hop[pos] = (e, Part(p.produces, s - first), p.queue)
    return found


def _arriving(emissions, d, s, pos, cycle):
    """The emission whose value slice ``pos`` reads on ``d``/``s`` in ``cycle``:
    the nearest emitter upstream on that diagonal, or None (the stream is zero)."""
    hop = emissions.get((d.value, s, _diagonal(d, pos, cycle)))
    if not hop:
        return None
    if d is Dir.E:
        upstream = [q for q in hop if q < pos]
        return hop[max(upstream)] if upstream else None
    upstream = [q for q in hop if q > pos]
    return hop[min(upstream)] if upstream else None


def check_schedule(schedule):
    """Refuse (:class:`HazardError`) any schedule whose data flow differs from
    the one its placements declare; return the number of stream reads proven.
    """
    cfg, fp, lat = schedule.config, schedule.floorplan, schedule.latency
    _check_instructions(schedule)
    pos = {q.name: q.slice.pos for q in fp.queues}
    effects = [(p, pos[p.queue], *stream_effects(p.instr, cfg, lat)) for p in schedule.placements()]
    emissions = _emissions(schedule, effects)
    checked = 0
    for p, here, reads, _ in effects:
        if not reads:
            continue
        if len(p.expects) != len(reads):
            raise HazardError(f"cycle {p.cycle}: {_where(fp, p.queue)}: {p.instr} reads "
                              f"{len(reads)} stream(s) but names {len(p.expects)} expected "
                              f"value(s); every stream read must say which producer it expects")
        for (d, s), want in zip(reads, p.expects):
            got = _arriving(emissions, d, s, here, p.cycle)
            if got is None or got[1] != want:
                found = ("no value (the stream is zero there)" if got is None else
                         f"{got[1].value!r} byte {got[1].index} emitted by {_where(fp, got[2])} "
                         f"in cycle {got[0]}")
                raise HazardError(f"cycle {p.cycle}: {_where(fp, p.queue)}: {p.instr} reads "
                                  f"{d.name}{s}: expected {want.value!r} byte {want.index}, "
                                  f"found {found}")
            checked += 1
    return checked
