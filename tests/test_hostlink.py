"""The host link: protocol, client, and the whole path client -> UART bits -> bridge -> TSP.

The simulated board (``SimTransport``) drives and samples the UART pins bit by
bit at 4 clocks per bit. Amaranth's simulator runs the TSP at well under a
thousand cycles per second, so the programs are small and most protocol tests
share one MEM-only machine (the host port's MEM path is all they need); the
full-path test runs the whole tiny TSP once.
"""

from collections import deque

import numpy as np
import pytest

from boards._common import BoardCore
from firmware.asm import assemble
from firmware.hostlink import (
    CRC16, SOF, STATUS_BYTES, Op, Reply, HostLink, SimTransport, ErrorReply, LinkTimeout, CorruptReply,
    crc16, encode_frame, max_words, max_read, word_bytes,
)
from firmware.isa import WORD_BITS
from firmware.machine import SliceKind, get_config
from sim.golden import run_image


TINY = get_config("tiny")
FP = TINY.floorplan
MEM_E0 = FP.slice("MEM_E0").pos
MEM_W0 = FP.slice("MEM_W0").pos
DIVISOR = 4
TIMEOUT_BYTES = 4          # a short frame timeout keeps the resynchronisation tests quick


# -- CRC and frames ------------------------------------------------------------------


def test_crc_check_value():
    """The catalogue's check value of CRC-16/IBM-3740 (reveng): CRC of "123456789"."""
    assert crc16(b"123456789") == CRC16.check == 0x29B1


def test_crc_agrees_with_amaranth_crc():
    """The client's CRC and the gateware's (amaranth.lib.crc with the same parameters)."""
    from rtl.hostlink import crc_parameters
    rng = np.random.default_rng(1)
    for n in (0, 1, 7, 64):
        data = bytes(rng.integers(0, 256, n, dtype=np.uint8))
        assert crc16(data) == crc_parameters().compute(data)


def test_frame_layout():
    """SOF, LEN, payload, CRC over LEN + payload, most significant byte first."""
    frame = encode_frame(b"\x01\x02\x03")
    assert frame[:2] == bytes([SOF, 3]) and frame[2:5] == b"\x01\x02\x03"
    assert int.from_bytes(frame[5:], "big") == crc16(b"\x03\x01\x02\x03")
    with pytest.raises(ValueError, match="at most 255"):
        encode_frame(bytes(256))


def test_word_sizes_of_tiny():
    """Instruction words at their queue kind's width; MEM words VL = 4 bytes; a frame
    holds 255 - 7 header bytes of words, a reply 255 - 2 bytes of MEM words."""
    for i, q in enumerate(FP.queues):
        assert word_bytes(TINY, Op.WRITE_INSTR, i) == WORD_BITS[q.kind] // 8, q.name
    assert word_bytes(TINY, Op.WRITE_MEM) == 4 and max_words(TINY, Op.WRITE_MEM) == 62
    assert word_bytes(TINY, Op.WRITE_MAP) == word_bytes(TINY, Op.WRITE_LUT) == 1
    assert max_read(TINY) == 63


# -- the client on its own ----------------------------------------------------------


class ScriptedTransport:
    """Answers every write with the bytes ``answer(frame)`` returns (or nothing)."""
    config = TINY
    baud = 1e6
    default_timeout = 0.01
    frame_timeout = 0.001

    def __init__(self, answer):
        self._answer = answer
        self._t = 0.0
        self._rx = deque()

    def now(self):
        return self._t

    def write(self, data):
        self._rx.extend(self._answer(bytes(data)))

    def read(self, n, timeout):
        if not self._rx:
            self._t += timeout
            return b""
        return bytes(self._rx.popleft() for _ in range(min(n, len(self._rx))))

    def flush_input(self):
        self._rx.clear()

    def idle(self, seconds):
        self._t += seconds


def reply_to(frame, code=Reply.OK, data=b"", tag=None):
    """The reply frame the bridge would send to request ``frame``."""
    return encode_frame(bytes([frame[2] if tag is None else tag, code]) + data)


def test_client_times_out_without_reply():
    link = HostLink(ScriptedTransport(lambda f: b""))
    with pytest.raises(LinkTimeout, match="no reply"):
        link.start()


def test_client_rejects_corrupt_replies():
    def bad_crc(f):
        r = bytearray(reply_to(f))
        r[-1] ^= 1
        return bytes(r)
    with pytest.raises(CorruptReply, match="CRC"):
        HostLink(ScriptedTransport(bad_crc)).start()
    with pytest.raises(CorruptReply, match="tag"):
        HostLink(ScriptedTransport(lambda f: reply_to(f, tag=f[2] ^ 0x55))).start()
    with pytest.raises(CorruptReply, match="bytes of reply data"):
        HostLink(ScriptedTransport(lambda f: reply_to(f, data=b"\x00"))).status()
    with pytest.raises(LinkTimeout):       # a reply cut short is waited for, then given up
        HostLink(ScriptedTransport(lambda f: reply_to(f)[:-1])).start()


def test_client_raises_error_replies():
    link = HostLink(ScriptedTransport(lambda f: reply_to(f, Reply.BUSY)))
    with pytest.raises(ErrorReply, match="START.*BUSY") as e:
        link.start()
    assert e.value.code is Reply.BUSY


def test_client_skips_garbage_before_a_reply():
    link = HostLink(ScriptedTransport(lambda f: b"\x00\x13\x37" + reply_to(f)))
    link.start()


# -- the simulated board, MEM-only ------------------------------------------------------


@pytest.fixture(scope="module")
def mem_link():
    """One MEM-only tiny machine behind the bridge, shared: every test leaves the link
    as it found it (that the next test's first command works is part of the point)."""
    tr = SimTransport(TINY, divisor=DIVISOR, timeout_bytes=TIMEOUT_BYTES,
                      kinds=(SliceKind.MEM,))
    return HostLink(tr)


def words(rng, n):
    return rng.integers(0, 256, (n, TINY.vl)).astype(np.uint8)


def test_write_then_read_memory(mem_link):
    rng = np.random.default_rng(2)
    data = words(rng, 3)
    mem_link.write_mem(MEM_E0, 0x40, data)
    np.testing.assert_array_equal(mem_link.read_mem(MEM_E0, 0x3F, 5)[1:4], data)
    assert not mem_link.read_mem(MEM_E0, 0x3F, 5)[[0, 4]].any()
    mem = mem_link.transport.peek_memory()["MEM_E0"]
    np.testing.assert_array_equal(mem[0x40:0x43], data)


def test_read_memory_with_the_held_read():
    """``mem_read_reg`` (as on the ULX3S): the TSP's read word comes a cycle later, and
    the bridge waits for it. Words read back in one frame and one by one, switching
    slices (the slice's choice follows the word through the pipeline), are the ones
    written, and a copy program runs in the cycles the golden model counts for it."""
    config = TINY.with_(mem_read_reg=True)
    link = HostLink(SimTransport(config, divisor=DIVISOR, timeout_bytes=TIMEOUT_BYTES,
                                 kinds=(SliceKind.MEM,)))
    rng = np.random.default_rng(12)
    east, west = words(rng, 4), words(rng, 4)
    link.write_mem(MEM_E0, 0x40, east)
    link.write_mem(MEM_W0, 0x40, west)
    np.testing.assert_array_equal(link.read_mem(MEM_E0, 0x3F, 6)[1:5], east)
    for i in range(4):
        np.testing.assert_array_equal(link.read_mem(MEM_W0, 0x40 + i, 1), west[i:i + 1])
        np.testing.assert_array_equal(link.read_mem(MEM_E0, 0x40 + i, 1), east[i:i + 1])
    img = assemble(COPY.replace("NOP     3", "NOP     4"), config=config)
    gold = run_image(img)
    res = link.run_image(img, fresh=True, timeout=0.01)
    assert res.cycles == gold.cycles == 6 + TINY.tiles
    np.testing.assert_array_equal(res.outputs["y"], [[1, -2, 3, -4], [5, -6, 7, -8]])


def test_back_to_back_frames(mem_link):
    """Several requests sent without waiting: the bridge buffers them and answers each."""
    rng = np.random.default_rng(3)
    a, b = words(rng, 2), words(rng, 1)
    reqs = [mem_link.prepare(Op.WRITE_MEM, sel=MEM_W0, addr=0x10, data=a.tobytes()),
            mem_link.prepare(Op.WRITE_MEM, sel=MEM_E0, addr=0x90, data=b.tobytes()),
            mem_link.prepare(Op.READ_MEM, sel=MEM_W0, addr=0x10, data=bytes([2]),
                             reply_data=2 * TINY.vl)]
    replies = mem_link.pipeline(reqs)
    assert replies[:2] == [b"", b""]
    np.testing.assert_array_equal(np.frombuffer(replies[2], np.uint8).reshape(2, -1), a)
    np.testing.assert_array_equal(mem_link.read_mem(MEM_E0, 0x90, 1), b)


def poisoned_write(link, addr):
    """A WRITE_MEM request of a recognisable pattern to MEM_E0 ``addr``."""
    return link.prepare(Op.WRITE_MEM, sel=MEM_E0, addr=addr, data=bytes([0xEE] * TINY.vl))


def assert_untouched(link, before):
    """Nothing executed: every MEM word as before."""
    after = link.transport.peek_memory()
    for name in before:
        np.testing.assert_array_equal(after[name], before[name], err_msg=name)


def test_bad_crc_is_refused(mem_link):
    before = mem_link.transport.peek_memory()
    req = poisoned_write(mem_link, 0x20)
    for flip in (3, len(req.frame) - 1):            # a header byte; the CRC itself
        bad = bytearray(req.frame)
        bad[flip] ^= 0x10
        with pytest.raises(ErrorReply) as e:
            mem_link.pipeline([req._replace(frame=bytes(bad))])
        assert e.value.code is Reply.BAD_CRC
    assert_untouched(mem_link, before)


def test_truncated_frame_times_out(mem_link):
    before = mem_link.transport.peek_memory()
    req = poisoned_write(mem_link, 0x21)
    for keep in (1, 2, 9, len(req.frame) - 1):     # SOF only .. all but the last CRC byte
        with pytest.raises(ErrorReply) as e:
            mem_link.pipeline([req._replace(frame=req.frame[:keep])])
        assert e.value.code is Reply.TIMEOUT
    assert_untouched(mem_link, before)


def test_truncated_frame_followed_at_once_by_a_good_one(mem_link):
    """The good frame's bytes complete the truncated one, whose CRC then fails; the
    client gets an error (not a wrong answer), and the link works after reset_state."""
    before = mem_link.transport.peek_memory()
    cut = poisoned_write(mem_link, 0x22).frame[:6]
    with pytest.raises((ErrorReply, CorruptReply, LinkTimeout)):
        good = mem_link.prepare(Op.STATUS, reply_data=STATUS_BYTES)
        mem_link.pipeline([good._replace(frame=cut + good.frame)])
    mem_link.reset_state()
    assert_untouched(mem_link, before)


def test_unknown_op_and_bad_lengths(mem_link):
    before = mem_link.transport.peek_memory()
    cases = [
        (mem_link.prepare(0x7E), Reply.BAD_OP),
        (mem_link.prepare(Op.STATUS, data=b"\x00"), Reply.BAD_LENGTH),
        (mem_link.prepare(Op.WRITE_MEM, sel=MEM_E0, addr=0x23, data=bytes(TINY.vl + 1)),
         Reply.BAD_LENGTH),                                      # not whole words
        (mem_link.prepare(Op.WRITE_MEM, sel=MEM_E0, addr=0x23), Reply.BAD_LENGTH),   # no word
        (mem_link.prepare(Op.READ_MEM, sel=MEM_E0, data=bytes([max_read(TINY) + 1])),
         Reply.BAD_ARG),
    ]
    # a payload shorter than the header, with a good CRC
    short = mem_link.prepare(Op.STATUS)
    cases.append((short._replace(frame=encode_frame(short.frame[2:5])), Reply.BAD_LENGTH))
    for req, code in cases:
        with pytest.raises(ErrorReply) as e:
            mem_link.pipeline([req])
        assert e.value.code is code, req.what
    assert_untouched(mem_link, before)


def test_garbage_between_frames(mem_link):
    """Random bytes (SOF among them): nothing executes; after reset_state the link works.
    Garbage without SOF is skipped by the hunt even right before a good frame."""
    rng = np.random.default_rng(4)
    before = mem_link.transport.peek_memory()
    garbage = bytes(rng.integers(0, 256, 20, dtype=np.uint8)) + bytes([SOF, 200, 1, 2])
    mem_link.transport.write(garbage)
    mem_link.reset_state()
    assert_untouched(mem_link, before)
    quiet = bytes(b for b in rng.integers(0, 256, 12, dtype=np.uint8) if b != SOF)
    good = mem_link.prepare(Op.READ_MEM, sel=MEM_E0, addr=0x40, data=b"\x01", reply_data=TINY.vl)
    got = mem_link.pipeline([good._replace(frame=quiet + good.frame)])[0]
    assert got == before["MEM_E0"][0x40].tobytes()


COPY = """
.config tiny
.output y, MEM_E0, 0x30, 2, i8
.data   MEM_W0, 0x8, 1, -2, 3, -4, 5, -6, 7, -8
.queue MEM_W0
        READ    0x8 -> E1
        REPEAT  1, 1, 1
.queue MEM_E0
        NOP     3
        WRITE   E1 -> 0x30
        REPEAT  1, 1, 1
"""


def test_program_on_mem_machine(mem_link):
    """A copy program over the link: output and cycle counter as the golden model says.
    MEM_W0 (position 1) reads at 0, 1 and emits at 1, 2; MEM_E0 (position 3, two hops)
    writes at 3, 4 and halts at 5: H + T = 5 + 2."""
    img = assemble(COPY)
    gold = run_image(img)
    res = mem_link.run_image(img, fresh=True, timeout=0.01)
    assert res.cycles == gold.cycles == 5 + TINY.tiles
    assert res.errors == gold.errors == 0
    np.testing.assert_array_equal(res.outputs["y"], [[1, -2, 3, -4], [5, -6, 7, -8]])
    np.testing.assert_array_equal(res.outputs["y"], gold.outputs["y"])


LONG = """
.config tiny
.queue MEM_W1
        NOP     3000
"""


@pytest.fixture(params=[True, False], ids=["reset register", "reset from the decision"])
def reset_link(request, mem_link):
    """The shared link (its reset from a register, as on the ULX3S), and one whose reset
    comes straight from the executor's decision (``reset_register=False``, the iCEBreaker)."""
    if request.param:
        return mem_link
    return HostLink(SimTransport(TINY, divisor=DIVISOR, timeout_bytes=TIMEOUT_BYTES,
                                 kinds=(SliceKind.MEM,), reset_register=False))


def test_reset_stops_a_run(reset_link):
    """RESET is served while the TSP runs: it stops the run and clears the run state;
    the memories keep their contents and the next program runs as usual."""
    mem_link = reset_link
    before = mem_link.transport.peek_memory()
    mem_link.load_image(assemble(LONG), fresh=True)
    mem_link.start()
    st = mem_link.status()
    assert st.running and 0 < st.cycles < 3000
    mem_link.reset()
    st = mem_link.status()
    assert (st.running, st.done, st.cycles, st.errors) == (False, False, 0, 0)
    assert_untouched(mem_link, before)
    mem_link.write_queue(FP.queues.index(FP.queue("MEM_W1")), [0])    # HALT: LONG is done with
    img = assemble(COPY)
    res = mem_link.run_image(img, fresh=True, timeout=0.01)
    assert res.cycles == run_image(img).cycles
    np.testing.assert_array_equal(res.outputs["y"], run_image(img).outputs["y"])


def test_reset_with_data_is_refused(mem_link):
    with pytest.raises(ErrorReply) as e:
        mem_link.pipeline([mem_link.prepare(Op.RESET, data=b"\x00")])
    assert e.value.code is Reply.BAD_LENGTH


def test_busy_while_running_and_wait_done(mem_link):
    """While the TSP runs only STATUS is served; wait_done gives up after its timeout."""
    img = assemble(LONG)
    before = mem_link.transport.peek_memory()
    mem_link.load_image(img, fresh=True)
    with pytest.raises(ErrorReply) as e:       # START, then a write right behind it
        mem_link.pipeline([mem_link.prepare(Op.START), poisoned_write(mem_link, 0x24)])
    assert e.value.code is Reply.BUSY
    assert mem_link.status().running
    with pytest.raises(LinkTimeout, match="did not finish"):
        mem_link.wait_done(timeout=1e-4)
    st = mem_link.wait_done(timeout=0.01)
    assert st.done and st.cycles == run_image(img).cycles == 3000 + TINY.tiles   # H = 3000
    after = mem_link.transport.peek_memory()
    np.testing.assert_array_equal(after["MEM_E0"], before["MEM_E0"])


# -- the whole path ------------------------------------------------------------------

PROGRAM = """
.config tiny
.output z, MEM_E0, 0x10, 4, i8
.output w, MEM_E1, 0x20, 4, i8
.data MEM_W1, 0, 0, 1, 2, 3, 4, 5, 6, 7, 7, 6, 5, 4, 3, 2, 1, 0
.data MEM_W0, 0, 100, -22, -90, -21, -104, -111, 61, -21, 36, -2, 127, -90, -6, 112, 14, -80
.perm SXM_E, 0, 2, 0, 3, 1
.queue MEM_W1
        READ    0 -> E0
        REPEAT  3, 1, 1
.queue MEM_W0
        NOP     1
        READ    0 -> E1
        REPEAT  3, 1, 1
.queue VXM0
        NOP     3
        LUT     E0 -> E2
        REPEAT  3, 1
.queue VXM1
        NOP     3
        SUB.i8  E0, E1 -> E3
        REPEAT  3, 1
.queue MEM_E0
        NOP     7
        WRITE   E2 -> 0x10
        REPEAT  3, 1, 1
.queue SXM_E
        NOP     9
        PERM    E3, 0 -> W1
        REPEAT  3, 1
.queue MEM_E1
        NOP     12
        WRITE   W1 -> 0x20
        REPEAT  3, 1, 1
"""
PERM = [2, 0, 3, 1]


def test_full_path_matches_golden():
    """client -> UART bits -> the iCEBreaker's gateware (``BoardCore``: bridge, the whole
    tiny TSP, LEDs) -> results back, with every kind of host write (instructions, MEM
    words, table entries, a map).

    x (values 0..7) from MEM_W1 (2 hops) and y from MEM_W0 (1 hop) meet at the VXM
    at 3..6. ALU 0 looks x up in the table, MEM_E0 (1 hop) writes it at 7..10;
    ALU 1 subtracts (wrapping) and emits at 6..9, SXM_E (3 hops) permutes at 9..12
    and emits west at 11..14, MEM_E1 (1 hop) writes at 12..15 and halts at 16:
    the run takes H + T = 16 + 2 cycles.
    """
    img = assemble(PROGRAM)
    rng = np.random.default_rng(5)
    lut = np.zeros((TINY.vl, 256), np.int8)
    lut[:, :8] = rng.integers(-128, 128, (TINY.vl, 8))       # only entries x can index
    img.lut = lut
    x = img.memory_array("MEM_W1")[:4].view(np.int8).astype(np.int64)
    y = img.memory_array("MEM_W0")[:4].view(np.int8).astype(np.int64)
    gold = run_image(img)
    board = BoardCore(TINY, DIVISOR, blink=50)
    link = HostLink(SimTransport(TINY, divisor=DIVISOR, dut=board))
    res = link.run_image(img, fresh=True, timeout=0.01)
    leds = link.transport.peek(lambda ctx: (ctx.get(board.led_status), ctx.get(board.led_done),
                                            ctx.get(board.led_error)))
    assert leds == (1, 1, 0)                   # idle, done, no error

    assert res.cycles == gold.cycles == 16 + TINY.tiles
    assert res.errors == gold.errors == 0
    np.testing.assert_array_equal(res.outputs["z"], lut[np.arange(TINY.vl), x])
    np.testing.assert_array_equal(res.outputs["w"], (((x - y + 128) % 256) - 128)[:, PERM])
    for name in res.outputs:
        np.testing.assert_array_equal(res.outputs[name], gold.outputs[name])
    # The rest of memory straight from the simulated block RAMs (reading 8 KiB over a
    # bit-level UART simulation would take minutes; the slow test reads more).
    final = link.transport.peek_memory()
    for name, mem in gold.memory.items():
        np.testing.assert_array_equal(final[name], mem, err_msg=name)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(2))
def test_random_programs_soak(seed):
    """Random tiny programs (tables and maps included); every MEM word the program
    loaded or changed is read back over the link, the rest straight from the RAMs."""
    from sim.randprog import random_program
    img = random_program(TINY, seed)
    gold = run_image(img)
    link = HostLink(SimTransport(TINY, divisor=DIVISOR))
    res = link.run_image(img, fresh=True, timeout=0.05)
    assert (res.cycles, res.errors) == (gold.cycles, gold.errors)
    final = link.transport.peek_memory()
    for name, mem in gold.memory.items():
        np.testing.assert_array_equal(final[name], mem, err_msg=name)
        rows = np.nonzero((mem != 0).any(axis=1) | (img.memory_array(name) != 0).any(axis=1))[0]
        for lo, hi in _spans(rows):
            np.testing.assert_array_equal(link.read_mem(FP.slice(name).pos, lo, hi - lo),
                                          mem[lo:hi], err_msg=f"{name} {lo}..{hi - 1}")


def _spans(rows):
    """Runs of consecutive row numbers as (first, past-the-end)."""
    spans = []
    for r in map(int, rows):
        if spans and spans[-1][1] == r:
            spans[-1][1] = r + 1
        else:
            spans.append([r, r + 1])
    return spans
