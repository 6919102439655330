"""The text assembler and disassembler (firmware/asm.py) and the binary image
format (firmware/image.py). Expected words are built with ``isa.encode`` of
instructions written out here, never taken from the assembler itself."""

import json
import re
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import firmware
from firmware.asm import AsmError, assemble, assemble_file, disassemble
from firmware.image import MAGIC, ImageError, Output, ProgramImage
from firmware.isa import OPS, VXM_UNARY, WORD_BITS, Instr, Operand, OperandKind, check, encode
from firmware.machine import CONFIGS, Dir, SliceKind


def S(d, i):
    return Operand(OperandKind.STREAM, Dir[d], i).encode()


def ALU(i):
    return Operand(OperandKind.ALU, Dir.E, i).encode()


IMM = Operand(OperandKind.IMM).encode()
ZERO = Operand(OperandKind.ZERO).encode()
HALT = encode(Instr(SliceKind.MEM, "HALT"))


def words_of(text, queue, config="ulx3s"):
    return assemble(f".config {config}\n{text}").queues[queue]


# -- every instruction form ------------------------------------------------

M, X, Q, V = SliceKind.MEM, SliceKind.MXM, SliceKind.SXM, SliceKind.VXM

# (queue section, source lines, expected instructions in order; HALT is appended)
FORMS = [
    ("MEM_E0", "READ    0x10 -> E3", [Instr(M, "READ", dict(dir=0, stream=3, addr=0x10))]),
    ("MEM_E0", "read 16 -> w3", [Instr(M, "READ", dict(dir=1, stream=3, addr=16))]),
    ("MEM_W3", "WRITE   W2 -> 0x300", [Instr(M, "WRITE", dict(dir=1, stream=2, addr=0x300))]),
    ("MEM_E0", "RW 0x10 -> E3, W2 -> 0x500",          # ulx3s: bank 1 is 0x400 ..
     [Instr(M, "RW", dict(rdir=0, rstream=3, raddr=0x10, wdir=1, wstream=2, waddr=0x500))]),
    ("MEM_E0", "READ 0 -> E0\nREPEAT 15, 1, 1\nREPEAT 3, 2\nREPEAT 2, 4, -1",
     [Instr(M, "READ", dict(dir=0, stream=0, addr=0)),
      Instr(M, "REPEAT", dict(n=15, d=1, stride=1)), Instr(M, "REPEAT", dict(n=3, d=2, stride=0)),
      Instr(M, "REPEAT", dict(n=2, d=4, stride=-1))]),
    ("MEM_E1", "NOP 10\nnotify\nSync\nHALT", [Instr(M, "NOP", dict(n=10)), Instr(M, "NOTIFY"),
                                              Instr(M, "SYNC")]),
    ("MXM_E", "LW W0, 0, 4", [Instr(X, "LW", dict(dir=1, stream=0, col=0, count=3))]),
    ("MXM_E", "LW E2, 7, 1", [Instr(X, "LW", dict(dir=0, stream=2, col=7, count=0))]),  # last column
    ("MXM_E", "IW", [Instr(X, "IW")]),
    ("MXM_E", "ABC W1, 3", [Instr(X, "ABC", dict(dir=1, stream=1, acc=0, slot=3))]),
    ("MXM_E", "ABC.acc W1, 3\nabc.ACC e3, 255",
     [Instr(X, "ABC", dict(dir=1, stream=1, acc=1, slot=3)),
      Instr(X, "ABC", dict(dir=0, stream=3, acc=1, slot=255))]),
    ("MXM_E", "ABC.acc W1, 3 -> E0\nABC E2, 0 -> w0",
     [Instr(X, "ABC", dict(dir=1, stream=1, acc=1, slot=3, emit=1, edir=0, estream=0)),
      Instr(X, "ABC", dict(dir=0, stream=2, acc=0, slot=0, emit=1, edir=1, estream=0))]),
    ("MXM_E", "ACC 3 -> W0", [Instr(X, "ACC", dict(dir=1, stream=0, slot=3))]),
    ("SXM_E", "SHUP W0, 1 -> W1", [Instr(Q, "SHUP", dict(sdir=1, sstream=0, ddir=1, dstream=1, arg=1))]),
    ("SXM_E", "SHDN E1, 7 -> W3\nROT W3, 2 -> E0\nPERM E2, 3 -> E2\nDIST W1, 1 -> E3",
     [Instr(Q, "SHDN", dict(sdir=0, sstream=1, ddir=1, dstream=3, arg=7)),
      Instr(Q, "ROT", dict(sdir=1, sstream=3, ddir=0, dstream=0, arg=2)),
      Instr(Q, "PERM", dict(sdir=0, sstream=2, ddir=0, dstream=2, arg=3)),
      Instr(Q, "DIST", dict(sdir=1, sstream=1, ddir=0, dstream=3, arg=1))]),
    ("SXM_E", "TRANS W0 -> W2", [Instr(Q, "TRANS", dict(sdir=1, sstream=0, ddir=1, dstream=2))]),
    ("VXM0", "ADD.i8  E3, #5 -> W2",
     [Instr(V, "ADD", dict(dtype=0, a=S("E", 3), b=IMM, we=1, wdir=1, wstream=2, imm=5))]),
    # ulx3s: MUL, MULS and REQUANT run on ALU 1 only (vxm_mul_alus)
    ("VXM1", "MUL.i32 E0, ALU1", [Instr(V, "MUL", dict(dtype=1, a=S("E", 0), b=ALU(1)))]),
    ("VXM0", "SELECT.i8 E0, E1, ALU1 -> E1",
     [Instr(V, "SELECT", dict(a=S("E", 0), b=S("E", 1), c=ALU(1), we=1, wstream=1))]),
    ("vxm1", "REQUANT E0, mult=1234567, shift=40, zp=-3 -> W0",
     [Instr(V, "REQUANT", dict(a=S("E", 0), mult=1234567, shift=40, zp=-3, we=1, wdir=1))]),
    ("VXM1", "REQUANT W0, shift=2, mult=0xFF",
     [Instr(V, "REQUANT", dict(a=S("W", 0), mult=255, shift=2, zp=0))]),
    ("VXM1", "REQUANT E0, mult=1, shift=7, zp=-9, zr=1 -> E1\nREQUANT E0, mult=1, shift=7, zr=0",
     [Instr(V, "REQUANT", dict(a=S("E", 0), mult=1, shift=7, zp=-9, zr=1, we=1, wstream=1)),
      Instr(V, "REQUANT", dict(a=S("E", 0), mult=1, shift=7))]),
    ("VXM", "LUTW E0, 7\nLUT W1 -> E2",
     [Instr(V, "LUTW", dict(a=S("E", 0), index=7)),
      Instr(V, "LUT", dict(a=S("W", 1), we=1, wstream=2))]),
    ("vxm0", "RELU W1 -> E0\nMOV #-3 -> E1\nMAX E0, ZERO\nneg.i32 alu0 -> w0",
     [Instr(V, "RELU", dict(a=S("W", 1), we=1)),
      Instr(V, "MOV", dict(a=IMM, we=1, wstream=1, imm=-3)),
      Instr(V, "MAX", dict(a=S("E", 0), b=ZERO)),
      Instr(V, "NEG", dict(dtype=1, a=ALU(0), we=1, wdir=1))]),
    ("VXM1", ".equ N, 16\n.equ M, (N << 2) - 1\nADD.I32 W0, #0x7fffffff -> E0\nSUB #N, #N\n"
             "SHL E0, #-M",
     [Instr(V, "ADD", dict(dtype=1, a=S("W", 0), b=IMM, we=1, imm=0x7FFFFFFF)),
      Instr(V, "SUB", dict(a=IMM, b=IMM, imm=16)),
      Instr(V, "SHL", dict(a=S("E", 0), b=IMM, imm=-63))]),
    ("VXM0", "WIDEN E1 -> W0\nNARROW W0 -> E1\nCMPEQ.i32 E0, #-2147483648",
     [Instr(V, "WIDEN", dict(a=S("E", 1), we=1, wdir=1)),
      Instr(V, "NARROW", dict(a=S("W", 0), we=1, wstream=1)),
      Instr(V, "CMPEQ", dict(dtype=1, a=S("E", 0), b=IMM, imm=-(1 << 31)))]),
]


@pytest.mark.parametrize("queue,lines,expected", FORMS, ids=[f[1].split()[0] for f in FORMS])
def test_instruction_forms(queue, lines, expected):
    image = assemble(f".config ulx3s\n.queue {queue}\n{lines}\n")
    qname = CONFIGS["ulx3s"].floorplan.queue(queue.upper()).name
    assert image.queues[qname] == [encode(i) for i in expected] + [HALT]
    assert list(image.queues) == [qname]


# ulx3s has four streams a direction; groq's 32 reach every bit of the stream fields
# and two-digit stream names
WIDE_FORMS = [
    ("MEM_E0", "READ 0x10 -> W31", [Instr(M, "READ", dict(dir=1, stream=31, addr=0x10))]),
    ("MXM_E", "ABC.acc W17, 3 -> E28",
     [Instr(X, "ABC", dict(dir=1, stream=17, acc=1, slot=3, emit=1, edir=0, estream=28))]),
    ("SXM_E", "TRANS W0 -> E16", [Instr(Q, "TRANS", dict(sdir=1, sstream=0, ddir=0, dstream=16))]),
    ("VXM1", "ADD.i32 E12, #1 -> W20",
     [Instr(V, "ADD", dict(dtype=1, a=S("E", 12), b=IMM, we=1, wdir=1, wstream=20, imm=1))]),
]


@pytest.mark.parametrize("queue,lines,expected", WIDE_FORMS, ids=[f[1].split()[0] for f in WIDE_FORMS])
def test_high_stream_numbers(queue, lines, expected):
    image = assemble(f".config groq\n.queue {queue}\n{lines}\n")
    qname = CONFIGS["groq"].floorplan.queue(queue).name
    assert image.queues[qname] == [encode(i) for i in expected] + [HALT]


def test_every_mnemonic_has_a_form_test():
    tested = {(i.kind, i.mnemonic) for _, _, instrs in FORMS for i in instrs}
    missing = {(k, m) for k, t in OPS.items() for m, info in t.items()
               if not info.is_icu and (k, m) not in tested}
    # the VXM binary ALU ops share one form; a few representatives stand for it
    binary = {(V, m) for m in OPS[V] if m not in VXM_UNARY and m not in ("SELECT", "REQUANT")}
    assert missing <= binary
    assert missing != binary


# -- directives --------------------------------------------------------------

def test_data_fills_words_lane_by_lane():
    vl = CONFIGS["tiny"].vl
    values = list(range(1, vl + 2)) + [-3]
    image = assemble(".config tiny\n.equ A, 0x10\n.data MEM_W1, A, " + ", ".join(map(str, values)))
    mem = image.memory["MEM_W1"]
    assert sorted(mem) == [0x10, 0x11]
    assert list(mem[0x10]) == values[:vl]
    expected_tail = [v & 0xFF for v in values[vl:]] + [0] * (2 * vl - len(values))
    assert list(mem[0x11]) == expected_tail


def test_lut_all_lanes_then_one_lane():
    c = CONFIGS["tiny"]
    table = [(i * 7) % 256 - 128 for i in range(256)]
    other = [-v - 1 for v in table]
    text = (".config tiny\n.lut " + ", ".join(map(str, table)) +
            "\n.lut lane=1, " + ", ".join(map(str, other)) + "\n")
    lut = assemble(text).lut
    assert lut.shape == (c.vl, 256) and lut.dtype == np.int8
    for lane in range(c.vl):
        assert list(lut[lane]) == (other if lane == 1 else table)
    assert assemble(".config tiny").lut is None


def test_perm_and_output():
    c = CONFIGS["tiny"]
    lanes = list(reversed(range(c.vl)))
    image = assemble(f".config tiny\n.perm sxm_e, 1, {', '.join(map(str, lanes))}\n"
                     ".output y, MEM_E1, 0x20, 4, i32\n.output z, mem_e0, 3, 2\n"
                     ".output w.0, MEM_E1/MEM_E0/mem_w0/MEM_W1, 7, 9, i32\n"
                     f".output v, MEM_E1/MEM_E0/MEM_W0/MEM_W1, {TINY.mem_words - 2}, 2, i32\n"
                     f".output u, MEM_E1, {TINY.mem_words - 8}, 2, i32\n")
    assert image.perms == {"SXM_E": {1: lanes}}
    assert image.outputs == {"y": Output("y", "MEM_E1", 0x20, 4, "i32"),
                             "z": Output("z", "MEM_E0", 3, 2, "i8"),
                             "w.0": Output("w.0", "MEM_E1/MEM_E0/MEM_W0/MEM_W1", 7, 9, "i32"),
                             "v": Output("v", "MEM_E1/MEM_E0/MEM_W0/MEM_W1", TINY.mem_words - 2,
                                         2, "i32"),
                             "u": Output("u", "MEM_E1", TINY.mem_words - 8, 2, "i32")}


def test_halt_is_appended_unless_present_or_nohalt():
    read = encode(Instr(M, "READ", dict(addr=1)))
    assert words_of(".queue MEM_E0\nREAD 1 -> E0", "MEM_E0") == [read, HALT]
    assert words_of(".queue MEM_E0\nREAD 1 -> E0\nHALT", "MEM_E0") == [read, HALT]
    assert words_of(".queue MEM_E0\nREAD 1 -> E0\n.nohalt", "MEM_E0") == [read]
    assert words_of(".queue MEM_E0", "MEM_E0") == [HALT]
    assert words_of(".queue MEM_E0\n.nohalt", "MEM_E0") == []


def test_word_stores_raw_words_unchecked():
    illegal = encode(Instr(M, "READ", dict(stream=31)))      # stream out of range for ulx3s
    undecodable = (1 << WORD_BITS[M]) - 1
    assert words_of(f".queue MEM_E0\n.word {illegal:#x}, {undecodable}", "MEM_E0") == \
        [illegal, undecodable, HALT]


def test_comments_blank_lines_and_case():
    text = "# a comment\n; another\n\n.CONFIG tiny ; trailing\n.Queue mem_e0\n  nop 2 ; x\n"
    assert assemble(text).queues == {"MEM_E0": [encode(Instr(M, "NOP", dict(n=2))), HALT]}


def test_config_argument():
    c = CONFIGS["tiny"]
    assert assemble(".queue MEM_E0\nNOP 1", config="tiny").config == c
    assert assemble(".config tiny", config=c).config == c
    assert assemble("", config=c).config == c
    with pytest.raises(AsmError, match="no configuration"):
        assemble(".queue MEM_E0\nNOP 1")
    with pytest.raises(AsmError, match="'tiny'.*'ulx3s'"):
        assemble(".config tiny", config="ulx3s")


def test_assemble_file_names_the_file(tmp_path):
    path = tmp_path / "prog.s"
    path.write_text(".config tiny\n.queue MEM_E0\nREAD 0 -> E9\n")
    with pytest.raises(AsmError) as e:
        assemble_file(path)
    assert str(e.value).startswith(f"{path}:3: READ: stream 9 out of range")
    path.write_text(".config tiny\n.queue MEM_E0\nREAD 0 -> E1\n")
    image = assemble_file(path)
    assert image.source == str(path)
    assert image.queues["MEM_E0"] == [encode(Instr(M, "READ", dict(stream=1))), HALT]


# -- errors ------------------------------------------------------------------

def asm_error(text, config=None):
    with pytest.raises(AsmError) as e:
        assemble(text, config=config, filename="prog.s")
    return e.value


TINY = CONFIGS["tiny"]
ULX = CONFIGS["ulx3s"]
MEM_OPS = ", ".join(OPS[M])
QUEUE_NAMES = ", ".join(q.name for q in TINY.floorplan.queues)
SLICE_NAMES = ", ".join(s.name for s in TINY.floorplan.slices)

# (source without .config, line, instr, reason pattern); tiny configuration
ERRORS = [
    (".queue MEM_E0\nFOO 1", 2, "FOO", "FOO.*those are " + MEM_OPS),
    (".queue MEM_E0\nADD E0, E1", 2, "ADD", "not an instruction of a MEM queue"),
    (".queue MEM_E0\nREAD 0", 2, "READ", "wrong operand count: expected 2"),
    (".queue VXM0\nADD E0 -> E1", 2, "ADD", "wrong operand count: expected 2"),
    (".queue MXM_E\nIW 3", 2, "IW", "no operands"),
    (".queue MEM_E0\nNOP", 2, "NOP", "wrong operand count"),
    (".queue MEM_E0\nWRITE 0 -> E1", 2, "WRITE", "is not a stream"),
    (".queue MEM_E0\nREAD 0, E1", 2, "READ", "expected 'READ addr -> Sn'"),
    (".queue MEM_E0\nREAD 9000 -> E0", 2, "READ", r"addr = 9000 does not fit its 13-bit"),
    (".queue MEM_E0\nREAD -1 -> E0", 2, "READ", "does not fit"),
    (".queue VXM0\nADD E0, #0x80000000", 2, "ADD", "imm = 2147483648 does not fit"),
    (".queue VXM0\nADD E0, ALU16", 2, "ADD", "ALU16 does not fit"),
    (".queue VXM0\nADD E0, E32", 2, "ADD", "E32 does not fit"),
    (".queue MXM_E\nLW E0, 0, 0", 2, "LW", "count 0 out of range"),
    (".queue MEM_E0\nREAD N -> E0", 2, "READ", "unknown name 'N'"),
    (".queue MEM_E0\nREAD 1 / 2 -> E0", 2, "READ", "not a number"),
    (".equ X, 1\n.equ X, 2", 2, ".equ", "already defined"),
    (".equ W3, 1", 1, ".equ", "cannot be a constant"),
    (".queue MEM_Z", 1, ".queue", "no queue 'MEM_Z'.*queues are " + QUEUE_NAMES),
    (".data MEM_Q, 0, 1", 1, ".data", "no slice 'MEM_Q'.*slices are " + SLICE_NAMES),
    (".data MXM_E, 0, 1", 1, ".data", "not a MEM slice; those are MEM_W1, MEM_W0, MEM_E0, MEM_E1"),
    (f".data MEM_E0, {TINY.mem_words}, 1", 1, ".data", "out of range"),
    (f".data MEM_E0, {TINY.mem_words - 1}, " + ", ".join(["1"] * (TINY.vl + 1)), 1, ".data",
     "out of range"),
    (".data MEM_E0, 0, 256", 1, ".data", "256 is not a byte"),
    (".data MEM_E0, 0, -129", 1, ".data", "-129 is not a byte"),
    (".data MEM_E0, 0, 1\n.data MEM_E0, 0, 2", 2, ".data", "already set by the .data at line 2"),
    (".lut 1, 2, 3", 1, ".lut", "256 entries, got 3"),
    (".lut " + ", ".join(["0"] * 257), 1, ".lut", "256 entries, got 257"),
    (".lut " + ", ".join(["0"] * 255 + ["128"]), 1, ".lut", "128 is not an int8"),
    (".lut lane=4, " + ", ".join(["0"] * 256), 1, ".lut", "lane 4 out of range"),
    (".perm SXM_E, 0, 0, 1, 2, 2", 1, ".perm", "lane 2 appears twice"),
    (".perm SXM_E, 0, 0, 1, 2, 4", 1, ".perm", "lane 4 is out of range"),
    (".perm SXM_E, 0, 0, 1, 2", 1, ".perm", "exactly once, got 3 entries"),
    (".perm SXM_E, 2, 0, 1, 2, 3", 1, ".perm", "map 2 out of range"),
    (".perm MEM_E0, 0, 0, 1, 2, 3", 1, ".perm", "not a SXM slice"),
    (".perm SXM_E, 0, 0, 1, 2, 3\n.perm SXM_E, 0, 3, 2, 1, 0", 2, ".perm", "already defined"),
    (".queue MEM_E0\nREPEAT 2, 1", 2, "REPEAT", "nothing to repeat"),
    (".queue MEM_E0\nNOP 3\nSYNC\nREPEAT 2, 1", 4, "REPEAT", "nothing to repeat"),
    (".queue MEM_E0\n" + "NOP 1\n" * (TINY.queue_depth + 1), TINY.queue_depth + 2, "NOP",
     f"longer than its instruction memory \\({TINY.queue_depth} words\\)"),
    (".queue MEM_E0\n" + "NOP 1\n" * TINY.queue_depth, 1, ".queue", "no room for the HALT"),
    (".output y, MEM_E0, 0, 1\n.output y, MEM_E1, 0, 1", 2, ".output", "output y is already defined"),
    (".output y, MEM_E0, 0, 0", 1, ".output", "out of range"),
    (".output y, MEM_E0, 0, 1, f16", 1, ".output", "dtype 'f16' is not one of i8, u8, i32"),
    (".output y, MEM_E0/MEM_E1, 0, 1, i32", 1, ".output", "one slice or four"),
    (".output y, MEM_E0/MEM_E1/MEM_W0/MEM_W1, 0, 1, u8", 1, ".output", "takes one slice"),
    (".output y, MEM_E0/MEM_E1/MEM_W0/MXM_E, 0, 1, i32", 1, ".output", "MXM_E is not a MEM slice"),
    (".output y, MEM_E0/MEM_E1/MEM_E0/MEM_W1, 0, 1, i32", 1, ".output",
     "MEM_E0 is named more than once"),
    (".output y, MEM_E0/MEM_E1/MEM_W0/MEM_X, 0, 1, i32", 1, ".output", "no slice 'MEM_X'"),
    (".output 3y, MEM_E0, 0, 1", 1, ".output", "not a valid output name"),
    (f".output y, MEM_E0, {TINY.mem_words - 1}, 2", 1, ".output", "out of range"),
    (f".output y, MEM_E0, {TINY.mem_words - 7}, 2, i32", 1, ".output", "out of range"),
    (f".output y, MEM_E0/MEM_E1/MEM_W0/MEM_W1, {TINY.mem_words - 2}, 3, i32", 1, ".output",
     "out of range"),
    ("READ 0 -> E0", 1, "READ", "outside any .queue section"),
    (".word 5", 1, ".word", "outside any .queue section"),
    (".queue MEM_E0\n.word 0x1000000000000", 2, ".word", "not a 48-bit MEM word"),
    (".queue MEM_E0\n.queue mem_e0", 2, ".queue", "already has a section \\(line 2\\)"),
    (".frob 1", 1, ".frob", "unknown directive; directives are .config, .equ"),
    (".config tiny", 1, ".config", "second .config"),
    (".queue VXM0\nADD E0, #1, #2", 2, "ADD", "wrong operand count"),
    (".queue VXM0\nADD #1, #2", 2, "ADD", "different immediates"),
    (".queue VXM0\nADD.f32 E0, E1", 2, "ADD", r"unknown suffix '\.f32'"),
    (".queue MEM_E0\nREAD.acc 0 -> E0", 2, "READ", "takes none"),
    (".queue VXM0\nREQUANT E0, shift=3", 2, "REQUANT", "missing mult="),
    (".queue VXM0\nREQUANT E0, mult=1, shift=3, bias=2", 2, "REQUANT", "unexpected operand 'bias=2'"),
    (".queue VXM0\nREQUANT E0, mult=1, shift=3, zr=2", 2, "REQUANT", "zr=2: .* is 0 or 1"),
    (".queue VXM0\nADD E0, ,E1", 2, "ADD", "empty operand"),
]


@pytest.mark.parametrize("body,line,instr,reason", ERRORS, ids=[e[3] for e in ERRORS])
def test_errors(body, line, instr, reason):
    e = asm_error(".config tiny\n" + body)
    line += 1                      # the .config line
    assert (e.filename, e.line, e.instr) == ("prog.s", line, instr), str(e)
    assert re.search(reason, e.reason), e.reason
    assert str(e).startswith(f"prog.s:{line}: {instr}: {e.reason}")


# Text lines and the instruction (built here) whose isa.check problems they must report.
CHECKED = [
    ("MEM_E0", "NOP 0", Instr(M, "NOP", dict(n=0))),
    ("MEM_E0", "READ 0 -> E0\nREPEAT 0, 1", Instr(M, "REPEAT", dict(n=0, d=1))),
    ("MEM_E0", "READ 0 -> E0\nREPEAT 1, 0", Instr(M, "REPEAT", dict(n=1, d=0))),
    ("MEM_E0", "READ 0 -> E4", Instr(M, "READ", dict(stream=4))),
    ("MEM_E0", "WRITE W0 -> 512", Instr(M, "WRITE", dict(dir=1, addr=512))),
    ("MEM_E0", "RW 0 -> E0, E0 -> 255", Instr(M, "RW", dict(raddr=0, waddr=255))),
    ("MEM_E0", "RW 0 -> E4, E0 -> 256", Instr(M, "RW", dict(rstream=4, waddr=256))),
    ("MXM_E", "LW E2, 0, 3", Instr(X, "LW", dict(stream=2, count=2))),
    ("MXM_E", "LW E0, 3, 2", Instr(X, "LW", dict(col=3, count=1))),
    ("MXM_E", "ABC W0, 16", Instr(X, "ABC", dict(dir=1, slot=16))),
    ("MXM_E", "ACC 0 -> E1", Instr(X, "ACC", dict(stream=1))),
    ("MXM_E", "ABC E0, 1 -> E2", Instr(X, "ABC", dict(slot=1, emit=1, estream=2))),
    ("SXM_E", "SHUP E4, 1 -> E0", Instr(Q, "SHUP", dict(sstream=4, arg=1))),
    ("SXM_E", "SHDN E0, 1 -> W4", Instr(Q, "SHDN", dict(ddir=1, dstream=4, arg=1))),
    ("SXM_E", "ROT E0, 4 -> E0", Instr(Q, "ROT", dict(arg=4))),
    ("SXM_E", "PERM E0, 2 -> E0", Instr(Q, "PERM", dict(arg=2))),
    ("SXM_E", "DIST E0, 2 -> E0", Instr(Q, "DIST", dict(arg=2))),
    ("SXM_E", "TRANS E3 -> E0", Instr(Q, "TRANS", dict(sstream=3))),
    ("VXM0", "WIDEN.i32 E0", Instr(V, "WIDEN", dict(dtype=1, a=S("E", 0)))),
    ("VXM1", "LUT E0", Instr(V, "LUT", dict(a=S("E", 0)))),
    ("VXM0", "ADD E9, #5 -> W2",
     Instr(V, "ADD", dict(a=S("E", 9), b=IMM, imm=5, we=1, wdir=1, wstream=2))),
    ("VXM0", "ADD.i32 E1, E0", Instr(V, "ADD", dict(dtype=1, a=S("E", 1), b=S("E", 0)))),
    ("VXM0", "MAX E0, ALU2", Instr(V, "MAX", dict(a=S("E", 0), b=ALU(2)))),
    ("VXM0", "SELECT E0, E1, #1", Instr(V, "SELECT", dict(a=S("E", 0), b=S("E", 1), c=IMM))),
    ("VXM0", "LUTW E0, 1 -> E1", Instr(V, "LUTW", dict(a=S("E", 0), index=1, we=1, wstream=1))),
    ("VXM0", "MOV.i32 E0 -> W1", Instr(V, "MOV", dict(dtype=1, a=S("E", 0), we=1, wdir=1, wstream=1))),
    ("VXM0", "REQUANT E0, mult=1, shift=64", Instr(V, "REQUANT", dict(a=S("E", 0), mult=1, shift=64))),
]


def full(instr):
    info = instr.info
    return Instr(instr.kind, instr.mnemonic, {**{n: 0 for n, _, _ in info.fields}, **instr.fields})


@pytest.mark.parametrize("queue,lines,instr", CHECKED, ids=[c[1].split("\n")[-1] for c in CHECKED])
def test_check_rules_become_errors(queue, lines, instr):
    q = TINY.floorplan.queue(queue)
    problems = check(full(instr), q, TINY)
    assert problems, "the test case must be illegal"
    e = asm_error(f".config tiny\n.queue {queue}\n{lines}\n")
    assert e.line == 2 + lines.count("\n") + 1 and e.instr == instr.mnemonic
    assert e.reason == "; ".join(reason for _, reason in problems)
    assert len(e.errors) == 1


def test_int32_on_an_int8_only_vxm_is_an_error():
    """``pico``'s VXM is 8 bits wide: the assembler names the line, the op and the set."""
    e = asm_error(".config pico\n.queue VXM0\nADD E0, E1 -> E2\nADD.i32 E0, E0 -> E0\n"
                  "WIDEN E1 -> E0\n")
    assert [(x.line, x.instr) for x in e.errors] == [(4, "ADD"), (5, "WIDEN")]
    assert all("int8-only" in x.reason and "'pico'" in x.reason for x in e.errors)


def test_all_errors_are_collected():
    e = asm_error(".config tiny\n.queue MEM_E0\nREAD 0 -> E9\nNOP 0\n.frob\nREAD 1 -> E1\n"
                  "WRITE E0 -> -1\n")
    assert [(x.line, x.instr) for x in e.errors] == [(3, "READ"), (4, "NOP"), (5, ".frob"),
                                                     (7, "WRITE")]
    lines = str(e).splitlines()
    assert len(lines) == 4 and lines[0].startswith("prog.s:3: READ: stream 9 out of range")
    assert lines[3].startswith("prog.s:7: WRITE: addr = -1 does not fit")


def test_unknown_queue_section_is_skipped_not_reported_line_by_line():
    e = asm_error(".config tiny\n.queue MXM_W\nLW E0, 0, 1\nIW\n.queue MEM_E0\nFOO\n")
    assert [(x.line, x.instr) for x in e.errors] == [(2, ".queue"), (6, "FOO")]


def test_spec_message_example():
    e = asm_error(".config ulx3s\n" + "\n" * 9 + ".queue VXM1\nADD E9, #5 -> W2\n")
    assert str(e) == ("prog.s:12: ADD: operand a stream 9 out of range, this configuration "
                      f"has {CONFIGS['ulx3s'].streams} streams per direction")


# -- disassembler round trips -------------------------------------------------

SPEC_PROGRAM = """
; the example of docs/ARCHITECTURE.md section 8
.config ulx3s
.equ    N, 16
.data   MEM_E0, 0x10, 1, 2, -3
.perm   SXM_E, 0, 7, 6, 5, 4, 3, 2, 1, 0
.output y, MEM_E1, 0x20, 4, i32
.lut    {lut}
.queue MEM_E0
        READ    0x10 -> E3
        REPEAT  15, 1, 1
        WRITE   W2 -> 0x500
        RW      0x10 -> E3, W2 -> 0x500
        NOP     10
        HALT
.queue VXM0
        ADD.i8  E3, #5 -> W2
        SELECT.i8 E0, E1, ALU1 -> E1
        LUTW    E0, 7
.queue VXM1
        MUL.i32 E0, ALU1
        REQUANT E0, mult=1234567, shift=40, zp=-3 -> W0
.queue MXM_E
        LW      W0, 0, 4
        IW
        ABC     W1, 3
        ABC.acc W1, 3
        ABC.acc W1, 3 -> E0
        ACC     3 -> W0
.queue SXM_E
        SHUP    W0, 1 -> W1
        TRANS   W0 -> W2
        .nohalt
""".format(lut=", ".join(str(i - 128) for i in range(256)))


def same_image(a, b):
    assert a.config == b.config
    assert a.queues == b.queues
    assert a.to_bytes() == b.to_bytes()


def test_spec_program_round_trip():
    image = assemble(SPEC_PROGRAM)
    text = disassemble(image)
    assert ".word" not in text
    same_image(assemble(text), image)
    assert image.queues["SXM_E"][-1] != HALT


def test_round_trip_of_illegal_and_undecodable_words():
    c = TINY
    words = [encode(Instr(M, "REPEAT", dict(n=1, d=1))),       # nothing to repeat yet
             encode(Instr(M, "READ", dict(stream=c.streams))),  # illegal here
             (1 << WORD_BITS[M]) - 1,                            # does not decode
             encode(Instr(M, "READ", dict(stream=1))),
             encode(Instr(M, "REPEAT", dict(n=2, d=1)))]
    vxm = [encode(Instr(V, "RELU", dict(a=S("E", 0), b=S("E", 1)))),   # b is not representable
           encode(Instr(V, "ADD", dict(a=S("E", 0), b=S("E", 1), imm=9)))]
    image = ProgramImage("tiny", queues={"MEM_E0": words, "VXM0": vxm})
    text = disassemble(image)
    assert text.count(".word") == 5
    assert "REPEAT 2, 1, 0" in text and "READ 0x0 -> E1" in text
    same_image(assemble(text), image)


def test_round_trip_of_per_lane_tables_and_empty_queue():
    rng = np.random.default_rng(1)
    lut = rng.integers(-128, 128, (TINY.vl, 256)).astype(np.int8)
    lut[2] = lut[0]
    image = ProgramImage("tiny", queues={"MXM_E": []}, lut=lut)
    text = disassemble(image)
    assert text.count(".lut lane=") == TINY.vl - 2
    same_image(assemble(text), image)


@st.composite
def canonical_instr(draw, config, queue):
    """A legal instruction in the one encoding the text form writes: unused
    VXM operands zero, the immediate only where an operand uses it."""
    rng = draw(st.randoms(use_true_random=False))
    kind = queue.kind
    ops = [info for info in OPS[kind].values() if info.mnemonic != "REPEAT"]
    for _ in range(200):
        info = rng.choice(ops)
        fields = {}
        for name, width, signed in info.fields:
            lo, hi = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if signed else (0, (1 << width) - 1)
            small = rng.randint(max(lo, 0), min(hi, 5))
            fields[name] = 0 if name.startswith("pad") else rng.choice([small, rng.randint(lo, hi)])
        if kind is SliceKind.VXM and not info.is_icu:
            pool = [S("E", rng.randrange(config.streams)), S("W", rng.randrange(config.streams)),
                    ALU(rng.randrange(config.vxm_alus)), IMM, ZERO]
            for name in ("a", "b", "c"):
                if name in fields:
                    fields[name] = rng.choice(pool)
            if info.mnemonic in VXM_UNARY and "b" in fields:
                fields["b"] = ZERO
            if "imm" in fields and IMM not in (fields["a"], fields["b"]):
                fields["imm"] = 0
            if not fields["we"]:
                fields["wdir"] = fields["wstream"] = 0
        instr = Instr(kind, info.mnemonic, fields)
        if not check(instr, queue, config):
            return instr
    raise AssertionError(f"no legal {kind.value} instruction found")


@st.composite
def queue_programs(draw, config, queue):
    instrs = draw(st.lists(canonical_instr(config, queue), max_size=8))
    words = []
    for i in instrs:
        words.append(encode(i))
        if not i.is_icu and draw(st.booleans()):
            n, d = draw(st.integers(1, 20)), draw(st.integers(1, 5))
            words.append(encode(Instr(queue.kind, "REPEAT", dict(n=n, d=d, stride=draw(
                st.integers(-3, 3))))))
    return words


@st.composite
def images(draw, raw):
    config = CONFIGS[draw(st.sampled_from(["tiny", "ulx3s"]))]
    fp = config.floorplan
    image = ProgramImage(config)
    for q in draw(st.lists(st.sampled_from(fp.queues), unique=True, max_size=5)):
        if raw:
            image.queues[q.name] = draw(st.lists(
                st.integers(0, (1 << WORD_BITS[q.kind]) - 1), max_size=6))
        else:
            image.queues[q.name] = draw(queue_programs(config, q))
    mems = [s.name for s in fp.of_kind(SliceKind.MEM)]
    planes = st.permutations(mems).map(lambda ms: "/".join(ms[:4]))     # four distinct slices
    for name in draw(st.lists(st.sampled_from(mems), unique=True, max_size=2)):
        for addr in draw(st.lists(st.integers(0, config.mem_words - 1), unique=True, max_size=3)):
            image.set_words(name, addr, draw(st.lists(st.integers(-128, 255), min_size=config.vl,
                                                      max_size=config.vl)))
    if draw(st.booleans()):
        image.lut = np.array(draw(st.lists(st.integers(-128, 127), min_size=256, max_size=256)),
                             np.int8)[None].repeat(config.vl, 0)
        image.lut[draw(st.integers(0, config.vl - 1))] = 0
    for s in draw(st.lists(st.sampled_from(fp.of_kind(SliceKind.SXM)), unique=True)):
        for m in draw(st.lists(st.integers(0, config.sxm_maps - 1), unique=True, max_size=2)):
            image.perms.setdefault(s.name, {})[m] = draw(st.permutations(range(config.vl)))
    for i in range(draw(st.integers(0, 2))):
        dtype = draw(st.sampled_from(["i8", "u8", "i32"]))
        split = dtype == "i32" and draw(st.booleans())
        count = draw(st.integers(1, 4))
        words = count * 4 if dtype == "i32" and not split else count
        image.outputs[f"out{i}"] = Output(
            f"out{i}", draw(planes if split else st.sampled_from(mems)),
            draw(st.integers(0, config.mem_words - words)), count, dtype)
    return image


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(images(raw=False))
def test_random_legal_programs_round_trip(image):
    text = disassemble(image)
    assert ".word" not in text
    same_image(assemble(text), image)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(images(raw=True))
def test_random_raw_words_round_trip(image):
    same_image(assemble(disassemble(image)), image)


# -- binary image -------------------------------------------------------------

def test_image_bytes_round_trip():
    image = assemble(SPEC_PROGRAM)
    back = ProgramImage.from_bytes(image.to_bytes())
    assert back.config == image.config and back.queues == image.queues
    assert back.outputs == image.outputs and back.perms == image.perms
    assert np.array_equal(back.lut, image.lut)
    assert image.memory.keys() == back.memory.keys()
    for name, mem in image.memory.items():
        assert mem.keys() == back.memory[name].keys()
        for a in mem:
            assert np.array_equal(mem[a], back.memory[name][a])
    assert back.to_bytes() == image.to_bytes()


def small_image_bytes():
    return assemble(".config tiny\n.data MEM_E0, 1, 1, 2, 3\n.output y, MEM_E0, 1, 1\n"
                    ".perm SXM_E, 1, 3, 2, 1, 0\n.queue MEM_E0\nREAD 1 -> E0\n"
                    ".queue VXM0\nADD E0, #1 -> E1\n").to_bytes()


def test_truncated_image_raises_image_error():
    data = small_image_bytes()
    for n in range(len(data)):
        with pytest.raises(ImageError):
            ProgramImage.from_bytes(data[:n])
    with pytest.raises(ImageError, match="trailing"):
        ProgramImage.from_bytes(data + b"\0")
    with pytest.raises(ImageError, match="magic"):
        ProgramImage.from_bytes(b"XX" + data[2:])


def image_with_header(header, blobs=b""):
    hdr = json.dumps(header).encode()
    return MAGIC + struct.pack("<I", len(hdr)) + hdr + blobs


def split_header(data):
    (hlen,) = struct.unpack_from("<I", data, len(MAGIC))
    start = len(MAGIC) + 4
    return json.loads(data[start:start + hlen]), data[start + hlen:]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10, 10) | st.floats(allow_nan=False) | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6)


def accepts_or_image_error(data):
    try:
        ProgramImage.from_bytes(data)
    except ImageError:
        pass


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_corrupt_header_fields_raise_image_error(data):
    header, blobs = split_header(small_image_bytes())
    path = data.draw(st.sampled_from(["config", "queues", "memory", "lut", "perms", "outputs",
                                      "queues.0", "queues.0.1", "memory.0.1", "outputs.0",
                                      "perms.0.1", "outputs.0.count"]))
    target, *keys = path.split(".")
    node, key = header, target
    for k in keys:
        node, key = node[key], int(k) if k.isdigit() else k
    node[key] = data.draw(json_values)
    accepts_or_image_error(image_with_header(header, blobs))


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_corrupt_bytes_raise_image_error_or_load(data):
    raw = bytearray(small_image_bytes())
    for _ in range(data.draw(st.integers(1, 4))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    accepts_or_image_error(bytes(raw))


def test_header_that_is_not_an_object():
    for header in ([], "x", 3, None, {"config": "nope"}):
        with pytest.raises(ImageError):
            ProgramImage.from_bytes(image_with_header(header))


KERNELS = sorted((Path(firmware.__file__).parent / "kernels").glob("*.s"))


@pytest.mark.parametrize("path", KERNELS, ids=[p.name for p in KERNELS])
def test_kernels_round_trip(path):
    image = assemble_file(path)
    text = disassemble(image)
    assert ".word" not in text
    same_image(assemble(text), image)
