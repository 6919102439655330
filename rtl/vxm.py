"""The vector unit: ``A`` chained ALUs per lane (``docs/ARCHITECTURE.md`` section 5).

Every ALU of every lane runs the same three-stage pipeline, which is where
``Latencies.vxm`` comes from::

    t     select operands (stream / chained R / immediate / zero), latch   -> s1
    t+1   compute: add, compare, shift, logic, the multiplier, table read  -> s2
    t+2   finish: wrap or saturate, REQUANT's round/shift/clamp            -> R
    t+3   R holds the result; it is driven onto the destination stream(s)

Operands are normalised in stage 0: an int8 operand is sign-extended to 32
bits, so stage 1 works on one 32-bit datapath for both dtypes and stage 2
reduces to the output width. A set without int32 ops (``Config.vxm_int32``
false) has the same pipeline 8 bits wide. ``MUL``, ``MULS`` and ``REQUANT`` share one
registered ``32 x 33`` signed multiplier per ALU lane (``REQUANT`` multiplies by
its unsigned 24-bit ``mult``), with registered operands so that Yosys can map
it to DSP blocks; REQUANT's rounding needs the full product, which is why the
multiplier is as wide as ``MULS`` needs anyway.

ALU 0 owns a 256-entry int8 table per lane (``LUT``/``LUTW``, and the host's
``lut_w`` port while the machine is idle), one small block RAM per lane.

Emission: each ALU's ``we``/``wdir``/``wstream`` ride the pipeline; in cycle
``t+3`` the lowest-numbered ALU that drives a stream wins it, and two ALUs
driving one stream (same direction) raise ``STREAM_CONFLICT`` (from tile 0,
which sees every instruction first).
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from firmware.isa import ERROR_BITS, OPS, VXM_CONVERT, ErrorFlag, OperandKind
from firmware.machine import SliceKind

from ._memory import rw_dont_care_memory
from ._lanes import bytes_of, pick, stream_ports
from .isa import fields, issue_layout, op_code, op_layout, opcode


__all__ = ["VxmSlice"]

_VXM = SliceKind.VXM
#: Fields at the same position in every VXM opcode (the decoder reads them once).
_COMMON = ("dtype", "a", "we", "wdir", "wstream")
#: The largest REQUANT shift a legal program uses (``isa.check``): 6 bits.
_SHIFT_BITS = 6


def _code(mnemonic):
    return op_code(_VXM, mnemonic)


def _check_common_fields():
    """The decoder takes ``_COMMON`` from one layout: make sure every opcode agrees."""
    ref = op_layout(_VXM, "ADD")
    for mnemonic, info in OPS[_VXM].items():
        if info.is_icu:
            continue
        lay = op_layout(_VXM, mnemonic)
        for name in _COMMON:
            assert lay[name].offset == ref[name].offset, (mnemonic, name)


_check_common_fields()


_S1_CTL = data.StructLayout({
    "valid": 1, "op": 5, "out32": 1, "we": 1, "wdir": 1, "wstream": 5,
    "shift": _SHIFT_BITS, "zp": signed(8), "zr": 1, "index": 8,
    # Stage 1's datapath controls, decoded once per tile and ALU in stage 0:
    "sub": 1,               # the adder computes x - y (SUB*, NEG, MIN, MAX, CMPGT, CMPEQ)
    "neg": 1,               # NEG: x = 0, y = a
    "shl": 1,               # the shifter shifts left (SHL) rather than right (SHRA)
    "logic": 2,             # 0 AND, 1 OR, 2 XOR
    "min": 1, "max": 1, "select": 1, "relu": 1, "cmpgt": 1, "cmpeq": 1,
    "res": 3,               # which unit's result stage 1 keeps (``_RES``)
})
def _s1_lane(width):
    """Stage 1's operands of one lane, for an ALU lane ``width`` bits wide."""
    return data.StructLayout({
        "a": signed(width),
        # operand b, or REQUANT's unsigned mult (the multiplier's 2nd input: 33 bits)
        "b": signed(width + 1 if width == 32 else width),
        "c_nz": 1,              # SELECT's condition: c != 0
    })
_S2_CTL = data.StructLayout({
    "write": 1,             # R takes the result (every op but LUTW)
    "use_prod": 1, "sat": 1, "requant": 1, "lut": 1, "out32": 1,
    "we": 1, "wdir": 1, "wstream": 5, "shift": _SHIFT_BITS, "zp": signed(8), "zr": 1,
})
_EMIT = data.StructLayout({"en": 1, "dir": 1, "stream": 5, "out32": 1})

#: Stage 1's units; every op but the multiplying ones takes its result from one.
_RES = {"pick": 0, "sum": 1, "shift": 2, "logic": 3, "cmp": 4}
_RES_OF = {"ADD": "sum", "ADDS": "sum", "SUB": "sum", "SUBS": "sum", "NEG": "sum",
           "SHRA": "shift", "SHL": "shift", "AND": "logic", "OR": "logic", "XOR": "logic",
           "CMPGT": "cmp", "CMPEQ": "cmp"}          # MIN MAX SELECT RELU MOV WIDEN NARROW: pick

#: Saturating ops clamp in stage 2; the others wrap.
_SATURATING = ("ADDS", "SUBS", "MULS", "NEG", "NARROW")


def _clamp(m, value, out32, name, width=32):
    """``value`` clamped to the signed 8- or 32-bit range, as a signed ``width``-bit
    value (a lane of ``width`` 8 has no 32-bit range: ``out32`` is not read).

    A value fits ``w`` bits when its bits from ``w - 1`` up are all equal (no
    comparators: an AND and an OR of the high bits)."""
    def fits(w):
        high = value[w - 1:]
        return (high == 0) | (high == (1 << len(high)) - 1)
    ok = Signal(name=f"{name}_ok")
    neg = value[-1]
    if width == 8:
        m.d.comb += ok.eq(fits(8))
        limit = Mux(neg, -128, 127)
    else:
        m.d.comb += ok.eq(Mux(out32, fits(32), fits(8)))
        limit = Mux(out32, Mux(neg, -(1 << 31), (1 << 31) - 1), Mux(neg, -128, 127))
    return Mux(ok, value[:width].as_signed(), limit)


def _wrap(value, out32, width=32):
    """The low 8 or 32 bits of ``value``, sign-extended to ``width`` bits."""
    if width == 8:
        return value[:8].as_signed()
    return Mux(out32, value[:32].as_signed(), value[:8].as_signed())


#: REQUANT splits its shift ``s`` into ``8 * (s >> 3) + (s & 7)``: stage 0 scales
#: ``mult`` by ``2 ** (7 - (s & 7))`` (exact: the product only gains low zeros),
#: so stage 2 shifts the product right by ``8 * (s >> 3) + 7``: a pick of one
#: of eight byte-aligned windows instead of a 64-way barrel shifter.
_REQUANT_FINE = 3
_REQUANT_OFFSET = (1 << _REQUANT_FINE) - 1


def requant_scale(mult, shift):
    """Stage 0: REQUANT's ``mult`` as the multiplier's second operand, scaled so that
    stage 2's shift is byte-aligned (``_REQUANT_OFFSET``)."""
    return mult << (~shift[:_REQUANT_FINE])[:_REQUANT_FINE]     # 7 - (shift & 7)


def requant_round(m, prod, coarse, zp, zr, name):
    """``clamp(RNE(prod / 2**s) + zp, -128, 127)`` of a product register (stage 2),
    or with ``zr`` set ``clamp(RNE(prod / 2**s + zp), -128, 127)``, where
    ``s = 8 * coarse + 7`` (``prod`` is the product of :func:`requant_scale`'s
    operand: ``8 * coarse + 7`` is the instruction's shift plus the scaling).

    For each of the eight values of ``coarse`` the bits that matter sit at fixed
    positions, so every part below is eight small constant-position terms and one
    pick by ``coarse``: the half bit (the last bit shifted out) and the quotient
    ``q``'s low 9 bits, one 10-bit window; the sticky bit (any bit below the half
    bit), an OR; and whether ``q`` is small (``-256 .. 255``: every bit from
    ``s + 8`` up equals the sign), an AND. A tie rounds up when ``q`` is odd,
    or with ``zr`` when ``q + zp`` is (one XOR with ``zp``'s low bit). The
    zero-point add is a short adder: larger quotients saturate by their sign.
    """
    width = len(prod)
    sign = prod[-1]
    steps = 1 << len(coarse)
    step = 1 << _REQUANT_FINE
    ext = Cat(prod, sign.replicate(step * steps + 16))
    half_at = [step * c + _REQUANT_OFFSET - 1 for c in range(steps)]

    def flags(values, label):
        sig = Signal(steps, name=f"{name}_{label}")
        m.d.comb += sig.eq(Cat(*values))
        return sig

    window = [ext[h:h + 10] for h in half_at]
    shifted = Signal(10, name=f"{name}_shifted")        # the half bit and q's low 9 bits
    m.d.comb += shifted.eq(pick(window, coarse))
    # sticky[c]: any of prod's bits 0 .. half_at[c] - 1; small[c]: prod's bits from
    # half_at[c] + 9 (q's bit 8) to the top equal the sign. Each is a tree of its own,
    # not a chain of the eight (each on its neighbour's), which is shallower.
    sticky = pick(flags([prod[:h].any() for h in half_at], "sticky"), coarse)
    tops = [min(h + 9, width) for h in half_at]
    same = [(prod[t:] ^ sign.replicate(width - t)) == 0 if t < width else Const(1)
            for t in tops]
    small = pick(flags(same, "small"), coarse)
    half = shifted[0]
    q = shifted[1:]
    up = half & (sticky | (q[0] ^ (zr & zp[0])))
    # A small q is -256 .. 255 (9 bits), so y is -384 .. 383 (10 bits); y fits
    # int8 when its bits from 7 up are equal (no comparators), else it saturates
    # by its sign, as a large q does by its own. Both sums, q + zp and q + zp + 1,
    # are made while the rounding decides `up` (which only picks one): the adder
    # does not wait for the sticky bits.
    ys = []
    for carry in (0, 1):
        y = Signal(signed(10), name=f"{name}_y{carry}")
        m.d.comb += y.eq(q.as_signed() + zp + carry)
        fits = small & ((y[7:] == 0) | (y[7:] == 0b111))
        ys.append(Mux(fits, y[:8].as_signed(), Mux(Mux(small, y[-1], sign), -128, 127)))
    out = Signal(signed(32), name=f"{name}_out")
    m.d.comb += out.eq(Mux(up, ys[1], ys[0]))
    return out


class VxmSlice(wiring.Component):
    """The VXM slice of ``config``.

    Members
    -------
    issue : In(ArrayLayout(ArrayLayout(issue_layout(VXM), A), T))
        ``issue[k][a]``: the instruction ALU ``a`` of tile ``k`` executes this cycle.
    e_in, w_in : In([tile][stream][lane] bytes)
    e_out, w_out, e_emit, w_emit : Out
    err : Out(ERROR_BITS)
        ``STREAM_CONFLICT`` when two ALUs of tile 0 drive one stream in this cycle.
    lut_w : In(en, lane, index, data)
        Host write of one table entry of one lane (machine idle).
    """

    def __init__(self, config):
        self._config = config
        T, A, VL = config.tiles, config.vxm_alus, config.vl
        super().__init__({
            "issue": In(data.ArrayLayout(data.ArrayLayout(issue_layout(_VXM), A), T)),
            **stream_ports(config),
            "err": Out(ERROR_BITS),
            "lut_w": In(data.StructLayout({"en": 1, "lane": range(VL), "index": 8, "data": 8})),
        })

    @property
    def config(self):
        return self._config

    @property
    def _width(self):
        """Bits of an ALU lane's datapath: 32, or 8 on a set without int32 ops."""
        return 32 if self._config.vxm_int32 else 8

    def elaborate(self, platform):
        c = self._config
        assert c.latency.vxm == 3, "the VXM pipeline has 3 stages (Latencies.vxm)"
        m = Module()
        conflicts = []
        for k in range(c.tiles):
            R = [[Signal(signed(self._width), name=f"t{k}_alu{a}_r{j}") for j in range(c.lanes)]
                 for a in range(c.vxm_alus)]
            groups = self._groups(m, k)
            nonzero = self._nonzero(m, k, groups, R)
            emits = [self._alu(m, k, a, R, groups, nonzero) for a in range(c.vxm_alus)]
            conflicts.append(self._drive(m, k, emits, R))
        m.d.comb += self.err.eq(Mux(conflicts[0], int(ErrorFlag.STREAM_CONFLICT), 0))
        return m

    # -- one ALU of one tile ----------------------------------------------------

    def _groups(self, m, k):
        """``groups[lane][dir][g]``: SG4 group ``g`` of tile ``k`` as one 32-bit value per lane.

        Every operand of every ALU selects from these, int8 operands take one of
        their bytes.
        """
        c = self._config
        out = []
        for j in range(c.lanes):
            per_dir = []
            for d, port in enumerate((self.e_in, self.w_in)):
                sigs = []
                for g in range(c.streams // 4):
                    sig = Signal(32, name=f"t{k}_l{j}_{'ew'[d]}g{g}")
                    m.d.comb += sig.eq(Cat(*(port[k][4 * g + i][j] for i in range(4))))
                    sigs.append(sig)
                per_dir.append(sigs)
            out.append(per_dir)
        return out

    def _nonzero(self, m, k, groups, R):
        """Per lane of tile ``k``: which stream bytes, SG4 groups and ``R`` (low byte /
        all 32 bits) are nonzero. SELECT's condition only needs these flags, so its
        operand mux is one bit wide instead of 32."""
        c = self._config
        out = []
        for j in range(c.lanes):
            def flag(value, name):
                sig = Signal(name=f"t{k}_l{j}_nz_{name}")
                m.d.comb += sig.eq(value != 0)
                return sig
            out.append({
                "group": [[flag(g, f"{'ew'[d]}g{i}") for i, g in enumerate(groups[j][d])]
                          for d in (0, 1)],
                "byte": [[flag(b, f"{'ew'[d]}{4 * i + n}")
                          for i, g in enumerate(groups[j][d]) for n, b in enumerate(bytes_of(g, 4))]
                         for d in (0, 1)],
                "r32": [flag(R[a][j], f"r{a}") for a in range(c.vxm_alus)],
                "r8": [flag(R[a][j][:8], f"r{a}_8") for a in range(c.vxm_alus)],
            })
        return out

    def _alu(self, m, k, alu, R, groups, nonzero):
        """The pipeline of ALU ``alu`` in tile ``k``; returns its emission control in t+3."""
        c = self._config
        name = f"t{k}_alu{alu}"
        s1 = Signal(_S1_CTL, name=f"{name}_s1")
        W = self._width
        s1_lanes = [Signal(_s1_lane(W), name=f"{name}_s1_l{j}") for j in range(c.lanes)]
        self._stage0(m, k, alu, R, groups, nonzero, s1, s1_lanes)

        s2 = Signal(_S2_CTL, name=f"{name}_s2")
        self._stage1_ctl(m, s1, s2)
        table = self._table(m, k, s1, s1_lanes) if alu == 0 else None
        emit = Signal(_EMIT, name=f"{name}_emit")
        m.d.sync += [
            emit.en.eq(s2.write & s2.we),
            emit.dir.eq(s2.wdir),
            emit.stream.eq(s2.wstream),
            emit.out32.eq(s2.out32),
        ]
        has_mul = alu in c.mul_alus
        for j, lane in enumerate(s1_lanes):
            val = Signal(signed(W + 2), name=f"{name}_s2_val{j}")
            m.d.sync += val.eq(self._compute(m, s1, lane, f"{name}_val{j}"))
            result = Signal(signed(W), name=f"{name}_res{j}")
            if has_mul:
                prod = Signal(signed(len(lane.a) + len(lane.b)), name=f"{name}_s2_prod{j}")
                m.d.sync += prod.eq(lane.a * lane.b)
                wide = Mux(s2.use_prod, prod, val)
            else:
                wide = val
            fitted = Mux(s2.sat, _clamp(m, wide, s2.out32, f"{name}_sat{j}", W),
                         _wrap(wide, s2.out32, W))
            if table is not None:
                fitted = Mux(s2.lut, table[j].as_signed(), fitted)
            if has_mul and c.vxm_int32:         # REQUANT reads int32
                rounded = requant_round(m, prod, s2.shift[_REQUANT_FINE:], s2.zp, s2.zr,
                                        f"{name}_rq{j}")
                fitted = Mux(s2.requant, rounded, fitted)
            m.d.comb += result.eq(fitted)
            with m.If(s2.write):
                m.d.sync += R[alu][j].eq(result)
        return emit

    def _stage0(self, m, k, alu, R, groups, nonzero, s1, s1_lanes):
        """Decode the issued word and latch the normalised operands of every lane."""
        c = self._config
        issue = self.issue[k][alu]
        word = issue.word
        op = opcode(word)
        head = fields(_VXM, "ADD", word)
        rq = fields(_VXM, "REQUANT", word)
        name = f"t{k}_alu{alu}"

        in32 = Signal(name=f"{name}_in32")
        out32 = Signal(name=f"{name}_out32")
        if not c.vxm_int32:
            # int8 only: no legal word has an int32 operand or result (LegalityCheck)
            m.d.comb += [in32.eq(0), out32.eq(0)]
        else:
            with m.Switch(op):
                for mnemonic, (dt_in, dt_out) in VXM_CONVERT.items():
                    with m.Case(_code(mnemonic)):
                        m.d.comb += [in32.eq(dt_in), out32.eq(dt_out)]
                with m.Default():
                    m.d.comb += [in32.eq(head.dtype), out32.eq(head.dtype)]

        m.d.sync += [
            s1.valid.eq(issue.valid),
            s1.op.eq(op),
            s1.out32.eq(out32),
            s1.we.eq(head.we),
            s1.wdir.eq(head.wdir),
            s1.wstream.eq(head.wstream),
            s1.shift.eq(rq.shift),
            s1.zp.eq(rq.zp),
            s1.zr.eq(rq.zr),
            s1.index.eq(fields(_VXM, "LUTW", word).index),
        ]
        def is_(*mnemonics):
            return Cat(*(op == _code(mn) for mn in mnemonics)).any()
        res = Const(_RES["pick"], 3)
        for mnemonic, unit in _RES_OF.items():
            res = Mux(op == _code(mnemonic), _RES[unit], res)
        m.d.sync += [
            s1.sub.eq(is_("SUB", "SUBS", "NEG", "MIN", "MAX", "CMPGT", "CMPEQ")),
            s1.neg.eq(is_("NEG")),
            s1.shl.eq(is_("SHL")),
            s1.logic.eq(Mux(is_("OR"), 1, Mux(is_("XOR"), 2, 0))),
            s1.min.eq(is_("MIN")), s1.max.eq(is_("MAX")), s1.select.eq(is_("SELECT")),
            s1.relu.eq(is_("RELU")), s1.cmpgt.eq(is_("CMPGT")), s1.cmpeq.eq(is_("CMPEQ")),
            s1.res.eq(res),
        ]
        is_requant = op == _code("REQUANT")
        c_raw = fields(_VXM, "SELECT", word).c
        for j, lane in enumerate(s1_lanes):
            chained = [R[x][j] for x in range(len(R))]
            a = self._operand(m, groups[j], chained, head.a, in32, head.imm, f"{name}_l{j}_a")
            b = self._operand(m, groups[j], chained, head.b, in32, head.imm, f"{name}_l{j}_b")
            m.d.sync += [
                lane.a.eq(a),
                lane.b.eq(Mux(is_requant, requant_scale(rq.mult, rq.shift), b)
                          if alu in c.mul_alus and c.vxm_int32 else b),
                lane.c_nz.eq(self._condition(m, nonzero[j], c_raw, in32, f"{name}_l{j}_c")),
            ]

    def _operand(self, m, groups, chained, raw, in32, imm, name):
        """Value of an operand field (``isa.Operand`` encoding) in one lane.

        ``groups[dir][g]`` are the lane's SG4 stream groups, ``chained`` the
        lane's ``R`` of every ALU. int8 operands come back sign-extended: a
        stream byte, the low byte of a chained ``R`` or of the immediate. int32
        operands are an SG4 group, a whole ``R`` or the whole immediate.
        """
        kind = raw[6:8]
        index = raw[:5]
        group = Signal(32, name=f"{name}_grp")
        m.d.comb += group.eq(Mux(raw[5], pick(groups[1], index[2:]), pick(groups[0], index[2:])))
        chain = Signal(32, name=f"{name}_alu")
        m.d.comb += chain.eq(pick(chained, raw[:4]))
        value32 = Signal(32, name=f"{name}32")
        byte = Signal(8, name=f"{name}8")
        with m.Switch(kind):
            with m.Case(OperandKind.STREAM):
                m.d.comb += [value32.eq(group), byte.eq(pick(bytes_of(group, 4), index[:2]))]
            with m.Case(OperandKind.ALU):
                m.d.comb += [value32.eq(chain), byte.eq(chain[:8])]
            with m.Case(OperandKind.IMM):
                m.d.comb += [value32.eq(imm), byte.eq(imm[:8])]
        value = Signal(signed(self._width), name=name)
        m.d.comb += value.eq(Mux(in32, value32.as_signed(), byte.as_signed()))
        return value

    def _condition(self, m, nonzero, raw, in32, name):
        """``c != 0`` for SELECT's operand field ``raw``, from the lane's nonzero flags
        (an immediate ``c`` is illegal; ``ZERO`` is never taken)."""
        index = raw[:5]
        stream = Mux(in32,
                     Mux(raw[5], pick(nonzero["group"][1], index[2:]),
                         pick(nonzero["group"][0], index[2:])),
                     Mux(raw[5], pick(nonzero["byte"][1], index), pick(nonzero["byte"][0], index)))
        chained = Mux(in32, pick(nonzero["r32"], raw[:4]), pick(nonzero["r8"], raw[:4]))
        cond = Signal(name=name)
        with m.Switch(raw[6:8]):
            with m.Case(OperandKind.STREAM):
                m.d.comb += cond.eq(stream)
            with m.Case(OperandKind.ALU):
                m.d.comb += cond.eq(chained)
        return cond

    def _stage1_ctl(self, m, s1, s2):
        """Classify the op for stage 2 (what the result register takes)."""
        op = s1.op
        m.d.sync += [
            s2.write.eq(s1.valid & (op != _code("LUTW"))),
            s2.use_prod.eq((op == _code("MUL")) | (op == _code("MULS"))),
            s2.sat.eq(Cat(*(op == _code(mn) for mn in _SATURATING)).any()),
            s2.requant.eq(op == _code("REQUANT")),
            s2.lut.eq(op == _code("LUT")),
            s2.out32.eq(s1.out32),
            s2.we.eq(s1.we),
            s2.wdir.eq(s1.wdir),
            s2.wstream.eq(s1.wstream),
            s2.shift.eq(s1.shift),
            s2.zp.eq(s1.zp),
            s2.zr.eq(s1.zr),
        ]

    def _compute(self, m, s1, lane, name):
        """Stage 1 of one lane: the exact result of every non-multiplying op (34 bits).

        Units are shared between ops to keep an ALU lane small: one adder
        (``x + y`` or ``x - y``; MIN, MAX and CMPGT take ``a < b`` from its
        sign, CMPEQ and CMPGT ``a == b`` from its being zero), one shifter (SHL shifts the bit-reversed operand right), one
        logic unit, and a pick of ``a``, ``b`` or zero (MIN, MAX, SELECT, RELU,
        MOV, WIDEN, NARROW). The ``s1`` controls say which unit's result counts.
        """
        W = self._width
        a, b = lane.a, lane.b[:W].as_signed()
        # The adder: x + y + 0, or x + ~y + 1 = x - y, with the carry-in folded into
        # one adder: (2x + cin) + (2y' + cin) = 2 (x + y' + cin) + ...
        x = Signal(signed(W + 2), name=f"{name}_x")
        y = Signal(signed(W + 2), name=f"{name}_y")
        m.d.comb += [
            x.eq(Mux(s1.neg, 0, a)),
            y.eq(Mux(s1.sub, ~Mux(s1.neg, a, b), b)),
        ]
        wide = Signal(signed(W + 3), name=f"{name}_sum2")
        m.d.comb += wide.eq(Cat(s1.sub, x).as_signed() + Cat(s1.sub, y).as_signed())
        total = wide[1:].as_signed()
        lt = total[W + 1]                               # a - b < 0 (exact in W + 2 bits)
        # a - b == 0, which CMPEQ and CMPGT (both subtract) read: a == b, compared
        # beside the adder rather than after its carry chain
        eq = Signal(name=f"{name}_eq")
        m.d.comb += eq.eq(a == b)
        # The shifter: b mod width; SHL = reverse, shift right with zeros, reverse.
        amount = Mux(s1.out32, b[:5], b[:3]) if W == 32 else b[:3]
        rev_a = Cat(*reversed([a[i] for i in range(W)]))
        src = Mux(s1.shl, rev_a, a)
        fill = ~s1.shl & a[W - 1]
        shifted = Signal(W, name=f"{name}_shr")
        m.d.comb += shifted.eq((Cat(src, fill.replicate(W)) >> amount)[:W])
        shift = Mux(s1.shl, Cat(*reversed([shifted[i] for i in range(W)])), shifted)
        logic = Mux(s1.logic == 0, a & b, Mux(s1.logic == 1, a | b, a ^ b))
        pick_b = (s1.min & ~lt) | (s1.max & lt) | (s1.select & ~lane.c_nz)
        zero = s1.relu & a[W - 1]
        pick = Mux(zero, 0, Mux(pick_b, b, a))
        cmp = Mux((s1.cmpgt & ~lt & ~eq) | (s1.cmpeq & eq), -1, 0)
        val = Signal(signed(W + 2), name=name)
        with m.Switch(s1.res):
            with m.Case(_RES["sum"]):
                m.d.comb += val.eq(total)
            with m.Case(_RES["shift"]):
                m.d.comb += val.eq(shift.as_signed())
            with m.Case(_RES["logic"]):
                m.d.comb += val.eq(logic)
            with m.Case(_RES["cmp"]):
                m.d.comb += val.eq(cmp)
            with m.Default():
                m.d.comb += val.eq(pick)
        return val

    def _table(self, m, k, s1, s1_lanes):
        """ALU 0's lookup tables of tile ``k``; returns the per-lane read data (stage 2).

        ``LUTW`` writes in stage 1 (t+1), a ``LUT`` issued at t+1 reads in t+2:
        exactly "visible from t + 1". The host port shares the write port.
        """
        c = self._config
        host = self.lut_w
        lutw = s1.valid & (s1.op == _code("LUTW"))
        out = []
        for j, lane in enumerate(s1_lanes):
            # Only ALU 0 reads or writes the table, one instruction at a time: a
            # cycle that writes (LUTW, or the host while idle) does not use the read.
            mem = rw_dont_care_memory(shape=8, depth=256)
            m.submodules[f"t{k}_lut{j}"] = mem
            wr = mem.write_port()
            rd = mem.read_port()
            host_here = host.en & (host.lane == k * c.lanes + j)
            m.d.comb += [
                wr.en.eq(host_here | lutw),
                wr.addr.eq(Mux(host.en, host.index, s1.index)),
                wr.data.eq(Mux(host.en, host.data, lane.a[:8])),
                rd.addr.eq(lane.a[:8]),
            ]
            out.append(rd.data)
        return out

    # -- the tile's stream outputs ---------------------------------------------------

    def _drive(self, m, k, emits, R):
        """Drive tile ``k``'s outputs from the ALUs emitting in this cycle.

        Returns the tile's ``STREAM_CONFLICT`` condition.
        """
        c = self._config
        # What each ALU drives on a stream whose SG4 position is i: byte i of R for
        # int32 results, the low byte for int8 ones (the same for every i).
        driven = []
        for a, e in enumerate(emits):
            per_pos = []
            for i in range(4):
                sig = Signal(8 * c.lanes, name=f"t{k}_alu{a}_byte{i}")
                m.d.comb += sig.eq(Cat(*(Mux(e.out32, bytes_of(R[a][j], 4)[i], R[a][j][:8])
                                         if self._width == 32 else R[a][j][:8]
                                         for j in range(c.lanes))))
                per_pos.append(sig)
            driven.append(per_pos)
        conflict = []
        for d, (out, enable) in enumerate(((self.e_out, self.e_emit), (self.w_out, self.w_emit))):
            for s in range(c.streams):
                claims = []
                for a, e in enumerate(emits):
                    claim = Signal(name=f"t{k}_alu{a}_{'ew'[d]}{s}")
                    on_stream = Mux(e.out32, e.stream[2:] == s // 4, e.stream == s)
                    m.d.comb += claim.eq(e.en & (e.dir == d) & on_stream)
                    claims.append(claim)
                value = 0
                for a in reversed(range(len(emits))):          # lowest ALU wins
                    value = Mux(claims[a], driven[a][s % 4], value)
                m.d.comb += [out[k][s].eq(value), enable[k][s].eq(Cat(*claims).any())]
                conflict += [claims[x] & claims[y] for x in range(len(claims))
                             for y in range(x + 1, len(claims))]
        return Cat(*conflict).any() if conflict else 0
