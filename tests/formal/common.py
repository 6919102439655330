"""Helpers the benches share: free inputs held constant, past values, tiny machines."""

from amaranth.hdl import Assume, Mux, ResetSignal, Signal

from firmware.machine import Config


__all__ = ["formal_config", "no_reset", "frozen", "past", "first_cycle"]


def formal_config(name, **fields):
    """The smallest machine that still passes :class:`Config`'s checks (2 tiles so the
    superlane stagger is real, one lane, four streams, one MEM slice per side, one
    VXM ALU, an MXM on the east side only, no SXM), with ``fields`` overriding it.
    A property of the logic of one lane of one stream holds for every one of them
    alike, so the solver gets the few bits it needs and no more."""
    base = dict(tiles=2, lanes=1, streams=4, mem_slices=1, bank_words=2, mxm=("E",), sxm=(),
                vxm_alus=1, acc_slots=1, sxm_maps=1, queue_depth=2)
    base.update(fields)
    return Config(name, **base)


def no_reset(m):
    """The solver may not pulse the ``sync`` reset: every trace starts from the
    initial values, as the chip does after configuration."""
    m.d.comb += Assume(~ResetSignal("sync"))


def first_cycle(m):
    """A signal that is high in the first cycle of the trace only."""
    first = Signal(init=1, name="first_cycle")
    m.d.sync += first.eq(0)
    return first


def frozen(m, value, first, name):
    """``value`` (a free input) as the solver chose it in the first cycle, held for
    the whole trace: how a bench asks for "any constant" (an ``AnyConst``)."""
    held = Signal.like(value, name=f"{name}_held")
    with m.If(first):
        m.d.sync += held.eq(value)
    return Mux(first, value, held)


def past(m, value, name, cycles=1):
    """``value`` as it was ``cycles`` cycles ago (its initial value before that).
    Call it outside any ``m.If``: its registers must load every cycle."""
    for i in range(cycles):
        reg = Signal.like(value, name=f"{name}_past{i + 1}")
        m.d.sync += reg.eq(value)
        value = reg
    return value
