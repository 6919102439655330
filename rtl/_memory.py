"""Block RAM whose reads never need a word written in the same cycle.

A memory with one synchronous read port and one write port whose read, in a cycle
that also writes the same address, is never used carries the Yosys attribute
``no_rw_check``: its read data in
such a cycle is then a don't-care. FPGA block RAM does not define that case
(iCE40 ``SB_RAM40_4K``, ECP5 ``DP16KD`` between its two ports), so without the
attribute Yosys adds soft logic to every such memory to return the old word: a
register of the write data and address, an address comparator and a multiplexer
on the read data. Yosys reads the attribute only when it makes a read port
synchronous itself (``memory_dff``); Amaranth's read ports are synchronous
already, so the board build applies it (``boards.build.NO_RW_CHECK_SCRIPT``).

Simulation is not changed: Amaranth returns the old word as always, and the tests
compare against that.
"""

from amaranth.lib import memory


__all__ = ["NO_RW_CHECK", "rw_dont_care_memory"]


#: The attribute (``attrs=`` of ``amaranth.lib.memory.Memory``).
NO_RW_CHECK = {"no_rw_check": 1}


def rw_dont_care_memory(*, shape, depth):
    """A :class:`~amaranth.lib.memory.Memory` (empty at reset) with
    :data:`NO_RW_CHECK`. The caller makes exactly one read port (synchronous) and
    one write port, and says at the call why a collision's read is never used."""
    return memory.Memory(shape=shape, depth=depth, init=[], attrs=NO_RW_CHECK)
