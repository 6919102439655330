"""A small program for the debugging tools' tests, with its timing derived from the floorplan.

``z = x (op) y`` for ``n`` vectors: ``MEM_W1`` reads ``x`` onto ``E0``, ``MEM_W0``
reads ``y`` onto ``E1`` so that both reach the VXM in the same cycle, ``VXM0``
computes and drives ``E2``, ``MEM_E0`` writes ``z``. Every cycle below follows
from ``Floorplan`` positions and ``Latencies`` (``docs/ARCHITECTURE.md`` section 2:
a value emitted at ``t + d`` by slice ``j`` is read by slice ``i`` at
``t + d + |i - j|``).
"""

from dataclasses import dataclass

import numpy as np

from firmware.asm import assemble
from firmware.machine import get_config


@dataclass
class Vop:
    text: str
    x: np.ndarray          # int8 [n, VL]
    y: np.ndarray
    read_x: int            # MEM_W1's first READ
    read_y: int            # MEM_W0's first READ
    vxm_at: int            # VXM0's first op
    write_at: int          # MEM_E0's first WRITE
    n: int

    @property
    def image(self):
        return assemble(self.text)


def vop_program(config="tiny", op="ADD", n=4, seed=1):
    c = get_config(config)
    fp, lat = c.floorplan, c.latency
    vxm = fp.vxm.pos
    hx = lat.hops(fp.slice("MEM_W1").pos, vxm)
    hy = lat.hops(fp.slice("MEM_W0").pos, vxm)
    hz = lat.hops(vxm, fp.slice("MEM_E0").pos)
    vxm_at = lat.mem_read + hx                       # x read at 0 arrives then
    read_y = vxm_at - lat.mem_read - hy
    write_at = vxm_at + lat.vxm + hz
    rng = np.random.default_rng(seed)
    x = rng.integers(1, 60, (n, c.vl)).astype(np.int8)
    y = rng.integers(1, 60, (n, c.vl)).astype(np.int8)   # nonzero: ADD and SUB differ
    data = []
    for i in range(n):
        data.append(f".data MEM_W1, {i}, {', '.join(map(str, x[i]))}")
        data.append(f".data MEM_W0, {i}, {', '.join(map(str, y[i]))}")
    nop = lambda k: f"        NOP {k}" if k else ""
    text = f"""
.config {c.name}
.output z, MEM_E0, 0x10, {n}, i8
{chr(10).join(data)}
.queue MEM_W1
        READ 0 -> E0
        REPEAT {n - 1}, 1, 1
.queue MEM_W0
{nop(read_y)}
        READ 0 -> E1
        REPEAT {n - 1}, 1, 1
.queue VXM0
{nop(vxm_at)}
        {op}.i8 E0, E1 -> E2
        REPEAT {n - 1}, 1, 0
.queue MEM_E0
{nop(write_at)}
        WRITE E2 -> 0x10
        REPEAT {n - 1}, 1, 1
"""
    return Vop(text, x, y, 0, read_y, vxm_at, write_at, n)
