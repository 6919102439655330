"""Instruction words as Amaranth data layouts, built from :data:`firmware.isa.OPS`.

The field lists of :mod:`firmware.isa` are the one definition of the
encodings; this module only turns them into ``amaranth.lib.data`` layouts so
that the decoders of the slices pick fields by name (``fields(kind, "READ",
word).addr``) and never by a hand-written bit range.

Every opcode layout covers the whole word of its queue kind: the bits above
the opcode's last field are a ``reserved`` field (they must be zero; a word
with reserved bits set is an illegal instruction, as in
:func:`firmware.isa.decode`).
"""

from functools import cache

from amaranth.hdl import signed, unsigned
from amaranth.lib import data

from firmware.isa import OPS, WORD_BITS, OPCODE_BITS, ERROR_BITS


__all__ = ["op_layout", "issue_layout", "fields", "opcode", "op_code", "ERROR_BITS",
           "OPCODE_BITS", "WORD_BITS"]


@cache
def op_layout(kind, mnemonic):
    """The ``StructLayout`` of one opcode of a queue kind, as wide as the kind's word.

    Field names are those of ``OPS[kind][mnemonic]`` plus ``op`` (the opcode)
    and, where the fields do not fill the word, ``reserved`` (the high bits).
    Signed fields (``REPEAT.stride``, ``imm``, ``zp``) get signed shapes.
    """
    info = OPS[kind][mnemonic]
    members = {}
    for name, _lsb, width, is_signed in info.layout():
        members[name] = signed(width) if is_signed else unsigned(width)
    spare = WORD_BITS[kind] - info.bits()
    if spare:
        members["reserved"] = unsigned(spare)
    layout = data.StructLayout(members)
    # StructLayout places members in order from bit 0, exactly as OpInfo.layout() does;
    # check it once so a change of either side cannot go unnoticed.
    for name, lsb, _width, _signed in info.layout():
        assert layout[name].offset == lsb, (kind, mnemonic, name)
    return layout


@cache
def issue_layout(kind):
    """What an instruction queue hands a slice tile each cycle: ``valid`` and the word."""
    return data.StructLayout({"valid": 1, "word": WORD_BITS[kind]})


def fields(kind, mnemonic, word):
    """A view of ``word`` (a ``WORD_BITS[kind]``-bit value) as opcode ``mnemonic``."""
    if len(word) != WORD_BITS[kind]:
        raise ValueError(f"a {kind.value} instruction word is {WORD_BITS[kind]} bits wide, "
                         f"not {len(word)}")
    return data.View(op_layout(kind, mnemonic), word)


def opcode(word):
    """The opcode bits of any instruction word (the same position in every kind)."""
    return word[:OPCODE_BITS]


def op_code(kind, mnemonic):
    """The opcode number of ``mnemonic`` in queues of ``kind`` (for ``m.Case``/compares)."""
    return OPS[kind][mnemonic].opcode
