"""Shapes and small building blocks shared by the datapath slices (VXM, MXM, SXM).

A slice sees, per tile, ``S`` streams of ``L`` byte lanes in each direction
(``[tile][stream][lane]``, the shape of the slice interface) and drives the
same shape back into the next hop registers, with one emit bit per stream.
"""

from amaranth.hdl import Array, Const, Mux, Signal, unsigned
from amaranth.lib import data
from amaranth.lib.wiring import In, Out


__all__ = ["stream_layout", "stream_ports", "pick", "rotate", "bytes_of", "delay"]


def stream_layout(config):
    """``[tile][stream][lane]`` bytes: the stream values one slice position sees or drives."""
    return data.ArrayLayout(data.ArrayLayout(data.ArrayLayout(8, config.lanes),
                                             config.streams), config.tiles)


def stream_ports(config):
    """The six stream members every slice has (inputs, outputs, emit enables)."""
    streams = stream_layout(config)
    emit = data.ArrayLayout(unsigned(config.streams), config.tiles)
    return {
        "e_in":   In(streams),
        "w_in":   In(streams),
        "e_out":  Out(streams),
        "w_out":  Out(streams),
        "e_emit": Out(emit),
        "w_emit": Out(emit),
    }


def pick(values, index):
    """``values[index]`` as a multiplexer over ``ceil(log2(len(values)))`` index bits.

    The index's higher bits are ignored: a legal program never selects past the
    end (the ICU checks stream, ALU and map numbers), so no comparator is spent
    on it. Within the used bits, entries past the end read zero.
    """
    values = list(values)
    bits = (len(values) - 1).bit_length()
    width = max(len(value) for value in values)
    padded = values + [Const(0, width)] * ((1 << bits) - len(values))
    if bits == 0:
        return padded[0]
    return Array(padded)[index[:bits]]


def rotate(m, values, amount, name):
    """``out[i] = values[(i + amount) mod n]`` for every ``i``: a barrel rotator.

    ``log2(n)`` stages of 2-way multiplexers cost ``n * log2(n)`` 2:1 muxes per
    bit instead of ``n`` independent ``n``-way ones. ``n`` must be a power of two;
    ``amount`` is taken mod ``n``.
    """
    n = len(values)
    if n & (n - 1):
        raise ValueError(f"a barrel rotator needs a power-of-two width, not {n}")
    width = max(len(value) for value in values)
    for b in range((n - 1).bit_length()):
        step = 1 << b
        stage = []
        for i in range(n):
            sig = Signal(width, name=f"{name}_r{b}_{i}")
            m.d.comb += sig.eq(Mux(amount[b], values[(i + step) % n], values[i]))
            stage.append(sig)
        values = stage
    return values


def bytes_of(value, count):
    """The ``count`` little-endian bytes of ``value`` (an SG4 group is 4 of them)."""
    return [value[8 * i:8 * i + 8] for i in range(count)]


def delay(m, value, cycles, name):
    """``value`` delayed by ``cycles`` clock cycles through a chain of registers."""
    for i in range(cycles):
        reg = Signal.like(value, name=f"{name}_d{i + 1}")
        m.d.sync += reg.eq(value)
        value = reg
    return value
