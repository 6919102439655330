"""The host link's frame parser (``rtl/hostlink.py``, protocol in ``firmware/hostlink.py``).

The solver sends any bytes at any times into a :class:`~rtl.hostlink.FrameReceiver`
and acknowledges its verdicts whenever it likes. A monitor written here from
the protocol (not from the parser) follows the bytes the receiver takes, with a
CRC of its own (bit by bit, from :data:`firmware.hostlink.CRC16`): hunting skips
everything up to ``SOF``; then ``LEN``, ``LEN`` payload bytes and the two CRC
bytes make a frame; a silence of more than ``timeout`` cycles inside a frame
ends it. From the monitor the bench asserts, in every cycle:

- the receiver takes every byte while it hunts or receives (a UART cannot be
  held off) and none while a frame waits for the executor;
- a frame's verdict comes exactly when its last byte (or the timeout) says,
  and is ``BAD_CRC`` when the CRC does not match, ``BAD_LENGTH`` when it does
  but the payload is shorter than the header or not whole words, ``TIMEOUT``
  for a frame that stopped, ``OK`` otherwise, with the header and word count
  of the frame; in particular a frame with a bad CRC is **never** ``OK``;
- every data byte lands in the frame buffer at its offset;
- after each verdict the receiver hunts again, so whatever garbage came
  before, the next well-formed frame is received as such (resynchronisation).

These hold for frames of every length and any number of cycles: the bench
also asserts how the receiver's state matches the monitor's (its FSM state,
counters and CRC register, reached through :data:`PROBE`, an instrumentation
that changes no logic), which makes the whole set 1-inductive, so ``prove``
mode closes it. (Bounded checks alone choke on it: deciding that two CRC
circuits agree over many symbolic bytes is long XOR chains for a SAT solver.)

The receiver also keeps its side of the contract with the executor: a verdict
stays up, with its code, header and word count unchanged, until acknowledged.
:class:`ExecutorBench` takes that contract as its assumption and checks a
:class:`~rtl.hostlink.CommandExecutor` alone (any header, any TSP status, any
reply back-pressure): it drives no host command and no ``RESET`` unless the
frame it holds is ``OK``. Together: a corrupt frame never executes.
"""

from amaranth.hdl import Elaboratable, Module, Signal, Cat, Const, Mux, Assert, Assume
from amaranth.lib import enum, wiring
from amaranth.lib.wiring import In, Flow

from firmware.hostlink import SOF, HEADER_BYTES, CRC16, Reply

from rtl.hostlink import CommandExecutor
from rtl.top import HostCmd

from .common import formal_config, no_reset, first_cycle, frozen, past
from .mutants import Edit, mutant


__all__ = ["LinkBench", "ExecutorBench", "crc16_step", "PROBE", "BROKEN", "broken"]

CONFIG = formal_config("formal_link")

#: Silence (clocks) after which a frame is dropped: short, so the solver reaches it.
TIMEOUT = 2

#: Instrumentation of ``rtl/hostlink.py``: the receiver's CRC processor made in
#: ``__init__`` (``crc_probe``) and its FSM and counters kept in ``probe``. No logic changes.
PROBE = [
    Edit("        self._timeout = timeout\n        super().__init__()\n",
         "        self._timeout = timeout\n        super().__init__()\n"
         "        self.crc_probe = crc_parameters().create()\n", "probe: make the CRC here"),
    Edit("m.submodules.crc = check = crc_parameters().create()",
         "m.submodules.crc = check = self.crc_probe", "probe: use it"),
    Edit("        with m.FSM():\n            with m.State(\"HUNT\"):",
         "        with m.FSM() as fsm:\n"
         "            self.probe = dict(fsm=fsm, length=length, index=index, phase=phase,\n"
         "                              idle=idle, crc_left=crc_left)\n"
         "            with m.State(\"HUNT\"):", "probe: keep the FSM and counters"),
]


def probed(edits=()):
    """``rtl/hostlink.py`` with :data:`PROBE` and ``edits`` applied."""
    return mutant("rtl.hostlink", PROBE + list(edits))


def crc16_step(crc, byte):
    """``crc`` after one more ``byte``, MSB first, as the polynomial division of
    :func:`firmware.hostlink.crc16` defines it (independent of ``amaranth.lib.crc``).

    The division is run here in Python on symbols (each bit a set of the input
    bits it is the XOR of), so the gates are one flat XOR per bit instead of a
    tree that grows threefold per bit shifted."""
    assert not CRC16.reflect and CRC16.width == 16
    width = CRC16.width
    # symbols: 0..15 the CRC bits, 16..23 the byte's bits
    reg = [frozenset([i]) for i in range(width)]
    for i in range(8):
        reg[width - 8 + i] ^= frozenset([width + i])
    for _ in range(8):
        top = reg[width - 1]
        reg = [frozenset()] + reg[:-1]
        for i in range(width):
            if CRC16.polynomial >> i & 1:
                reg[i] ^= top
    inputs = [crc[i] for i in range(width)] + [byte[i] for i in range(8)]
    return Cat(*(Cat(*(inputs[j] for j in sorted(bit))).xor() if bit else Const(0)
                 for bit in reg))


class _Phase(enum.Enum, shape=2):
    HUNT = 0       # skipping bytes up to SOF
    FRAME = 1      # LEN, payload, CRC
    CHECK = 2      # the cycle after the last byte: the verdict is being made
    DONE = 3       # the verdict is out, until it is acknowledged


class LinkBench(wiring.Component):
    """A receiver (``receiver_cls``: a broken variant, built on :func:`probed`) fed with
    free bytes, acknowledged at will, against the protocol monitor."""

    byte: In(8)
    byte_valid: In(1)
    ack: In(1)
    wbytes: In(8)          # the executor's word width for this frame: any, fixed

    def __init__(self, *, lemmas=True, receiver_cls=None):
        self._lemmas = lemmas
        self.receiver = (receiver_cls or probed().FrameReceiver)(TIMEOUT)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        no_reset(m)
        m.submodules.receiver = rcv = self.receiver
        wbytes = frozen(m, self.wbytes, first_cycle(m), "wbytes")
        m.d.comb += [rcv.i.payload.eq(self.byte), rcv.i.valid.eq(self.byte_valid),
                     Assume(wbytes != 0), rcv.wbytes.eq(wbytes), rcv.ack.eq(self.ack)]
        # The monitor is a submodule added after the receiver, so it is elaborated after
        # it and finds the receiver's probe.
        m.submodules.monitor = _Monitor(rcv, self.byte, wbytes, self._lemmas)
        return m


class ExecutorBench(wiring.Component):
    """A :class:`~rtl.hostlink.CommandExecutor` (``executor_cls``: a broken variant) given
    any frames the way the receiver hands them over, any TSP status, any back-pressure."""

    def __init__(self, executor_cls=CommandExecutor):
        self.executor = executor_cls(CONFIG)
        free = {name: In(member.shape)
                for name, member in self.executor.signature.members.items()
                if member.is_port and member.flow is Flow.In}
        super().__init__({**free, "reply_ready": In(1)})

    def elaborate(self, platform):
        m = Module()
        no_reset(m)
        m.submodules.executor = exe = self.executor
        for name in self.signature.members:
            if name != "reply_ready":
                m.d.comb += getattr(exe, name).eq(getattr(self, name))
        m.d.comb += exe.o.ready.eq(self.reply_ready)
        # the receiver's side of the contract (LinkBench asserts it): a verdict stays,
        # unchanged, until acknowledged, and goes the cycle after
        frame = Cat(self.valid, self.code, self.header.as_value(), self.words)
        held = past(m, frame, "frame")
        was_valid, was_acked = past(m, self.valid, "valid"), past(m, exe.ack, "ack")
        started = ~first_cycle(m)
        with m.If(started & was_valid & ~was_acked):
            m.d.comb += Assume(frame == held)
        with m.If(started & was_valid & was_acked):
            m.d.comb += Assume(~self.valid)
        executing = (exe.host.cmd != HostCmd.NONE) | exe.tsp_reset
        m.d.comb += Assert(~executing | (self.valid & (self.code == Reply.OK)))
        return m


class _Monitor(Elaboratable):
    """The protocol, byte by byte, and every property of the bench."""

    def __init__(self, rcv, byte, wbytes, lemmas):
        self._rcv, self._byte, self._wbytes = rcv, byte, wbytes
        self._lemmas = lemmas

    def elaborate(self, platform):
        m = Module()
        rcv, byte, wbytes = self._rcv, self._byte, self._wbytes
        taken = rcv.i.valid & rcv.i.ready
        phase = Signal(_Phase)
        n = Signal(9)                   # bytes of the frame taken after SOF (LEN is byte 0)
        length = Signal(8)
        crc = Signal(16, init=CRC16.initial)      # over LEN and the payload
        crc_all = Signal(16, init=CRC16.initial)  # over every byte after SOF
        got_crc = Signal(16)
        header = Signal(8 * HEADER_BYTES)
        silence = Signal(range(TIMEOUT + 1))
        verdict = Signal(8)
        words = Signal(8)               # whole data words taken
        part = Signal(8)                # bytes of the data word being taken

        in_payload = (n >= 1) & (n <= length)
        with m.Switch(phase):
            with m.Case(_Phase.HUNT):
                with m.If(taken & (byte == SOF)):
                    m.d.sync += [phase.eq(_Phase.FRAME), n.eq(0), silence.eq(0),
                                 crc.eq(CRC16.initial), crc_all.eq(CRC16.initial),
                                 words.eq(0), part.eq(0)]
            with m.Case(_Phase.FRAME):
                with m.If(taken):
                    m.d.sync += [n.eq(n + 1), silence.eq(0),
                                 crc_all.eq(crc16_step(crc_all, byte))]
                    with m.If(n == 0):
                        m.d.sync += length.eq(byte)
                    with m.If(n <= length):                # LEN and payload are CRC'd
                        m.d.sync += crc.eq(crc16_step(crc, byte))
                    with m.If(in_payload & (n <= HEADER_BYTES)):
                        m.d.sync += header.word_select((n - 1).as_unsigned(), 8).eq(byte)
                    with m.If(in_payload & (n > HEADER_BYTES)):        # a data byte
                        with m.If(part + 1 == wbytes):
                            m.d.sync += [part.eq(0), words.eq(words + 1)]
                        with m.Else():
                            m.d.sync += part.eq(part + 1)
                    with m.If((n != 0) & (n == length + 1)):
                        m.d.sync += got_crc[8:].eq(byte)
                    with m.If((n != 0) & (n == length + 2)):       # CRC_LO: the last byte
                        m.d.sync += [got_crc[:8].eq(byte), phase.eq(_Phase.CHECK)]
                with m.Elif(silence == TIMEOUT):
                    m.d.sync += [phase.eq(_Phase.DONE), verdict.eq(Reply.TIMEOUT)]
                with m.Else():
                    m.d.sync += silence.eq(silence + 1)
            with m.Case(_Phase.CHECK):
                m.d.sync += phase.eq(_Phase.DONE)
                with m.If(got_crc != crc):
                    m.d.sync += verdict.eq(Reply.BAD_CRC)
                with m.Elif((length < HEADER_BYTES) | (part != 0)):
                    m.d.sync += verdict.eq(Reply.BAD_LENGTH)
                with m.Else():
                    m.d.sync += verdict.eq(Reply.OK)
            with m.Case(_Phase.DONE):
                with m.If(rcv.valid & rcv.ack):
                    m.d.sync += phase.eq(_Phase.HUNT)

        # -- what the protocol says -----------------------------------------------------------
        receiving = (phase == _Phase.HUNT) | (phase == _Phase.FRAME)
        done = phase == _Phase.DONE
        m.d.comb += [Assert(rcv.i.ready == receiving), Assert(rcv.valid == done)]
        with m.If(done):
            m.d.comb += Assert(rcv.code == verdict)
            with m.If(verdict == Reply.OK):
                m.d.comb += [Assert(rcv.header.as_value() == header), Assert(rcv.words == words)]
        # the headline: a frame whose CRC does not match is never accepted
        m.d.comb += Assert(~(rcv.valid & (rcv.code == Reply.OK)) | (got_crc == crc))
        data_byte = (phase == _Phase.FRAME) & taken & (n > HEADER_BYTES) & (n <= length)
        m.d.comb += Assert(rcv.buf_en == data_byte)
        with m.If(data_byte):
            m.d.comb += [Assert(rcv.buf_addr == n - HEADER_BYTES - 1),
                         Assert(rcv.buf_data == byte)]
        # the contract with the executor: the verdict holds, unchanged, until acknowledged
        handed = Cat(rcv.code, rcv.header.as_value(), rcv.words)
        was_waiting, was_handed = past(m, done & ~rcv.ack, "waiting"), past(m, handed, "handed")
        with m.If(was_waiting):
            m.d.comb += [Assert(rcv.valid), Assert(handed == was_handed)]

        if self._lemmas:
            self._lemma(m, phase, n, length, crc, crc_all, got_crc, header, silence, words, part)
        return m

    def _lemma(self, m, phase, n, length, crc, crc_all, got_crc, header, silence, words, part):
        """How the receiver's state matches the monitor's: makes the set inductive."""
        rcv, wbytes = self._rcv, self._wbytes
        done = phase == _Phase.DONE
        probe = rcv.probe
        fsm = probe["fsm"]
        framing = phase == _Phase.FRAME
        m.d.comb += [
            Assert(fsm.ongoing("HUNT") == (phase == _Phase.HUNT)),
            Assert(fsm.ongoing("LEN") == (framing & (n == 0))),
            Assert(fsm.ongoing("BODY") == (framing & (n != 0) & (n <= length))),
            Assert(fsm.ongoing("CRC") == (framing & (n != 0) & (n > length))),
            Assert(fsm.ongoing("CHECK") == (phase == _Phase.CHECK)),
            Assert(fsm.ongoing("DONE") == done),
        ]
        with m.If(framing):
            m.d.comb += [Assert(probe["idle"] == silence), Assert(silence <= TIMEOUT),
                         Assert(n <= length + 2)]
        with m.If(framing & (n == 0)):
            m.d.comb += [Assert(crc == CRC16.initial), Assert(part == 0), Assert(words == 0)]
        with m.If(framing | (phase == _Phase.CHECK)):
            m.d.comb += Assert(rcv.crc_probe.crc == crc_all)
            # crc_all runs on over the CRC bytes, as the receiver's register does
            after_hi, after_lo = Signal(16), Signal(16)
            m.d.comb += [after_hi.eq(crc16_step(crc, got_crc[8:])),
                         after_lo.eq(crc16_step(after_hi, got_crc[:8]))]
            with m.If(n <= length + 1):
                m.d.comb += Assert(crc_all == crc)
            with m.Elif(n == length + 2):
                m.d.comb += Assert(crc_all == after_hi)
            with m.Else():
                m.d.comb += [Assert(n == length + 3), Assert(phase == _Phase.CHECK),
                             Assert(crc_all == after_lo)]
        with m.If((framing & (n != 0)) | (phase == _Phase.CHECK)):
            m.d.comb += [Assert(probe["length"] == length), Assert(rcv.words == words),
                         Assert(probe["phase"] == part), Assert(part < wbytes)]
            for i in range(HEADER_BYTES):          # the header bytes taken so far
                with m.If((n > i + 1) & (length > i)):
                    m.d.comb += Assert(rcv.header.as_value().word_select(i, 8)
                                       == header.word_select(i, 8))
        with m.If(framing & (n != 0) & (n <= length)):
            m.d.comb += Assert(probe["index"] == n - 1)
        with m.If(framing & (n != 0)):        # set by LEN, counted down by the CRC bytes
            m.d.comb += Assert(probe["crc_left"] == Mux(n <= length, 2, length + 3 - n))


#: Broken variants the properties must catch: name -> (class, edits).
BROKEN = {
    "crc_ignored": ("FrameReceiver", [Edit(
        "with m.If(~check.match_detected):", "with m.If(0):",
        "the CRC verdict is ignored")]),
    "crc_skips_len": ("FrameReceiver", [Edit(
        "                    m.d.comb += check.valid.eq(1)\n"
        "                    m.d.sync += [length.eq(byte), ",
        "                    m.d.sync += [length.eq(byte), ",
        "the CRC does not cover LEN")]),
    "no_timeout": ("FrameReceiver", [Edit(
        "finish(Reply.TIMEOUT)", "m.d.sync += idle.eq(0)",
        "a frame that stops arriving is never dropped")]),
    "no_rehunt": ("FrameReceiver", [Edit(
        "                with m.If(self.ack):\n                    m.next = \"HUNT\"",
        "                with m.If(self.ack):\n                    m.next = \"LEN\"",
        "after a verdict the next byte is taken as LEN, without waiting for SOF")]),
    "bad_frame_executed": ("CommandExecutor", [Edit(
        "with m.If(self.code != Reply.OK):", "with m.If(0):",
        "the executor acts on a frame whatever its verdict")]),
}


def broken(name, lemmas=False):
    """The bench on the broken link ``name`` (a key of :data:`BROKEN`). Without the
    lemmas by default, so that what fails is a property of the protocol, not a
    statement about the receiver's insides."""
    cls, edits = BROKEN[name]
    if cls == "CommandExecutor":
        return ExecutorBench(executor_cls=mutant("rtl.hostlink", edits).CommandExecutor)
    return LinkBench(receiver_cls=probed(edits).FrameReceiver, lemmas=lemmas)
