"""Formal checks of the gateware: bounded model checks (and, where they close,
k-induction proofs) of Amaranth ``Assert``/``Assume`` properties through
``yowasp-sby``.

The properties live here, beside the tests, never in ``rtl/``: each bench is a
small :class:`~amaranth.lib.wiring.Component` that instantiates the real
component on a machine shrunk to the few bits the property needs, leaves
everything the property quantifies over as a free input (the solver picks it),
and asserts what ``docs/ARCHITECTURE.md`` says must hold.

- :mod:`.fabric_hop`     the stream hop (``rtl/fabric.py``)
- :mod:`.icu_sequencer`  NOP / REPEAT / NOTIFY / HALT timing of a queue (``rtl/icu.py``)
- :mod:`.mem_bank`       the bank hazard of ``RW`` through the whole MEM path (``rtl/top.py``)
- :mod:`.link_frames`    the host link's frame parser (``rtl/hostlink.py``)

:mod:`.checks` lists every check with its depth and its deliberately broken
variants (:mod:`.mutants`), each of which the solver must refute;
:mod:`.runner` writes the RTLIL and the ``.sby`` file, runs ``yowasp-sby`` and
reads its verdict. ``python -m tests.formal`` (``scripts/formal.sh``) runs
them all and prints the depths reached and the times.
"""
