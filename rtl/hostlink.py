"""The host link's gateware: a UART, the frame parser, the command executor.

The protocol (frames, CRC, op and reply codes) is defined in
:mod:`firmware.hostlink`; this file only implements it. Data flows::

    rx pin -> UARTReceiver -> FIFO -> FrameReceiver -> (buffer) -> CommandExecutor -> TSP.host
    tx pin <- UARTTransmitter <- ReplyFramer <------------ CommandExecutor <- TSP status

Neither Amaranth 0.5 nor amaranth-boards ship UART gateware (it lives in
amaranth-stdio, which is not on this project's pin list), so the UART is the
small 8N1 pair below.

A request is executed only after its whole frame has arrived and its CRC has
checked, so a corrupt or truncated frame never reaches the TSP: the frame's
payload sits in one block RAM (``MAX_PAYLOAD`` bytes) until then. Bytes that
arrive while a request executes wait in a FIFO of ``RX_FIFO_BYTES``, so the
client may send frames back to back as long as no more than that many bytes
are unanswered (a UART cannot be held off: past that, bytes are lost and the
frames they belonged to fail their CRC).
"""

from amaranth.hdl import Module, Signal, Cat, Const, Array, Mux, ResetInserter
from amaranth.lib import crc, data, enum, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

from firmware.hostlink import (SOF, MAX_PAYLOAD, HEADER, HEADER_BYTES, REPLY_HEADER_BYTES,
                               STATUS_FIELDS, FRAME_TIMEOUT_BYTES, BITS_PER_BYTE, CRC16, Op,
                               Reply, RX_FIFO_BYTES, word_bytes, max_read)
from firmware.isa import ERROR_BITS

from ._memory import rw_dont_care_memory
from .top import TSP, HostCmd, host_layout, CYCLE_BITS, read_mem_latency


__all__ = ["UARTReceiver", "UARTTransmitter", "FrameReceiver", "ReplyFramer",
           "CommandExecutor", "HostBridge", "LinkedTSP", "crc_parameters"]


def crc_parameters():
    """:data:`firmware.hostlink.CRC16` as ``amaranth.lib.crc`` parameters for bytes."""
    return crc.Algorithm(crc_width=CRC16.width, polynomial=CRC16.polynomial,
                         initial_crc=CRC16.initial, reflect_input=CRC16.reflect,
                         reflect_output=CRC16.reflect, xor_output=CRC16.xor_output)(8)


def _check_divisor(divisor):
    if not isinstance(divisor, int) or divisor < 4:
        raise ValueError(f"divisor (clocks per bit) must be an integer >= 4, not {divisor!r}")


class _BitTimed(wiring.Component):
    """A UART half: ``divisor`` clocks per bit."""

    def __init__(self, divisor):
        _check_divisor(divisor)
        self._divisor = divisor
        super().__init__()


#: The request header as a layout over its bytes (little-endian fields, first byte lowest).
header_layout = data.StructLayout({name: 8 * n for name, n in HEADER})


class UARTReceiver(_BitTimed):
    """8N1 receiver, ``divisor`` clocks per bit.

    ``rx`` is an asynchronous pin: two flip-flops bring it into the clock
    domain. The start bit's falling edge starts a bit timer that samples half a
    bit later (mid start bit, where a glitch would read high and is ignored)
    and every ``divisor`` clocks after that, so the sample lands mid-bit with up
    to about a quarter bit of clock mismatch over the character.

    Members
    -------
    rx : In(1)
    o : Out(stream.Signature(8, always_ready=True))
        One byte per good character; a UART cannot be held off.
    frame_error : Out(1)
        One cycle: a character whose stop bit read 0 (dropped).
    """

    rx: In(1, init=1)
    o: Out(stream.Signature(8, always_ready=True))
    frame_error: Out(1)

    def elaborate(self, platform):
        m = Module()
        d = self._divisor
        rx = Signal(init=1)
        m.submodules.sync_rx = FFSynchronizer(self.rx, rx, init=1)

        timer = Signal(range(d))
        bits = Signal(range(8))
        shreg = Signal(8)
        m.d.sync += self.o.valid.eq(0)
        m.d.comb += self.o.payload.eq(shreg)
        m.d.sync += self.frame_error.eq(0)
        with m.If(timer != 0):
            m.d.sync += timer.eq(timer - 1)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(~rx):
                    m.d.sync += timer.eq(d // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                with m.If(timer == 0):
                    with m.If(rx):
                        m.next = "IDLE"            # a glitch, not a start bit
                    with m.Else():
                        m.d.sync += [timer.eq(d - 1), bits.eq(0)]
                        m.next = "DATA"
            with m.State("DATA"):
                with m.If(timer == 0):
                    m.d.sync += [shreg.eq(Cat(shreg[1:], rx)), timer.eq(d - 1),
                                 bits.eq(bits + 1)]
                    with m.If(bits == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                with m.If(timer == 0):
                    with m.If(rx):
                        m.d.sync += self.o.valid.eq(1)
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += self.frame_error.eq(1)
                        m.next = "BREAK"
            with m.State("BREAK"):                 # wait for the line to idle again
                with m.If(rx):
                    m.next = "IDLE"
        return m


class UARTTransmitter(_BitTimed):
    """8N1 transmitter, ``divisor`` clocks per bit.

    Members
    -------
    i : In(stream.Signature(8))
        Taken when the transmitter is idle; sent start bit, LSB first, stop bit.
    tx : Out(1)
    """

    i: In(stream.Signature(8))
    tx: Out(1, init=1)

    def elaborate(self, platform):
        m = Module()
        d = self._divisor
        shreg = Signal(BITS_PER_BYTE, init=~0)    # idle line level in every bit
        left = Signal(range(BITS_PER_BYTE + 1))
        timer = Signal(range(d))
        m.d.comb += [self.tx.eq(shreg[0]), self.i.ready.eq(left == 0)]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [shreg.eq(Cat(Const(0, 1), self.i.payload, Const(1, 1))),
                         left.eq(BITS_PER_BYTE), timer.eq(d - 1)]
        with m.Elif(left != 0):
            with m.If(timer == 0):
                m.d.sync += [shreg.eq(Cat(shreg[1:], Const(1, 1))), left.eq(left - 1),
                             timer.eq(d - 1)]
            with m.Else():
                m.d.sync += timer.eq(timer - 1)
        return m


class FrameReceiver(wiring.Component):
    """Hunts for ``SOF``, takes ``LEN`` payload bytes and the CRC, and hands the
    frame to the executor with a verdict (``code``).

    The header bytes land in ``header``; data bytes are written to the frame
    buffer (``buf_*``, byte ``i`` after the header at address ``i``). While the
    data arrive, ``words`` counts whole words of ``wbytes`` bytes (the width
    the executor derives from the header), and a word left incomplete makes
    the frame ``BAD_LENGTH``. ``LEN`` is taken at face value, so a corrupted
    ``LEN`` swallows the bytes that follow; the CRC or the timeout (``timeout``
    clocks of silence) then ends the frame.

    Members
    -------
    i : In(stream.Signature(8))
        Bytes from the UART's FIFO; not taken while a frame waits for the executor.
    buf_addr, buf_data, buf_en : Out
        Write port of the frame buffer.
    valid : Out(1)
        A frame has ended; held, and no byte is taken, until ``ack``.
    code : Out(Reply)
    header : Out(header_layout)
    words : Out(8)
    wbytes : In(8)
    ack : In(1)
    """

    i: In(stream.Signature(8))
    buf_addr: Out(range(MAX_PAYLOAD))
    buf_data: Out(8)
    buf_en: Out(1)
    valid: Out(1)
    code: Out(8)
    header: Out(header_layout)
    words: Out(8)
    wbytes: In(8)
    ack: In(1)

    def __init__(self, timeout):
        if not isinstance(timeout, int) or timeout < 1:
            raise ValueError(f"timeout must be a positive number of clocks, not {timeout!r}")
        self._timeout = timeout
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.crc = check = crc_parameters().create()
        byte = self.i.payload
        got = self.i.valid & self.i.ready
        length = Signal(8)
        index = Signal(8)                         # payload bytes taken so far
        phase = Signal(8)                         # bytes of the current data word taken
        idle = Signal(range(self._timeout + 1))
        crc_left = Signal(range(3))

        header_bytes = data.View(data.ArrayLayout(8, HEADER_BYTES), self.header.as_value())
        m.d.comb += [check.data.eq(byte), self.buf_data.eq(byte),
                     self.buf_addr.eq(index - HEADER_BYTES)]

        def finish(code):
            m.d.sync += self.code.eq(code)
            m.next = "DONE"

        def timed():
            """In a state that waits for a byte of the frame: a frame that stops
            arriving ends with TIMEOUT."""
            with m.If(got):
                m.d.sync += idle.eq(0)
            with m.Elif(idle == self._timeout):
                finish(Reply.TIMEOUT)
            with m.Else():
                m.d.sync += idle.eq(idle + 1)

        with m.FSM():
            with m.State("HUNT"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(got & (byte == SOF)):
                    m.d.comb += check.start.eq(1)
                    m.d.sync += idle.eq(0)
                    m.next = "LEN"
            with m.State("LEN"):
                m.d.comb += self.i.ready.eq(1)
                timed()
                with m.If(got):
                    m.d.comb += check.valid.eq(1)
                    m.d.sync += [length.eq(byte), index.eq(0), phase.eq(0), self.words.eq(0),
                                 crc_left.eq(2)]
                    m.next = "BODY"
                    with m.If(byte == 0):
                        m.next = "CRC"
            with m.State("BODY"):
                m.d.comb += self.i.ready.eq(1)
                timed()
                with m.If(got):
                    m.d.comb += check.valid.eq(1)
                    m.d.sync += index.eq(index + 1)
                    with m.If(index < HEADER_BYTES):
                        m.d.sync += header_bytes[index[:(HEADER_BYTES - 1).bit_length()]].eq(byte)
                    with m.Else():
                        m.d.comb += self.buf_en.eq(1)
                        with m.If(phase + 1 == self.wbytes):
                            m.d.sync += [phase.eq(0), self.words.eq(self.words + 1)]
                        with m.Else():
                            m.d.sync += phase.eq(phase + 1)
                    with m.If(index + 1 == length):
                        m.next = "CRC"
            with m.State("CRC"):
                m.d.comb += self.i.ready.eq(1)
                timed()
                with m.If(got):
                    m.d.comb += check.valid.eq(1)
                    m.d.sync += crc_left.eq(crc_left - 1)
                    with m.If(crc_left == 1):
                        m.next = "CHECK"
            with m.State("CHECK"):                # the CRC register has taken the last byte
                with m.If(~check.match_detected):
                    finish(Reply.BAD_CRC)
                with m.Elif((length < HEADER_BYTES) | (phase != 0)):
                    finish(Reply.BAD_LENGTH)
                with m.Else():
                    finish(Reply.OK)
            with m.State("DONE"):
                m.d.comb += self.valid.eq(1)
                with m.If(self.ack):
                    m.next = "HUNT"
        return m


class ReplyFramer(wiring.Component):
    """Wraps a reply payload into a frame: ``SOF``, ``LEN``, payload, CRC.

    ``length`` is taken with the first payload byte offered (the executor
    holds it for the whole reply); the CRC runs over ``LEN`` and the payload as
    the bytes leave.

    Members
    -------
    i : In(stream.Signature(8))
        Payload bytes.
    length : In(8)
    o : Out(stream.Signature(8))
        Frame bytes to the transmitter.
    """

    i: In(stream.Signature(8))
    length: In(8)
    o: Out(stream.Signature(8))

    def elaborate(self, platform):
        m = Module()
        m.submodules.crc = gen = crc_parameters().create()
        left = Signal(8)
        sent = self.o.valid & self.o.ready
        m.d.comb += gen.data.eq(self.o.payload)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.i.valid):
                    m.d.sync += left.eq(self.length)
                    m.next = "SOF"
            with m.State("SOF"):
                m.d.comb += [self.o.valid.eq(1), self.o.payload.eq(SOF), gen.start.eq(1)]
                with m.If(sent):
                    m.next = "LEN"
            with m.State("LEN"):
                m.d.comb += [self.o.valid.eq(1), self.o.payload.eq(left), gen.valid.eq(sent)]
                with m.If(sent):
                    m.next = "BODY"
                    with m.If(left == 0):
                        m.next = "CRC_HI"
            with m.State("BODY"):
                m.d.comb += [self.o.valid.eq(self.i.valid), self.o.payload.eq(self.i.payload),
                             self.i.ready.eq(self.o.ready), gen.valid.eq(sent)]
                with m.If(sent):
                    m.d.sync += left.eq(left - 1)
                    with m.If(left == 1):
                        m.next = "CRC_HI"
            with m.State("CRC_HI"):
                m.d.comb += [self.o.valid.eq(1), self.o.payload.eq(gen.crc[8:])]
                with m.If(sent):
                    m.next = "CRC_LO"
            with m.State("CRC_LO"):
                m.d.comb += [self.o.valid.eq(1), self.o.payload.eq(gen.crc[:8])]
                with m.If(sent):
                    m.next = "IDLE"
        return m


#: The TSP's status outputs the bridge reports (``TSP`` ports of the same names).
STATUS_PORTS = ("running", "done", "cycles", "errors", "err_queue", "err_cycle",
                "ecc_corrected", "ecc_slice", "ecc_tile", "ecc_addr")


def status_ports(config):
    """The signature members of :data:`STATUS_PORTS`, shaped as ``TSP(config)``'s outputs."""
    fp = config.floorplan
    return {"running": In(1), "done": In(1), "cycles": In(CYCLE_BITS), "errors": In(ERROR_BITS),
            "err_queue": In(range(len(fp.queues) + 1)), "err_cycle": In(CYCLE_BITS),
            "ecc_corrected": In(CYCLE_BITS), "ecc_slice": In(range(fp.width)),
            "ecc_tile": In(range(config.tiles)), "ecc_addr": In(range(config.mem_words))}


def status_value(running, done, **fields):
    """The ``STATUS`` reply data as one little-endian value, field by field as
    ``firmware.hostlink.STATUS_FIELDS`` orders them (``fields``: the rest of
    :data:`STATUS_PORTS` by name)."""
    values = {"flags": Cat(running, done), **fields}
    missing = set(values) ^ {name for name, _ in STATUS_FIELDS}
    assert not missing, f"STATUS_FIELDS and the gateware disagree on {missing}"
    parts = []
    for name, n in STATUS_FIELDS:
        v = values[name]
        assert len(v) <= 8 * n, f"status field {name} is {len(v)} bits, its reply has {8 * n}"
        parts += [v, Const(0, 8 * n - len(v))]
    return Cat(*parts)


class _Action(enum.Enum, shape=3):
    """What the executor does with a request (see ``CommandExecutor``)."""
    REPLY = 0      # answer with a code only (an error)
    STATUS = 1
    START = 2
    READ = 3
    WRITE = 4
    RESET = 5


class CommandExecutor(wiring.Component):
    """Executes a checked frame on the TSP's host port and produces the reply payload.

    Write ops take their words from the frame buffer (one buffer read per
    byte, two cycles a byte: the buffer's read port is synchronous) and issue
    one host command per word; ``READ_MEM`` issues one command per word and
    sends the word from ``rdata`` two cycles after the TSP's (``read_mem_latency``,
    plus the two registers below). Both ways between the
    executor and the TSP are registered: ``host`` (a command leaves the executor
    the cycle after the state that issues it, so the frame header's decoding and
    the address adder end at this register and not in the TSP's memories: on the
    ULX3S that path was the critical one, a carry chain into every MEM slice's
    host address) and ``rdata`` (the read word comes through the TSP's
    multiplexer of MEM slices and its ECC correction: a register takes them off
    the reply's shift register). Every request but
    ``STATUS`` and ``RESET`` is refused with ``BUSY`` while the TSP runs, since the
    host port ignores it then. ``RESET`` raises ``tsp_reset`` for one cycle.

    Members
    -------
    frame : from :class:`FrameReceiver` (``valid``, ``code``, ``header``, ``words``; ``ack``, ``wbytes``)
    buf_addr : Out, buf_data : In
        Read port of the frame buffer (data the cycle after the address).
    host : Out(host_layout(config))
    rdata, and every name of :data:`STATUS_PORTS` : In
        The TSP's outputs.
    o : Out(stream.Signature(8)), length : Out(8)
        The reply payload, to :class:`ReplyFramer`.
    tsp_reset : Out(1)
        One cycle: reset the TSP's run state (``RESET``).
    """

    def __init__(self, config):
        self._config = config
        super().__init__({
            "valid":     In(1),
            "code":      In(8),
            "header":    In(header_layout),
            "words":     In(8),
            "wbytes":    Out(8),
            "ack":       Out(1),
            "buf_addr":  Out(range(MAX_PAYLOAD)),
            "buf_data":  In(8),
            "host":      Out(host_layout(config)),
            "rdata":     In(8 * config.vl),
            **status_ports(config),
            "o":         Out(stream.Signature(8)),
            "length":    Out(8),
            "tsp_reset": Out(1),
        })

    def _wbytes(self, m):
        """Word width of the request in ``header`` (``firmware.hostlink.word_bytes``)."""
        c = self._config
        hdr = self.header
        nq = len(c.floorplan.queues)
        queue_bytes = Array(Const(word_bytes(c, Op.WRITE_INSTR, q), 8) for q in range(nq))
        m.d.comb += self.wbytes.eq(1)
        with m.Switch(hdr.op):
            with m.Case(Op.WRITE_INSTR):
                with m.If(hdr.sel < nq):
                    m.d.comb += self.wbytes.eq(queue_bytes[hdr.sel])
            for op in (Op.WRITE_MEM, Op.WRITE_LUT, Op.WRITE_MAP):
                with m.Case(op):
                    m.d.comb += self.wbytes.eq(word_bytes(c, op))

    def elaborate(self, platform):
        m = Module()
        c = self._config
        hdr = self.header
        self._wbytes(m)

        status = status_value(**{name: getattr(self, name) for name in STATUS_PORTS})
        shreg = Signal(max(len(status) + 8 * REPLY_HEADER_BYTES, 8 * c.vl))
        left = Signal(range(len(shreg) // 8 + 1))      # bytes of shreg still to send
        count = Signal(8)                               # words done
        todo = Signal(8)                                # words of a READ_MEM
        ptr = Signal(range(MAX_PAYLOAD))                # next buffer byte to read
        byte = Signal(8)                                # byte of the word being loaded
        wdata = Signal(len(self.host.data))
        cmd = Signal(HostCmd)
        host = Signal(host_layout(c))                   # the command of this state
        for name in ("cmd", "sel", "lane", "addr"):     # ... reaches the TSP next cycle,
            m.d.sync += getattr(self.host, name).eq(getattr(host, name))
        m.d.comb += self.host.data.eq(wdata)            # with wdata, a register already
        rdata_r = Signal.like(self.rdata)               # the TSP's read word, registered
        m.d.sync += rdata_r.eq(self.rdata)

        m.d.comb += [self.buf_addr.eq(ptr), self.o.payload.eq(shreg[:8])]
        host_cmds = {Op.WRITE_INSTR: HostCmd.WRITE_INSTR, Op.WRITE_MEM: HostCmd.WRITE_MEM,
                     Op.WRITE_LUT: HostCmd.WRITE_LUT, Op.WRITE_MAP: HostCmd.WRITE_MAP}
        step_lane = hdr.op == Op.WRITE_MAP      # a map is written lane by lane, the rest by address
        m.d.comb += [host.sel.eq(hdr.sel),
                     host.lane.eq(hdr.lane + Mux(step_lane, count, 0)),
                     host.addr.eq(hdr.addr + Mux(step_lane, 0, count))]

        def reply(code, length=REPLY_HEADER_BYTES, then="SEND_LAST", extra=Cat()):
            """Start the reply payload: tag, code (a ``Reply`` or an 8-bit value), ``extra``."""
            value = Cat(hdr.tag, Const(code, 8) if isinstance(code, int) else code, extra)
            m.d.sync += [shreg.eq(value), self.length.eq(length), left.eq(len(value) // 8)]
            m.next = then

        def send(then):
            """Shift ``left`` bytes of ``shreg`` out, then go to ``then``."""
            m.d.comb += self.o.valid.eq(1)
            with m.If(self.o.ready):
                m.d.sync += [shreg.eq(shreg >> 8), left.eq(left - 1)]
                with m.If(left == 1):
                    m.next = then

        # The request is judged in IDLE and acted on in DECIDE: the verdict is
        # registered so the op decode does not sit in front of the reply's
        # shift-register load (the bridge's critical path on an iCE40).
        action = Signal(_Action)
        verdict = Signal(8)

        def judge(act, code=Reply.OK):
            m.d.sync += [action.eq(act), verdict.eq(code)]

        with m.FSM():
            with m.State("IDLE"):
                m.d.sync += [ptr.eq(0), count.eq(0), byte.eq(0), wdata.eq(0)]
                with m.If(self.valid):
                    m.next = "DECIDE"
                    with m.If(self.code != Reply.OK):
                        judge(_Action.REPLY, self.code)
                    with m.Elif(hdr.op == Op.STATUS):
                        with m.If(self.words != 0):
                            judge(_Action.REPLY, Reply.BAD_LENGTH)
                        with m.Else():
                            judge(_Action.STATUS)
                    with m.Elif(~Cat(hdr.op == op for op in Op).any()):
                        judge(_Action.REPLY, Reply.BAD_OP)
                    with m.Elif(hdr.op == Op.RESET):
                        with m.If(self.words != 0):
                            judge(_Action.REPLY, Reply.BAD_LENGTH)
                        with m.Else():
                            judge(_Action.RESET)
                    with m.Elif(self.running):
                        judge(_Action.REPLY, Reply.BUSY)
                    with m.Elif(hdr.op == Op.START):
                        with m.If(self.words != 0):
                            judge(_Action.REPLY, Reply.BAD_LENGTH)
                        with m.Else():
                            judge(_Action.START)
                    with m.Elif(hdr.op == Op.READ_MEM):
                        with m.If(self.words != 1):
                            judge(_Action.REPLY, Reply.BAD_LENGTH)
                        with m.Else():
                            judge(_Action.READ)
                    with m.Elif(self.words == 0):
                        judge(_Action.REPLY, Reply.BAD_LENGTH)
                    with m.Else():
                        judge(_Action.WRITE)
                        with m.Switch(hdr.op):
                            for op, hc in host_cmds.items():
                                with m.Case(op):
                                    m.d.sync += cmd.eq(hc)
            with m.State("DECIDE"):
                with m.Switch(action):
                    with m.Case(_Action.REPLY):
                        reply(verdict)
                    with m.Case(_Action.STATUS):
                        reply(Reply.OK, REPLY_HEADER_BYTES + len(status) // 8, extra=status)
                    with m.Case(_Action.START):
                        m.d.comb += host.cmd.eq(HostCmd.START)
                        reply(Reply.OK)
                    with m.Case(_Action.RESET):
                        m.d.comb += self.tsp_reset.eq(1)
                        reply(Reply.OK)
                    with m.Case(_Action.READ):
                        m.next = "READ_COUNT"
                    with m.Case(_Action.WRITE):
                        m.next = "LOAD_ADDR"

            # -- write ops: assemble a word from the buffer, issue it, next word
            with m.State("LOAD_ADDR"):                  # buffer[ptr] is read this cycle
                m.next = "LOAD_DATA"
            with m.State("LOAD_DATA"):
                m.d.sync += [wdata.word_select(byte, 8).eq(self.buf_data), ptr.eq(ptr + 1)]
                with m.If(byte + 1 == self.wbytes):
                    m.next = "ISSUE"
                with m.Else():
                    m.d.sync += byte.eq(byte + 1)
                    m.next = "LOAD_ADDR"
            with m.State("ISSUE"):
                m.d.comb += host.cmd.eq(cmd)
                # wdata is kept for the cycle the command reaches the TSP; the next
                # word overwrites the same bytes (a request's words are all one width)
                m.d.sync += [count.eq(count + 1), byte.eq(0)]
                with m.If(count + 1 == self.words):
                    reply(Reply.OK)
                with m.Else():
                    m.next = "LOAD_ADDR"

            # -- READ_MEM: the count from the buffer, then word by word
            with m.State("READ_COUNT"):                 # buffer[0] arrives this cycle
                m.d.sync += todo.eq(self.buf_data)
                with m.If((self.buf_data == 0) | (self.buf_data > max_read(c))):
                    reply(Reply.BAD_ARG)
                with m.Else():
                    reply(Reply.OK, REPLY_HEADER_BYTES + self.buf_data * c.vl, then="SEND_HEAD")
            with m.State("SEND_HEAD"):
                send("READ_ISSUE")
            with m.State("READ_ISSUE"):
                m.d.comb += host.cmd.eq(HostCmd.READ_MEM)
                m.next = "READ_WAIT"
            with m.State("READ_WAIT"):                  # the TSP has the command
                m.next = "READ_WAIT_1" if read_mem_latency(c) > 1 else "READ_DATA"
            for n in range(1, read_mem_latency(c)):     # the word in the slice's pipeline
                with m.State(f"READ_WAIT_{n}"):
                    m.next = f"READ_WAIT_{n + 1}" if n + 1 < read_mem_latency(c) else "READ_DATA"
            with m.State("READ_DATA"):                  # the TSP's rdata holds the word
                m.next = "READ_LATCH"
            with m.State("READ_LATCH"):                 # rdata_r holds the word now
                m.d.sync += [shreg.eq(rdata_r), left.eq(c.vl), count.eq(count + 1)]
                m.next = "SEND_WORD"
            with m.State("SEND_WORD"):
                with m.If(count == todo):
                    send("END")
                with m.Else():
                    send("READ_ISSUE")

            with m.State("SEND_LAST"):
                send("END")
            with m.State("END"):
                m.d.comb += self.ack.eq(1)
                m.next = "IDLE"
        return m


class HostBridge(wiring.Component):
    """The UART host link in front of a :class:`~rtl.top.TSP`: pins on one side, the
    host port and status on the other (see :class:`LinkedTSP` for the wiring).

    ``divisor`` is clocks per bit (``clk_freq // baud``); ``timeout_bytes`` the
    silence inside a frame, in byte times, after which the frame is dropped
    (``FRAME_TIMEOUT_BYTES`` by default, which the client assumes).
    ``tsp_reset`` is high for one cycle after the executor takes a ``RESET`` request.
    With ``reset_register`` (the default) it comes from a register: it resets every
    register of the TSP, a net across the whole chip, and from the executor's decision
    it was the critical path of the first timing-driven ULX3S route (45.81 MHz: 20.2 of
    its 21.8 ns in routing). Without it, it is high in the cycle of the decision: the
    iCEBreaker's build, whose UP5K this register would overfill (5,330 of 5,280 logic
    cells, measured; 5,260 without it).
    """

    def __init__(self, config, divisor, timeout_bytes=FRAME_TIMEOUT_BYTES, reset_register=True):
        _check_divisor(divisor)
        self._reset_register = reset_register
        self._config = config
        self._divisor = divisor
        self._timeout = timeout_bytes * BITS_PER_BYTE * divisor
        super().__init__({
            "rx":        In(1, init=1),
            "tx":        Out(1, init=1),
            "host":      Out(host_layout(config)),
            "rdata":     In(8 * config.vl),
            **status_ports(config),
            "tsp_reset": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.uart_rx = urx = UARTReceiver(self._divisor)
        m.submodules.uart_tx = utx = UARTTransmitter(self._divisor)
        m.submodules.receiver = rcv = FrameReceiver(self._timeout)
        m.submodules.executor = exe = CommandExecutor(self._config)
        m.submodules.framer = fr = ReplyFramer()
        # The executor reads the buffer only while the receiver holds a whole frame
        # and writes nothing: a collision's read is never used.
        m.submodules.buffer = buf = rw_dont_care_memory(shape=8,
                                                        depth=MAX_PAYLOAD - HEADER_BYTES)
        w = buf.write_port()
        r = buf.read_port(domain="sync")

        m.d.comb += [urx.rx.eq(self.rx), self.tx.eq(utx.tx)]
        m.submodules.rx_fifo = fifo = SyncFIFOBuffered(width=8, depth=RX_FIFO_BYTES)
        m.d.comb += [fifo.w_data.eq(urx.o.payload), fifo.w_en.eq(urx.o.valid)]
        wiring.connect(m, fifo.r_stream, rcv.i)
        m.d.comb += [w.addr.eq(rcv.buf_addr), w.data.eq(rcv.buf_data), w.en.eq(rcv.buf_en),
                     r.addr.eq(exe.buf_addr), exe.buf_data.eq(r.data)]
        m.d.comb += [exe.valid.eq(rcv.valid), exe.code.eq(rcv.code), exe.header.eq(rcv.header),
                     exe.words.eq(rcv.words), rcv.wbytes.eq(exe.wbytes), rcv.ack.eq(exe.ack)]
        m.d.comb += self.host.eq(exe.host)
        if self._reset_register:
            m.d.sync += self.tsp_reset.eq(exe.tsp_reset)
        else:
            m.d.comb += self.tsp_reset.eq(exe.tsp_reset)
        for name in ("rdata",) + STATUS_PORTS:
            m.d.comb += getattr(exe, name).eq(getattr(self, name))
        wiring.connect(m, exe.o, fr.i)
        m.d.comb += fr.length.eq(exe.length)
        wiring.connect(m, fr.o, utx.i)
        return m


class LinkedTSP(wiring.Component):
    """A :class:`~rtl.top.TSP` driven through a :class:`HostBridge`: what a board carries.

    Members
    -------
    rx : In(1), tx : Out(1)
        The UART pins (idle high).
    running, done, error : Out(1)
        For LEDs.
    """

    rx: In(1, init=1)
    tx: Out(1, init=1)
    running: Out(1)
    done: Out(1)
    error: Out(1)

    def __init__(self, config, divisor, timeout_bytes=FRAME_TIMEOUT_BYTES, reset_register=True,
                 **tsp_args):
        self.tsp = TSP(config, **tsp_args)
        self.bridge = HostBridge(config, divisor, timeout_bytes, reset_register)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.bridge = br = self.bridge
        # RESET: the TSP's registers (run state, counters, errors, sequencers, stream
        # hops) return to their reset values; memories keep their contents.
        tsp = self.tsp
        m.submodules.tsp = ResetInserter(br.tsp_reset)(tsp)
        m.d.comb += [br.rx.eq(self.rx), self.tx.eq(br.tx), tsp.host.eq(br.host)]
        for name in ("rdata",) + STATUS_PORTS:
            m.d.comb += getattr(br, name).eq(getattr(tsp, name))
        m.d.comb += [self.running.eq(tsp.running), self.done.eq(tsp.done),
                     self.error.eq(tsp.errors.any())]
        return m
