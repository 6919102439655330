"""The switch unit: lane shifts, rotations, permutations, transposes (``ARCHITECTURE.md`` 7).

SXM ops move bytes between lanes of different tiles, but tile ``k`` sees
local cycle ``t`` at global cycle ``t + k``. So the slice deskews first::

    t+k        tile k selects the source stream(s) (L streams for TRANS, else 1)
    ..         and delays its L lanes by T-1-k cycles
    t+T-1      the whole vector is together; tile T-1 holds the instruction now:
               every output lane picks its source lane                -> out (register)
    t+T+k      tile k drives its L lanes of out, delayed by k cycles

which is ``Latencies.sxm = T`` for every tile. Only the selected source
streams and the result are delayed, not all ``2 S`` streams.

Every output lane is one ``VL``-way multiplexer whose select is computed from
the op and its argument (``SHUP``/``SHDN``/``ROT``/``DIST``) or read from a
permutation map (``PERM``); ``TRANS`` is fixed wiring inside each tile. The
maps are registers (``sxm_maps x VL`` lane indices) that reset to the identity
and are written by the host through ``map_w`` while the machine is idle.
"""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In

from firmware.isa import OPS
from firmware.machine import SliceKind

from ._lanes import delay, pick, rotate, stream_ports
from .isa import fields, issue_layout, op_code, opcode


__all__ = ["SxmSlice"]

_SXM = SliceKind.SXM
#: Every SXM op has the same fields; the decoder reads them through this layout.
_ANY = "SHUP"
#: What travels with the result from the permute register to each tile's emission.
_CTL = data.StructLayout({"valid": 1, "trans": 1, "dir": 1, "stream": 5})


def _code(mnemonic):
    return op_code(_SXM, mnemonic)


class SxmSlice(wiring.Component):
    """One SXM slice of ``config`` (``slice``: its :class:`~firmware.machine.Slice`).

    Members
    -------
    issue : In(ArrayLayout(issue_layout(SXM), T))
    e_in, w_in : In([tile][stream][lane] bytes)
    e_out, w_out, e_emit, w_emit : Out
    map_w : In(en, map, lane, src)
        Host write ``map[map][lane] = src`` (machine idle); maps reset to identity.
    """

    def __init__(self, config, slice):
        if slice.kind is not _SXM:
            raise ValueError(f"SxmSlice needs an SXM slice, not {slice.name} ({slice.kind.value})")
        self._config = config
        self._slice = slice
        VL = config.vl
        super().__init__({
            "issue": In(data.ArrayLayout(issue_layout(_SXM), config.tiles)),
            **stream_ports(config),
            "map_w": In(data.StructLayout({"en": 1, "map": range(config.sxm_maps),
                                           "lane": range(VL), "src": range(VL)})),
        })

    @property
    def config(self):
        return self._config

    def elaborate(self, platform):
        c = self._config
        T = c.tiles
        assert c.latency.sxm == T, "deskew (T-1) + one register: Latencies.sxm must be T"
        assert all(o.fields == OPS[_SXM][_ANY].fields
                   for o in OPS[_SXM].values() if not o.is_icu), "SXM ops share one layout"
        m = Module()
        blocks = [delay(m, self._source(m, k), T - 1 - k, f"t{k}_deskew") for k in range(T)]
        maps = self._maps(m)
        out, ctl = self._permute(m, blocks, maps)
        for k in range(T):
            L = c.lanes
            mine = Cat(*(out[i][8 * k * L:8 * (k + 1) * L] for i in range(L)))
            self._emit(m, k, delay(m, mine, k, f"t{k}_skew"), delay(m, ctl, k, f"t{k}_ctl"))
        return m

    def _source(self, m, k):
        """Tile ``k``'s source streams ``sstream .. sstream+L-1`` (L lanes each), packed.

        A barrel rotation of the ``S`` streams by ``sstream`` (unused outputs are
        trimmed by synthesis) is cheaper than ``L`` independent ``S``-way muxes.
        """
        c = self._config
        f = fields(_SXM, _ANY, self.issue[k].word)
        chosen = []
        for s in range(c.streams):
            sig = Signal(8 * c.lanes, name=f"t{k}_in{s}")
            m.d.comb += sig.eq(Mux(f.sdir, self.w_in[k][s].as_value(), self.e_in[k][s].as_value()))
            chosen.append(sig)
        if c.streams & (c.streams - 1) == 0:
            picked = rotate(m, chosen, f.sstream, f"t{k}_src")[:c.lanes]
        else:
            picked = [pick(chosen, f.sstream + i) for i in range(c.lanes)]
        block = Signal(8 * c.lanes * c.lanes, name=f"t{k}_src")
        m.d.comb += block.eq(Cat(*picked))
        return block

    def _maps(self, m):
        """The permutation maps: ``maps[mi][lane]`` registers, identity after reset."""
        c = self._config
        host = self.map_w
        maps = []
        for mi in range(c.sxm_maps):
            row = []
            for lane in range(c.vl):
                reg = Signal(range(c.vl), init=lane, name=f"map{mi}_l{lane}")
                with m.If(host.en & (host.map == mi) & (host.lane == lane)):
                    m.d.sync += reg.eq(host.src)
                row.append(reg)
            maps.append(row)
        return maps

    def _permute(self, m, blocks, maps):
        """The deskewed op: returns ``out[i]`` (L result streams of VL bytes, registered)
        and its emission control (registered), both valid at global ``t + T``."""
        c = self._config
        T, L, VL = c.tiles, c.lanes, c.vl
        issue = self.issue[T - 1]                   # the top tile issues in the deskew cycle
        op = opcode(issue.word)
        f = fields(_SXM, _ANY, issue.word)
        n = f.arg

        def byte(k, i, j):                          # tile k, source stream i, lane j
            return blocks[k][8 * (i * L + j):8 * (i * L + j) + 8]

        vector = [byte(lane // L, 0, lane % L) for lane in range(VL)]
        trans = op == _code("TRANS")
        out = [Signal(8 * VL, name=f"out{i}") for i in range(L)]
        for lane in range(VL):
            k, j = divmod(lane, L)
            src = Signal(range(VL), name=f"src_l{lane}")
            ok = Signal(name=f"ok_l{lane}")
            with m.Switch(op):
                with m.Case(_code("SHUP")):
                    m.d.comb += [src.eq(lane - n), ok.eq(n <= lane)]
                with m.Case(_code("SHDN")):
                    m.d.comb += [src.eq(lane + n), ok.eq(lane + n < VL)]
                with m.Case(_code("ROT")):
                    m.d.comb += [src.eq(Mux(n <= lane, lane - n, lane + VL - n)), ok.eq(1)]
                with m.Case(_code("PERM")):
                    m.d.comb += [src.eq(pick([row[lane] for row in maps], n)), ok.eq(1)]
                with m.Case(_code("DIST")):
                    m.d.comb += [src.eq(k * L + n), ok.eq(1)]
            moved = Mux(ok, pick(vector, src), 0)
            # TRANS: result stream i, lane kL+j = source stream j, lane kL+i. The other
            # ops put their one result in every out[i]: then the emission need not
            # know which of the L positions the destination stream takes.
            for i in range(L):
                m.d.sync += out[i][8 * lane:8 * lane + 8].eq(Mux(trans, byte(k, j, i), moved))
        ctl = Signal(_CTL, name="ctl")
        m.d.sync += [
            ctl.valid.eq(issue.valid),
            ctl.trans.eq(trans),
            ctl.dir.eq(f.ddir),
            ctl.stream.eq(f.dstream),
        ]
        return out, ctl.as_value()

    def _emit(self, m, k, mine, ctl):
        """Drive tile ``k``'s lanes of the result (``mine``: L streams x L lanes) now."""
        c = self._config
        L = c.lanes
        ctl = data.View(_CTL, ctl)
        streams = [mine[8 * L * i:8 * L * (i + 1)] for i in range(L)]
        if L & (L - 1) == 0:
            # Stream s carries out[(s - dstream) mod L]: only L rotations exist.
            bits = (L - 1).bit_length()
            rotated = rotate(m, streams, (-ctl.stream)[:bits], f"t{k}_dst")
            choose = [rotated[s % L] for s in range(c.streams)]
        else:
            choose = [pick(streams, s - ctl.stream) for s in range(c.streams)]
        for s in range(c.streams):
            offset = s - ctl.stream
            hit = Mux(ctl.trans, (ctl.stream <= s) & (offset < L), ctl.stream == s)
            on = ctl.valid & hit
            m.d.comb += [
                self.e_out[k][s].eq(choose[s]),
                self.w_out[k][s].eq(choose[s]),
                self.e_emit[k][s].eq(on & ~ctl.dir),
                self.w_emit[k][s].eq(on & ctl.dir),
            ]
