"""One block of the TSP alone between registers: its timing on a board, without the rest.

A whole ulx3s chip takes an hour and more to place and route; one of its slices
takes minutes. ``tsp build --board ulx3s --probe VXM`` builds the board's image
with :class:`BlockProbe` in the TSP's place: every input bit of the block comes
from a shift register fed by the UART's ``rx`` pin, and every output bit is
folded into a chain of XOR registers that ends at ``tx``. Nothing is constant
and nothing is unused, so Yosys keeps the whole block; the logic between a
probe register and the block is one LUT at most, so the critical path the
report names is the block's own (in the chip, the block's inputs come from
registers too: stream hops, the queues' issue registers).

The probe's own registers (one per input and output bit) are counted in the
report's flip-flops: it measures timing, not size.
"""

from amaranth.hdl import Cat, Module, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from firmware.machine import SliceKind


__all__ = ["BlockProbe", "block_names", "check_block", "make_block", "probe_dir"]


def block_names(config):
    """The blocks a probe can carry: every slice of the floorplan by name,
    ``fabric`` (the stream hops) and ``icu:<queue>`` (one instruction queue)."""
    fp = config.floorplan
    return ([s.name for s in fp.slices] + ["fabric"]
            + [f"icu:{q.name}" for q in fp.queues])


def check_block(config, name):
    """``ValueError`` naming the blocks there are, unless ``name`` is one of them."""
    if name not in block_names(config):
        raise ValueError(f"no block {name!r} in config {config.name}; "
                         f"blocks: {', '.join(block_names(config))}")


def probe_dir(board, name):
    """The build folder of block ``name``'s probe on ``board``."""
    return f"build/{board}-probe-{name.replace(':', '-')}"


def make_block(config, name):
    """The component ``name`` (:func:`block_names`) of ``config``'s TSP."""
    check_block(config, name)
    from rtl.fabric import StreamFabric
    from rtl.icu import InstructionQueue
    from rtl.top import slice_class
    fp = config.floorplan
    if name == "fabric":
        return StreamFabric(config)
    if name.startswith("icu:"):
        for q in fp.queues:
            if q.name == name[4:]:
                return InstructionQueue(config, q)
    for s in fp.slices:
        if s.name == name:
            cls = slice_class(s.kind)
            return cls(config) if s.kind is SliceKind.VXM else cls(config, s)
    raise AssertionError(f"block_names lists {name!r}, make_block does not build it")


def _ports(component):
    """``(inputs, outputs)`` of ``component``: its port values, flattened."""
    ins, outs = [], []
    for _path, member, value in component.signature.flatten(component):
        (ins if member.flow == In else outs).append(Value.cast(value))
    return ins, outs


class BlockProbe(wiring.Component):
    """``block`` (any component; :func:`make_block` names the TSP's) between a shift
    register from ``rx`` and an XOR chain to ``tx``. ``running``, ``done`` and
    ``error`` stay low.

    Members as :class:`~rtl.hostlink.LinkedTSP` (what a board top expects).
    """

    rx: In(1, init=1)
    tx: Out(1, init=1)
    running: Out(1)
    done: Out(1)
    error: Out(1)

    def __init__(self, block):
        self.block = block
        ins, outs = _ports(self.block)
        self.in_bits = sum(len(v) for v in ins)
        self.out_bits = sum(len(v) for v in outs)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.block = block = self.block
        ins, outs = _ports(block)
        # Each feed bit is the XOR of the two before it, not a copy of one: a copy
        # would equal every register of the block that only delays that input,
        # and Yosys would merge them (the block's pipeline into the probe).
        feed = Signal(self.in_bits)
        m.d.sync += feed.eq(Cat(self.rx, feed[:-1]) ^ Cat(0, 0, feed[:-2]))
        offset = 0
        for port in ins:
            m.d.comb += port.eq(feed[offset:offset + len(port)])
            offset += len(port)
        fold = Signal(self.out_bits)
        m.d.sync += fold.eq(Cat(0, fold[:-1]) ^ Cat(*outs))
        m.d.comb += self.tx.eq(fold[-1])
        return m
