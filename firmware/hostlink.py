"""The host link: a framed request/reply protocol over a UART, and its Python client.

The gateware side (``rtl/hostlink.py``) and the client below both take every
number of the protocol from this module.

Frames
------
Both directions use the same frame::

    SOF  LEN  payload[LEN]  CRC_HI  CRC_LO

``SOF`` is :data:`SOF`; ``LEN`` is one byte (so at most :data:`MAX_PAYLOAD`
payload bytes, which bounds the bridge's frame buffer to one block RAM); the
CRC is CRC-16/IBM-3740 (also known as CRC-16/CCITT-FALSE: polynomial 0x1021,
initial value 0xFFFF, no reflection, no final XOR; check value 0x29B1 for
``b"123456789"``, reveng catalogue) over ``LEN`` and the payload, sent most
significant byte first, so that the receiver's CRC register reads zero after
the whole frame.

A request payload starts with the :data:`HEADER` (tag, op, sel, lane, addr;
little-endian) followed by whole data words of :func:`word_bytes` each. A
reply payload is the request's tag, a :class:`Reply` code, and for
``STATUS`` / ``READ_MEM`` their data. The tag lets the client tell its reply
from a stray one (the bridge answers a corrupt frame with the tag bytes it
received, which may be garbage).

Resynchronisation: the bridge hunts for ``SOF``, reads ``LEN`` and then
exactly ``LEN + 2`` more bytes; a gap of more than :data:`FRAME_TIMEOUT_BYTES`
byte times inside a frame ends it with a ``TIMEOUT`` reply. Garbage between
frames is skipped while hunting; a bad frame is answered with an error code and
never executed. The client keeps every wait bounded and raises
:class:`LinkTimeout`, :class:`CorruptReply` or :class:`ErrorReply`.
"""

import time
from collections import deque, namedtuple
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from .ecc import EccStatus
from .isa import WORD_BITS, ErrorFlag
from .machine import SliceKind, get_config


__all__ = [
    "SOF", "MAX_PAYLOAD", "HEADER", "HEADER_BYTES", "REPLY_HEADER_BYTES", "STATUS_FIELDS",
    "STATUS_BYTES", "FRAME_TIMEOUT_BYTES", "RX_FIFO_BYTES", "BITS_PER_BYTE", "CRC16", "Op", "Reply",
    "crc16", "encode_frame", "word_bytes", "max_words", "max_read",
    "HostLinkError", "LinkTimeout", "CorruptReply", "ErrorReply",
    "Status", "HostRunResult", "HostLink", "SerialTransport", "SimTransport",
]

#: Start-of-frame byte.
SOF = 0xA5

#: Payload bytes of the longest frame (``LEN`` is one byte).
MAX_PAYLOAD = 255

#: Request header: (field, bytes), little-endian, in order.
HEADER = (("tag", 1), ("op", 1), ("sel", 1), ("lane", 2), ("addr", 2))
HEADER_BYTES = sum(n for _, n in HEADER)

#: Reply header: tag and code.
REPLY_HEADER_BYTES = 2

#: ``STATUS`` reply data: (field, bytes), little-endian, in order. ``flags`` has
#: ``running`` in bit 0 and ``done`` in bit 1; ``errors`` the ``ErrorFlag`` bits;
#: ``err_queue``/``err_cycle`` the first stopping error; ``ecc_corrected`` the
#: single-bit errors MEM reads corrected; ``ecc_slice``/``ecc_tile``/``ecc_addr``
#: the first uncorrectable read (when ``errors`` has ``MEM_ECC``; ``firmware/ecc.py``).
#: All of them as the TSP's status outputs (``rtl/top.py``), cleared by ``START``.
STATUS_FIELDS = (("flags", 1), ("cycles", 4), ("errors", 1), ("err_queue", 1), ("err_cycle", 4),
                 ("ecc_corrected", 4), ("ecc_slice", 1), ("ecc_tile", 1), ("ecc_addr", 2))
STATUS_BYTES = sum(n for _, n in STATUS_FIELDS)

#: A silence of this many byte times inside a frame ends it (``Reply.TIMEOUT``).
FRAME_TIMEOUT_BYTES = 32

#: Request bytes the bridge buffers while it executes: the most a client may
#: send without waiting for their replies.
RX_FIFO_BYTES = 512

#: UART character: start bit, 8 data bits (LSB first), stop bit.
BITS_PER_BYTE = 10


@dataclass(frozen=True)
class _Crc:
    """The parameters of a CRC in the Williams model (as ``amaranth.lib.crc.Algorithm``)."""
    name: str
    width: int
    polynomial: int
    initial: int
    reflect: bool
    xor_output: int
    check: int          # CRC of b"123456789"


#: CRC-16/IBM-3740 (= CRC-16/CCITT-FALSE), https://reveng.sourceforge.io/crc-catalogue/16.htm
CRC16 = _Crc("CRC-16/IBM-3740", width=16, polynomial=0x1021, initial=0xFFFF, reflect=False,
             xor_output=0x0000, check=0x29B1)


class Op(IntEnum):
    """Request codes. The write ops carry words; ``READ_MEM`` one byte, the word count."""
    STATUS = 0x01
    WRITE_INSTR = 0x02     # sel = queue index; word i -> instruction addr + i
    WRITE_MEM = 0x03       # sel = MEM slice position; word i -> addr + i (VL bytes, lane 0 first)
    READ_MEM = 0x04        # sel = MEM slice position; data = count; reply: count words
    WRITE_LUT = 0x05       # lane = table; byte i -> entry addr + i
    WRITE_MAP = 0x06       # sel = SXM position, addr = map; word i -> source of lane + i
    START = 0x07
    RESET = 0x08           # stop a run; clear running, done, cycle counter and errors (served
                           # while running; memories, tables, maps and instructions are kept)


class Reply(IntEnum):
    """Reply codes. Only ``OK`` means the request was executed."""
    OK = 0
    BAD_CRC = 1        # the frame's CRC did not match: not executed
    BAD_LENGTH = 2     # payload shorter than the header, not whole words, or the wrong count
    BAD_OP = 3         # unknown op
    BUSY = 4           # the TSP is running; only STATUS is served
    TIMEOUT = 5        # the frame stopped arriving (truncated)
    BAD_ARG = 6        # READ_MEM count 0 or more than a reply holds


def crc16(data, crc=None):
    """:data:`CRC16` of ``data`` (bytes), bit by bit as the polynomial division defines it."""
    crc = CRC16.initial if crc is None else crc
    top = 1 << (CRC16.width - 1)
    mask = (1 << CRC16.width) - 1
    for byte in bytes(data):
        crc ^= byte << (CRC16.width - 8)
        for _ in range(8):
            crc = ((crc << 1) ^ CRC16.polynomial) & mask if crc & top else (crc << 1) & mask
    return crc ^ CRC16.xor_output


def encode_frame(payload):
    """One frame around ``payload`` (bytes)."""
    payload = bytes(payload)
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(payload)} bytes, a frame holds at most {MAX_PAYLOAD}")
    body = bytes([len(payload)]) + payload
    return bytes([SOF]) + body + crc16(body).to_bytes(2, "big")


def encode_request(tag, op, sel=0, lane=0, addr=0, data=b""):
    """The payload of a request (see :data:`HEADER`)."""
    values = {"tag": tag, "op": int(op), "sel": sel, "lane": lane, "addr": addr}
    head = b"".join(int(values[f]).to_bytes(n, "little") for f, n in HEADER)
    return head + bytes(data)


def word_bytes(config, op, sel=0):
    """Bytes per data word of a request ``op`` (``sel``: the queue of ``WRITE_INSTR``).

    Instruction words take their queue kind's width, MEM words one byte per
    lane; table entries one byte; map entries the bytes of a lane number.
    Every other op counts single bytes.
    """
    fp = config.floorplan
    if op == Op.WRITE_INSTR:
        if not 0 <= sel < len(fp.queues):
            return 1
        return -(-WORD_BITS[fp.queues[sel].kind] // 8)
    if op == Op.WRITE_MEM:
        return config.vl
    if op == Op.WRITE_MAP:
        return -(-max(1, (config.vl - 1).bit_length()) // 8)
    return 1


def max_words(config, op, sel=0):
    """Most data words one request ``op`` carries."""
    return (MAX_PAYLOAD - HEADER_BYTES) // word_bytes(config, op, sel)


def max_read(config):
    """Most MEM words one ``READ_MEM`` reply carries."""
    return min((MAX_PAYLOAD - REPLY_HEADER_BYTES) // config.vl, 255)


# -- client ---------------------------------------------------------------------


class HostLinkError(RuntimeError):
    """Base of the host link's errors."""


class LinkTimeout(HostLinkError):
    """No (complete) reply within the timeout."""


class CorruptReply(HostLinkError):
    """A reply arrived but is malformed (bad CRC, wrong tag or length)."""


class ErrorReply(HostLinkError):
    """The bridge answered with an error code; the request was not executed."""

    def __init__(self, code, request):
        self.code = code
        super().__init__(f"{request}: the bridge answered {code.name}")


class Status(namedtuple("Status", "running done cycles errors err_queue err_cycle "
                                  "ecc_corrected ecc_slice ecc_tile ecc_addr")):
    """The TSP's status, as ``STATUS`` returns it (see :data:`STATUS_FIELDS`)."""
    __slots__ = ()

    @property
    def ecc(self):
        """The ECC fields as the golden model's ``RunResult.ecc``."""
        return EccStatus(corrected=self.ecc_corrected, failed=bool(self.errors & ErrorFlag.MEM_ECC),
                         slice=self.ecc_slice, tile=self.ecc_tile, addr=self.ecc_addr)

#: One prepared request: its frame, tag, description, and the reply data it expects.
_Request = namedtuple("_Request", "frame tag what reply_data")


@dataclass
class HostRunResult:
    """A run on the hardware, with the fields of ``sim.golden.RunResult`` it can know."""
    cycles: int              # the TSP's cycle counter at done: H + T
    errors: int              # sticky ErrorFlag bits
    err_queue: int
    err_cycle: int
    memory: dict             # MEM slice name -> uint8 [mem_words, VL] (empty unless requested)
    outputs: dict            # output name -> ndarray (ProgramImage.read_output)
    ecc: EccStatus = EccStatus()   # corrections, first uncorrectable read


class HostLink:
    """The host's side of the link: one request, one reply, every wait bounded.

    ``transport`` moves bytes (:class:`SerialTransport`, :class:`SimTransport`);
    ``config`` is the machine behind the bridge (the transport's by default);
    ``timeout`` (seconds of the transport's clock) is the base wait for a reply,
    to which the transfer time of the request and the reply is added.
    """

    def __init__(self, transport, config=None, timeout=None):
        self.transport = transport
        self.config = get_config(transport.config if config is None else config)
        self.timeout = transport.default_timeout if timeout is None else timeout
        self._tag = 0

    # -- requests -------------------------------------------------------------------

    def request(self, op, sel=0, lane=0, addr=0, data=b"", reply_data=0):
        """Send one request; return the reply's data (``reply_data`` bytes expected)."""
        return self.pipeline([self.prepare(op, sel, lane, addr, data, reply_data)])[0]

    def prepare(self, op, sel=0, lane=0, addr=0, data=b"", reply_data=0):
        """A request for :meth:`pipeline` (``op`` may be any byte, to test the bridge)."""
        self._tag = (self._tag + 1) & 0xFF
        name = Op(op).name if op in Op.__members__.values() else f"op {op:#04x}"
        frame = encode_frame(encode_request(self._tag, op, sel, lane, addr, data))
        return _Request(frame, self._tag, f"{name}(sel={sel}, lane={lane}, addr={addr})",
                        reply_data)

    def pipeline(self, requests):
        """Send ``requests`` back to back, with at most ``RX_FIFO_BYTES`` of them
        unanswered (what the bridge buffers); return their replies' data in order.

        On an error the replies still in flight are waited for and dropped, so
        the next request starts on a quiet line.
        """
        self.transport.flush_input()          # stray replies to earlier garbage
        results, in_flight = [], deque()
        try:
            for req in requests:
                while in_flight and sum(len(r.frame) for r in in_flight) + len(req.frame) \
                        > RX_FIFO_BYTES:
                    results.append(self._receive(in_flight))
                self.transport.write(req.frame)
                in_flight.append(req)
            while in_flight:
                results.append(self._receive(in_flight))
        except HostLinkError:
            pending = sum(len(r.frame) + r.reply_data + 8 for r in in_flight)
            self.transport.idle(2 * pending * BITS_PER_BYTE / self.transport.baud)
            self.transport.flush_input()
            raise
        return results

    def _receive(self, in_flight):
        """The reply to the oldest request in flight, checked."""
        byte_time = BITS_PER_BYTE / self.transport.baud
        unanswered = sum(len(r.frame) for r in in_flight)
        req = in_flight.popleft()
        expect = unanswered + req.reply_data + REPLY_HEADER_BYTES + 4
        payload = self._read_frame(self.transport.now() + self.timeout + 2 * expect * byte_time,
                                   req.what)
        if len(payload) < REPLY_HEADER_BYTES:
            raise CorruptReply(f"{req.what}: reply of {len(payload)} bytes has no tag and code")
        tag, code = payload[0], payload[1]
        if code != Reply.OK:
            try:
                code = Reply(code)
            except ValueError:
                raise CorruptReply(f"{req.what}: unknown reply code {code}") from None
            raise ErrorReply(code, req.what + ("" if tag == req.tag else
                                               " (the reply carries another frame's tag)"))
        if tag != req.tag:
            raise CorruptReply(f"{req.what}: reply tag {tag}, expected {req.tag}")
        data = payload[REPLY_HEADER_BYTES:]
        if len(data) != req.reply_data:
            raise CorruptReply(f"{req.what}: {len(data)} bytes of reply data, "
                               f"expected {req.reply_data}")
        return data

    def _read_exact(self, n, deadline, what):
        out = b""
        while len(out) < n:
            left = deadline - self.transport.now()
            chunk = self.transport.read(n - len(out), left) if left > 0 else b""
            if not chunk:
                raise LinkTimeout(f"{what}: no reply within the timeout "
                                  f"({len(out)} of {n} bytes)")
            out += chunk
        return out

    def _read_frame(self, deadline, what):
        """Hunt for SOF, then read one frame and check its CRC; return the payload."""
        while self._read_exact(1, deadline, what)[0] != SOF:
            pass
        length = self._read_exact(1, deadline, what)
        rest = self._read_exact(length[0] + 2, deadline, what)
        payload, crc = rest[:-2], int.from_bytes(rest[-2:], "big")
        if crc16(length + payload) != crc:
            raise CorruptReply(f"{what}: reply CRC mismatch")
        return payload

    def _word_requests(self, op, words, width, sel=0, lane=0, addr=0, step_lane=False):
        """Requests writing ``words`` (ints of ``width`` bytes) in as few frames as fit."""
        per = (MAX_PAYLOAD - HEADER_BYTES) // width
        reqs = []
        for i in range(0, len(words), per):
            data = b"".join(int(w).to_bytes(width, "little") for w in words[i:i + per])
            reqs.append(self.prepare(op, sel=sel, lane=lane + (i if step_lane else 0),
                                     addr=addr + (0 if step_lane else i), data=data))
        return reqs

    # -- the host port ----------------------------------------------------------

    def write_queue(self, queue_index, words, addr=0):
        """Instruction words into queue ``queue_index`` (index in ``Floorplan.queues``)."""
        self.pipeline(self.queue_requests(queue_index, words, addr))

    def queue_requests(self, queue_index, words, addr=0):
        """The requests of :meth:`write_queue` (to send with :meth:`pipeline`)."""
        fp = self.config.floorplan
        if not 0 <= queue_index < len(fp.queues):
            raise ValueError(f"queue index {queue_index}: the machine has {len(fp.queues)} queues")
        if addr + len(words) > self.config.queue_depth:
            raise ValueError(f"queue {fp.queues[queue_index].name}: {addr + len(words)} words, "
                             f"its instruction memory holds {self.config.queue_depth}")
        return self._word_requests(Op.WRITE_INSTR, list(words),
                          word_bytes(self.config, Op.WRITE_INSTR, queue_index),
                          sel=queue_index, addr=addr)

    def _mem_slice(self, slice_pos):
        fp = self.config.floorplan
        if not 0 <= slice_pos < fp.width or fp.slices[slice_pos].kind is not SliceKind.MEM:
            raise ValueError(f"position {slice_pos} is not a MEM slice")

    def write_mem(self, slice_pos, addr, words):
        """MEM words (``[n, VL]`` bytes, -128..255) from ``addr`` on, in the slice at ``slice_pos``."""
        self.pipeline(self.mem_requests(slice_pos, addr, words))

    def mem_requests(self, slice_pos, addr, words):
        """The requests of :meth:`write_mem`."""
        c = self.config
        self._mem_slice(slice_pos)
        words = np.asarray(words).reshape(-1, c.vl).astype(np.int64).astype(np.uint8)
        if addr < 0 or addr + len(words) > c.mem_words:
            raise ValueError(f"MEM words {addr}..{addr + len(words) - 1}: a slice has {c.mem_words}")
        ints = [int.from_bytes(w.tobytes(), "little") for w in words]
        return self._word_requests(Op.WRITE_MEM, ints, c.vl, sel=slice_pos, addr=addr)

    def read_mem(self, slice_pos, addr, count):
        """``count`` MEM words from ``addr`` of the slice at ``slice_pos``: uint8 ``[count, VL]``."""
        c = self.config
        self._mem_slice(slice_pos)
        if addr < 0 or count < 0 or addr + count > c.mem_words:
            raise ValueError(f"MEM words {addr}..{addr + count - 1}: a slice has {c.mem_words}")
        reqs = []
        for i in range(0, count, max_read(c)):
            n = min(max_read(c), count - i)
            reqs.append(self.prepare(Op.READ_MEM, sel=slice_pos, addr=addr + i,
                                     data=bytes([n]), reply_data=n * c.vl))
        data = b"".join(self.pipeline(reqs))
        return np.frombuffer(data, np.uint8).reshape(count, c.vl).copy()

    def write_lut(self, lane, index, values):
        """VXM table entries (int8) of ``lane`` from entry ``index`` on."""
        self.pipeline(self.lut_requests(lane, index, values))

    def lut_requests(self, lane, index, values):
        """The requests of :meth:`write_lut`."""
        values = np.asarray(values).reshape(-1).astype(np.int64).astype(np.uint8)
        return self._word_requests(Op.WRITE_LUT, [int(v) for v in values], 1, lane=lane,
                                   addr=index)

    def write_map(self, slice_pos, map_id, sources, first_lane=0):
        """Permutation map ``map_id`` of the SXM at ``slice_pos``: lane ``first_lane + i``
        takes source lane ``sources[i]``."""
        self.pipeline(self.map_requests(slice_pos, map_id, sources, first_lane))

    def map_requests(self, slice_pos, map_id, sources, first_lane=0):
        """The requests of :meth:`write_map`."""
        return self._word_requests(Op.WRITE_MAP, [int(s) for s in sources],
                          word_bytes(self.config, Op.WRITE_MAP), sel=slice_pos, lane=first_lane,
                          addr=map_id, step_lane=True)

    def start(self):
        self.request(Op.START)

    def reset(self):
        """Stop whatever runs and bring the TSP to idle (its memories keep their contents)."""
        self.request(Op.RESET)

    def status(self):
        """The TSP's status: a :class:`Status`."""
        data = self.request(Op.STATUS, reply_data=STATUS_BYTES)
        values, off = {}, 0
        for name, n in STATUS_FIELDS:
            values[name] = int.from_bytes(data[off:off + n], "little")
            off += n
        flags = values.pop("flags")
        return Status(running=bool(flags & 1), done=bool(flags & 2), **values)

    def wait_done(self, timeout):
        """Poll until the run is done; :class:`LinkTimeout` after ``timeout`` seconds."""
        deadline = self.transport.now() + timeout
        while True:
            st = self.status()
            if st.done and not st.running:
                # The ECC fields and the first error's queue and cycle settle one clock
                # after done: the status frame that saw done may have caught that clock.
                return self.status()
            if self.transport.now() > deadline:
                raise LinkTimeout(f"the TSP did not finish within {timeout} s "
                                  f"(cycle counter at {st.cycles})")

    def reset_state(self):
        """Bring the link back to a known state: let any partial frame in the bridge time
        out, drop every byte that arrived, and check that the bridge answers."""
        self.transport.idle(2 * self.transport.frame_timeout)
        self.transport.flush_input()
        return self.status()

    # -- whole programs ---------------------------------------------------------

    def load_image(self, image, fresh=False):
        """Write everything ``image`` needs besides the machine (all requests pipelined).

        With ``fresh=False`` every table entry and map is written (the golden
        model assumes zero tables and identity maps where the image says
        nothing) and every MEM word the image does not set is cleared, so stale
        state of an earlier run cannot leak in. ``fresh=True`` trusts that the
        machine is in its reset state and writes only what differs from it
        (much less traffic; what the simulated board uses in tests).
        Instruction words past a queue's program are not cleared: the program
        ends at its ``HALT`` before reaching them. A queue the image leaves out
        gets a ``HALT`` in its first word (``fresh=False``), so that an earlier
        program in it does not run again.
        """
        c = self.config
        fp = c.floorplan
        if image.config != c:
            raise ValueError(f"image is for config {image.config.name!r}, the link for {c.name!r}")
        reqs = []
        for name, words in image.queues.items():
            words = list(words)
            while fresh and words and words[-1] == 0:        # a zero word is HALT, the reset state
                words.pop()
            if words:
                reqs += self.queue_requests(fp.queues.index(fp.queue(name)), words)
        if not fresh:
            used = {fp.queues.index(fp.queue(name)) for name in image.queues}
            for i in sorted(set(range(len(fp.queues))) - used):
                reqs += self.queue_requests(i, [0])          # a zero word is HALT
        for s in fp.of_kind(SliceKind.MEM):
            if fresh:
                mem = image.memory.get(s.name, {})
                for start, run in _runs(sorted(mem)):
                    reqs += self.mem_requests(s.pos, start, np.stack([mem[a] for a in run]))
            else:
                reqs += self.mem_requests(s.pos, 0, image.memory_array(s.name))
        lut = (np.zeros((c.vl, 256), np.int8) if image.lut is None
               else np.asarray(image.lut, np.int8).reshape(c.vl, -1))
        for lane in range(c.vl):
            nz = np.nonzero(lut[lane])[0]
            if not fresh:
                reqs += self.lut_requests(lane, 0, lut[lane])
            elif nz.size:
                reqs += self.lut_requests(lane, int(nz[0]), lut[lane, nz[0]:nz[-1] + 1])
        for s in fp.of_kind(SliceKind.SXM):
            maps = image.perms.get(s.name, {})
            for m in range(c.sxm_maps):
                lanes = list(maps.get(m, range(c.vl)))
                if not fresh or lanes != list(range(c.vl)):
                    reqs += self.map_requests(s.pos, m, lanes)
        self.pipeline(reqs)

    def run_image(self, image, timeout=None, fresh=False, memory=False):
        """Load ``image``, start it, wait for done, read its outputs (and with
        ``memory=True`` every MEM word) back: a :class:`HostRunResult`."""
        c = self.config
        fp = c.floorplan
        self.load_image(image, fresh=fresh)
        self.start()
        st = self.wait_done(self.timeout if timeout is None else timeout)
        mems = {}
        if memory:
            mems = {s.name: self.read_mem(s.pos, 0, c.mem_words) for s in fp.of_kind(SliceKind.MEM)}
        outputs = {}
        for name, out in image.outputs.items():
            words = out.count * (4 if out.dtype == "i32" and len(out.slices) == 1 else 1)
            view = {}
            for sname in out.slices:
                arr = np.zeros((c.mem_words, c.vl), np.uint8)
                arr[out.addr:out.addr + words] = (
                    mems[sname][out.addr:out.addr + words] if memory
                    else self.read_mem(fp.slice(sname).pos, out.addr, words))
                view[sname] = arr
            outputs[name] = out.read(view)
        return HostRunResult(cycles=st.cycles, errors=st.errors, err_queue=st.err_queue,
                             err_cycle=st.err_cycle, memory=mems, outputs=outputs,
                             ecc=st.ecc)


def _runs(addrs):
    """Consecutive runs of sorted addresses: (first, [addrs])."""
    run = []
    for a in addrs:
        if run and a != run[-1] + 1:
            yield run[0], run
            run = []
        run.append(a)
    if run:
        yield run[0], run


# -- transports ---------------------------------------------------------------------


class SerialTransport:
    """A real serial port (pyserial): the FTDI UART of a board running ``config``.

    ``frame_timeout`` matches the bridge's (:data:`FRAME_TIMEOUT_BYTES` byte
    times at ``baud``).
    """

    default_timeout = 1.0

    def __init__(self, port, config, baud=115200):
        import serial      # only hosts with real hardware need pyserial
        self.config = get_config(config)
        self.baud = baud
        self._port = serial.Serial(port, baud, timeout=0)
        self.frame_timeout = FRAME_TIMEOUT_BYTES * BITS_PER_BYTE / baud

    def now(self):
        return time.monotonic()

    def write(self, data):
        self._port.write(data)
        self._port.flush()

    def read(self, n, timeout):
        """Up to ``n`` bytes; at least one unless ``timeout`` seconds pass first."""
        self._port.timeout = max(timeout, 0)
        return self._port.read(max(1, min(n, self._port.in_waiting)))

    def flush_input(self):
        self._port.reset_input_buffer()

    def idle(self, seconds):
        """Keep the line quiet for ``seconds`` (``write`` has already sent everything)."""
        time.sleep(seconds)

    def close(self):
        self._port.close()


class SimTransport:
    """The simulated board: ``rtl.hostlink.LinkedTSP`` in Amaranth's simulator, its
    UART pins driven and sampled bit by bit, ``divisor`` clocks per bit.

    Time is the simulator's (``clk_freq`` Hz): the simulation advances only
    while the client waits for bytes (:meth:`read`) or idles, so a timeout of
    the client is simulated time, however slow the simulation runs. ``kinds``
    is passed to the TSP (a MEM-only machine simulates faster). ``dut`` replaces
    the ``LinkedTSP`` with another component that has its ``rx``, ``tx`` and
    ``tsp`` (the board's gateware, ``boards._common.BoardCore``, built with
    the same ``divisor`` and ``timeout_bytes``).
    """

    def __init__(self, config, divisor=4, timeout_bytes=FRAME_TIMEOUT_BYTES, clk_freq=1e6,
                 dut=None, **tsp_args):
        from amaranth.sim import Simulator          # the gateware is only needed here
        from rtl.hostlink import LinkedTSP
        self.config = get_config(config)
        self.divisor = divisor
        self.dut = dut if dut is not None else LinkedTSP(self.config, divisor, timeout_bytes,
                                                         **tsp_args)
        self.baud = clk_freq / divisor
        self.frame_timeout = timeout_bytes * BITS_PER_BYTE / self.baud
        #: Base wait for a reply: long enough for the bridge to notice a truncated frame.
        self.default_timeout = 2 * self.frame_timeout
        self.framing_errors = 0
        self._period = 1 / clk_freq
        self._cycles = 0
        self._to_dut = deque()
        self._from_dut = bytearray()
        self._requests = deque()
        self._sim = Simulator(self.dut)
        self._sim.add_clock(self._period)
        self._sim.add_testbench(self._drive_rx, background=True)
        self._sim.add_testbench(self._sample_tx, background=True)

    # -- the pins --------------------------------------------------------------

    async def _drive_rx(self, ctx):
        """Send queued bytes on ``rx``, LSB first; between bytes, serve :meth:`peek`."""
        d = self.divisor
        while True:
            while self._requests:
                fn, box = self._requests.popleft()
                box.append(fn(ctx))
            if not self._to_dut:
                await _ticks(ctx, d)
                continue
            byte = self._to_dut.popleft()
            for bit in [0] + [(byte >> i) & 1 for i in range(8)] + [1]:
                ctx.set(self.dut.rx, bit)
                await _ticks(ctx, d)

    async def _sample_tx(self, ctx):
        """Receive bytes from ``tx``: mid-bit samples after each start bit's edge."""
        d, tx = self.divisor, self.dut.tx
        while True:
            await ctx.negedge(tx)
            await _ticks(ctx, d // 2)
            if ctx.get(tx):
                continue                            # a glitch, not a start bit
            byte = 0
            for i in range(8):
                await _ticks(ctx, d)
                byte |= ctx.get(tx) << i
            await _ticks(ctx, d)
            if ctx.get(tx):
                self._from_dut.append(byte)
            else:
                self.framing_errors += 1

    def _run(self, cycles):
        self._cycles += max(1, int(cycles))
        self._sim.run_until(self._cycles * self._period)

    # -- the transport interface ---------------------------------------------------

    def now(self):
        return self._cycles * self._period

    def write(self, data):
        self._to_dut.extend(bytes(data))

    def read(self, n, timeout):
        """Up to ``n`` bytes; at least one unless ``timeout`` simulated seconds pass first."""
        left = int(timeout / self._period)
        step = BITS_PER_BYTE * self.divisor
        while not self._from_dut and left > 0:
            self._run(min(step, left))
            left -= step
        out = bytes(self._from_dut[:n])
        del self._from_dut[:n]
        return out

    def flush_input(self):
        self._from_dut.clear()

    def idle(self, seconds):
        """Finish sending what was written, then keep the line quiet for ``seconds``."""
        while self._to_dut:
            self._run(BITS_PER_BYTE * self.divisor)
        self._run(BITS_PER_BYTE * self.divisor + seconds / self._period)

    # -- looking inside (tests) ------------------------------------------------------

    def peek(self, fn):
        """``fn(ctx)`` in the simulator between two UART bits (``ctx.get`` of any signal)."""
        box = []
        self._requests.append((fn, box))
        while not box:
            self._run(self.divisor)
        return box[0]

    def peek_memory(self):
        """Every MEM word from the simulated block RAMs (no clock cycles, no link):
        slice name -> uint8 ``[mem_words, VL]``."""
        c = self.config
        tsp = self.dut.tsp

        def read(ctx):
            out = {}
            for name, mem_slice in tsp.mem_slices.items():
                words = np.zeros((c.mem_words, c.vl), np.uint8)
                for k, banks in enumerate(mem_slice.banks):
                    for b, bank in enumerate(banks):
                        for row in range(c.bank_words):
                            words[b * c.bank_words + row, k * c.lanes:(k + 1) * c.lanes] = \
                                list(ctx.get(bank.data[row]))
                out[name] = words
            return out
        return self.peek(read)


async def _ticks(ctx, n):
    """``n`` clock cycles. (Plain awaits: ``tick().repeat()`` is an async generator,
    which Python warns about when a background testbench is dropped inside it.)"""
    for _ in range(n):
        await ctx.tick()
