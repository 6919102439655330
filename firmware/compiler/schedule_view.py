"""``tsp schedule``: pictures of a compiled program's schedule, like a static-schedule viewer.

Three views share one time axis (local cycles, as the compiler schedules them):

* **queues x cycles**: one row per instruction queue, floorplan order; each
  instruction a bar from its issue cycle to the cycle of its last effect (its
  emission: ``READ`` + 1, a VXM op + 3, an ``ABC`` with a fused emit
  ``mxm_abc + 1`` ...), coloured by unit;
* **stream occupancy per hop**: for each direction, the number of streams that
  carry a live value through each hop register in each cycle, a value being
  live from the slice that emits it to the last slice that reads it;
* **MXM busy time**: the cycles each MXM multiplies (``ABC``) and loads weights
  (``LW``/``IW``), with the fraction of the run.

The issue cycles are the golden model's (``sim.golden``), so ``NOP``,
``REPEAT`` and ``SYNC`` are counted exactly as the machine runs them; what each
instruction reads and emits, and when, comes from
:func:`firmware.compiler.hazards.stream_effects`, the compiler's own rules.
:func:`write_png` draws with matplotlib; :func:`write_html` writes a page with
the picture and a scrollable SVG timeline whose every bar names its
instruction.
"""

import base64
import html
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..machine import Dir, SliceKind
from .hazards import stream_effects


__all__ = ["Span", "ScheduleView", "load_program", "load_with_phases", "write_png", "write_html",
           "main"]


#: Bar colours by (queue kind, mnemonic); the kind's own colour for the rest.
_COLOURS = {
    (SliceKind.MEM, "READ"): "#4c78a8", (SliceKind.MEM, "WRITE"): "#54a24b",
    (SliceKind.MEM, "RW"): "#72b7b2",
    (SliceKind.MXM, "LW"): "#9d9d9d", (SliceKind.MXM, "IW"): "#4d4d4d",
    (SliceKind.MXM, "ABC"): "#e45756", (SliceKind.MXM, "ACC"): "#9d5b3c",
    (SliceKind.VXM, "LUT"): "#b279a2", (SliceKind.VXM, "LUTW"): "#b279a2",
    (SliceKind.VXM, "REQUANT"): "#eeca3b",
}
_KIND_COLOURS = {SliceKind.MEM: "#4c78a8", SliceKind.VXM: "#f58518",
                 SliceKind.MXM: "#e45756", SliceKind.SXM: "#ff9da6"}


def _colour(kind, mnemonic):
    return _COLOURS.get((kind, mnemonic), _KIND_COLOURS[kind])


@dataclass(frozen=True)
class Span:
    """One issued instruction: its queue, issue cycle, last cycle of its effect,
    mnemonic and assembler text."""
    queue: str
    issued: int
    until: int
    mnemonic: str
    text: str


class ScheduleView:
    """What the pictures show, computed once from a run of the golden model.

    ``spans[queue]``: :class:`Span` s in issue order; ``occupancy[Dir]``: int
    ``[positions, cycles]``, live streams in the hop register each position reads;
    ``mxm[name]``: ``{"ABC": bool[cycles], "LW/IW": bool[cycles]}``; ``phases``:
    the compiler's phases (``tsp compile``'s summary), if known.
    """

    def __init__(self, image, phases=()):
        from sim.golden import run_image
        from firmware.asm import _format          # the disassembler's formatter
        self.image = image
        self.config = c = image.config
        self.floorplan = fp = c.floorplan
        self.phases = list(phases)
        result = run_image(image, trace=True)
        trace = result.trace
        self.cycles = result.cycles
        self.errors = result.errors
        self.spans = {q.name: [] for q in fp.queues}
        emissions, reads = [], []
        for t, issued in enumerate(trace.issued):
            for qname, instr in issued.items():
                q = fp.queue(qname)
                r, e = stream_effects(instr, c)
                until = t + max((d for d, _, _ in e), default=0)
                self.spans[qname].append(Span(qname, t, until, instr.mnemonic, _format(instr)))
                pos = q.slice.pos
                emissions += [(d, s, pos, t + delay) for delay, d, s in e]
                reads += [(d, s, pos, t) for d, s in r]
        self.occupancy = _occupancy(c, emissions, reads, max(self.cycles, 1))
        self.mxm = {}
        for s in fp.of_kind(SliceKind.MXM):
            abc = np.zeros(max(self.cycles, 1), bool)
            load = np.zeros_like(abc)
            for span in self.spans[s.name]:
                if span.mnemonic == "ABC":
                    abc[span.issued] = True
                elif span.mnemonic in ("LW", "IW"):
                    load[span.issued] = True
            self.mxm[s.name] = {"ABC": abc, "LW/IW": load}

    @property
    def queue_names(self):
        return [q.name for q in self.floorplan.queues]

    def busy_summary(self):
        """``{mxm: (ABC cycles, LW/IW cycles, run cycles)}``."""
        return {n: (int(b["ABC"].sum()), int(b["LW/IW"].sum()), self.cycles)
                for n, b in self.mxm.items()}


def _occupancy(config, emissions, reads, cycles):
    """Live streams per direction, position and cycle.

    A value emitted by the slice at ``j`` in cycle ``e`` eastward is in the register
    position ``j + h`` reads in cycle ``e + h`` (the diagonal ``pos - cycle``), until a
    slice further east emits onto that stream on the same diagonal. It counts as live
    from ``j + 1`` to the last position that reads it there.
    """
    n = config.floorplan.width
    out = {d: np.zeros((n, cycles), np.int32) for d in Dir}
    by_diag = {}
    for d, s, pos, cyc in emissions:
        diag = pos - d.step * cyc
        by_diag.setdefault((d, s, diag), {"emit": [], "read": []})["emit"].append(pos)
    for d, s, pos, cyc in reads:
        diag = pos - d.step * cyc
        if (d, s, diag) in by_diag:
            by_diag[(d, s, diag)]["read"].append(pos)
    for (d, s, diag), hop in by_diag.items():
        # Walk downstream: order positions in the direction of flow.
        key = (lambda p: p) if d is Dir.E else (lambda p: -p)
        emits = sorted(set(hop["emit"]), key=key)
        reads = sorted(set(hop["read"]), key=key)
        for i, j in enumerate(emits):
            stop = emits[i + 1] if i + 1 < len(emits) else None   # it overwrites after its own read
            mine = [p for p in reads if key(p) > key(j) and (stop is None or key(p) <= key(stop))]
            if not mine:
                continue
            for p in range(j + d.step, mine[-1] + d.step, d.step):
                cyc = (p - diag) * d.step          # diag = pos - step * cycle
                if 0 <= cyc < cycles:
                    out[d][p, cyc] += 1
    return out


# -- loading -------------------------------------------------------------------------

def load_program(path, config=None, inputs=None):
    """A program image from ``path``: a folder written by ``tsp compile`` (its ``.bin``),
    an image (``.bin``), assembler text (``.s``), or an ONNX model (``.onnx``, compiled
    for ``config``, default ``ulx3s``, with the arrays of ``inputs`` or zeros)."""
    return load_with_phases(path, config, inputs)[0]


def load_with_phases(path, config=None, inputs=None):
    """``(image, the compiler's phases)`` of :func:`load_program`: the phases come from
    the summary ``.json`` that ``tsp compile`` writes next to the image, or from the
    compilation of an ONNX model; a hand-written program has none."""
    from .. import cli
    p = Path(path)
    if p.is_dir():
        bins = sorted(p.glob("*.bin"))
        if len(bins) != 1:
            raise cli.UsageError(f"{p}: a folder written by `tsp compile` holds one .bin, "
                                 f"this one holds {len(bins)}")
        return cli._load_program(bins[0], config), _phases_from(bins[0].with_suffix(".json"))
    if p.suffix == ".onnx":
        model, imported = cli._import_model(p)
        if inputs:
            feeds = cli._load_feeds(inputs, imported)
        else:
            feeds = {vi.name: np.zeros([dim.dim_value for dim in vi.type.tensor_type.shape.dim],
                                       np.float32)
                     for vi in model.graph.input if vi.name in imported.inputs}
        compiled = cli._compile_model(p, imported, feeds, config or "ulx3s")
        return compiled.image, list(compiled.phases)
    return cli._load_program(p, config), _phases_from(p.with_suffix(".json"))


def _phases_from(summary):
    """The ``phases`` of a ``tsp compile`` summary file, if it is one."""
    try:
        return list(json.loads(Path(summary).read_text()).get("phases", []))
    except (OSError, ValueError, AttributeError):
        return []


# -- the picture -----------------------------------------------------------------------

def write_png(view, path, title=None):
    """Draw ``view`` to the PNG ``path``."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    c, fp = view.config, view.floorplan
    names = view.queue_names
    mxms = list(view.mxm)
    width = min(max(10.0, view.cycles / 60), 40.0)
    heights = [max(2.5, 0.3 * len(names)), 0.22 * fp.width + 0.6, 0.22 * fp.width + 0.6,
               0.5 + 0.4 * len(mxms)]
    fig, axes = plt.subplots(4, 1, figsize=(width, sum(heights) + 1.5), sharex=True,
                             gridspec_kw={"height_ratios": heights})
    ax_q, ax_e, ax_w, ax_m = axes
    fig.suptitle(title or f"{view.image.source or 'program'}: config {c.name}, "
                 f"{view.cycles} cycles", fontsize=11)

    used = {}
    for row, name in enumerate(names):
        kind = fp.queue(name).kind
        for kind_spans in _runs(view.spans[name]):
            colour = _colour(kind, kind_spans[0].mnemonic)
            used[kind_spans[0].mnemonic if (kind, kind_spans[0].mnemonic) in _COLOURS
                 else kind.value] = colour
            ax_q.broken_barh([(s.issued, s.until - s.issued + 1) for s in kind_spans],
                             (row - 0.4, 0.8), facecolors=colour, edgecolor="none", alpha=0.85)
    ax_q.set_yticks(range(len(names)), names, fontsize=8)
    ax_q.set_ylim(len(names) - 0.5, -0.5)
    ax_q.set_ylabel("queue")
    ax_q.legend(handles=[Patch(color=v, label=k) for k, v in sorted(used.items())],
                loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7, frameon=False)

    slices = [s.name for s in fp.slices]
    for ax, d in ((ax_e, Dir.E), (ax_w, Dir.W)):
        im = ax.imshow(view.occupancy[d], aspect="auto", interpolation="nearest", cmap="viridis",
                       vmin=0, vmax=c.streams, extent=(-0.5, view.cycles - 0.5, fp.width - 0.5, -0.5))
        ax.set_yticks(range(fp.width), slices, fontsize=7)
        arrow = "eastward (->)" if d is Dir.E else "westward (<-)"
        ax.set_ylabel(f"{arrow}\nreads at", fontsize=8)
        fig.colorbar(im, ax=ax, pad=0.01, label="live streams")

    for row, name in enumerate(mxms):
        for offset, (what, busy, colour) in enumerate(
                (("ABC", view.mxm[name]["ABC"], "#e45756"),
                 ("LW/IW", view.mxm[name]["LW/IW"], "#9d9d9d"))):
            runs = _true_runs(busy)
            ax_m.broken_barh(runs, (row + offset * 0.4 - 0.4, 0.4), facecolors=colour)
        abc, load, total = view.busy_summary()[name]
        ax_m.text(1.002, 1 - (row + 0.5) / len(mxms), f"{name}: ABC {abc}/{total} "
                  f"({100 * abc / max(total, 1):.0f}%), LW/IW {load}", transform=ax_m.transAxes,
                  fontsize=7, va="center")
    ax_m.set_yticks(range(len(mxms)), mxms, fontsize=8)
    ax_m.set_ylim(len(mxms) - 0.5, -0.5)
    ax_m.set_ylabel("MXM busy\n(red ABC, grey LW/IW)", fontsize=8)
    ax_m.set_xlabel("local cycle")
    ax_m.set_xlim(-0.5, view.cycles - 0.5)

    for ph in view.phases:
        for ax in axes:
            ax.axvline(ph.get("start", 0) - 0.5, color="black", lw=0.6, ls="--")
        ax_q.text(ph.get("start", 0), -0.6, ph.get("kind", ""), fontsize=7, va="bottom")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def _runs(spans):
    """Spans grouped by mnemonic (one draw call per colour)."""
    groups = {}
    for s in spans:
        groups.setdefault(s.mnemonic, []).append(s)
    return list(groups.values())


def _true_runs(flags):
    """``[(start, length)]`` of the runs of True in a bool array."""
    idx = np.flatnonzero(np.diff(np.concatenate([[0], flags.astype(np.int8), [0]])))
    return [(int(a), int(b - a)) for a, b in zip(idx[::2], idx[1::2])]


# -- the page ----------------------------------------------------------------------------

_PX = 6          # pixels per cycle in the page's timeline
_ROW = 16


def write_html(view, path, png=None):
    """A page with the picture (``png``, embedded) and an SVG timeline, ``_PX`` pixels a
    cycle, scrollable, every bar with its instruction as a tooltip."""
    c, fp = view.config, view.floorplan
    names = view.queue_names
    label_w = 90
    w = label_w + view.cycles * _PX + 20
    rows = []
    y = 20
    svg = []
    # the cycle ruler
    step = 10 if view.cycles <= 400 else 50 if view.cycles <= 4000 else 500
    for t in range(0, view.cycles + 1, step):
        x = label_w + t * _PX
        svg.append(f'<line x1="{x}" y1="12" x2="{x}" y2="100%" class="grid"/>'
                   f'<text x="{x + 2}" y="10" class="tick">{t}</text>')
    for name in names:
        kind = fp.queue(name).kind
        rows.append((y, name))
        for s in view.spans[name]:
            tip = html.escape(f"{name} cycle {s.issued}: {s.text}"
                              + (f" (effect until {s.until})" if s.until > s.issued else ""))
            svg.append(f'<rect x="{label_w + s.issued * _PX}" y="{y}" '
                       f'width="{(s.until - s.issued + 1) * _PX - 1}" height="{_ROW - 3}" '
                       f'fill="{_colour(kind, s.mnemonic)}"><title>{tip}</title></rect>')
        y += _ROW
    y += 8
    for d in Dir:
        for p, sl in enumerate(fp.slices):
            occ = view.occupancy[d][p]
            rows.append((y, f"{d.name} {sl.name}"))
            for start, length, value in _value_runs(occ):
                if value:
                    shade = 0.15 + 0.85 * value / c.streams
                    svg.append(f'<rect x="{label_w + start * _PX}" y="{y}" width="{length * _PX}" '
                               f'height="{_ROW - 3}" fill="#3b528b" fill-opacity="{shade:.2f}">'
                               f'<title>{d.name}ward hop into {sl.name}, cycles {start}..'
                               f'{start + length - 1}: {value} live streams</title></rect>')
            y += _ROW
        y += 8
    summary = view.busy_summary()
    for name, busy in view.mxm.items():
        for what, colour in (("ABC", "#e45756"), ("LW/IW", "#9d9d9d")):
            rows.append((y, f"{name} {what}"))
            for start, length in _true_runs(busy[what]):
                svg.append(f'<rect x="{label_w + start * _PX}" y="{y}" width="{length * _PX}" '
                           f'height="{_ROW - 3}" fill="{colour}"><title>{name} {what} cycles '
                           f'{start}..{start + length - 1}</title></rect>')
            y += _ROW
    for ph in view.phases:
        x = label_w + ph.get("start", 0) * _PX
        tip = html.escape("; ".join(ph.get("ops", [])))
        svg.append(f'<line x1="{x}" y1="12" x2="{x}" y2="{y}" class="phase"><title>{tip}</title></line>')
    labels = "".join(f'<text x="4" y="{ry + _ROW - 5}" class="label">{html.escape(n)}</text>'
                     for ry, n in rows)
    busy = "".join(f"<li>{html.escape(n)}: ABC in {a} of {t} cycles ({100 * a / max(t, 1):.0f}%), "
                   f"LW/IW in {lw}</li>" for n, (a, lw, t) in summary.items())
    picture = ""
    if png is not None:
        data = base64.b64encode(Path(png).read_bytes()).decode()
        picture = f'<img alt="schedule" src="data:image/png;base64,{data}">'
    title = html.escape(f"{view.image.source or 'program'}: config {c.name}, {view.cycles} cycles")
    page = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: sans-serif; margin: 1em; }}
.scroll {{ overflow-x: auto; border: 1px solid #ccc; }}
.tick {{ font-size: 9px; fill: #555; }} .label {{ font-size: 10px; fill: #222; }}
.grid {{ stroke: #eee; }} .phase {{ stroke: #000; stroke-dasharray: 4 3; }}
img {{ max-width: 100%; }}
</style></head><body>
<h1>{title}</h1>
<p>Rows: every queue (bars from issue to the cycle of the last effect, hover for the
instruction), then the live streams in each hop register per direction (darker: more
streams), then each MXM's ABC and weight-load cycles. Dashed lines: the compiler's
phases.</p>
<ul>{busy}</ul>
<div class="scroll"><svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{y + 10}">
<rect width="{label_w}" height="{y + 10}" fill="white"/>
{"".join(svg)}
{labels}
</svg></div>
{picture}
</body></html>
"""
    Path(path).write_text(page)
    return Path(path)


def _value_runs(values):
    """``[(start, length, value)]`` of the runs of equal values."""
    out = []
    start = 0
    for i in range(1, len(values) + 1):
        if i == len(values) or values[i] != values[start]:
            out.append((start, i - start, int(values[start])))
            start = i
    return out


# -- the command -------------------------------------------------------------------------

def main(args):
    """``tsp schedule DIR -o schedule.png`` (the parser is in ``firmware/cli.py``)."""
    from ..cli import UsageError
    out = Path(args.output)
    if out.suffix.lower() != ".png":
        raise UsageError(f"{out}: the picture is a PNG; name it *.png")
    image, phases = load_with_phases(args.program, args.config, args.inputs)
    view = ScheduleView(image, phases)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_png(view, out)
    page = Path(args.html) if args.html else out.with_suffix(".html")
    write_html(view, page, png=out)
    busy = "; ".join(f"{n} ABC {a}/{t} cycles ({100 * a / max(t, 1):.0f}%)"
                     for n, (a, _lw, t) in view.busy_summary().items())
    print(f"{out}, {page}: {view.cycles} cycles, {sum(map(len, view.spans.values()))} "
          f"instructions on {len(view.spans)} queues; {busy}")
    return 0
