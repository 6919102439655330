"""Text assembler and disassembler for TSP programs.

The text format is described in ``docs/ARCHITECTURE.md`` section 8; in short::

    .config NAME                        the machine (or pass ``config=``)
    .equ    NAME, expr                  a constant, usable wherever a number is
    .data   SLICE, addr, byte, ...      initial MEM contents, VL bytes per word
    .lut    v0, .., v255                the VXM table of every lane
    .lut    lane=K, v0, .., v255        the table of lane K only
    .perm   SLICE, map, l0, .., lVL-1   an SXM permutation map
    .output name, SLICE, addr, count[, i8|u8|i32]   (i32 also S3/S2/S1/S0: split planes)
    .queue  NAME                        following instructions go to this queue
    .word   value, ...                  raw instruction words (not checked)
    .nohalt                             do not end this queue with HALT

Decisions this module makes (the spec leaves them open):

- Numbers are decimal, ``0x`` hex or ``0b`` binary, and may be integer
  expressions of ``.equ`` names with ``+ - * // % << >> & | ^ ~`` and
  parentheses. A name must be defined (by ``.equ``, earlier in the file)
  before it is used; it cannot be redefined.
- Mnemonics, directives, queue, slice, stream and ALU names are
  case-insensitive; ``.equ`` names are case-sensitive.
- Every queue section ends with ``HALT``: if its last word is not ``HALT`` the
  assembler appends one, unless the section contains ``.nohalt`` (the
  disassembler writes that for images whose queue does not end in ``HALT``).
- A queue may have only one section; a second ``.queue`` of the same queue is
  an error.
- ``REPEAT`` before any ordinary (non-ICU) instruction of its queue is an
  error: there is nothing to repeat.
- Two ``.data`` directives may not set the same word; ``.lut`` directives
  apply in order (a later one overwrites).
- ``.word`` stores raw words as they are; it is how illegal instructions are
  written on purpose, and what the disassembler prints for a word that does
  not decode, does not pass :func:`firmware.isa.check`, or has bits the text
  form cannot express (e.g. a ``b`` operand of a unary VXM op).

Errors: the assembler reads the whole file and collects every error, then
raises one :class:`AsmError` whose message is the first error followed by the
others, one per line (``.errors`` holds them all). The instructions of a
``.queue`` section with an unknown name are skipped, not reported one by one.
"""

import ast
import keyword
import operator
import re
from dataclasses import dataclass, field

import numpy as np

from .image import MAGIC as IMAGE_MAGIC, ImageError, Output, ProgramImage
from .isa import (
    OPS, WORD_BITS, VXM_UNARY, DecodeError, Instr, Operand, OperandKind,
    check, decode, encode, op_by_mnemonic,
)
from .machine import ConfigError, Dir, SliceKind, get_config


__all__ = ["assemble", "assemble_file", "disassemble", "AsmError"]


class AsmError(ValueError):
    """``FILE:LINE: INSTR: reason``; ``others`` are further errors of the same file."""

    def __init__(self, filename, line, instr, reason, others=()):
        self.filename = filename
        self.line = line
        self.instr = instr
        self.reason = reason
        self.errors = [self, *others]
        lines = [f"{filename}:{line}: {instr}: {reason}"]
        lines += [f"{e.filename}:{e.line}: {e.instr}: {e.reason}" for e in others]
        super().__init__("\n".join(lines))


class _LineError(Exception):
    """The reason the current line is wrong; the caller adds file, line and instruction."""


# -- lexical level ------------------------------------------------------------

# re.ASCII: ``\d`` would otherwise take other scripts' digits ("E١" as stream 1).
_RESERVED = re.compile(r"^([EW]\d+|ALU\d+|ZERO)$", re.IGNORECASE | re.ASCII)
_STREAM = re.compile(r"^([EW])(\d+)$", re.IGNORECASE | re.ASCII)
_ALU = re.compile(r"^ALU(\d+)$", re.IGNORECASE | re.ASCII)
_KWARG = re.compile(r"^([A-Za-z_]\w*)\s*=\s*(.+)$")
_NAME = re.compile(r"^[A-Za-z_]\w*$")
_OUTPUT_NAME = re.compile(r"^[A-Za-z_][\w.]*$")

_BINOPS = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.LShift: operator.lshift,
    ast.RShift: operator.rshift, ast.BitAnd: operator.and_, ast.BitOr: operator.or_,
    ast.BitXor: operator.xor,
}
_UNOPS = {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Invert: operator.invert}
_MAX_SHIFT = 256     # keeps "1 << 10**9" from eating the machine; no field is this wide
#: Values are kept below 2**_MAX_BITS in magnitude (the widest field is 64 bits): else
#: ".equ" chains of products grow without bound ("A1, A0 * A0", "A2, A1 * A1", ...).
_MAX_BITS = 128


def _strip_comment(line):
    if line.lstrip().startswith("#"):
        return ""
    return line.split(";", 1)[0].strip()


def _split(text):
    """``'a, b -> c'`` -> ``(['a', 'b', 'c'], [',', '->'])``."""
    if not text.strip():
        return [], []
    tokens = re.split(r"(->|,)", text)
    parts = [t.strip() for t in tokens[0::2]]
    if not all(parts):
        raise _LineError("empty operand (a stray ',' or '->')")
    return parts, tokens[1::2]


def _evaluate(text, equs):
    """An integer expression of numbers and ``.equ`` names."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError):           # ValueError: a NUL byte, a lone surrogate
        raise _LineError(f"{_clip(text)!r} is not a number or an expression") from None
    except (RecursionError, MemoryError):       # nested thousands deep
        raise _LineError(f"expression {_clip(text)!r} is nested too deeply") from None

    def ev(node):
        if isinstance(node, ast.Constant) and type(node.value) is int:
            return node.value
        if isinstance(node, ast.Name):
            if node.id not in equs:
                raise _LineError(f"unknown name {node.id!r} (not defined by an earlier .equ)")
            return equs[node.id]
        if isinstance(node, ast.UnaryOp) and type(node.op) in _UNOPS:
            return _UNOPS[type(node.op)](ev(node.operand))
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            left, right = ev(node.left), ev(node.right)
            if isinstance(node.op, (ast.FloorDiv, ast.Mod)) and right == 0:
                raise _LineError(f"division by zero in {text!r}")
            if isinstance(node.op, (ast.LShift, ast.RShift)) and not 0 <= right <= _MAX_SHIFT:
                raise _LineError(f"shift by {right} in {text!r}")
            return _bounded(_BINOPS[type(node.op)](left, right), text)
        raise _LineError(f"{_clip(text)!r} is not a number or an integer expression")

    try:
        return _bounded(ev(tree.body), text)
    except RecursionError:
        raise _LineError(f"expression {_clip(text)!r} is nested too deeply") from None


def _bounded(value, text):
    if abs(value) >> _MAX_BITS:
        raise _LineError(f"value of {_clip(text)!r} is out of range (more than {_MAX_BITS} bits)")
    return value


def _clip(text, most=60):
    """``text`` shortened for an error message."""
    text = text.strip()
    return text if len(text) <= most else text[:most] + "..."


def _stream(text):
    """``'E3'`` -> ``(Dir.E, 3)``."""
    m = _STREAM.match(text)
    if not m:
        raise _LineError(f"{text!r} is not a stream (E<n> or W<n>)")
    return Dir[m.group(1).upper()], int(m.group(2))


def _stream_text(direction, index):
    return f"{Dir(direction).name}{index}"


def _expect(parts, seps, shape, usage):
    """Check the operand separators against ``shape`` (a tuple of ',' / '->')."""
    if len(parts) != len(shape) + 1:
        raise _LineError(f"wrong operand count: expected {len(shape) + 1} ({usage!r}), "
                         f"got {len(parts)}")
    if tuple(seps) != shape:
        raise _LineError(f"wrong operands {_join(parts, seps)!r}, expected {usage!r}")


def _join(parts, seps):
    out = parts[:1]
    for sep, part in zip(seps, parts[1:]):
        out.append((", " if sep == "," else " -> ") + part)
    return "".join(out)


# -- one instruction ---------------------------------------------------------

@dataclass
class _Ctx:
    """What parsing one instruction needs to know."""
    kind: SliceKind
    equs: dict

    def num(self, text):
        return _evaluate(text, self.equs)


def _usage(info):
    """The syntax of an instruction, for error messages."""
    m = info.mnemonic
    if info.is_icu:
        return {"NOP": "NOP n", "REPEAT": "REPEAT n, d[, stride]"}.get(m, m)
    table = _USAGE[info.kind]
    if m in table:
        return table[m]
    generic = "unary" if info.kind is SliceKind.VXM and m in VXM_UNARY else "*"
    return table[generic].replace("OP", m)


_USAGE = {
    SliceKind.MEM: {"READ": "READ addr -> Sn", "WRITE": "WRITE Sn -> addr",
                    "RW": "RW raddr -> Sn, Sn -> waddr"},
    SliceKind.MXM: {"LW": "LW Sn, col, count", "IW": "IW", "ABC": "ABC[.acc] Sn, slot [-> Sn]",
                    "ACC": "ACC slot -> Sn"},
    SliceKind.SXM: {"TRANS": "TRANS Sn -> Sn", "*": "OP Sn, arg -> Sn"},
    SliceKind.VXM: {"SELECT": "SELECT[.i8|.i32] a, b, c [-> Sn]",
                    "REQUANT": "REQUANT a, mult=M, shift=S[, zp=Z][, zr=1] [-> Sn]",
                    "LUTW": "LUTW a, index", "*": "OP[.i8|.i32] a, b [-> Sn]",
                    "unary": "OP[.i8|.i32] a [-> Sn]"},
}


def _parse_icu(ctx, info, parts, seps):
    usage = _usage(info)
    if info.mnemonic == "NOP":
        _expect(parts, seps, (), usage)
        return {"n": ctx.num(parts[0])}
    if info.mnemonic == "REPEAT":
        if seps == [","]:
            parts, seps = parts + ["0"], seps + [","]
        _expect(parts, seps, (",", ","), usage)
        return dict(zip(("n", "d", "stride"), map(ctx.num, parts)))
    if parts:
        raise _LineError(f"{info.mnemonic} takes no operands")
    return {}


def _parse_mem(ctx, info, parts, seps):
    usage = _usage(info)
    m = info.mnemonic
    if m == "RW":
        _expect(parts, seps, ("->", ",", "->"), usage)
        (rd, rs), (wd, ws) = _stream(parts[1]), _stream(parts[2])
        return {"raddr": ctx.num(parts[0]), "rdir": rd.value, "rstream": rs,
                "wdir": wd.value, "wstream": ws, "waddr": ctx.num(parts[3])}
    _expect(parts, seps, ("->",), usage)
    addr, stream = (parts[0], parts[1]) if m == "READ" else (parts[1], parts[0])
    d, s = _stream(stream)
    return {"dir": d.value, "stream": s, "addr": ctx.num(addr)}


def _parse_mxm(ctx, info, parts, seps):
    usage = _usage(info)
    m = info.mnemonic
    if m == "IW":
        if parts:
            raise _LineError("IW takes no operands")
        return {}
    if m == "ACC":
        _expect(parts, seps, ("->",), usage)
        d, s = _stream(parts[1])
        return {"dir": d.value, "stream": s, "slot": ctx.num(parts[0])}
    if m == "ABC":
        return _parse_abc(ctx, parts, seps, usage)
    _expect(parts, seps, (",", ","), usage)
    d, s = _stream(parts[0])
    count = ctx.num(parts[2])
    most = 1 << _width(info, "count")
    if not 1 <= count <= most:
        raise _LineError(f"count {count} out of range, LW loads 1..{most} columns")
    return {"dir": d.value, "stream": s, "col": ctx.num(parts[1]), "count": count - 1}


def _parse_abc(ctx, parts, seps, usage):
    fields = {}
    if seps and seps[-1] == "->":
        d, s = _stream(parts[-1])
        fields.update(emit=1, edir=d.value, estream=s)
        parts, seps = parts[:-1], seps[:-1]
    _expect(parts, seps, (",",), usage)
    d, s = _stream(parts[0])
    return {**fields, "dir": d.value, "stream": s, "slot": ctx.num(parts[1])}


def _parse_sxm(ctx, info, parts, seps):
    usage = _usage(info)
    if info.mnemonic == "TRANS":
        _expect(parts, seps, ("->",), usage)
        src, dst, arg = parts[0], parts[1], 0
    else:
        _expect(parts, seps, (",", "->"), usage)
        src, dst, arg = parts[0], parts[2], ctx.num(parts[1])
    (sd, ss), (dd, ds) = _stream(src), _stream(dst)
    return {"sdir": sd.value, "sstream": ss, "ddir": dd.value, "dstream": ds, "arg": arg}


def _vxm_operand(ctx, text, imms):
    """A VXM source -> its 8-bit encoding; an immediate's value goes to ``imms``."""
    if text.upper() == "ZERO":
        op = Operand(OperandKind.ZERO)
    elif text.startswith("#"):
        imms.append(ctx.num(text[1:]))
        op = Operand(OperandKind.IMM)
    elif alu := _ALU.match(text):
        op = Operand(OperandKind.ALU, Dir.E, int(alu.group(1)))
    elif _STREAM.match(text):
        d, s = _stream(text)
        op = Operand(OperandKind.STREAM, d, s)
    else:
        raise _LineError(f"{text!r} is not a VXM operand (En, Wn, ALUn, #imm or ZERO)")
    if Operand.decode(op.encode()) != op:
        raise _LineError(f"operand {text} does not fit the operand encoding")
    return op.encode()


def _parse_vxm(ctx, info, parts, seps, suffix):
    m = info.mnemonic
    usage = _usage(info)
    fields = {"dtype": 1 if suffix == "i32" else 0}
    if seps and seps[-1] == "->":
        d, s = _stream(parts[-1])
        fields.update(we=1, wdir=d.value, wstream=s)
        parts, seps = parts[:-1], seps[:-1]
    kwargs = {}
    if m == "REQUANT":
        kwargs = _kwargs(ctx, parts[1:], {"mult", "shift", "zp", "zr"}, usage)
        for need in ("mult", "shift"):
            if need not in kwargs:
                raise _LineError(f"missing {need}=, expected {usage!r}")
        if kwargs.get("zr", 0) not in (0, 1):
            raise _LineError(f"zr={kwargs['zr']}: the zero-point-before-rounding bit is 0 or 1")
        parts, seps = parts[:1], seps[:0]
    names = _vxm_sources(m)
    if m == "LUTW":
        _expect(parts, seps, (",",), usage)
        fields["index"] = ctx.num(parts[1])
        parts, seps = parts[:1], []
    _expect(parts, seps, (",",) * (len(names) - 1), usage)
    imms = []
    for name, text in zip(names, parts):
        fields[name] = _vxm_operand(ctx, text, imms)
    if len(set(imms)) > 1:
        raise _LineError(f"operands use different immediates {sorted(set(imms))}, "
                         "an instruction holds one")
    if imms and "imm" in _names(info):
        fields["imm"] = imms[0]
    return {**fields, **kwargs}


def _vxm_sources(mnemonic):
    """The operand fields an op reads, in text order."""
    return {"SELECT": "abc", "LUTW": "a"}.get(mnemonic, "a" if mnemonic in VXM_UNARY else "ab")


def _kwargs(ctx, parts, allowed, usage):
    out = {}
    for p in parts:
        m = _KWARG.match(p)
        if not m or m.group(1).lower() not in allowed:
            raise _LineError(f"unexpected operand {p!r}, expected {usage!r}")
        key = m.group(1).lower()
        if key in out:
            raise _LineError(f"{key}= given twice")
        out[key] = ctx.num(m.group(2))
    return out


def _names(info):
    return {name for name, _, _ in info.fields}


def _width(info, name):
    return next(w for n, w, _ in info.fields if n == name)


_SUFFIXES = {"ABC": {"acc"}}


def _suffixes(kind, mnemonic):
    if kind is SliceKind.VXM and not OPS[kind][mnemonic].is_icu:
        return {"i8", "i32"}
    return _SUFFIXES.get(mnemonic, set())


def _parse_instr(ctx, token, rest):
    """Mnemonic token and operand text -> :class:`Instr` (fields may not fit yet)."""
    base, _, suffix = token.partition(".")
    try:
        info = op_by_mnemonic(ctx.kind, base)
    except KeyError as e:
        raise _LineError(f"unknown instruction: {e.args[0]}") from None
    suffix = suffix.lower()
    allowed = _suffixes(ctx.kind, info.mnemonic)
    if suffix and suffix not in allowed:
        raise _LineError(f"unknown suffix '.{suffix}'; {info.mnemonic} takes "
                         + (", ".join("." + s for s in sorted(allowed)) or "none"))
    parts, seps = _split(rest)
    if info.is_icu:
        fields = _parse_icu(ctx, info, parts, seps)
    elif ctx.kind is SliceKind.VXM:
        fields = _parse_vxm(ctx, info, parts, seps, suffix)
    else:
        fields = _PARSERS[ctx.kind](ctx, info, parts, seps)
        if suffix == "acc":
            fields["acc"] = 1
    full = {name: 0 for name, _, _ in info.fields}
    full.update(fields)
    return Instr(ctx.kind, info.mnemonic, full)


_PARSERS = {SliceKind.MEM: _parse_mem, SliceKind.MXM: _parse_mxm, SliceKind.SXM: _parse_sxm}


def _fit_problems(instr):
    out = []
    for name, _, width, signed in instr.info.layout()[1:]:
        lo, hi = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if signed else (0, (1 << width) - 1)
        v = instr.fields[name]
        if not lo <= v <= hi:
            out.append(f"{name} = {v} does not fit its {width}-bit "
                       f"{'signed' if signed else 'unsigned'} field ({lo}..{hi})")
    return out


def _assemble_instr(ctx, queue, config, token, rest):
    """One instruction line -> ``(Instr, word)``; every problem is a :class:`_LineError`."""
    instr = _parse_instr(ctx, token, rest)
    problems = _fit_problems(instr) or [reason for _, reason in check(instr, queue, config)]
    if problems:
        raise _LineError("; ".join(problems))
    return instr, encode(instr)


# -- the file ---------------------------------------------------------------

@dataclass
class _Section:
    queue: object
    line: int
    words: list = field(default_factory=list)
    nohalt: bool = False
    ordinary: bool = False      # an ordinary (non-ICU) instruction has been seen
    overflow: bool = False      # the depth error has been reported


class _Assembler:
    def __init__(self, filename, config):
        self.filename = filename
        self.config_arg = config
        self.errors = []
        self.equs = {}
        self.sections = {}
        self.section = None     # the current _Section, or False inside an unknown queue
        self.data_lines = {}    # (slice, addr) -> line of the .data that set it
        self.image = None

    def error(self, line, instr, reason):
        self.errors.append(AsmError(self.filename, line, instr, reason))

    def fail(self):
        first, *others = self.errors
        raise AsmError(first.filename, first.line, first.instr, first.reason, others)

    def run(self, text):
        lines = [(n, _strip_comment(raw)) for n, raw in enumerate(text.splitlines(), 1)]
        lines = [(n, code) for n, code in lines if code]
        self.set_config(lines)
        if self.errors:
            self.fail()
        for n, code in lines:
            token, rest = (code.split(None, 1) + [""])[:2]
            name = token.lower() if token.startswith(".") else token.partition(".")[0].upper()
            try:
                if token.startswith("."):
                    self.directive(n, name, rest)
                else:
                    self.instruction(n, token, rest)
            except _LineError as e:
                self.error(n, name, str(e))
            except _Skip:
                pass
        self.close_section()
        if self.errors:
            self.fail()
        return self.image

    # -- configuration --------------------------------------------------

    def set_config(self, lines):
        named = [(n, code.split(None, 1)[1:]) for n, code in lines
                 if code.split(None, 1)[0].lower() == ".config"]
        for n, _ in named[1:]:
            self.error(n, ".config", f"second .config (the first is at line {named[0][0]})")
        text_name = None
        if named:
            n, args = named[0]
            if len(args) != 1 or not _NAME.match(args[0].strip()):
                self.error(n, ".config", "expected '.config NAME'")
                return
            text_name = args[0].strip()
        arg = self.config_arg
        if arg is None and text_name is None:
            self.error(1, ".config", "no configuration: the text has no .config and none was "
                       "passed to the assembler")
            return
        arg_name = arg if isinstance(arg, str) or arg is None else arg.name
        if arg_name is not None and text_name is not None and arg_name != text_name:
            self.error(named[0][0], ".config", f"the text is for {text_name!r} but the assembler "
                       f"was asked for {arg_name!r}")
            return
        try:
            config = get_config(arg if arg is not None else text_name)
        except ConfigError as e:
            self.error(named[0][0] if named else 1, ".config", str(e))
            return
        self.config = config
        self.fp = config.floorplan
        self.image = ProgramImage(config, source=self.filename)

    # -- directives -----------------------------------------------------

    def directive(self, n, name, rest):
        handler = _DIRECTIVES.get(name)
        if handler is None:
            raise _LineError(f"unknown directive; directives are {', '.join(_DIRECTIVES)}")
        handler(self, n, rest)

    def args(self, rest, least, most=None):
        parts, seps = _split(rest)
        if "->" in seps:
            raise _LineError("unexpected '->' in a directive")
        most = least if most is None else most
        if not least <= len(parts) <= most:
            want = str(least) if least == most else f"{least}..{most}"
            raise _LineError(f"takes {want} operands, got {len(parts)}")
        return parts

    def num(self, text):
        return _evaluate(text, self.equs)

    def mem_slice(self, text):
        return self.slice_of_kind(text, SliceKind.MEM).name

    def slice_of_kind(self, text, kind):
        try:
            s = self.fp.slice(text.upper())
        except KeyError as e:
            raise _LineError(e.args[0]) from None
        if s.kind is not kind:
            names = ", ".join(x.name for x in self.fp.of_kind(kind))
            raise _LineError(f"{s.name} is not a {kind.value} slice; those are {names}")
        return s

    def do_config(self, n, rest):
        pass                                    # read before everything else

    def do_equ(self, n, rest):
        name, expr = self.args(rest, 2)
        if not _NAME.match(name) or keyword.iskeyword(name) or _RESERVED.match(name):
            raise _LineError(f"{name!r} cannot be a constant's name "
                             "(it must be an identifier and not a stream, ALU or ZERO)")
        if name in self.equs:
            raise _LineError(f"{name} is already defined")
        self.equs[name] = self.num(expr)

    def do_data(self, n, rest):
        parts = self.args(rest, 3, 1 << 30)
        sname, addr = self.mem_slice(parts[0]), self.num(parts[1])
        values = [self.num(p) for p in parts[2:]]
        bad = [v for v in values if not -128 <= v <= 255]
        if bad:
            raise _LineError(f"value {bad[0]} is not a byte (-128..255)")
        c = self.config
        nwords = -(-len(values) // c.vl)
        if addr < 0 or addr + nwords > c.mem_words:
            raise _LineError(f"words {addr:#x}..{addr + nwords - 1:#x} out of range, "
                             f"a MEM slice has {c.mem_words} words")
        for a in range(addr, addr + nwords):
            if (sname, a) in self.data_lines:
                raise _LineError(f"word {a:#x} of {sname} is already set by the .data at line "
                                 f"{self.data_lines[sname, a]}")
        for a in range(addr, addr + nwords):
            self.data_lines[sname, a] = n
        self.image.set_words(sname, addr, np.array(values, np.int64))

    def do_lut(self, n, rest):
        parts = self.args(rest, 1, 1 << 30)
        vl = self.config.vl
        lanes = range(vl)
        m = _KWARG.match(parts[0])
        if m:
            if m.group(1).lower() != "lane":
                raise _LineError(f"unexpected {m.group(1)}=, the only keyword is lane=")
            lane = self.num(m.group(2))
            if not 0 <= lane < vl:
                raise _LineError(f"lane {lane} out of range, the vector has {vl} lanes")
            lanes, parts = [lane], parts[1:]
        entries = _lut_entries()
        if len(parts) != entries:
            raise _LineError(f"a table has {entries} entries, got {len(parts)}")
        values = [self.num(p) for p in parts]
        bad = [v for v in values if not -128 <= v <= 127]
        if bad:
            raise _LineError(f"table value {bad[0]} is not an int8 (-128..127)")
        if self.image.lut is None:
            self.image.lut = np.zeros((vl, entries), np.int8)
        self.image.lut[list(lanes)] = np.array(values, np.int8)

    def do_perm(self, n, rest):
        parts = self.args(rest, 2, 1 << 30)
        sname = self.slice_of_kind(parts[0], SliceKind.SXM).name
        index = self.num(parts[1])
        c = self.config
        if not 0 <= index < c.sxm_maps:
            raise _LineError(f"map {index} out of range, an SXM holds {c.sxm_maps}")
        lanes = [self.num(p) for p in parts[2:]]
        if sorted(lanes) != list(range(c.vl)):
            raise _LineError(f"the map must list each lane 0..{c.vl - 1} exactly once, got "
                             f"{len(lanes)} entries" + _perm_fault(lanes, c.vl))
        maps = self.image.perms.setdefault(sname, {})
        if index in maps:
            raise _LineError(f"map {index} of {sname} is already defined")
        maps[index] = lanes

    def do_output(self, n, rest):
        parts = self.args(rest, 4, 5)
        name = parts[0]
        slices = "/".join(p.strip().upper() for p in parts[1].split("/"))
        addr, count = self.num(parts[2]), self.num(parts[3])
        dtype = parts[4].lower() if len(parts) == 5 else "i8"
        if not _OUTPUT_NAME.match(name):
            raise _LineError(f"{name!r} is not a valid output name (letters, digits, '_', '.')")
        if name in self.image.outputs:
            raise _LineError(f"output {name} is already defined")
        out = Output(name, slices, addr, count, dtype)
        try:
            out.validate(self.config)
        except ImageError as e:
            raise _LineError(str(e)) from None
        self.image.outputs[name] = out

    def do_queue(self, n, rest):
        self.close_section()
        self.section = False
        (name,) = self.args(rest, 1)
        try:
            queue = self.fp.queue(name.upper())
        except KeyError as e:
            raise _LineError(e.args[0]) from None
        if queue.name in self.sections:
            raise _LineError(f"queue {queue.name} already has a section "
                             f"(line {self.sections[queue.name].line})")
        self.section = self.sections[queue.name] = _Section(queue, n)
        self.image.queues[queue.name] = self.section.words

    def do_word(self, n, rest):
        sec = self.current_section()
        bits = WORD_BITS[sec.queue.kind]
        for p in self.args(rest, 1, 1 << 30):
            w = self.num(p)
            if not 0 <= w < 1 << bits:
                raise _LineError(f"{w:#x} is not a {bits}-bit {sec.queue.kind.value} word")
            try:
                sec.ordinary |= not decode(sec.queue.kind, w).is_icu
            except DecodeError:
                pass
            self.append(n, w)

    def do_nohalt(self, n, rest):
        self.args(rest, 0)
        self.current_section().nohalt = True

    # -- queue sections -------------------------------------------------

    def current_section(self):
        if self.section is None:
            raise _LineError("outside any .queue section")
        if self.section is False:
            raise _Skip
        return self.section

    def instruction(self, n, token, rest):
        sec = self.current_section()
        ctx = _Ctx(sec.queue.kind, self.equs)
        instr, word = _assemble_instr(ctx, sec.queue, self.config, token, rest)
        if instr.mnemonic == "REPEAT" and not sec.ordinary:
            raise _LineError("nothing to repeat: no ordinary instruction precedes it in "
                             f"queue {sec.queue.name}")
        sec.ordinary |= not instr.is_icu
        self.append(n, word)

    def append(self, n, word):
        sec = self.section
        sec.words.append(word)
        depth = self.config.queue_depth
        if len(sec.words) > depth and not sec.overflow:
            sec.overflow = True
            raise _LineError(f"queue {sec.queue.name} is longer than its instruction memory "
                             f"({depth} words)")

    def close_section(self):
        sec, self.section = self.section, None
        if not sec or sec.nohalt or (sec.words and sec.words[-1] == _HALT_WORD):
            return
        sec.words.append(_HALT_WORD)
        if len(sec.words) > self.config.queue_depth and not sec.overflow:
            self.error(sec.line, ".queue", f"queue {sec.queue.name} has no room for the HALT "
                       f"appended at its end ({self.config.queue_depth} words); end it with "
                       "HALT earlier or write .nohalt")


class _Skip(Exception):
    """An instruction inside a section whose .queue was already reported."""


_HALT_WORD = encode(Instr(SliceKind.MEM, "HALT"))

_DIRECTIVES = {
    ".config": _Assembler.do_config, ".equ": _Assembler.do_equ, ".data": _Assembler.do_data,
    ".lut": _Assembler.do_lut, ".perm": _Assembler.do_perm, ".output": _Assembler.do_output,
    ".queue": _Assembler.do_queue, ".word": _Assembler.do_word, ".nohalt": _Assembler.do_nohalt,
}


def _lut_entries():
    """Entries of a VXM table: every value of the int8 index (``a & 0xFF``)."""
    return 1 << np.iinfo(np.int8).bits


def _perm_fault(lanes, vl):
    seen = set()
    for lane in lanes:
        if not 0 <= lane < vl:
            return f"; lane {lane} is out of range"
        if lane in seen:
            return f"; lane {lane} appears twice"
        seen.add(lane)
    return ""


def assemble(text, config=None, filename="<string>"):
    """Assembly text -> :class:`ProgramImage`. ``config``: a name or a ``Config``;
    if None, the text's ``.config`` decides. Raises :class:`AsmError`."""
    return _Assembler(filename, config).run(text)


def assemble_file(path, config=None):
    with open(path, "rb") as f:
        raw = f.read()
    if raw.startswith(IMAGE_MAGIC):
        raise AsmError(str(path), 1, "file", "this is a program image, not assembler text "
                       "('tsp disasm' turns it into text; 'tsp run' takes it as it is)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise AsmError(str(path), line, "file", f"not UTF-8 text (byte {raw[e.start]:#04x} "
                       f"at offset {e.start}); is it a program image? ('tsp run' takes "
                       ".bin images)") from None
    return assemble(text, config, filename=str(path))


# -- disassembler -----------------------------------------------------------

def _fmt_vxm_operand(raw, imm):
    op = Operand.decode(raw)
    return f"#{imm}" if op.kind is OperandKind.IMM else str(op)


def _format(instr):
    """Instr -> ``'MNEMONIC operands'``; the caller verifies it assembles back."""
    f, m, kind = instr.fields, instr.mnemonic, instr.kind
    if instr.is_icu:
        args = {"NOP": [f.get("n")], "REPEAT": [f.get("n"), f.get("d"), f.get("stride")]}.get(m, [])
        return f"{m} {', '.join(map(str, args))}".strip()
    if kind is SliceKind.MEM:
        if m == "RW":
            return (f"RW {f['raddr']:#x} -> {_stream_text(f['rdir'], f['rstream'])}, "
                    f"{_stream_text(f['wdir'], f['wstream'])} -> {f['waddr']:#x}")
        s = _stream_text(f["dir"], f["stream"])
        return f"READ {f['addr']:#x} -> {s}" if m == "READ" else f"WRITE {s} -> {f['addr']:#x}"
    if kind is SliceKind.MXM:
        if m == "IW":
            return "IW"
        s = _stream_text(f["dir"], f["stream"])
        if m == "LW":
            return f"LW {s}, {f['col']}, {f['count'] + 1}"
        if m == "ABC":
            emit = f" -> {_stream_text(f['edir'], f['estream'])}" if f["emit"] else ""
            return f"ABC{'.acc' if f['acc'] else ''} {s}, {f['slot']}{emit}"
        return f"ACC {f['slot']} -> {s}"
    if kind is SliceKind.SXM:
        src, dst = _stream_text(f["sdir"], f["sstream"]), _stream_text(f["ddir"], f["dstream"])
        return f"TRANS {src} -> {dst}" if m == "TRANS" else f"{m} {src}, {f['arg']} -> {dst}"
    return _format_vxm(instr)


def _format_vxm(instr):
    f, m = instr.fields, instr.mnemonic
    imm = f.get("imm", 0)
    names = _vxm_sources(m)
    args = [_fmt_vxm_operand(f[n], imm) for n in names]
    if m == "REQUANT":
        args += [f"mult={f['mult']}", f"shift={f['shift']}", f"zp={f['zp']}"]
        if f.get("zr"):
            args.append("zr=1")
    if m == "LUTW":
        args.append(str(f["index"]))
    dst = f" -> {_stream_text(f['wdir'], f['wstream'])}" if f["we"] else ""
    return f"{m}{'.i32' if f['dtype'] else ''} {', '.join(args)}{dst}"


def _instr_line(queue, config, word, ordinary):
    """Text of one queue word: the instruction if it assembles back to ``word``,
    else a ``.word``. Returns ``(text, is_ordinary)``."""
    raw = f".word {word:#x}"
    try:
        instr = decode(queue.kind, word)
    except DecodeError as e:
        return f"{raw:<40}; {e}", False
    text = _format(instr)
    if instr.mnemonic == "REPEAT" and not ordinary:
        return f"{raw:<40}; {text} (nothing to repeat)", False
    token, _, rest = text.partition(" ")
    try:
        _, again = _assemble_instr(_Ctx(queue.kind, {}), queue, config, token, rest)
    except _LineError as e:
        return f"{raw:<40}; {text} ({e})", not instr.is_icu
    if again != word:
        return f"{raw:<40}; {text} (not representable)", not instr.is_icu
    return text, not instr.is_icu


def _ints(values):
    return ", ".join(str(int(v)) for v in values)


def disassemble(image):
    """:class:`ProgramImage` -> text that :func:`assemble` turns back into the same image."""
    c = image.config
    fp = c.floorplan
    out = []
    if image.source:
        out.append(f"; disassembled from {image.source}")
    out.append(f".config {c.name}")
    for sname, mem in image.memory.items():
        for addr in sorted(mem):
            out.append(f".data {sname}, {addr:#x}, {_ints(np.asarray(mem[addr], np.uint8).view(np.int8))}")
    if image.lut is not None:
        lut = np.asarray(image.lut, np.int8)
        out.append(f".lut {_ints(lut[0])}")
        for lane in range(1, len(lut)):
            if not np.array_equal(lut[lane], lut[0]):
                out.append(f".lut lane={lane}, {_ints(lut[lane])}")
    for sname, maps in image.perms.items():
        for index in sorted(maps):
            out.append(f".perm {sname}, {index}, {_ints(maps[index])}")
    for o in image.outputs.values():
        out.append(f".output {o.name}, {o.slice}, {o.addr:#x}, {o.count}, {o.dtype}")
    for qname, words in image.queues.items():
        queue = fp.queue(qname)
        out.append(f"\n.queue {qname}")
        ordinary = False
        for w in words:
            text, is_ordinary = _instr_line(queue, c, int(w), ordinary)
            ordinary |= is_ordinary
            out.append(f"        {text}")
        if not words or words[-1] != _HALT_WORD:
            out.append("        .nohalt")
    return "\n".join(out) + "\n"
