"""Drive one datapath slice (VXM, MXM, SXM) in the Amaranth simulator, in local time.

The tests describe a run as the spec does: per *local* cycle, the
instruction(s) issued and the stream vectors (``S x VL`` bytes per direction)
at the slice's position. :func:`run_slice` applies the superlane stagger the
way the ICU and the stream fabric would (tile ``k`` sees local cycle ``t`` at
global cycle ``t + k``) and hands back, per local cycle, what the slice
emitted, reassembled from every tile at its own global cycle. A test then
compares whole vectors at exact local cycles against numpy.
"""

from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
from amaranth.sim import Simulator

from rtl.isa import issue_layout


@dataclass
class Emitted:
    """What a slice drove in one local cycle, for one direction.

    ``values[s, lane]`` is the byte on stream ``s``; ``mask[s, lane]`` is set
    where the slice emitted it (each tile's emit bit repeated over its lanes).
    """
    values: np.ndarray
    mask: np.ndarray

    def stream(self, s):
        """Stream ``s`` as int8 if every lane of it was emitted, else ``None``."""
        return self.values[s].view(np.int8) if self.mask[s].all() else None

    def group(self, s):
        """The SG4 group ``s .. s+3`` as int32 if it was emitted in every lane, else ``None``."""
        assert s % 4 == 0 and s + 4 <= self.mask.shape[0], f"no SG4 group at stream {s}"
        if not self.mask[s:s + 4].all():
            return None
        return self.values[s:s + 4].astype(np.uint32).T @ (1 << (8 * np.arange(4, dtype=np.uint32)))


@dataclass
class Trace:
    east: list          # Emitted per local cycle
    west: list
    err: list           # error bits per global cycle (= tile 0's local cycle)

    def emitted_streams(self, t):
        """``{(dir, s)}`` of every stream emitted (in any lane) at local cycle ``t``."""
        out = set()
        for d, em in (("E", self.east[t]), ("W", self.west[t])):
            out |= {(d, s) for s in range(em.mask.shape[0]) if em.mask[s].any()}
        return out


def _unpack_streams(config, value):
    T, L, S = config.tiles, config.lanes, config.streams
    raw = np.frombuffer(value.to_bytes(T * S * L, "little"), dtype=np.uint8)
    return raw.reshape(T, S, L)


#: One compiled simulator per design: building one for a large slice takes seconds, so
#: every run of the same design resets it (``Simulator.reset``) and replays a new job.
_SIMULATORS = {}


def _simulator(key, build):
    if key not in _SIMULATORS:
        dut = build()
        job = SimpleNamespace(bench=None, fresh=True)
        sim = Simulator(dut)
        sim.add_clock(1e-8)

        async def bench(ctx):
            await job.bench(ctx)

        sim.add_testbench(bench)
        _SIMULATORS[key] = (dut, sim, job)
    return _SIMULATORS[key]


def run_slice(config, kind, build, program, streams=None, cycles=None, host_writes=(),
              alus=1, key=None):
    """Simulate the slice ``build()`` makes for ``cycles`` local cycles.

    ``key`` names the design (default: kind and config) so that its compiled
    simulator is reused across runs; every run starts from reset.
    ``program``: ``{local cycle: word}`` or, for the VXM, ``{local cycle: {alu: word}}``.
    ``streams``: ``{local cycle: {"E": S x VL bytes, "W": S x VL bytes}}`` (missing: zeros).
    ``host_writes``: ``[(port name, {field: value})]`` applied one per cycle before the run
    (the machine is idle then, as the host ports require).
    ``alus``: issue entries per tile (the VXM's ALUs; 1 for the other slices).
    """
    T, L, S = config.tiles, config.lanes, config.streams
    dut, sim, job = _simulator(key or (kind, config), build)
    streams = streams or {}
    layout = issue_layout(kind)
    entry = layout.size
    valid_at, word_at = layout["valid"].offset, layout["word"].offset
    if cycles is None:
        cycles = max(program, default=0) + 1
    zeros = np.zeros((S, config.vl), dtype=np.uint8)
    east = [Emitted(zeros.copy(), np.zeros((S, config.vl), bool)) for _ in range(cycles)]
    west = [Emitted(zeros.copy(), np.zeros((S, config.vl), bool)) for _ in range(cycles)]
    err = []

    def issue_bits(local):
        words = program.get(local, {})
        if not isinstance(words, dict):
            words = {0: words}
        bits = 0
        for alu, word in words.items():
            bits |= ((1 << valid_at) | (word << word_at)) << (entry * alu)
        return bits

    async def bench(ctx):
        for port_name, values in host_writes:
            port = getattr(dut, port_name)
            for name, value in values.items():
                ctx.set(getattr(port, name), value)
            ctx.set(port.en, 1)
            await ctx.tick()
            ctx.set(port.en, 0)
        for g in range(cycles + T - 1):
            # Tile k is in local cycle g - k: its instruction and its lanes of the streams.
            issue = 0
            e_tiles, w_tiles = [], []
            for k in range(T):
                issue |= issue_bits(g - k) << (entry * alus * k)
                vec = streams.get(g - k, {})
                e_tiles.append(np.asarray(vec.get("E", zeros)).astype(np.uint8)
                               .reshape(S, T, L)[:, k, :])
                w_tiles.append(np.asarray(vec.get("W", zeros)).astype(np.uint8)
                               .reshape(S, T, L)[:, k, :])
            e_in = int.from_bytes(np.stack(e_tiles).tobytes(), "little")
            w_in = int.from_bytes(np.stack(w_tiles).tobytes(), "little")
            ctx.set(dut.issue.as_value(), issue)
            ctx.set(dut.e_in.as_value(), e_in)
            ctx.set(dut.w_in.as_value(), w_in)
            e_out = _unpack_streams(config, ctx.get(dut.e_out.as_value()))
            w_out = _unpack_streams(config, ctx.get(dut.w_out.as_value()))
            e_emit = ctx.get(dut.e_emit.as_value())
            w_emit = ctx.get(dut.w_emit.as_value())
            for k in range(T):
                local = g - k
                if not 0 <= local < cycles:
                    continue
                lanes = slice(k * L, k * L + L)
                for em, out, bits in ((east[local], e_out, e_emit), (west[local], w_out, w_emit)):
                    em.values[:, lanes] = out[k]
                    for s in range(S):
                        em.mask[s, lanes] = bool((bits >> (k * S + s)) & 1)
            err.append(ctx.get(dut.err) if hasattr(dut, "err") else 0)
            await ctx.tick()

    job.bench = bench
    if not job.fresh:
        sim.reset()
    job.fresh = False
    sim.run()
    return Trace(east, west, err)
