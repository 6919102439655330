"""Deliberately broken variants of the gateware: the debugging tools must find each fault.

Every variant is a subclass of a real component of ``rtl/`` that changes one
thing at its ports and nothing inside, so it stays valid while the slices'
internals change:

==================  ===============================================================
``vxm-late``        every VXM result reaches its stream one cycle late
                    (``Latencies.vxm`` off by one in one slice)
``vxm-add-is-sub``  the VXM decodes ``ADD`` as ``SUB`` (a wrong ALU op)
``mem-read-stream`` ``MEM_W0`` drives every read one stream higher (``E0`` -> ``E1``)
``mem-write-addr``  ``MEM_E0`` writes one word above the address it is given
``fabric-swap``     the eastward hop register into the VXM carries streams 0 and 1
                    swapped (a miswired fabric)
==================  ===============================================================

``TSP(config, classes=VARIANTS[name].classes)`` builds the chip with the
variant (``rtl/top.py``); ``tsp diff --variant NAME`` and ``tests/test_diff.py``
run programs on it and check that the first-divergence report names the slice
and the cycle of the fault.
"""

from dataclasses import dataclass

from amaranth.hdl import Signal, Value

from firmware.isa import OPS
from firmware.machine import SliceKind
from rtl.fabric import StreamFabric
from rtl.isa import fields, opcode
from rtl.mem import MemSlice
from rtl.vxm import VxmSlice


__all__ = ["Variant", "VARIANTS", "variant"]


def _elaborate_rewired(component, names, platform):
    """Elaborate ``component`` (its class's parent's ``elaborate``) with the ports
    ``names`` replaced by fresh signals of the same shape. Returns the module and
    ``{name: (port, inner signal)}``: the caller connects each pair its own way."""
    pairs = {}
    for name in names:
        port = getattr(component, name)
        pairs[name] = (port, Signal(port.shape(), name=f"inner_{name}"))
    for name, (_port, inner) in pairs.items():
        setattr(component, name, inner)
    try:
        m = super(type(component), component).elaborate(platform)
    finally:
        for name, (port, _inner) in pairs.items():
            setattr(component, name, port)
    return m, pairs


_OUTPUTS = ("e_out", "w_out", "e_emit", "w_emit")


class LateVxm(VxmSlice):
    """A VXM whose stream outputs pass one more register: results land at ``t + 4``."""

    def elaborate(self, platform):
        m, pairs = _elaborate_rewired(self, _OUTPUTS, platform)
        for port, inner in pairs.values():
            m.d.sync += port.eq(inner)
        return m


class AddIsSubVxm(VxmSlice):
    """A VXM whose decoder sees ``SUB`` wherever an ``ADD`` is issued, in every tile and ALU."""

    def elaborate(self, platform):
        m, pairs = _elaborate_rewired(self, ("issue",), platform)
        port, inner = pairs["issue"]
        add, sub = OPS[SliceKind.VXM]["ADD"].opcode, OPS[SliceKind.VXM]["SUB"].opcode
        m.d.comb += inner.eq(port)
        for k in range(self.config.tiles):
            for a in range(self.config.vxm_alus):
                with m.If(opcode(port[k][a].word) == add):
                    m.d.comb += opcode(inner[k][a].word).eq(sub)
        return m


class ReadStreamMem(MemSlice):
    """A MEM slice whose emissions land one stream higher (mod the stream count)."""

    def elaborate(self, platform):
        m, pairs = _elaborate_rewired(self, _OUTPUTS, platform)
        S = self._config.streams
        for k in range(self._config.tiles):
            for d in ("e", "w"):
                out, inner = pairs[f"{d}_out"]
                emit, inner_emit = pairs[f"{d}_emit"]
                for s in range(S):
                    m.d.comb += [out[k][(s + 1) % S].eq(inner[k][s]),
                                 emit[k][(s + 1) % S].eq(inner_emit[k][s])]
        return m


class WriteAddrMem(MemSlice):
    """A MEM slice whose ``WRITE`` stores at ``addr + 1``."""

    def elaborate(self, platform):
        m, pairs = _elaborate_rewired(self, ("issue",), platform)
        port, inner = pairs["issue"]
        write = OPS[SliceKind.MEM]["WRITE"].opcode
        m.d.comb += inner.eq(port)
        for k in range(self._config.tiles):
            with m.If(opcode(port[k].word) == write):
                m.d.comb += fields(SliceKind.MEM, "WRITE", inner[k].word).addr.eq(
                    fields(SliceKind.MEM, "WRITE", port[k].word).addr + 1)
        return m


class SwappedFabric(StreamFabric):
    """A fabric whose eastward hop register into the VXM has streams 0 and 1 crossed."""

    def __init__(self, config):
        super().__init__(config)
        self._crossed = f"east_{config.floorplan.vxm.pos}"

    def _hop(self, m, reg, upstream, driven, emit):
        if Value.cast(reg).name != self._crossed:
            return super()._hop(m, reg, upstream, driven, emit)
        for k in range(self._config.tiles):
            for s in range(self._config.streams):
                src = {0: 1, 1: 0}.get(s, s)
                with m.If(emit[k][src]):
                    m.d.sync += reg[k][s].eq(driven[k][src])
                with m.Else():
                    m.d.sync += reg[k][s].eq(upstream[k][src])


@dataclass(frozen=True)
class Variant:
    name: str
    doc: str
    classes: dict          # for TSP(config, classes=...)


VARIANTS = {v.name: v for v in (
    Variant("vxm-late", "every VXM result reaches its stream one cycle late",
            {SliceKind.VXM: LateVxm}),
    Variant("vxm-add-is-sub", "the VXM decodes ADD as SUB", {SliceKind.VXM: AddIsSubVxm}),
    Variant("mem-read-stream", "MEM_W0 drives every read one stream higher",
            {"MEM_W0": ReadStreamMem}),
    Variant("mem-write-addr", "MEM_E0 writes one word above the address it is given",
            {"MEM_E0": WriteAddrMem}),
    Variant("fabric-swap", "the eastward hop into the VXM carries streams 0 and 1 swapped",
            {"fabric": SwappedFabric}),
)}


def variant(name):
    """The variant called ``name``; a clear error for an unknown one."""
    try:
        return VARIANTS[name]
    except KeyError:
        raise KeyError(f"no broken variant {name!r}; variants are {', '.join(VARIANTS)}") from None
