"""Shared pytest options.

``--waves DIR``: every gateware run of the tests writes its wave file and GTKWave
save file into ``DIR``, one per test named after it (``sim/waves.py``,
:func:`~sim.waves.waves_for_test`): FST for the Verilog on Icarus, VCD for
Amaranth's simulator. None are written by default.
"""

import os
from pathlib import Path


def pytest_addoption(parser):
    parser.addoption("--waves", metavar="DIR", default=None,
                     help="write a wave file (+ .gtkw) per gateware test into DIR")


def pytest_configure(config):
    folder = config.getoption("--waves")
    if folder:
        from sim.waves import WAVES_DIR_ENV
        path = Path(folder).resolve()
        path.mkdir(parents=True, exist_ok=True)
        # An environment variable reaches the xdist workers and the code under test alike.
        os.environ[WAVES_DIR_ENV] = str(path)
