"""The stream fabric: one hop register per position, direction, tile, stream and lane.

``east[p]`` is the eastward value slice ``p`` sees this cycle, the register
between positions ``p-1`` and ``p``; ``west[p]`` the westward one between
``p+1`` and ``p`` (``docs/ARCHITECTURE.md`` section 2). Each cycle a value
moves one hop in its direction unless the slice it passes emits onto that
stream, which overwrites it. Nothing enters at the edges: ``east[0]`` and
``west[N-1]`` are constant zero, and values pushed past the far edge are lost.

Tiles are independent here: tile ``k``'s registers carry tile ``k``'s lanes,
which run ``k`` cycles behind tile 0 because their instructions do.
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out


__all__ = ["stream_layout", "emit_layout", "StreamFabric"]


def stream_layout(config):
    """All streams of one direction at one position: ``[tile][stream][lane]`` bytes."""
    return data.ArrayLayout(data.ArrayLayout(data.ArrayLayout(8, config.lanes),
                                             config.streams), config.tiles)


def emit_layout(config):
    """Emit enables of one direction at one position: bit ``s`` of ``[tile]``."""
    return data.ArrayLayout(config.streams, config.tiles)


class StreamFabric(wiring.Component):
    """The hop registers of every slice position, both directions.

    Members
    -------
    clear : In(1)
        Zero every hop register (the host's ``start``), so a run never sees
        values left over from the previous one.
    e_in, w_in : Out(ArrayLayout(stream_layout, N))
        What slice ``p`` reads this cycle: ``east[p]``, ``west[p]``.
    e_out, w_out : In(ArrayLayout(stream_layout, N))
        What slice ``p`` drives towards ``p+1`` (east) / ``p-1`` (west).
    e_emit, w_emit : In(ArrayLayout(emit_layout, N))
        Which of those streams slice ``p`` actually drives this cycle.
    """

    def __init__(self, config):
        self._config = config
        n = config.floorplan.width
        streams = data.ArrayLayout(stream_layout(config), n)
        emits = data.ArrayLayout(emit_layout(config), n)
        super().__init__({
            "clear":  In(1),
            "e_in":   Out(streams),
            "w_in":   Out(streams),
            "e_out":  In(streams),
            "w_out":  In(streams),
            "e_emit": In(emits),
            "w_emit": In(emits),
        })

    def elaborate(self, platform):
        m = Module()
        c = self._config
        n = c.floorplan.width
        layout = stream_layout(c)
        east = [Signal(layout, name=f"east_{p}") for p in range(n)]
        west = [Signal(layout, name=f"west_{p}") for p in range(n)]
        for p in range(n):
            m.d.comb += [self.e_in[p].eq(east[p]), self.w_in[p].eq(west[p])]
        # east[0] and west[n-1] have no driver: they stay zero.
        for p in range(n - 1):
            self._hop(m, east[p + 1], east[p], self.e_out[p], self.e_emit[p])
            self._hop(m, west[p], west[p + 1], self.w_out[p + 1], self.w_emit[p + 1])
        with m.If(self.clear):
            m.d.sync += [reg.eq(0) for reg in east[1:] + west[:-1]]
        return m

    def _hop(self, m, reg, upstream, driven, emit):
        """``reg <= emit ? driven : upstream``, per tile and stream."""
        c = self._config
        for k in range(c.tiles):
            for s in range(c.streams):
                with m.If(emit[k][s]):
                    m.d.sync += reg[k][s].eq(driven[k][s])
                with m.Else():
                    m.d.sync += reg[k][s].eq(upstream[k][s])
