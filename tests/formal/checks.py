"""Every formal check of the project: what it proves, how deep, and the broken
variants it must catch.

``QUICK`` runs in the default test command, ``DEEP`` behind ``-m slow`` and in
``scripts/formal.sh``; ``CAUGHT`` pairs each property with deliberately broken
copies of the RTL (``mutants.py``) on which the solver must find a
counterexample.
"""

from dataclasses import dataclass
from typing import Callable

from . import fabric_hop, icu_sequencer, link_frames, mem_bank


__all__ = ["Check", "QUICK", "DEEP", "CAUGHT", "ALL"]


@dataclass(frozen=True)
class Check:
    name: str
    what: str
    bench: Callable          # () -> the bench component
    depth: int               # bmc: cycles unrolled; prove: the induction length k
    mode: str = "bmc"
    expect: str = "PASS"     # "FAIL" for a broken variant

    def __str__(self):
        return self.name


def _sequencer(words, **kw):
    return lambda: icu_sequencer.SequencerBench(words, **kw)


QUICK = [
    Check("fabric_hop", "a value moves one hop per cycle unless a slice overwrites it "
          "(any cycle count: k-induction)", fabric_hop.HopBench, 3, "prove"),
    Check("link_frames", "the frame parser never accepts a bad CRC and resynchronises "
          "(any frame, any cycle count: k-induction)", link_frames.LinkBench, 3, "prove"),
    Check("link_executor", "the executor drives no host command or RESET unless the "
          "frame it holds is OK", link_frames.ExecutorBench, 16),
    Check("icu_sequencer_3", "NOP / REPEAT / NOTIFY / HALT timing, every legal program "
          "of 3 words", _sequencer(3), 10),
    Check("mem_bank", "a same-bank RW sets the sticky flag, executes nothing; "
          "different banks never set it", mem_bank.BankBench, 20),
]

DEEP = [
    Check("icu_sequencer_4", "NOP / REPEAT / NOTIFY / HALT timing, every legal program "
          "of 4 words", _sequencer(4), 14),
    Check("icu_sequencer_6_repeats", "6-word programs of ordinary words, REPEATs (up to "
          "3 x 3 cycles) and NOPs in any order",
          _sequencer(6, shape=[["ORD"]] + [["ORD", "REPEAT", "NOP"]] * 4 + [["HALT", "ORD"]],
                     rep_max=3, dist_max=3), 20),
    Check("link_executor_40", "the executor drives no host command or RESET unless the "
          "frame it holds is OK", link_frames.ExecutorBench, 40),
]


def _caught(module, name, depth, mode="bmc"):
    entry = module.BROKEN[name]
    edits = entry if isinstance(entry, list) else entry[1]      # [Edit] or (where, [Edit])
    return Check(f"{module.__name__.rpartition('.')[2]}:{name}",
                 "; ".join(edit.why for edit in edits),
                 lambda: module.broken(name), depth, mode, expect="FAIL")


CAUGHT = (
    [_caught(fabric_hop, name, 3, "prove") for name in fabric_hop.BROKEN]
    + [_caught(icu_sequencer, name, 12) for name in icu_sequencer.BROKEN]
    + [_caught(mem_bank, name, 20) for name in mem_bank.BROKEN]
    + [_caught(link_frames, name, 12) for name in link_frames.BROKEN]
)

ALL = QUICK + DEEP + CAUGHT
