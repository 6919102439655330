"""The host link's frame parser (``rtl/hostlink.py``, protocol in ``firmware/hostlink.py``).

The bench wires a :class:`~rtl.hostlink.FrameReceiver`, the frame buffer and a
:class:`~rtl.hostlink.CommandExecutor` as :class:`~rtl.hostlink.HostBridge` does
(without the UART and its FIFO, which only deliver bytes), and lets the solver
send any bytes at any times, answer the reply stream whenever it likes and
show any TSP status.

A monitor written here from the protocol (not from the parser) follows the
bytes the receiver takes, with a CRC of its own (bit by bit, from
:data:`firmware.hostlink.CRC16`): hunting skips everything up to ``SOF``; then
``LEN``, ``LEN`` payload bytes and the two CRC bytes make a frame; a silence
of more than ``timeout`` cycles inside a frame ends it. From the monitor the
bench asserts, in every cycle:

- the receiver takes every byte while it hunts or receives (a UART cannot be
  held off) and none while a frame waits for the executor;
- a frame's verdict comes exactly when its last byte (or the timeout) says,
  and is ``BAD_CRC`` when the CRC does not match, ``BAD_LENGTH`` when it does
  but the payload is shorter than the header or not whole words, ``TIMEOUT``
  for a frame that stopped, ``OK`` otherwise, with the header and word count
  of the frame; in particular a frame with a bad CRC is **never** ``OK``;
- every data byte lands in the buffer at its offset;
- the executor drives no host command and no ``RESET`` unless the frame it
  holds is ``OK``: a corrupt frame never executes;
- after each verdict the receiver hunts again, so whatever garbage came
  before, the next well-formed frame is received as such (resynchronisation).

Equivalence of two CRC circuits over many symbolic bytes is hard for a SAT
solver (long XOR chains), so the bench also asserts, as a lemma, that the
receiver's CRC register equals the monitor's register over the same bytes in
every cycle of a frame; smtbmc keeps each proven step as a fact, and every step
is then a one-byte equivalence. The register is reached through a probe: the
receiver is compiled from ``rtl/hostlink.py`` with its CRC processor made in
``__init__`` and kept as ``crc_probe`` (:data:`PROBE`), which changes no logic.
"""

from amaranth.hdl import Module, Signal, Cat, Const, Mux, Assert, Assume
from amaranth.lib import data, enum, memory, wiring
from amaranth.lib.wiring import In, Out, Flow

from firmware.hostlink import SOF, MAX_PAYLOAD, HEADER_BYTES, CRC16, Reply

from rtl.hostlink import CommandExecutor
from rtl.top import HostCmd

from .common import formal_config, no_reset, first_cycle, frozen
from .mutants import Edit, mutant


__all__ = ["LinkBench", "crc16_step", "BROKEN", "broken"]

CONFIG = formal_config("formal_link")

#: Silence (clocks) after which a frame is dropped: short, so the solver reaches it.
TIMEOUT = 2

#: Instrumentation of ``rtl/hostlink.py``: the receiver's CRC processor, made in
#: ``__init__`` instead of ``elaborate`` and kept as ``crc_probe`` (no logic changes).
PROBE = [
    Edit("        self._timeout = timeout\n        super().__init__()\n",
         "        self._timeout = timeout\n        super().__init__()\n"
         "        self.crc_probe = crc_parameters().create()\n", "probe: make the CRC here"),
    Edit("m.submodules.crc = check = crc_parameters().create()",
         "m.submodules.crc = check = self.crc_probe", "probe: use it"),
]


def probed(edits=()):
    """``rtl/hostlink.py`` with :data:`PROBE` and ``edits`` applied."""
    return mutant("rtl.hostlink", PROBE + list(edits))


#: The receiver's inputs the bench drives itself; every other input of the
#: executor (TSP status, read data) is a free input of the bench.
_WIRED = {"valid", "code", "header", "words", "buf_data"}


def crc16_step(crc, byte):
    """``crc`` after one more ``byte``, MSB first, as the polynomial division defines
    it (:func:`firmware.hostlink.crc16` in gates; independent of ``amaranth.lib.crc``)."""
    assert not CRC16.reflect and CRC16.width == 16
    top = 1 << (CRC16.width - 1)
    crc = crc ^ (byte << 8)
    for _ in range(8):
        crc = Mux(crc & top, ((crc << 1) ^ CRC16.polynomial)[:16], (crc << 1)[:16])
    return crc


class _Phase(enum.Enum, shape=2):
    HUNT = 0       # skipping bytes up to SOF
    FRAME = 1      # LEN, payload, CRC
    CHECK = 2      # the cycle after the last byte: the verdict is being made
    DONE = 3       # the verdict is out, until the executor acknowledges it


class LinkBench(wiring.Component):
    """Receiver + buffer + executor (``receiver_cls`` / ``executor_cls``: broken
    variants) fed with free bytes, against the protocol monitor."""

    def __init__(self, receiver_cls=None, executor_cls=CommandExecutor, executor=True):
        self.receiver = (receiver_cls or probed().FrameReceiver)(TIMEOUT)
        self.executor = executor_cls(CONFIG) if executor else None
        free = {}
        if executor:
            for name, member in self.executor.signature.members.items():
                if member.is_port and member.flow is Flow.In and name not in _WIRED:
                    free[f"tsp_{name}"] = In(member.shape)
        else:
            free = {"ack": In(1), "wbytes": In(3)}
        super().__init__({
            "byte":        In(8),
            "byte_valid":  In(1),
            "reply_ready": In(1),
            **free,
        })

    def elaborate(self, platform):
        m = Module()
        no_reset(m)
        m.submodules.receiver = rcv = self.receiver
        m.d.comb += [rcv.i.payload.eq(self.byte), rcv.i.valid.eq(self.byte_valid)]
        exe = self.executor
        if exe is None:                 # the receiver alone: free ack, any fixed word width
            first = first_cycle(m)
            wbytes = frozen(m, self.wbytes, first, "wbytes")
            m.d.comb += [Assume(wbytes != 0), rcv.wbytes.eq(wbytes), rcv.ack.eq(self.ack)]
        else:                           # wired as HostBridge wires them
            m.submodules.executor = exe
            m.submodules.buffer = buf = memory.Memory(
                shape=8, depth=MAX_PAYLOAD - HEADER_BYTES, init=[])
            w, r = buf.write_port(), buf.read_port(domain="sync")
            m.d.comb += [w.addr.eq(rcv.buf_addr), w.data.eq(rcv.buf_data), w.en.eq(rcv.buf_en),
                         r.addr.eq(exe.buf_addr), exe.buf_data.eq(r.data),
                         exe.valid.eq(rcv.valid), exe.code.eq(rcv.code),
                         exe.header.eq(rcv.header), exe.words.eq(rcv.words),
                         rcv.wbytes.eq(exe.wbytes), rcv.ack.eq(exe.ack),
                         exe.o.ready.eq(self.reply_ready)]
            for name in self.signature.members:
                if name.startswith("tsp_"):
                    m.d.comb += getattr(exe, name[4:]).eq(getattr(self, name))
            wbytes = exe.wbytes

        # -- the monitor ------------------------------------------------------------------------
        taken = rcv.i.valid & rcv.i.ready
        byte = self.byte
        phase = Signal(_Phase)
        n = Signal(9)                   # bytes of the frame taken after SOF (LEN is byte 0)
        length = Signal(8)
        crc = Signal(16, init=CRC16.initial)     # over LEN and the payload
        crc_all = Signal(16, init=CRC16.initial) # over every byte after SOF (the lemma)
        got_crc = Signal(16)
        header = Signal(8 * HEADER_BYTES)
        silence = Signal(range(TIMEOUT + 2))
        verdict = Signal(8)
        words = Signal(8)               # whole data words taken
        part = Signal(8)                # bytes of the data word being taken

        last = n == length + 2          # this byte is CRC_LO, the frame's last
        in_payload = (n >= 1) & (n <= length)
        with m.Switch(phase):
            with m.Case(_Phase.HUNT):
                with m.If(taken & (byte == SOF)):
                    m.d.sync += [phase.eq(_Phase.FRAME), n.eq(0), silence.eq(0),
                                 crc.eq(CRC16.initial), crc_all.eq(CRC16.initial),
                                 words.eq(0), part.eq(0)]
            with m.Case(_Phase.FRAME):
                with m.If(taken):
                    m.d.sync += [n.eq(n + 1), silence.eq(0), crc_all.eq(crc16_step(crc_all, byte))]
                    with m.If(n == 0):
                        m.d.sync += length.eq(byte)
                    with m.If(n <= length):                # LEN and payload are CRC'd
                        m.d.sync += crc.eq(crc16_step(crc, byte))
                    with m.If(in_payload & (n <= HEADER_BYTES)):
                        m.d.sync += header.word_select((n - 1).as_unsigned(), 8).eq(byte)
                    with m.If(in_payload & (n > HEADER_BYTES)):       # a data byte
                        with m.If(part + 1 == wbytes):
                            m.d.sync += [part.eq(0), words.eq(words + 1)]
                        with m.Else():
                            m.d.sync += part.eq(part + 1)
                    with m.If(n == length + 1):
                        m.d.sync += got_crc[8:].eq(byte)
                    with m.If(last):
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

        # -- the properties -----------------------------------------------------------------------
        receiving = (phase == _Phase.HUNT) | (phase == _Phase.FRAME)
        done = phase == _Phase.DONE
        m.d.comb += [Assert(rcv.i.ready == receiving), Assert(rcv.valid == done)]
        with m.If(done):
            m.d.comb += Assert(rcv.code == verdict)
            with m.If(verdict == Reply.OK):
                m.d.comb += [Assert(rcv.header.as_value() == header), Assert(rcv.words == words)]
        # the lemma: the receiver's CRC register follows the frame's bytes
        with m.If((phase == _Phase.FRAME) | (phase == _Phase.CHECK)):
            m.d.comb += Assert(rcv.crc_probe.crc == crc_all)
        # the headline: a frame whose CRC does not match is never accepted
        m.d.comb += Assert(~(rcv.valid & (rcv.code == Reply.OK)) | (got_crc == crc))
        data_byte = (phase == _Phase.FRAME) & taken & (n > HEADER_BYTES) & (n <= length)
        m.d.comb += Assert(rcv.buf_en == data_byte)
        with m.If(data_byte):
            m.d.comb += [Assert(rcv.buf_addr == n - HEADER_BYTES - 1),
                         Assert(rcv.buf_data == byte)]
        if exe is not None:             # nothing executes unless the frame held is OK
            accepted = done & (verdict == Reply.OK)
            m.d.comb += Assert(accepted | ((exe.host.cmd == HostCmd.NONE) & ~exe.tsp_reset))
        return m


#: Broken variants the properties must catch: name -> (module, class, edits).
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


def broken(name, **kw):
    """The bench on the broken link ``name`` (a key of :data:`BROKEN`)."""
    cls, edits = BROKEN[name]
    bad = getattr(probed(edits), cls)
    return LinkBench(**{"receiver_cls" if cls == "FrameReceiver" else "executor_cls": bad}, **kw)
