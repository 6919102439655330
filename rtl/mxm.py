"""The matrix unit: ``VL x VL`` int8 weights, int32 accumulators (``docs/ARCHITECTURE.md`` 6).

Tile ``k`` holds weight rows ``k*L .. k*L+L-1`` (the input lanes it owns) of
all ``VL`` columns, twice: ``shadow`` (written by ``LW``) and ``active``
(copied from ``shadow`` by ``IW``, read by ``ABC``), so the next weights load
while the current ones multiply.

``ABC`` issued at local cycle ``t``, pipeline of tile ``k`` (global cycles)::

    t+k        a[r] * active[r][n] for its L rows r and all VL columns n   -> prod (register)
    t+k+1      chain[n] = chain_below[n] + sum_r prod[r][n]                 -> chain (register)
    t+T        the top tile's chain holds the whole dot product p[n]
    t+T+1+k    tile k adds p[kL .. kL+L-1] (delayed k cycles) into its accumulator slot

The partial sums climb one tile per cycle together with the instruction wave,
so the reduction over all ``VL`` input lanes costs one adder stage per tile
and no wide adder tree; the sum reaches tile ``k`` at its local ``t + T + 1``
(``Latencies.mxm_abc``). The multipliers are plain ``*`` of an 8-bit activation
and an 8-bit weight register with a registered product, which Yosys maps to
DSP blocks (SB_MAC16 on iCE40); on ECP5 each is a MULT18X18D that holds its
active weight and its product in its own registers (:func:`weighted_product`).

Accumulators are an ``amaranth.lib.memory.Memory`` per tile (``acc_slots``
words of ``L`` int32 lanes) so that they become block RAM. The accumulate is
a read-modify-write: the slot is read one cycle ahead and the read port is
transparent to the write port, so back-to-back accumulates into one slot see
each other. ``ACC`` reads through a second transparent port: an ``ACC`` in
the same local cycle as an accumulate of its slot sees the new value, and
the word is emitted one cycle later (``Latencies.mxm_acc``) on an SG4 group.
"""

from amaranth.hdl import Cat, ClockSignal, Instance, Module, Mux, ResetSignal, Signal, signed
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from firmware.isa import ERROR_BITS, ErrorFlag
from firmware.machine import SliceKind

from ._lanes import bytes_of, delay, pick, rotate, stream_ports
from .isa import fields, issue_layout, op_code, opcode


__all__ = ["MxmSlice", "weighted_product"]

_MXM = SliceKind.MXM
#: Largest magnitude of one int8 x int8 product ((-128) * (-128)).
_PRODUCT_MAX = 128 * 128


def _sum_shape(terms):
    """Signed shape that holds the exact sum of ``terms`` int8 x int8 products."""
    return signed((_PRODUCT_MAX * terms).bit_length() + 1)


def _mod(value, n):
    """``value mod n`` (non-negative); a plain truncation when ``n`` is a power of two."""
    if n & (n - 1) == 0:
        return value[:(n - 1).bit_length()]
    return value % n


def weighted_product(m, a, w, load, name, platform=None):
    """One multiplier of the array: a weight register that takes ``w`` when ``load``
    (``IW``), and ``a * weight`` registered (16 bits, one cycle); both operands
    signed 8-bit. Returns the product register.

    Elaborated for an ECP5 (``platform.family == "ecp5"``) it is one ``MULT18X18D``
    whose own registers hold both: the weight in its input register B (enable
    ``CE1``) and the product in its output register (``CE0``, always on). Yosys
    maps ``a * weight`` to that block without its registers (it packs none on
    ECP5), so the 8 weight and 16 product flip-flops of every multiplier would sit
    in the fabric beside the DSP blocks, with their nets, in the MXM's corner of the
    die where the routing is most congested (``docs/ARCHITECTURE.md`` section 10).
    Elsewhere (simulation, iCE40, the per-slice synthesis script) it is a plain
    register and multiplication. ``tests/test_rtl_mxm.py`` checks that the two
    agree, the block simulated by ``sim/models/MULT18X18D.v``.
    """
    prod = Signal(signed(16), name=name)
    if getattr(platform, "family", None) != "ecp5":
        weight = Signal(signed(8), name=f"{name}_w")
        with m.If(load):
            m.d.sync += weight.eq(w)
        m.d.sync += prod.eq(a * weight)
        return prod
    # 18-bit signed ports: the operands sign-extended, as Yosys's own mapping does
    a18, w18 = Signal(signed(18), name=f"{name}_a"), Signal(signed(18), name=f"{name}_w")
    m.d.comb += [a18.eq(a), w18.eq(w)]
    m.submodules[name] = Instance(
        "MULT18X18D",
        p_REG_INPUTA_CLK="NONE", p_REG_INPUTC_CLK="NONE", p_REG_PIPELINE_CLK="NONE",
        p_REG_INPUTB_CLK="CLK0", p_REG_INPUTB_CE="CE1", p_REG_INPUTB_RST="RST0",
        p_REG_OUTPUT_CLK="CLK0", p_REG_OUTPUT_CE="CE0", p_REG_OUTPUT_RST="RST0",
        p_RESETMODE="SYNC", p_GSR="DISABLED",
        i_SIGNEDA=1, i_SIGNEDB=1, i_SOURCEA=0, i_SOURCEB=0,
        i_CLK0=ClockSignal("sync"), i_CE0=1, i_CE1=load,
        i_RST0=ResetSignal("sync", allow_reset_less=True),
        **{f"i_A{i}": a18[i] for i in range(18)},
        **{f"i_B{i}": w18[i] for i in range(18)},
        **{f"i_C{i}": 0 for i in range(18)},
        **{f"o_P{i}": prod[i] for i in range(16)})
    return prod


class MxmSlice(wiring.Component):
    """One MXM slice of ``config`` (``slice``: its :class:`~firmware.machine.Slice`).

    Members
    -------
    issue : In(ArrayLayout(issue_layout(MXM), T))
        The instruction each tile executes this cycle (already staggered, legal).
    e_in, w_in : In([tile][stream][lane] bytes)
        Stream values at this slice's position.
    e_out, w_out, e_emit, w_emit : Out
        ``ACC`` results and fused ``ABC`` emissions, and the streams they are
        driven onto.
    err : Out(ERROR_BITS)
        ``STREAM_CONFLICT`` when a fused ``ABC`` emission and an ``ACC`` drive one
        stream in one cycle (tile 0); the ``ABC``'s emission wins the hop.
    """

    def __init__(self, config, slice):
        if slice.kind is not _MXM:
            raise ValueError(f"MxmSlice needs an MXM slice, not {slice.name} ({slice.kind.value})")
        self._config = config
        self._slice = slice
        super().__init__({
            "issue": In(data.ArrayLayout(issue_layout(_MXM), config.tiles)),
            **stream_ports(config),
            "err": Out(ERROR_BITS),
        })

    @property
    def config(self):
        return self._config

    def elaborate(self, platform):
        c = self._config
        T, L = c.tiles, c.lanes
        # The pipeline below has one product register and T chain registers, and one
        # read-port cycle for ACC: these are the latencies machine.py promises.
        assert c.latency.mxm_abc == 1 + T, "MXM pipeline depth must match Latencies.mxm_abc"
        assert c.latency.mxm_acc == 1, "ACC reads a synchronous port: one cycle"

        m = Module()
        chain = None
        decoded = []
        for k in range(T):
            dec = self._decode(m, k)
            decoded.append(dec)
            shadow = self._weights(m, k, dec)
            chain = self._dot_product(m, k, dec, shadow, chain, platform)
        for k in range(T):
            lanes = [delay(m, chain[k * L + j], k, f"t{k}_p{j}") for j in range(L)]
            conflict = self._accumulators(m, k, decoded[k], lanes)
            if k == 0:
                m.d.comb += self.err.eq(Mux(conflict, int(ErrorFlag.STREAM_CONFLICT), 0))
        return m

    # -- per tile -------------------------------------------------------------

    def _decode(self, m, k):
        """Opcode strobes and field views of the instruction tile ``k`` executes now."""
        issue = self.issue[k]
        word = issue.word
        op = opcode(word)

        def strobe(mnemonic):
            sig = Signal(name=f"t{k}_{mnemonic.lower()}")
            m.d.comb += sig.eq(issue.valid & (op == op_code(_MXM, mnemonic)))
            return sig

        c = self._config
        east = [self.e_in[k][s].as_value() for s in range(c.streams)]
        west = [self.w_in[k][s].as_value() for s in range(c.streams)]
        return {
            "lw": strobe("LW"), "iw": strobe("IW"), "abc": strobe("ABC"), "acc": strobe("ACC"),
            "LW": fields(_MXM, "LW", word), "ABC": fields(_MXM, "ABC", word),
            "ACC": fields(_MXM, "ACC", word), "east": east, "west": west,
        }

    def _stream(self, dec, direction, index):
        """The ``L`` bytes of stream ``index`` in direction ``direction`` (0 east, 1 west)."""
        return Mux(direction, pick(dec["west"], index), pick(dec["east"], index))

    def _weights(self, m, k, dec):
        """The shadow weight rows of tile ``k`` (``LW``); returns them. The active
        weights are registers of the multipliers (:func:`weighted_product`).

        ``LW s, col, count`` writes column ``col+i`` from stream ``s+i``. Column
        ``c`` therefore reads stream ``(c + s - col) mod S``: all columns that
        are equal mod ``S`` read the same rotation of the ``S`` streams, so one
        barrel rotator feeds every column instead of a ``VL x S`` crossbar.
        """
        c = self._config
        S, L, VL = c.streams, c.lanes, c.vl
        rows = data.ArrayLayout(data.ArrayLayout(signed(8), VL), L)
        shadow = Signal(rows, name=f"t{k}_shadow")

        lw = dec["LW"]
        shift = Signal(range(S), name=f"t{k}_lw_rot")
        m.d.comb += shift.eq(_mod(lw.stream - lw.col, S))
        rotated = self._rotate(m, k, dec, lw.dir, shift)
        for col in range(VL):
            offset = col - lw.col
            with m.If(dec["lw"] & (lw.col <= col) & (offset <= lw.count)):
                for r in range(L):
                    m.d.sync += shadow[r][col].eq(rotated[col % S][8 * r:8 * r + 8])
        return shadow

    def _rotate(self, m, k, dec, direction, amount):
        """``out[i]`` = stream ``(i + amount) mod S`` of one direction (L bytes each)."""
        c = self._config
        S, L = c.streams, c.lanes
        chosen = []
        for s in range(S):
            sig = Signal(8 * L, name=f"t{k}_lw_in{s}")
            m.d.comb += sig.eq(Mux(direction, dec["west"][s], dec["east"][s]))
            chosen.append(sig)
        if S & (S - 1) == 0:
            return rotate(m, chosen, amount, f"t{k}_lw")
        return [pick(chosen, _mod(amount + i, S)) for i in range(S)]

    def _dot_product(self, m, k, dec, shadow, below, platform):
        """Tile ``k``'s active weights (``IW`` copies ``shadow`` into them), products
        and stage of the northbound partial-sum chain.

        Returns the ``VL`` chain registers of this tile: after the top tile they
        hold the whole dot product of every column.
        """
        c = self._config
        L, VL = c.lanes, c.vl
        abc = dec["ABC"]
        act = Signal(8 * L, name=f"t{k}_act")
        m.d.comb += act.eq(self._stream(dec, abc.dir, abc.stream))
        chain = []
        for n in range(VL):
            products = []
            for r in range(L):
                products.append(weighted_product(
                    m, act[8 * r:8 * r + 8].as_signed(), shadow[r][n], dec["iw"],
                    f"t{k}_prod_r{r}_n{n}", platform))
            total = Signal(_sum_shape(L * (k + 1)), name=f"t{k}_chain_n{n}")
            partial = sum(products[1:], products[0])
            m.d.sync += total.eq(partial if below is None else below[n] + partial)
            chain.append(total)
        return chain

    def _accumulators(self, m, k, dec, lanes):
        """Tile ``k``'s accumulator memory: the ``ABC`` accumulate and the ``ACC`` read-out.

        ``lanes`` are this tile's ``L`` dot products, valid in the accumulate
        cycle of the ``ABC`` that produced them.
        """
        c = self._config
        L, S = c.lanes, c.streams
        lat = c.latency
        acc_mem = memory.Memory(shape=data.ArrayLayout(signed(32), L), depth=c.acc_slots, init=[])
        m.submodules[f"t{k}_acc"] = acc_mem
        write = acc_mem.write_port()
        rmw = acc_mem.read_port(transparent_for=(write,))
        out = acc_mem.read_port(transparent_for=(write,))

        # ABC: (valid, acc, slot, fused emit) follow the dot product down the
        # pipeline; the slot is read one cycle before the accumulate (synchronous
        # read port).
        abc = dec["ABC"]
        ctl = Cat(dec["abc"], abc.acc, abc.slot, abc.emit, abc.edir, abc.estream[2:])
        ahead = delay(m, ctl, lat.mxm_abc - 1, f"t{k}_abc")
        now = delay(m, ahead, 1, f"t{k}_abc_x")
        slot_bits = len(abc.slot)
        now_valid, now_acc, now_slot = now[0], now[1], now[2:2 + slot_bits]
        now_emit, now_edir = now[2 + slot_bits], now[3 + slot_bits]
        now_egroup = now[4 + slot_bits:]
        m.d.comb += rmw.addr.eq(ahead[2:2 + slot_bits])
        m.d.comb += [
            write.en.eq(now_valid),
            write.addr.eq(now_slot),
        ]
        for j in range(L):
            old = Mux(now_acc, rmw.data[j], 0)
            m.d.comb += write.data[j].eq(old + lanes[j])

        # Fused emit: the slot's new value, registered in the accumulate cycle x
        # and driven in x + 1, exactly when an ACC issued at x would drive it.
        fused_data = Signal.like(write.data, name=f"t{k}_fused_data")
        fused = Signal(name=f"t{k}_fused")
        fused_dir = Signal(name=f"t{k}_fused_dir")
        fused_group = Signal(range(S // 4), name=f"t{k}_fused_group")
        m.d.sync += [
            fused_data.eq(write.data),
            fused.eq(now_valid & now_emit),
            fused_dir.eq(now_edir),
            fused_group.eq(now_egroup),
        ]

        # ACC: read the slot now, emit the int32 lanes on the SG4 group next cycle.
        acc = dec["ACC"]
        m.d.comb += out.addr.eq(acc.slot)
        emit = Signal(name=f"t{k}_acc_emit")
        emit_dir = Signal(name=f"t{k}_acc_dir")
        group = Signal(range(S // 4), name=f"t{k}_acc_group")
        m.d.sync += [
            emit.eq(dec["acc"]),
            emit_dir.eq(acc.dir),
            group.eq(acc.stream[2:]),
        ]
        acc_words = [bytes_of(out.data[j], 4) for j in range(L)]
        fused_words = [bytes_of(fused_data[j], 4) for j in range(L)]
        clashes = []
        for s in range(S):
            acc_bytes = Cat(*(acc_words[j][s % 4] for j in range(L)))
            fused_bytes = Cat(*(fused_words[j][s % 4] for j in range(L)))
            a_on = emit & (group == s // 4)
            f_on = fused & (fused_group == s // 4)
            a_e, a_w = a_on & ~emit_dir, a_on & emit_dir
            f_e, f_w = f_on & ~fused_dir, f_on & fused_dir
            m.d.comb += [
                self.e_out[k][s].eq(Mux(f_e, fused_bytes, acc_bytes)),
                self.w_out[k][s].eq(Mux(f_w, fused_bytes, acc_bytes)),
                self.e_emit[k][s].eq(a_e | f_e),
                self.w_emit[k][s].eq(a_w | f_w),
            ]
            clashes += [a_e & f_e, a_w & f_w]
        conflict = Signal(name=f"t{k}_conflict")
        m.d.comb += conflict.eq(Cat(*clashes).any())
        return conflict
