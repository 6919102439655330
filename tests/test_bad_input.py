"""Bad input everywhere else: the assembler, the ONNX importer and the host link client.

Every bad input must end in the module's own error class with a message that
names what is wrong (``AsmError``, ``OnnxImportError``, ``HostLinkError``), never
another exception and never a hang. Two kinds of tests:

* a corpus under ``tests/corpus/`` (``asm/``, ``onnx/``, ``hostlink/``) of inputs
  that once broke something or that stand for a class of mistakes, each with the
  fragment its error message must contain (``expected.json`` / ``replies.json``);
* random and mutated inputs drawn by hypothesis: mutated kernels and random text
  for the assembler, mutated models for the importer, mutated and truncated
  replies from a scripted device for the host link.

Each call runs under an alarm (:func:`no_hang`), so a hang fails the test instead
of stopping the run.
"""

import contextlib
import copy
import json
import signal
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from onnx import TensorProto, helper, numpy_helper

from firmware import hostlink as hl
from firmware.asm import AsmError, assemble, assemble_file
from firmware.compiler.onnx_import import SUPPORTED_OPS, OnnxImportError, import_onnx
from firmware.machine import get_config


CORPUS = Path(__file__).parent / "corpus"
KERNELS = sorted((Path(__file__).parent.parent / "firmware" / "kernels").glob("*.s"))
TINY = get_config("tiny")

#: Seconds one input may take before it counts as a hang.
HANG_S = 20

FUZZ = settings(max_examples=80, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


class Hang(Exception):
    pass


@contextlib.contextmanager
def no_hang(what, seconds=HANG_S):
    """Fail with :class:`Hang` if the body runs longer than ``seconds``."""
    def alarm(signum, frame):
        raise Hang(f"{what}: no answer within {seconds} s")
    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def corpus(kind, index="expected.json"):
    return json.loads((CORPUS / kind / index).read_text())


# == the assembler ==========================================================================

@pytest.mark.parametrize("name, fragment", sorted(corpus("asm").items()))
def test_asm_corpus(name, fragment):
    with no_hang(name), pytest.raises(AsmError) as info:
        assemble_file(CORPUS / "asm" / name)
    assert fragment in str(info.value)
    first = str(info.value).splitlines()[0]
    assert first.startswith(f"{CORPUS / 'asm' / name}:"), first      # file:line: names the place


def assemble_or_asm_error(text):
    """Assemble; an :class:`AsmError` is fine, anything else fails the test."""
    with no_hang(repr(text[:80])):
        try:
            assemble(text)
        except AsmError as e:
            assert str(e).strip(), "an empty error message"
            line = str(e).splitlines()[0]
            assert line.startswith("<string>:") and ": " in line, line


#: Pieces that make lines interesting: operators, directives, names, odd characters.
TOKENS = ["->", ",", "#", "E", "W", "ALU", "0x", "0b", "-", "(", ")", "<<", ">>", "**", "//",
          "%", "~", "1e9", "9" * 40, "0x" + "f" * 80, ".equ", ".data", ".lut", ".perm", ".output",
          ".queue", ".word", ".nohalt", ".config tiny", "REPEAT", "NOP", "READ", "ABC.acc",
          "LUT", "=", "lane=", "mult=", "\x00", "\t", "\u00e9", "\u0661", "\ud800", "[", "'",
          '"', "lambda: 0", "__import__('os')", "1 if 1 else 2", "1.5", "True", "None",
          "(" * 300, "-" * 4000 + "1", "+".join(["1"] * 2000), ";", "\r", "\x0c"]


@st.composite
def mutated_kernels(draw):
    """A hand-written kernel with a few lines changed, inserted, deleted or duplicated."""
    lines = KERNELS[draw(st.integers(0, len(KERNELS) - 1))].read_text().splitlines()
    for _ in range(draw(st.integers(1, 4))):
        j = draw(st.integers(0, len(lines) - 1))
        how = draw(st.integers(0, 5))
        if how == 0:
            lines[j] += " " + draw(st.sampled_from(TOKENS))
        elif how == 1:
            k = draw(st.integers(0, len(lines[j])))
            lines[j] = lines[j][:k] + draw(st.sampled_from(TOKENS)) + lines[j][k:]
        elif how == 2 and lines[j]:
            k = draw(st.integers(0, len(lines[j]) - 1))
            lines[j] = lines[j][:k] + lines[j][k + 1:]
        elif how == 3:
            lines.insert(j, lines[draw(st.integers(0, len(lines) - 1))])
        elif how == 4:
            del lines[j]
        else:
            lines[j] = draw(st.text(max_size=40))
    return "\n".join(lines)


@FUZZ
@given(mutated_kernels())
def test_asm_mutated_kernels(text):
    assemble_or_asm_error(text)


@FUZZ
@given(st.lists(st.one_of(st.sampled_from(TOKENS), st.text(max_size=12)), max_size=12)
       .map(" ".join).flatmap(lambda line: st.sampled_from([
           f".config tiny\n.queue MEM_E0\n        {line}",
           f".config tiny\n.queue VXM0\n        ADD {line}",
           f".config tiny\n.equ N, {line}\n.queue MXM_E\n        LW E0, N, 1",
           f".config tiny\n{line}",
           line])))
def test_asm_random_lines(text):
    assemble_or_asm_error(text)


def test_asm_file_that_is_a_program_image(tmp_path):
    """A program image handed to the assembler: a clear error, not a UnicodeDecodeError."""
    from firmware.image import ProgramImage
    path = tmp_path / "prog.s"
    image = ProgramImage(TINY)
    image.set_words("MEM_E0", 0, [-1] * TINY.vl)
    image.save(path)
    with pytest.raises(AsmError, match=r"prog.s:1: file: this is a program image, not assembler"):
        assemble_file(path)


# == the ONNX importer =========================================================================

I8, I32, F32 = TensorProto.INT8, TensorProto.INT32, TensorProto.FLOAT


def _model(nodes, inputs, outputs, inits=()):
    g = helper.make_graph(nodes, "t", [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
                          [helper.make_tensor_value_info(n, t, s) for n, t, s in outputs],
                          [numpy_helper.from_array(np.asarray(v), n) for n, v in inits])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)])
    m.ir_version = 10
    return m


def seed_models():
    """Small models of every supported form (the mutations start from these)."""
    w = np.random.default_rng(0).integers(-100, 100, (8, 4)).astype(np.int8)
    return {
        "matmulinteger": _model(
            [helper.make_node("MatMulInteger", ["a", "w", "za"], ["acc"]),
             helper.make_node("Add", ["acc", "bias"], ["s"]),
             helper.make_node("Relu", ["s"], ["y"])],
            [("a", I8, [2, 8])], [("y", I32, [2, 4])],
            [("w", w), ("za", np.int8(3)), ("bias", np.arange(4, dtype=np.int32))]),
        "int8_ops": _model(
            [helper.make_node("Transpose", ["a"], ["at"], perm=[1, 0]),
             helper.make_node("Add", ["at", "b"], ["s"]),
             helper.make_node("Clip", ["s", "lo", "hi"], ["c"]),
             helper.make_node("Reshape", ["c", "shape"], ["r"]),
             helper.make_node("Flatten", ["r"], ["y"], axis=2)],
            [("a", I8, [6, 4]), ("b", I8, [4, 6])], [("y", I8, [4, 6])],
            [("lo", np.array(-30, np.int8)), ("hi", np.array(90, np.int8)),
             ("shape", np.array([2, 2, 6], np.int64))]),
        "qlinear": _model(
            [helper.make_node("QLinearMatMul", ["a", "sa", "za", "w", "sb", "zb", "sy", "zy"],
                              ["y"])],
            [("a", I8, [2, 8])], [("y", I8, [2, 4])],
            [("w", w), ("sa", np.float32(0.1)), ("za", np.int8(1)), ("sb", np.float32(0.05)),
             ("zb", np.int8(0)), ("sy", np.float32(0.2)), ("zy", np.int8(-2))]),
        "qdq_gemm": _model(
            [helper.make_node("QuantizeLinear", ["x", "sx", "z8"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "sx", "z8"], ["xf"]),
             helper.make_node("DequantizeLinear", ["w", "sw", "z8"], ["wf"]),
             helper.make_node("DequantizeLinear", ["b", "sb", "z32"], ["bf"]),
             helper.make_node("Gemm", ["xf", "wf", "bf"], ["g"]),
             helper.make_node("Relu", ["g"], ["r"]),
             helper.make_node("QuantizeLinear", ["r", "sy", "z8"], ["yq"]),
             helper.make_node("DequantizeLinear", ["yq", "sy", "z8"], ["y"])],
            [("x", F32, [3, 8])], [("y", F32, [3, 4])],
            [("w", w), ("b", np.arange(4, dtype=np.int32)), ("sx", np.float32(0.03)),
             ("sw", np.float32(0.01)), ("sb", np.float32(0.0003)), ("sy", np.float32(0.1)),
             ("z8", np.int8(0)), ("z32", np.int32(0))]),
    }


SEEDS = seed_models()


def test_onnx_seed_models_import():
    """The mutations start from models the importer takes."""
    for name, m in SEEDS.items():
        import_onnx(m)


@pytest.mark.parametrize("name, fragment", sorted(corpus("onnx").items()))
def test_onnx_corpus(name, fragment):
    with no_hang(name), pytest.raises(OnnxImportError) as info:
        import_onnx(CORPUS / "onnx" / name)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def import_or_onnx_error(model):
    with no_hang("import_onnx"):
        try:
            import_onnx(model)
        except OnnxImportError as e:
            assert str(e).strip()


_DTYPES = [TensorProto.INT8, TensorProto.INT32, TensorProto.FLOAT, TensorProto.UINT8,
           TensorProto.INT64, TensorProto.DOUBLE, TensorProto.BOOL, TensorProto.FLOAT16]


def _names(m):
    out = [i.name for i in m.graph.input] + [i.name for i in m.graph.initializer]
    for node in m.graph.node:
        out += list(node.output)
    return out + ["", "nowhere"]


def mutate_model(m, draw):
    """One random change to a model: op types, inputs, outputs, attributes, initializer
    types, shapes and values (zero, NaN, huge), graph input types and dimensions."""
    g = m.graph
    nodes = list(g.node)
    node = nodes[draw(st.integers(0, len(nodes) - 1))]
    how = draw(st.integers(0, 12))
    if how == 0:
        node.op_type = draw(st.sampled_from(SUPPORTED_OPS + ("Softmax", "")))
    elif how == 1 and node.input:
        del node.input[draw(st.integers(0, len(node.input) - 1))]
    elif how == 2:
        node.input.append(draw(st.sampled_from(_names(m))))
    elif how == 3 and node.input:
        node.input[draw(st.integers(0, len(node.input) - 1))] = draw(st.sampled_from(_names(m)))
    elif how == 4 and node.output:
        node.output[0] = draw(st.sampled_from(_names(m)))
    elif how == 5:
        name = draw(st.sampled_from(["perm", "axis", "transA", "transB", "alpha", "allowzero",
                                     "saturate", "value", "min"]))
        value = draw(st.sampled_from([0, 1, 2, -1, 10 ** 9, 1.5, [1, 0], [0, 0], [5, 1, 0], "x"]))
        node.attribute.append(helper.make_attribute(name, value))
    elif how in (6, 7) and g.initializer:
        init = g.initializer[draw(st.integers(0, len(g.initializer) - 1))]
        arr = numpy_helper.to_array(init)
        which = draw(st.integers(0, 4))
        if which == 0:
            new = arr.astype(draw(st.sampled_from([np.float32, np.uint8, np.int64, np.int8,
                                                   np.int32, np.float64])))
        elif which == 1:
            new = arr.reshape(-1)[:0]
        elif which == 2:
            new = np.stack([arr, arr])
        elif which == 3:
            new = np.asarray(draw(st.sampled_from([0.0, -1.0, np.nan, np.inf, 1e30, 1e-45])),
                             np.float32)
        else:
            new = np.full(arr.shape, draw(st.sampled_from([-129, 300, 2 ** 31 - 1])), np.int64)
        init.CopyFrom(numpy_helper.from_array(new, init.name))
    elif how == 8 and g.initializer:
        del g.initializer[draw(st.integers(0, len(g.initializer) - 1))]
    elif how == 9 and g.input:
        g.input[draw(st.integers(0, len(g.input) - 1))].type.tensor_type.elem_type = \
            draw(st.sampled_from(_DTYPES))
    elif how == 10 and g.input:
        dims = g.input[draw(st.integers(0, len(g.input) - 1))].type.tensor_type.shape.dim
        if dims:
            dim = dims[draw(st.integers(0, len(dims) - 1))]
            if draw(st.booleans()):
                dim.dim_param = "N"
            else:
                dim.dim_value = draw(st.sampled_from([0, 1, 7, 10 ** 6]))
    elif how == 11:
        del g.node[nodes.index(node)]
    else:
        g.node.append(copy.deepcopy(node))
    return m


@FUZZ
@given(st.data())
def test_onnx_mutated_models(data):
    name = data.draw(st.sampled_from(sorted(SEEDS)))
    m = copy.deepcopy(SEEDS[name])
    for _ in range(data.draw(st.integers(1, 3))):
        mutate_model(m, data.draw)
    import_or_onnx_error(m)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(st.data())
def test_onnx_damaged_files(tmp_path_factory, data):
    """Truncated, bit-flipped and spliced model files: a readable error, never a crash."""
    raw = bytearray(SEEDS[data.draw(st.sampled_from(sorted(SEEDS)))].SerializeToString())
    how = data.draw(st.integers(0, 2))
    if how == 0:
        raw = raw[:data.draw(st.integers(0, len(raw) - 1))]
    elif how == 1:
        for _ in range(data.draw(st.integers(1, 8))):
            i = data.draw(st.integers(0, len(raw) - 1))
            raw[i] ^= 1 << data.draw(st.integers(0, 7))
    else:
        i = data.draw(st.integers(0, len(raw)))
        raw[i:i] = data.draw(st.binary(min_size=1, max_size=40))
    path = tmp_path_factory.mktemp("onnx") / "damaged.onnx"
    path.write_bytes(bytes(raw))
    import_or_onnx_error(path)


def test_cli_compile_of_a_damaged_model_is_one_line(tmp_path, capsys):
    from firmware.cli import main as tsp
    status = tsp(["compile", str(CORPUS / "onnx" / "zero_scale.onnx"), "-o", str(tmp_path)])
    err = capsys.readouterr().err
    assert status == 2 and len(err.strip().splitlines()) == 1
    assert "y_scale is 0.0; a scale must be a positive finite number" in err


# == the host link client ========================================================================

class ScriptedDevice:
    """A transport whose far end answers every request frame like the bridge, through
    ``damage(reply_bytes) -> bytes`` (the line or a broken device). Time is virtual:
    it moves only by bytes on the line and by waiting, so every timeout is exact."""

    default_timeout = 0.01

    def __init__(self, config, damage, baud=115_200):
        self.config = config
        self.baud = baud
        self.frame_timeout = hl.FRAME_TIMEOUT_BYTES * hl.BITS_PER_BYTE / baud
        self.damage = damage
        self.t = 0.0
        self.line = bytearray()
        self.requests = []

    def now(self):
        return self.t

    def write(self, data):
        data = bytes(data)
        while data:
            assert data[0] == hl.SOF
            payload = data[2:2 + data[1]]
            data = data[4 + data[1]:]
            self.requests.append(payload)
            self.line += self.damage(self.reply(payload))

    def reply(self, payload):
        """What a healthy bridge answers (``STATUS``: done, 77 cycles; ``READ_MEM``: byte
        ``i`` of the memory is ``i & 0xFF``)."""
        tag, op = payload[0], payload[1]
        data = b""
        if op == hl.Op.STATUS:
            data = b"".join(STATUS[name].to_bytes(n, "little") for name, n in hl.STATUS_FIELDS)
        elif op == hl.Op.READ_MEM:
            first = _header(payload)["addr"] * self.config.vl
            data = bytes((first + i) & 0xFF for i in range(payload[hl.HEADER_BYTES] * self.config.vl))
        return hl.encode_frame(bytes([tag, hl.Reply.OK]) + data)

    def read(self, n, timeout):
        if not self.line:
            self.t += max(timeout, 0)
            return b""
        out = bytes(self.line[:n])
        del self.line[:n]
        self.t += len(out) * hl.BITS_PER_BYTE / self.baud
        return out

    def flush_input(self):
        self.line.clear()

    def idle(self, seconds):
        self.t += seconds


def _header(payload):
    """The request header's fields (``hostlink.HEADER``, little-endian)."""
    out, at = {}, 0
    for name, n in hl.HEADER:
        out[name] = int.from_bytes(payload[at:at + n], "little")
        at += n
    return out


def client_call(link, op, count):
    """One client operation; returns its value (checked by the caller)."""
    if op == "status":
        return link.status()
    if op == "read_mem":
        return link.read_mem(TINY.floorplan.slice("MEM_E0").pos, 0, count)
    if op == "write_mem":
        return link.write_mem(TINY.floorplan.slice("MEM_E0").pos, 0,
                              np.zeros((count, TINY.vl), np.uint8))
    if op == "start":
        return link.start()
    return link.wait_done(0.05)


#: The device's status: done, 77 cycles, every other field zero.
STATUS = {name: {"flags": 2, "cycles": 77}.get(name, 0) for name, _ in hl.STATUS_FIELDS}


def expected_value(op, count):
    if op in ("status", "wait_done"):
        fields = {k: v for k, v in STATUS.items() if k != "flags"}
        return hl.Status(running=False, done=True, **fields)
    if op == "read_mem":
        return (np.arange(count * TINY.vl) & 0xFF).astype(np.uint8).reshape(count, TINY.vl)
    return None


@pytest.mark.parametrize("case", corpus("hostlink", "replies.json"), ids=lambda c: c["name"])
def test_hostlink_corpus(case):
    """Recorded replies of a broken device to a client's first request (tag 1)."""
    reply = bytes.fromhex(case["reply"])
    link = hl.HostLink(ScriptedDevice(TINY, lambda healthy: reply))
    with no_hang(case["name"]):
        if case["error"] is None:
            value = client_call(link, case["op"], case.get("count", 1))
            want = expected_value(case["op"], case.get("count", 1))
            assert np.array_equal(value, want) if case["op"] == "read_mem" else value == want
            return
        with pytest.raises(getattr(hl, case["error"])) as info:
            client_call(link, case["op"], case.get("count", 1))
    assert case["fragment"] in str(info.value)


@st.composite
def damages(draw):
    """A way to damage each reply: kept, bit flip, truncation, loss, garbage before,
    duplication, noise, or a re-framed (valid CRC) reply with a wrong tag, code or length."""
    rng = draw(st.randoms(use_true_random=False))

    def damage(frame):
        f = bytearray(frame)
        how = rng.randrange(12)
        if how == 0:
            return frame
        if how == 1:
            f[rng.randrange(len(f))] ^= 1 << rng.randrange(8)
            return bytes(f)
        if how == 2:
            return frame[:rng.randrange(len(frame))]
        if how == 3:
            return b""
        if how == 4:
            return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40))) + frame
        if how == 5:
            return frame + frame
        if how == 6:
            return bytes(rng.randrange(256) for _ in range(rng.randrange(300)))
        if how == 7:
            f[1] = rng.randrange(256)                     # LEN
            return bytes(f)
        payload = bytearray(frame[2:-2])
        if how == 8:
            payload[0] ^= 0xFF                            # tag
        elif how == 9:
            payload[1] = rng.randrange(256)               # code
        elif how == 10:
            payload = payload[:rng.randrange(len(payload) + 1)]
        else:
            payload += bytes(rng.randrange(1, 5))
        return hl.encode_frame(bytes(payload[:hl.MAX_PAYLOAD]))
    return damage


@settings(max_examples=200, deadline=None, derandomize=True)
@given(damages(), st.sampled_from(["status", "read_mem", "write_mem", "start", "wait_done"]),
       st.integers(1, 3 * hl.max_read(TINY)))
def test_hostlink_damaged_replies(damage, op, count):
    """Whatever the device sends back, the client answers with the right value or a
    HostLinkError; it never returns damaged data."""
    link = hl.HostLink(ScriptedDevice(TINY, damage))
    with no_hang(op):
        try:
            value = client_call(link, op, count)
        except hl.HostLinkError as e:
            assert str(e).strip()
            return
    want = expected_value(op, count)
    if op == "read_mem":
        np.testing.assert_array_equal(value, want)
    else:
        assert value == want


def test_hostlink_babbling_device_times_out():
    """A device that sends noise forever: bounded by the timeout, not by the noise."""
    class Babbler(ScriptedDevice):
        def read(self, n, timeout):
            self.t += n * hl.BITS_PER_BYTE / self.baud
            return bytes([0x5A]) * n                      # never SOF
    link = hl.HostLink(Babbler(TINY, lambda frame: b""))
    with no_hang("babbler"), pytest.raises(hl.LinkTimeout, match="no reply within the timeout"):
        link.status()
