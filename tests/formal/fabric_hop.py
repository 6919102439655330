"""The stream hop (``rtl/fabric.py``, ``docs/ARCHITECTURE.md`` section 2).

Every cycle, for every position, direction, tile, stream and lane::

    east'[p+1] = emitted(p) if slice p emits this cycle else east[p]
    west'[p-1] = emitted(p) if slice p emits this cycle else west[p]

``east[0]`` and ``west[N-1]`` read zero, and ``clear`` (the host's ``START``)
leaves every register zero in the next cycle. Emits and emitted values are free
inputs: the solver drives any pattern it likes.

Besides that one-cycle rule the bench follows one value end to end, as the
architecture states it: a value the solver picks (position, direction, tile,
stream, lane and cycle all free) is seen one position further every cycle until
a slice on its way emits onto its stream, or it falls off the edge. Both
properties are 1-inductive, so ``prove`` mode closes them for any number of
cycles.
"""

from amaranth.hdl import Module, Mux, Signal, Assert, Assume
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In

from firmware.machine import Dir

from rtl.fabric import StreamFabric, stream_layout, emit_layout

from .common import formal_config, no_reset, first_cycle, frozen, past
from .mutants import Edit, mutant


__all__ = ["CONFIG", "HopBench", "broken"]

CONFIG = formal_config("formal_fabric")


def _bits(count):
    """Bits of a free input that picks one of ``count`` things."""
    return max(1, (count - 1).bit_length())


class HopBench(wiring.Component):
    """Drives a :class:`~rtl.fabric.StreamFabric` (or ``fabric_cls``, a broken variant)
    from free inputs and asserts the hop rule and the end-to-end walk of one value."""

    def __init__(self, config=CONFIG, fabric_cls=StreamFabric):
        self._config = config
        self.fabric = fabric_cls(config)
        n = config.floorplan.width
        streams = data.ArrayLayout(stream_layout(config), n)
        emits = data.ArrayLayout(emit_layout(config), n)
        super().__init__({
            "clear":  In(1),
            "e_out":  In(streams),
            "w_out":  In(streams),
            "e_emit": In(emits),
            "w_emit": In(emits),
            # which value to follow: chosen in the first cycle, launched when `launch`
            # (at least one bit each: smtbmc cannot write a trace of a 0-bit port)
            "pick_pos":    In(_bits(n)),
            "pick_west":   In(1),
            "pick_tile":   In(_bits(config.tiles)),
            "pick_stream": In(_bits(config.streams)),
            "pick_lane":   In(_bits(config.lanes)),
            "launch":      In(1),
        })

    def elaborate(self, platform):
        m = Module()
        c = self._config
        n = c.floorplan.width
        no_reset(m)
        first = first_cycle(m)
        m.submodules.fabric = fab = self.fabric
        for name in ("clear", "e_out", "w_out", "e_emit", "w_emit"):
            m.d.comb += getattr(fab, name).eq(getattr(self, name))

        # -- the one-cycle rule, for every register ------------------------------------
        was_clear = past(m, self.clear, "clear")
        started = ~first                     # there is a previous cycle to compare with
        for d in Dir:
            seen = fab.e_in if d is Dir.E else fab.w_in
            out = self.e_out if d is Dir.E else self.w_out
            emit = self.e_emit if d is Dir.E else self.w_emit
            prev_seen = past(m, seen, f"{d.name}_seen")
            prev_out = past(m, out, f"{d.name}_out")
            prev_emit = past(m, emit, f"{d.name}_emit")
            edge = 0 if d is Dir.E else n - 1
            m.d.comb += Assert(seen[edge].as_value() == 0)
            for p in c.floorplan.hop_positions(d):
                src = p - d.step                 # the slice that drives this register
                with m.If(started):
                    for k in range(c.tiles):
                        for s in range(c.streams):
                            expect = Mux(was_clear, 0,
                                         Mux(prev_emit[src][k][s], prev_out[src][k][s].as_value(),
                                             prev_seen[src][k][s].as_value()))
                            m.d.comb += Assert(seen[p][k][s].as_value() == expect)
                with m.Else():                   # the first cycle: nothing was ever emitted
                    m.d.comb += Assert(seen[p].as_value() == 0)

        # -- one value, end to end ---------------------------------------------------------
        pos0 = frozen(m, self.pick_pos, first, "pick_pos")
        west = frozen(m, self.pick_west, first, "pick_west")
        k = frozen(m, self.pick_tile, first, "pick_tile")
        s = frozen(m, self.pick_stream, first, "pick_stream")
        lane = frozen(m, self.pick_lane, first, "pick_lane")
        m.d.comb += [Assume(pos0 < n), Assume(k < c.tiles), Assume(s < c.streams),
                     Assume(lane < c.lanes)]

        def at(view, pos):
            """The followed tile/stream/lane of ``view`` at position ``pos``."""
            sel = Signal(8, name="at_value")
            with m.Switch(pos):
                for p in range(n):
                    with m.Case(p):
                        m.d.comb += sel.eq(view[p].as_value().word_select(
                            (k * c.streams + s) * c.lanes + lane, 8))
            return sel

        def emits_at(emit, pos):
            bit = Signal(name="emits_here")
            with m.Switch(pos):
                for p in range(n):
                    with m.Case(p):
                        m.d.comb += bit.eq(emit[p].as_value().bit_select(k * c.streams + s, 1))
            return bit

        alive = Signal()
        pos = Signal(range(n))
        value = Signal(8)
        here = Mux(west, at(fab.w_in, pos), at(fab.e_in, pos))
        overwritten = Mux(west, emits_at(self.w_emit, pos), emits_at(self.e_emit, pos))
        off_edge = Mux(west, pos == 0, pos == n - 1)
        with m.If(alive):
            m.d.comb += Assert(here == value)     # it is where it should be, unchanged
            with m.If(self.clear | overwritten | off_edge):
                m.d.sync += alive.eq(0)
            with m.Else():
                m.d.sync += pos.eq(Mux(west, pos - 1, pos + 1))
        with m.Elif(self.launch):
            start = Mux(west, at(fab.w_in, pos0), at(fab.e_in, pos0))
            m.d.sync += [value.eq(start), pos.eq(pos0)]
            with m.If(~(self.clear | Mux(west, emits_at(self.w_emit, pos0),
                                         emits_at(self.e_emit, pos0))
                        | Mux(west, pos0 == 0, pos0 == n - 1))):
                m.d.sync += [alive.eq(1), pos.eq(Mux(west, pos0 - 1, pos0 + 1))]
        return m


#: Broken variants of ``rtl/fabric.py`` the properties must catch: name -> edits.
BROKEN = {
    "hop_holds_two_cycles": [Edit(
        "                    m.d.sync += reg[k][s].eq(upstream[k][s])",
        "                    held = Signal.like(upstream[k][s])\n"
        "                    m.d.sync += [held.eq(upstream[k][s]), reg[k][s].eq(held)]",
        "a value takes two cycles per hop")],
    "emit_ignored": [Edit("                with m.If(emit[k][s]):",
                          "                with m.If(0):",
                          "a slice's emit does not overwrite the stream")],
    "clear_forgotten": [Edit("        with m.If(self.clear):",
                             "        with m.If(0):",
                             "START leaves old values on the streams")],
}


def broken(name):
    """The bench on the broken fabric ``name`` (a key of :data:`BROKEN`)."""
    return HopBench(fabric_cls=mutant("rtl.fabric", BROKEN[name]).StreamFabric)
