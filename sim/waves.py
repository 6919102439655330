"""Readable waves: a GTKWave save file and translate filters for any wave file of the TSP.

A wave file of the gateware holds hundreds to tens of thousands of signals
with Verilog names (``tsp.\\fabric.east_3[1][2]`` from Icarus,
``bench.top.fabric.east_3[1][2]`` from Amaranth's simulator). :func:`write_gtkw` writes,
next to it, the ``.gtkw`` that makes it readable without knowing them,
generated from the machine definition (``firmware/machine.py``) and the
opcode table (``firmware/isa.py``):

* on top, the machine: the cycle counter, ``running``/``done``, the error
  flags by name and where the first error was raised;
* then one group per slice, west to east (``Floorplan.slices``): each of its
  queues' program counter and fetched word, then one group per tile with the
  instruction that tile issues (per queue), the streams the slice drives, and
  the hop registers it reads, eastward streams then westward, in stream order;
* every instruction word shown as assembler text through a GTKWave translate
  filter file generated from the program's words, the repetitions of every
  ``REPEAT`` walk included.

Signal names are never guessed: they are read from the wave file itself
(:func:`wave_vars`, FST through ``pylibfst``, VCD from its header), so the
same code serves the Verilog on Icarus (FST) and Amaranth's simulator (VCD),
and a signal missing from the file is left out rather than shown empty.

The module also cuts a window of cycles out of a wave file
(:func:`cut_window`), maps clock cycles to wave times (:func:`cycle_times`)
and names the wave file of the running test for ``pytest --waves DIR``
(:func:`waves_for_test`).
"""

import collections
import contextlib
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

from firmware.isa import ERROR_BITS, WORD_BITS, ErrorFlag, DecodeError, decode, word_flags
from firmware.machine import SliceKind


__all__ = ["Var", "Focus", "GtkwResult", "wave_vars", "write_gtkw", "traced_paths", "instruction_label",
           "program_words", "cycle_times", "signal_changes", "cut_window", "waves_for_test"]


# -- what is in a wave file ---------------------------------------------------------

@dataclass(frozen=True)
class Var:
    """One variable of a wave file.

    ``path`` is its hierarchical name without Verilog escapes or bit range
    (``tsp.q_MEM_E0.issue[0].word``); ``gtkw`` is the name GTKWave gives it in
    a save file (``tsp.\\q_MEM_E0.issue[0].word[47:0]`` in the flat Verilog of
    Icarus: vectors carry their range, one-bit signals none).
    """
    path: str
    width: int
    gtkw: str


_RANGE = re.compile(r"\s*\[(\d+):(\d+)\]$")


def _var(scope, name, width, range_text=None):
    """A :class:`Var` from a scope path and the name as the file stores it."""
    m = _RANGE.search(name)
    if m:                                   # Icarus' FST: "\issue[0].word [47:0]"
        range_text, name = f"[{m[1]}:{m[2]}]", name[:m.start()]
    bare = name[1:] if name.startswith("\\") else name
    if range_text is None and width > 1:
        range_text = f"[{width - 1}:0]"
    return Var(f"{scope}.{bare}", width, f"{scope}.{name}{range_text or ''}")


def wave_vars(path):
    """Every variable of the wave file ``path`` (``.fst`` or ``.vcd``): ``{path: Var}``."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such wave file")
    if path.suffix == ".vcd":
        return _vcd_vars(path)
    return _fst_vars(path)


def _fst_open(path):
    from pylibfst import lib, ffi
    reader = lib.fstReaderOpen(str(path).encode())
    if reader == ffi.NULL:
        raise ValueError(f"{path}: not a readable FST wave file")
    return reader


def _fst_hierarchy(reader):
    """Yield ``("scope", name, struct)``, ``("upscope", None, None)`` and
    ``("var", scope path, struct)`` in file order."""
    from pylibfst import lib, ffi
    lib.fstReaderIterateHierRewind(reader)
    scopes = []
    while True:
        h = lib.fstReaderIterateHier(reader)
        if h == ffi.NULL:
            return
        if h.htyp == lib.FST_HT_SCOPE:
            scopes.append(ffi.string(h.u.scope.name).decode())
            yield "scope", scopes[-1], h.u.scope
        elif h.htyp == lib.FST_HT_UPSCOPE:
            scopes.pop()
            yield "upscope", None, None
        elif h.htyp == lib.FST_HT_VAR:
            yield "var", ".".join(scopes), h.u.var


def _fst_vars(path):
    from pylibfst import lib, ffi
    reader = _fst_open(path)
    try:
        out = {}
        for what, scope, item in _fst_hierarchy(reader):
            if what == "var":
                v = _var(scope, ffi.string(item.name).decode(), item.length)
                out[v.path] = v
        return out
    finally:
        lib.fstReaderClose(reader)


def _vcd_header(path):
    """``(vars, ids)`` of a VCD file: ``{path: Var}`` and ``{path: identifier code}``."""
    out, ids, scopes = {}, {}, []
    with open(path) as f:
        for line in f:
            words = line.split()
            if not words:
                continue
            if words[0] == "$scope":
                scopes.append(words[2])
            elif words[0] == "$upscope":
                scopes.pop()
            elif words[0] == "$var":
                # $var wire 16 J5 \east_1[1][3] [15:0] $end
                width, code, name = int(words[2]), words[3], words[4]
                rng = words[5] if len(words) > 6 else None
                v = _var(".".join(scopes), name, width, rng)
                out[v.path] = v
                ids[v.path] = code
            elif words[0] == "$enddefinitions":
                break
    return out, ids


def _vcd_vars(path):
    return _vcd_header(path)[0]


def _end_time(path):
    """The last time stamp of a wave file."""
    path = Path(path)
    if path.suffix == ".vcd":
        last = 0
        with open(path, "rb") as f:
            start = max(0, path.stat().st_size - (1 << 16))
            f.seek(start)
            if start:
                f.readline()                   # a partial line
            for line in f:
                if line.startswith(b"#"):
                    last = int(line[1:])
        return last
    from pylibfst import lib
    reader = _fst_open(path)
    try:
        return int(lib.fstReaderGetEndTime(reader))
    finally:
        lib.fstReaderClose(reader)


def _top(variables):
    """The hierarchical prefix of the ``TSP`` instance: the scope that holds
    ``cycles`` and a ``fabric`` below it (``tsp.`` from Icarus, ``bench.top.``
    from Amaranth's simulator)."""
    for p in variables:
        if p.endswith(".cycles"):
            prefix = p[:-len("cycles")]
            if any(q.startswith(prefix + "fabric.") for q in variables):
                return prefix
    raise ValueError("no TSP in this wave file: no scope holds 'cycles' and a 'fabric'")


# -- values over time ---------------------------------------------------------------

def _bits_to_int(text):
    """A value as the wave file spells it ('0101', 'b0101', 'x1'): int, unknown bits as 0."""
    text = text.lstrip("b")
    return int(re.sub(r"[^01]", "0", text) or "0", 2)


def signal_changes(path, names):
    """``{name: [(time, value), ...]}`` for the signals ``names`` (paths
    relative to the TSP instance, e.g. ``"cycles"``), in time order."""
    path = Path(path)
    variables = wave_vars(path)
    top = _top(variables)
    missing = [n for n in names if top + n not in variables]
    if missing:
        raise KeyError(f"{path}: no signal {', '.join(missing)} below {top.rstrip('.')}")
    if path.suffix == ".vcd":
        return _vcd_changes(path, top, names)
    return _fst_changes(path, top, names)


def _fst_changes(path, top, names):
    import pylibfst
    from pylibfst import lib, ffi
    reader = _fst_open(path)
    try:
        handles = {}
        for what, scope, item in _fst_hierarchy(reader):
            if what == "var":
                v = _var(scope, ffi.string(item.name).decode(), item.length)
                if v.path.startswith(top) and v.path[len(top):] in names:
                    handles.setdefault(item.handle, []).append(v.path[len(top):])
        out = {n: [] for n in names}
        lib.fstReaderClrFacProcessMaskAll(reader)
        for h in handles:
            lib.fstReaderSetFacProcessMask(reader, h)

        def change(_data, time, handle, value):
            v = _bits_to_int(ffi.string(value).decode())
            for n in handles.get(handle, ()):
                out[n].append((int(time), v))

        pylibfst.fstReaderIterBlocks(reader, change, None)
        return out
    finally:
        lib.fstReaderClose(reader)


def _vcd_changes(path, top, names):
    variables, ids = _vcd_header(path)
    want = {}
    for n in names:
        want.setdefault(ids[top + n], []).append(n)
    out = {n: [] for n in names}
    time = 0
    with open(path) as f:
        for line in f:
            if line.startswith("$enddefinitions"):
                break
        for line in f:
            line = line.strip()
            if not line or line.startswith("$"):
                continue
            if line[0] == "#":
                time = int(line[1:])
                continue
            if line[0] in "bB":
                value, code = line[1:].split()
            elif line[0] in "rR":
                continue
            else:
                value, code = line[0], line[1:]
            for n in want.get(code, ()):
                out[n].append((time, _bits_to_int(value)))
    return out


def cycle_times(path):
    """``({cycle: wave time}, clock period)``: when each running clock cycle in the wave
    file begins, for global cycles ``g`` after ``START`` (the gateware's ``cycles``
    counter reads ``g`` during cycle ``g``). A window cut out of a run
    (:func:`cut_window`) starts at the cycle its counter shows. Only the first run
    in the file is counted."""
    ch = signal_changes(path, ["running", "cycles"])
    start = next((t for t, v in ch["running"] if v), None)
    if start is None:
        raise ValueError(f"{path}: the machine never runs in this wave file")
    end = next((t for t, v in ch["running"] if not v and t > start), math.inf)
    first = 0
    for t, v in ch["cycles"]:
        if t > start:
            break
        first = v
    times = {first: start}
    for t, v in ch["cycles"]:
        if start < t < end:
            times[v] = t
    steps = sorted(times.items())
    period = (steps[1][1] - steps[0][1]) // (steps[1][0] - steps[0][0]) if len(steps) > 1 else 1
    return times, period


# -- windows -------------------------------------------------------------------------

def cut_window(src, dst, start, end):
    """Copy the wave file ``src`` to ``dst`` for wave times ``start .. end`` only:
    every signal's value at ``start``, then its changes up to ``end`` (same names,
    same times, so the save file of ``src`` fits ``dst`` too). FST or VCD, as ``src``."""
    src, dst = Path(src), Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.suffix == ".vcd":
        _cut_vcd(src, dst, start, end)
    else:
        _cut_fst(src, dst, start, end)
    return dst


def _cut_fst(src, dst, start, end):
    import pylibfst
    from pylibfst import lib, ffi
    reader = _fst_open(src)
    writer = lib.fstWriterCreate(str(dst).encode(), 1)
    try:
        lib.fstWriterSetTimescale(writer, lib.fstReaderGetTimescale(reader))
        new = {}                                   # reader handle -> writer handle
        for what, _scope, item in _fst_hierarchy(reader):
            if what == "scope":
                lib.fstWriterSetScope(writer, item.typ, item.name, item.component)
            elif what == "upscope":
                lib.fstWriterSetUpscope(writer)
            else:
                alias = new.get(item.handle, 0)
                h = lib.fstWriterCreateVar(writer, item.typ, item.direction, item.length,
                                           item.name, alias)
                new.setdefault(item.handle, h)
        lib.fstReaderSetFacProcessMaskAll(reader)
        # Whole blocks outside the range are skipped by the library; each block starts
        # with every value, so the state at `start` is the last value seen before it.
        lib.fstReaderSetLimitTimeRange(reader, start, end)
        before = {}
        state = {"time": None}

        def flush():
            lib.fstWriterEmitTimeChange(writer, start)
            for h, value in before.items():
                lib.fstWriterEmitValueChange(writer, new[h], value)
            before.clear()
            state["time"] = start

        def change(_data, time, handle, value):
            if time < start:
                before[handle] = ffi.string(value)
                return
            if time > end:
                return
            if state["time"] is None:
                flush()
            if time != state["time"]:
                lib.fstWriterEmitTimeChange(writer, time)
                state["time"] = time
            lib.fstWriterEmitValueChange(writer, new[handle], value)

        pylibfst.fstReaderIterBlocks(reader, change, None)
        if state["time"] is None:
            flush()
        lib.fstWriterEmitTimeChange(writer, end)
    finally:
        lib.fstWriterClose(writer)
        lib.fstReaderClose(reader)


def _cut_vcd(src, dst, start, end):
    with open(src) as f, open(dst, "w") as out:
        for line in f:
            out.write(line)
            if line.startswith("$enddefinitions"):
                break
        state = {}
        time = 0
        started = False
        for line in f:
            text = line.strip()
            if not text or text.startswith("$"):
                continue
            if text[0] == "#":
                time = int(text[1:])
                if time >= start and not started:
                    out.write(f"#{start}\n$dumpvars\n")
                    out.writelines(state.values())
                    out.write("$end\n")
                    started = True
                if time > end:
                    break
                if started and time != start:
                    out.write(f"#{time}\n")
                continue
            code = text.split()[1] if text[0] in "bBrR" else text[1:]
            if started:
                out.write(text + "\n")
            else:
                state[code] = text + "\n"
        if not started:
            out.write(f"#{start}\n$dumpvars\n")
            out.writelines(state.values())
            out.write("$end\n")
        out.write(f"#{end}\n")


# -- instruction words as text ---------------------------------------------------------

def instruction_label(kind, word):
    """Assembler text of one instruction word of a ``kind`` queue (as the disassembler
    writes it), or ``.word 0x..`` with the reason for a word that does not decode."""
    from firmware.asm import _format          # the disassembler's one formatter
    try:
        return _format(decode(kind, word))
    except DecodeError as e:
        return f".word {word:#x} ({e})"


def program_words(image):
    """``{kind: (fetched words, issued words)}``: every word the queues of each kind
    hold, and every word they can issue, the address walks of ``REPEAT`` included
    (a repetition issues its instruction with the address fields advanced, a word
    the image does not hold). Static: the walks do not depend on timing."""
    fp = image.config.floorplan
    out = {kind: (set(), set()) for kind in SliceKind}
    for name, words in image.queues.items():
        kind = fp.queue(name).kind
        fetched, issued = out[kind]
        last = None
        for w in words:
            w = int(w)
            fetched.add(w)
            try:
                instr = decode(kind, w)
            except DecodeError:
                continue
            if not instr.is_icu:
                last = instr
                issued.add(w)
            elif instr.mnemonic == "REPEAT" and last is not None:
                last = _walk(kind, last, instr, issued)
    return out


def _walk(kind, instr, rep, issued, limit=1 << 16):
    """Add the words of ``REPEAT n, d, stride`` of ``instr`` to ``issued``; the last one."""
    from firmware.isa import encode
    fields = instr.info.addr_fields
    for _ in range(min(rep.n, limit)):
        try:
            instr = instr.with_fields(**{f: instr.fields[f] + rep.stride for f in fields})
            issued.add(encode(instr))
        except ValueError:                    # walked out of its field: ADDR_RANGE, no word
            break
    return instr


def _filter_text(entries, width):
    from vcd.gtkw import make_translation_filter
    return make_translation_filter(sorted(entries), datafmt="hex", size=width) + "\n"


def _write_filters(folder, image, widths):
    """Translate filter files: per queue kind the fetched and the issued words, the error
    flags and the queue names of ``err_queue`` (``widths``: of those two signals in the
    wave file). Returns ``{name: path}``."""
    c = image.config
    fp = c.floorplan
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    # The instruction memory holds each word with its legality flags above it
    # (``InstructionQueue.stored``): the fetch register (or port) shows those rows.
    rows = {kind: {0: "HALT"} for kind in SliceKind}
    for name, words in image.queues.items():
        queue = fp.queue(name)
        for w in map(int, words):
            flags = word_flags(queue, w, c)
            rows[queue.kind][w | flags << WORD_BITS[queue.kind]] = instruction_label(queue.kind, w)
    for kind, (_fetched, issued) in program_words(image).items():
        # A tile that issues nothing shows word 0 on its issue port: "-", not HALT.
        issue = {w: instruction_label(kind, w) for w in issued} | {0: "-"}
        for name, table, width in (("fetch", rows[kind], WORD_BITS[kind] + ERROR_BITS),
                                   ("issue", issue, WORD_BITS[kind])):
            path = folder / f"{name}_{kind.value}.txt"
            path.write_text(_filter_text(table.items(), width))
            files[f"{name}_{kind.value}"] = path
    flags = []
    for v in range(1 << widths["errors"]):
        names = [f.name or hex(f.value) for f in ErrorFlag if v & f]
        flags.append((v, "?red?" + "|".join(names) if names else "none"))
    files["errors"] = folder / "errors.txt"
    files["errors"].write_text(_filter_text(flags, widths["errors"]))
    queues = [(i, q.name) for i, q in enumerate(fp.queues)] + [(len(fp.queues), "DEADLOCK")]
    files["err_queue"] = folder / "err_queue.txt"
    files["err_queue"].write_text(_filter_text(queues, widths["err_queue"]))
    return files


# -- the save file -------------------------------------------------------------------

@dataclass(frozen=True)
class Focus:
    """Where to look: the groups of ``slices`` open (their tile ``tile``), the hop
    register ``hop = (slice that reads it, "E2")`` highlighted, the marker on the
    global clock cycle ``cycle``."""
    slices: tuple = ()
    tile: int = 0
    hop: tuple | None = None
    cycle: int | None = None


@dataclass
class GtkwResult:
    path: Path
    traces: list          # every GTKWave name the save file shows, in order
    filters: dict         # filter name -> path


#: GTKWave's zoom is a power of two; at zoom z one pixel shows 2**(-z) * this many
#: time units (measured on GTKWave 3.3.118: zoom -8 shows 1.25 ps per pixel on a ps
#: timescale).
_PX_AT_ZERO = 1.25 / 2 ** 8


def write_gtkw(wave, image, gtkw=None, focus=None, window=None):
    """Write the GTKWave save file for the wave file ``wave`` of a run of ``image``
    (default: ``wave`` with the suffix ``.gtkw``) and its translate filters (in the
    folder ``<stem>.filters``). ``focus``: a :class:`Focus`, shown first in a group of
    its own and opened in place; ``window``: ``(start, end)`` wave times to show.
    Returns a :class:`GtkwResult`."""
    from vcd.gtkw import GTKWSave
    gtkw = Path(gtkw) if gtkw else Path(wave).with_suffix(".gtkw")
    wave = Path(wave).resolve()
    variables = wave_vars(wave)
    top = _top(variables)
    fp = image.config.floorplan
    widths = {n: variables[top + n].width if top + n in variables else bits
              for n, bits in (("errors", ERROR_BITS), ("err_queue", len(fp.queues).bit_length()))}
    filters = _write_filters(gtkw.parent / f"{gtkw.stem}.filters", image, widths)
    try:
        times, period = cycle_times(wave)
    except ValueError:                       # a file without a run: no window, no marker
        times, period = {}, 1

    with open(gtkw, "w") as f:
        save = GTKWSave(f)
        save.comment(f"TSP {image.config.name}: {image.source or 'program'}; "
                     "written by sim/waves.py")
        save.dumpfile(str(wave))
        save.savefile(str(gtkw.resolve()))
        if window is None and times:
            window = (min(times.values()), max(times.values()) + period)
        marker = times.get(focus.cycle, -1) if focus is not None else -1
        save.size(1600, 900)
        if window is not None:
            # About 1200 pixels of waves at this size. GTKWave drops a [timestart] whose
            # view would run past the end of the file, so the zoom keeps the view inside.
            start, end = window
            per_px = max((end - start) / 1100, _PX_AT_ZERO)
            per_px = max(min(per_px, (_end_time(wave) - start) / 1400), _PX_AT_ZERO)
            save.timestart(start)
            save.zoom_markers(-math.log2(per_px / _PX_AT_ZERO), marker)
        save.signals_width(320)
        save.sst_expanded(False)
        busy = {q for q, words in image.queues.items()
                 if any(not _is_icu(fp.queue(q).kind, int(w)) for w in words)}
        layout = _Layout(save, variables, top, filters, image.config, focus, busy)
        layout.machine()
        if focus is not None and focus.slices:
            layout.focus()
        for s in fp.slices:
            layout.slice(s)
    return GtkwResult(gtkw, layout.shown, filters)


class _Nowhere:
    """A save file that writes nothing, for :func:`traced_paths`."""

    def trace(self, *args, **kwargs):
        pass

    @contextlib.contextmanager
    def group(self, *args, **kwargs):
        yield


def traced_paths(config):
    """Every signal a save file of ``config`` can show, as paths below the TSP
    instance (``"q_MEM_E0.issue[0].word"``), in save-file order: what a wave build
    dumps (``sim/icarus_verilog.py``). A focus (:class:`Focus`) only repeats some."""
    fp = config.floorplan
    layout = _Layout(_Nowhere(), {}, "", collections.defaultdict(str), config, None,
                     {q.name for q in fp.queues})
    layout.machine()
    for s in fp.slices:
        layout.slice(s)
    return list(dict.fromkeys(layout.asked))


def _is_icu(kind, word):
    try:
        return decode(kind, word).is_icu
    except DecodeError:
        return False


class _Layout:
    """The traces of a save file, in the order of the machine definition."""

    def __init__(self, save, variables, top, filters, config, focus, busy):
        self.save, self.variables, self.top = save, variables, top
        self.filters, self.c, self.focus_ = filters, config, focus
        self.busy = busy                  # queues that issue anything at all
        self.fp = config.floorplan
        self.shown = []
        self.asked = []                   # every path traced, shown or not

    def trace(self, rel, alias, fmt="hex", filt=None, highlight=False):
        """One signal (a path below the TSP instance), if the wave file has it."""
        self.asked.append(rel)
        v = self.variables.get(self.top + rel)
        if v is not None:
            self.save.trace(v.gtkw, alias=alias, datafmt=fmt, highlight=highlight,
                            translate_filter_file=str(self.filters[filt]) if filt else None)
            self.shown.append(v.gtkw)

    def machine(self):
        with self.save.group("TSP", closed=False):
            self.trace("cycles", "cycles", "dec")
            self.trace("running", "running", "bin")
            self.trace("done", "done", "bin")
            self.trace("errors", "errors", filt="errors")
            # Where the first error was raised: meaningful once `errors` is not none.
            self.trace("err_queue", "first error at queue", filt="err_queue")
            self.trace("err_cycle", "first error at cycle", "dec")

    def queues_of(self, s):
        return [q for q in self.fp.queues if q.slice == s]

    def issue(self, s, k, busy_only=False):
        for q in self.queues_of(s):
            if busy_only and q.name not in self.busy:
                continue
            self.trace(f"q_{q.name}.issue[{k}].word", f"{q.name} t{k} issue",
                       filt=f"issue_{s.kind.value}")

    def drives(self, s, k, dirs="EW"):
        for d in dirs:
            self.trace(f"fabric.{d.lower()}_emit[{s.pos}][{k}]", f"{s.name} t{k} drives {d}", "bin")

    def hop(self, s, k, d, st, highlight=False):
        reg = "east" if d == "E" else "west"
        self.trace(f"fabric.{reg}_{s.pos}[{k}][{st}]", f"{s.name} t{k} {d}{st} in",
                   highlight=highlight)

    def focus(self):
        """The few signals that show the fault: the culprit's instructions and emit
        enables in the tile at fault, and the hop register on both of its sides."""
        f, fp = self.focus_, self.fp
        culprit = fp.slice(f.slices[0])
        title = f"first divergence: {culprit.name}, tile {f.tile}"
        if f.hop is not None:
            reader, stream = fp.slice(f.hop[0]), f.hop[1]
            title += f", {stream} into {reader.name}"
        with self.save.group(title, closed=False, highlight=True):
            self.trace("cycles", "cycles", "dec")
            self.issue(culprit, f.tile, busy_only=True)
            if f.hop is None:
                self.drives(culprit, f.tile)
                return
            d, st = stream[0], int(stream[1:])
            self.drives(culprit, f.tile, d)
            step = 1 if d == "E" else -1
            if 0 <= culprit.pos - step < fp.width:       # what reaches the culprit
                self.hop(culprit, f.tile, d, st)
            self.hop(reader, f.tile, d, st, highlight=True)

    def slice(self, s):
        """A slice's group: its queues (closed), then one group per tile with the
        instruction each queue issues there, the streams it drives and the hop
        registers it reads, eastward then westward, in stream order."""
        f = self.focus_
        opened = f is not None and s.name in f.slices
        with self.save.group(f"{s.name} (position {s.pos})", closed=not opened):
            with self.save.group(f"{s.name} queues", closed=True):
                for q in self.queues_of(s):
                    self.trace(f"q_{q.name}.pc", f"{q.name} pc", "dec")
                    # the word of this cycle: the fetch register, or the read port
                    row = "row" if self.c.fetch_reg else "_imem_rd__data"
                    self.trace(f"q_{q.name}.{row}", f"{q.name} fetch",
                               filt=f"fetch_{s.kind.value}")
                    self.trace(f"q_{q.name}.waiting", f"{q.name} waits (SYNC)", "bin")
                    self.trace(f"q_{q.name}.halted", f"{q.name} halted", "bin")
            for k in range(self.c.tiles):
                lanes = f"lanes {k * self.c.lanes}..{(k + 1) * self.c.lanes - 1}"
                here = opened and f.tile == k
                with self.save.group(f"{s.name} tile {k} ({lanes})", closed=not here):
                    self.issue(s, k)
                    self.drives(s, k)
                    for d, edge in (("E", 0), ("W", self.fp.width - 1)):
                        if s.pos == edge:           # nothing enters at the edge: always zero
                            continue
                        for st in range(self.c.streams):
                            self.hop(s, k, d, st, here and f.hop == (s.name, f"{d}{st}"))


# -- pytest --waves -----------------------------------------------------------------

#: Set by ``tests/conftest.py`` from ``pytest --waves DIR``.
WAVES_DIR_ENV = "TSP_WAVES_DIR"

_taken = {}


def waves_for_test(suffix):
    """The wave file for the next gateware run of the running test, under the folder
    of ``pytest --waves DIR``; ``None`` when no waves were asked for (the default).
    One file per test, named after it; a test's second run gets ``-2``, and so on."""
    folder = os.environ.get(WAVES_DIR_ENV)
    test = os.environ.get("PYTEST_CURRENT_TEST")
    if not folder or not test:
        return None
    name = re.sub(r"[^\w.-]+", "_", test.rsplit(" (", 1)[0]).strip("_")
    n = _taken[name] = _taken.get(name, 0) + 1
    return Path(folder) / f"{name}{'' if n == 1 else f'-{n}'}{suffix}"
