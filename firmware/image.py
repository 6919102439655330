"""Program images: what the host loads into a TSP before ``start``.

An image is everything a run needs besides the machine itself: the
instruction words of every queue, the initial contents of the MEM slices, the
VXM lookup tables, the SXM permutation maps, and the names of the outputs
(where the program leaves its results). The assembler and the compiler make
images; the golden model, the RTL harness and the host link consume them.

The binary form (``.bin``) is a small container::

    b"TSPIMG\\x00\\x01"  magic and format version
    u32 little-endian   length of the JSON header
    JSON header         config name, queue lengths, memory segments, outputs ...
    raw blobs           in header order: queue words (little-endian, word-sized),
                        memory segments (VL bytes per word), tables, maps
"""

import json
import struct
from dataclasses import dataclass, field

import numpy as np

from .machine import get_config, SliceKind
from .isa import WORD_BITS


__all__ = ["Output", "ProgramImage", "ImageError", "DTYPES"]

MAGIC = b"TSPIMG\x00\x01"

#: Output dtypes: words per element vector, numpy dtype.
DTYPES = {"i8": (1, np.int8), "u8": (1, np.uint8), "i32": (4, np.int32)}


class ImageError(ValueError):
    pass


@dataclass(frozen=True)
class Output:
    """A named result: ``count`` vectors of ``dtype`` stored from word ``addr`` on.

    ``slice`` names one MEM slice, or for ``i32`` either one slice or four
    joined by ``/`` (``"MEM_E3/MEM_E2/MEM_E1/MEM_E0"``):

    * one slice: every vector takes 4 consecutive words, byte ``i`` of each
      lane in word ``i``;
    * four slices ("split planes", how an SG4 stream group lands when four
      MEM slices each write one of its streams): byte ``i`` of vector ``j`` is
      word ``addr + j`` of the ``i``-th slice named.
    """
    name: str
    slice: str
    addr: int
    count: int
    dtype: str = "i8"

    @property
    def slices(self):
        return tuple(self.slice.split("/"))

    def validate(self, config):
        """Raise :class:`ImageError` unless this output fits ``config``."""
        fp = config.floorplan
        if self.dtype not in DTYPES:
            raise ImageError(f"output {self.name}: dtype {self.dtype!r} is not one of "
                             f"{', '.join(DTYPES)}")
        if len(self.slices) not in ((1, 4) if self.dtype == "i32" else (1,)):
            raise ImageError(f"output {self.name}: {self.dtype} takes one slice"
                             + (" or four joined by '/'" if self.dtype == "i32" else ""))
        for name in self.slices:
            try:
                kind = fp.slice(name).kind
            except KeyError as e:
                raise ImageError(f"output {self.name}: {e.args[0]}") from None
            if kind is not SliceKind.MEM:
                raise ImageError(f"output {self.name}: {name} is not a MEM slice")
        repeated = sorted({n for n in self.slices if self.slices.count(n) > 1})
        if repeated:
            raise ImageError(f"output {self.name}: the four byte planes need four different "
                             f"MEM slices; {', '.join(repeated)} is named more than once")
        words = self.count * (4 if self.dtype == "i32" and len(self.slices) == 1 else 1)
        if self.count < 1 or self.addr < 0 or self.addr + words > config.mem_words:
            raise ImageError(f"output {self.name}: words {self.addr}..{self.addr + words - 1} "
                             f"out of range, a MEM slice has {config.mem_words}")

    def read(self, memories):
        """This output's values from memories (slice name -> uint8 [words, VL])."""
        if self.dtype != "i32":
            words = memories[self.slice][self.addr:self.addr + self.count]
            return np.asarray(words, np.uint8).view(DTYPES[self.dtype][1])
        if len(self.slices) == 1:
            words = np.asarray(memories[self.slice][self.addr:self.addr + 4 * self.count], np.uint8)
            planes = words.reshape(self.count, 4, -1).transpose(1, 0, 2)
        else:
            planes = np.stack([np.asarray(memories[s][self.addr:self.addr + self.count], np.uint8)
                               for s in self.slices])
        planes = planes.astype(np.uint32)
        v = planes[0] | planes[1] << 8 | planes[2] << 16 | planes[3] << 24
        return v.view(np.int32)


@dataclass
class ProgramImage:
    config: object
    queues: dict = field(default_factory=dict)      # queue name -> [int word, ...]
    memory: dict = field(default_factory=dict)      # slice name -> {addr: uint8[VL]}
    lut: np.ndarray | None = None                   # int8 [VL, 256] or None (all zero)
    perms: dict = field(default_factory=dict)       # SXM slice name -> {map: [VL lanes]}
    outputs: dict = field(default_factory=dict)     # name -> Output
    source: str | None = None                       # where it came from, for messages

    def __post_init__(self):
        self.config = get_config(self.config)

    # -- building -----------------------------------------------------------

    def set_words(self, slice_name, addr, data):
        """Store bytes from ``addr`` lane 0 on, ``VL`` bytes per word (zero padded)."""
        c = self.config
        fp = c.floorplan
        s = fp.slice(slice_name)
        if s.kind is not SliceKind.MEM:
            raise ImageError(f"{slice_name} is not a MEM slice")
        data = np.asarray(data)
        if data.size and (data.min() < -128 or data.max() > 255):
            raise ImageError(f"data for {slice_name} has values outside -128..255")
        flat = data.astype(np.int64).reshape(-1).astype(np.uint8)
        nwords = -(-flat.size // c.vl)
        if addr < 0 or addr + nwords > c.mem_words:
            raise ImageError(f"data for {slice_name} at {addr:#x}..{addr + nwords - 1:#x} is out "
                             f"of range, a MEM slice has {c.mem_words} words")
        padded = np.zeros(nwords * c.vl, np.uint8)
        padded[:flat.size] = flat
        mem = self.memory.setdefault(slice_name, {})
        for i in range(nwords):
            mem[addr + i] = padded[i * c.vl:(i + 1) * c.vl].copy()

    def memory_array(self, slice_name):
        """The whole initial contents of one MEM slice, uint8 [mem_words, VL]."""
        arr = np.zeros((self.config.mem_words, self.config.vl), np.uint8)
        for a, v in self.memory.get(slice_name, {}).items():
            arr[a] = v
        return arr

    def read_output(self, name, memories):
        """Values of output ``name`` from final memories (slice name -> [words, VL])."""
        return self.outputs[name].read(memories)

    # -- binary form --------------------------------------------------------

    def to_bytes(self):
        c = self.config
        blobs = []
        header = {"config": c.name, "queues": [], "memory": [], "lut": self.lut is not None,
                  "perms": [], "outputs": [vars(o) for o in self.outputs.values()]}
        fp = c.floorplan
        for qname, words in self.queues.items():
            nbytes = WORD_BITS[fp.queue(qname).kind] // 8
            header["queues"].append([qname, len(words)])
            blobs.append(b"".join(int(w).to_bytes(nbytes, "little") for w in words))
        for sname, mem in self.memory.items():
            addrs = sorted(mem)
            header["memory"].append([sname, addrs])
            blobs.append(b"".join(mem[a].astype(np.uint8).tobytes() for a in addrs))
        if self.lut is not None:
            blobs.append(np.asarray(self.lut, np.int8).tobytes())
        for sname, maps in self.perms.items():
            ids = sorted(maps)
            header["perms"].append([sname, ids])
            blobs.append(np.asarray([maps[i] for i in ids], np.uint16).tobytes())
        hdr = json.dumps(header).encode()
        return MAGIC + struct.pack("<I", len(hdr)) + hdr + b"".join(blobs)

    @classmethod
    def from_bytes(cls, data, source=None):
        what = source or "image"
        if data[:len(MAGIC)] != MAGIC:
            raise ImageError(f"{what}: not a TSP program image (bad magic)")
        try:
            (hlen,) = struct.unpack_from("<I", data, len(MAGIC))
            off = len(MAGIC) + 4
            header = json.loads(data[off:off + hlen])
            off += hlen
            img = cls(header["config"], source=source)
            c = img.config
            fp = c.floorplan

            def take(n):
                nonlocal off
                if off + n > len(data):
                    raise ImageError(f"{what}: truncated")
                blob = data[off:off + n]
                off += n
                return blob

            for qname, n in header["queues"]:
                nbytes = WORD_BITS[fp.queue(qname).kind] // 8
                raw = take(n * nbytes)
                img.queues[qname] = [int.from_bytes(raw[i * nbytes:(i + 1) * nbytes], "little")
                                     for i in range(n)]
            for sname, addrs in header["memory"]:
                raw = np.frombuffer(take(len(addrs) * c.vl), np.uint8).reshape(-1, c.vl)
                img.memory[sname] = {a: raw[i].copy() for i, a in enumerate(addrs)}
            if header["lut"]:
                img.lut = np.frombuffer(take(c.vl * 256), np.int8).reshape(c.vl, 256).copy()
            for sname, ids in header["perms"]:
                raw = np.frombuffer(take(len(ids) * c.vl * 2), np.uint16).reshape(-1, c.vl)
                img.perms[sname] = {m: [int(x) for x in raw[i]] for i, m in enumerate(ids)}
            for o in header["outputs"]:
                out = Output(**o)
                out.validate(c)
                img.outputs[out.name] = out
            if off != len(data):
                raise ImageError(f"{what}: {len(data) - off} bytes of trailing data")
        except ImageError:
            raise
        except (KeyError, TypeError, ValueError, struct.error) as e:
            raise ImageError(f"{what}: corrupt image header ({e})") from None
        return img

    def save(self, path):
        with open(path, "wb") as f:
            f.write(self.to_bytes())

    @classmethod
    def load(cls, path):
        with open(path, "rb") as f:
            return cls.from_bytes(f.read(), source=str(path))
