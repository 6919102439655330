"""SECDED ECC of the MEM words: the one definition of the code, for gateware and golden model.

Granularity: one codeword per tile per word
--------------------------------------------
A MEM word is ``VL`` bytes, but tile ``k`` stores only its ``L = config.lanes``
bytes, and it reads and writes them ``k`` cycles after tile 0 (the superlane
stagger): no two tiles ever hold their parts of a word at the same time. So a
codeword cannot span tiles; the widest it can be is one tile's ``8 * L`` data
bits, and that is what is protected: every tile's part of every word is one
codeword of ``8 * L`` data bits and ``r`` check bits (:func:`check_bits`):

=====  =========  ==========  ========
lanes  data bits  check bits  codeword
=====  =========  ==========  ========
1      8          5           13
2      16         6           22        (``tiny`` and ``ulx3s``)
4      32         7           39
8      64         8           72        (the classic (72, 64))
16     128        9           137       (``groq``, golden model only)
=====  =========  ==========  ========

A smaller codeword costs more: a byte-wide code needs 5 check bits per byte
(62 % more storage), one per tile word of 2 lanes 6 per 2 bytes (37 %), of 4
lanes 7 per 4 bytes (22 %).

Where the check bits live: in a block RAM of their own per tile
(``MemSlice.checks[k]`` in ``rtl/mem.py``), not in widened data banks, because
the data already fill the block RAMs' width. ``tiny`` (iCE40): a tile's part
of a bank is 256 x 16 bits, one SB_RAM40_4K at its full 16-bit width.
``ulx3s`` (ECP5): 1024 x 16 bits, one DP16KD in its 1024 x 18 mode (2 spare
bits; at 4 lanes it would be 512 x 32 in the 512 x 36 mode, 4 spare bits, and
7 check bits fit that no better). Banks widened to 22 bits would take a second
block RAM *each*. A tile does at most one read and one write per cycle (an
``RW`` reads one bank and writes the other), which is exactly what one
pseudo-dual-port block RAM does, so a single check RAM of ``2 * bank_words``
words serves both banks: 512 x 6 bits is one SB_RAM40_4K in its 512 x 8 mode,
2048 x 6 bits one DP16KD in its 2048 x 9 mode. ECC thus costs one block RAM per
tile per MEM slice (+50 % of the MEM's block RAMs), not two.

The code
--------
A Hsiao code (odd-weight-column SECDED): the parity-check column of check bit
``j`` is ``1 << j``; the column of each data bit is a distinct odd-weight
(3, 5, ...) ``r``-bit value, chosen lightest first and spread so that every
check bit covers about the same number of data bits (balanced XOR trees). The
check bits of data ``d`` are the XOR of the columns of its set bits. On read,
the syndrome is the stored check bits XOR those recomputed from the data read:

* zero: no error;
* equal to a column: a single-bit error in that data or check bit, corrected;
* anything else (every double-bit error: two odd columns XOR to a nonzero even
  value, which is no column): uncorrectable; the data pass through as read.

Three or more flipped bits may be miscorrected; that is SECDED's limit.

Bit numbering of a codeword (fault injection): bits ``0 .. 8L-1`` are the data,
lane ``j`` of the tile in bits ``8j .. 8j+7``; bits ``8L .. 8L+r-1`` are the
check bits.
"""

from dataclasses import dataclass
from functools import lru_cache
from itertools import combinations

import numpy as np


__all__ = ["Secded", "code_for", "check_bits", "EccStatus", "Fault", "FaultError",
           "encode_word", "correct_memory"]


class FaultError(ValueError):
    """A fault that names no bit of the machine; the message names the field."""


def check_bits(data_bits):
    """Check bits of a Hsiao SECDED code over ``data_bits``: the least ``r`` with
    enough distinct odd-weight columns of weight 3 or more (``2**(r-1) - r``)."""
    if not isinstance(data_bits, int) or data_bits < 1:
        raise ValueError(f"data_bits must be a positive integer, not {data_bits!r}")
    r = 2
    while (1 << (r - 1)) - r < data_bits:
        r += 1
    return r


class Secded:
    """The SECDED code over ``data_bits`` data bits (see the module docstring).

    ``columns[i]``: the parity-check column of data bit ``i`` (an ``r``-bit int);
    ``covers[j]``: the data bits check bit ``j`` is the XOR of.
    """

    def __init__(self, data_bits):
        self.data_bits = data_bits
        self.check_bits = r = check_bits(data_bits)
        load = [0] * r                          # data bits each check bit covers so far
        columns = []
        for weight in range(3, r + 1, 2):
            pool = [sum(1 << b for b in combo) for combo in combinations(range(r), weight)]
            while pool and len(columns) < data_bits:
                # the candidate that adds to the least loaded check bits (first on ties)
                best = min(pool, key=lambda col: sum(load[b] for b in range(r) if col >> b & 1))
                pool.remove(best)
                columns.append(best)
                for b in range(r):
                    load[b] += best >> b & 1
        self.columns = tuple(columns)
        self.covers = tuple(tuple(i for i, col in enumerate(columns) if col >> j & 1)
                            for j in range(r))
        #: syndrome -> codeword bit it corrects (data bits first, then check bits)
        self._bit_of = {col: i for i, col in enumerate(columns)}
        self._bit_of.update({1 << j: data_bits + j for j in range(r)})

    @property
    def codeword_bits(self):
        return self.data_bits + self.check_bits

    def encode(self, data):
        """Check bits (int) of ``data`` (int of ``data_bits`` bits)."""
        check = 0
        i = 0
        while data:
            if data & 1:
                check ^= self.columns[i]
            data >>= 1
            i += 1
        return check

    def decode(self, data, check):
        """``(data, corrected, uncorrectable)`` of a stored codeword: the data
        corrected where one bit was flipped, as read where the error is uncorrectable."""
        syndrome = check ^ self.encode(data)
        if not syndrome:
            return data, False, False
        bit = self._bit_of.get(syndrome)
        if bit is None:
            return data, False, True
        if bit < self.data_bits:
            data ^= 1 << bit
        return data, True, False


@lru_cache(maxsize=None)
def _code(data_bits):
    return Secded(data_bits)


def code_for(config):
    """The code of ``config``'s MEM words (one tile's ``8 * lanes`` bits), or ``None``
    when the configuration has no ECC (``config.ecc`` false)."""
    return _code(8 * config.lanes) if config.ecc else None


def encode_word(config, word):
    """Check bits of every tile of one ``VL``-byte word: a list of ``tiles`` ints."""
    code = code_for(config)
    L = config.lanes
    word = np.asarray(word, np.uint8)
    return [code.encode(int.from_bytes(word[k * L:(k + 1) * L].tobytes(), "little"))
            for k in range(config.tiles)]


def correct_memory(config, memory, checks):
    """The words a host reads back: ``memory`` (uint8 ``[mem_words, VL]``, as stored)
    with every single-bit error corrected, given ``checks`` (``{addr: [check bits
    per tile]}`` for the words whose stored check bits may disagree with their
    data; every other word is a clean codeword)."""
    code = code_for(config)
    out = memory.copy()
    L = config.lanes
    for addr, per_tile in checks.items():
        for k, check in enumerate(per_tile):
            lanes = slice(k * L, (k + 1) * L)
            data = int.from_bytes(out[addr, lanes].tobytes(), "little")
            data, _, _ = code.decode(data, check)
            out[addr, lanes] = np.frombuffer(data.to_bytes(L, "little"), np.uint8)
    return out


@dataclass(frozen=True)
class EccStatus:
    """What the host reads about the ECC after a run (cleared by ``START``).

    ``corrected``: single-bit errors corrected by reads of the program (each
    tile's codeword counts once per read); ``failed``: a read found an
    uncorrectable error (the ``MEM_ECC`` error flag); ``slice``, ``tile``,
    ``addr``: where the first one was (slice position in the floorplan), first
    in clock cycles (``local cycle + tile``), then lowest position, then lowest
    tile; all 0 while ``failed`` is false.
    """
    corrected: int = 0
    failed: bool = False
    slice: int = 0
    tile: int = 0
    addr: int = 0


@dataclass(frozen=True, order=True)
class Fault:
    """Bits flipped in one stored codeword during a run (fault injection).

    The bits flip at the start of local cycle ``cycle`` of tile ``tile`` (clock
    cycle ``cycle + tile`` after ``START``), before that cycle's reads and
    writes: a ``READ`` of the word in that cycle already sees them, a ``WRITE``
    of it in that cycle replaces them. ``bits`` number the codeword's bits
    (module docstring: data bits from 0, then the check bits). A fault whose
    cycle the run does not reach is applied when the run ends.
    """
    cycle: int
    slice: str
    tile: int
    addr: int
    bits: tuple

    def validate(self, config):
        """Raise :class:`FaultError` unless this fault names bits of ``config``'s machine."""
        from .machine import SliceKind
        fp = config.floorplan
        try:
            kind = fp.slice(self.slice).kind
        except KeyError as e:
            raise FaultError(f"fault: {e.args[0]}") from None
        if kind is not SliceKind.MEM:
            raise FaultError(f"fault: {self.slice} is not a MEM slice")
        code = code_for(config)
        width = 8 * config.lanes + (code.check_bits if code else 0)
        for name, value, limit in (("cycle", self.cycle, None), ("tile", self.tile, config.tiles),
                                   ("addr", self.addr, config.mem_words)):
            if not isinstance(value, int) or value < 0 or (limit is not None and value >= limit):
                raise FaultError(f"fault: {name} = {value!r} out of range"
                                 + (f" 0..{limit - 1}" if limit else ""))
        if not self.bits or len(set(self.bits)) != len(self.bits) or \
                not all(isinstance(b, int) and 0 <= b < width for b in self.bits):
            raise FaultError(f"fault: bits {self.bits!r} must be distinct codeword bits 0..{width - 1}"
                             + ("" if code else " (this configuration has no ECC check bits)"))

    def masks(self, config):
        """``(data, check)``: the XOR masks of the tile's data bits and check bits."""
        data_bits = 8 * config.lanes
        data = sum(1 << b for b in self.bits if b < data_bits)
        check = sum(1 << (b - data_bits) for b in self.bits if b >= data_bits)
        return data, check
