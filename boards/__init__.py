"""Board tops and their builds: the iCEBreaker (iCE40 UP5K) and the ULX3S-85F (ECP5).

Importing this package is cheap (the CLI lists the boards from it); the board
modules import Amaranth and the gateware.
"""

#: The boards, each a module here: ``boards.icebreaker``, ``boards.ulx3s``.
BOARDS = ("icebreaker", "ulx3s")

#: What a board can carry: the TSP behind the host link, the link alone with a
#: scratch memory (``loopback``), or a UART echo (``echo``) to check the serial port.
CORES = ("tsp", "loopback", "echo")

#: A board can also carry one block of the TSP alone, for its timing
#: (``boards.probe``): ``core = PROBE_PREFIX + block name``.
PROBE_PREFIX = "probe:"


def check_core(core):
    """``ValueError`` unless ``core`` is one of :data:`CORES` or ``probe:<block>``."""
    if core in CORES or (isinstance(core, str) and core.startswith(PROBE_PREFIX)
                         and len(core) > len(PROBE_PREFIX)):
        return
    raise ValueError(f"core must be one of {', '.join(CORES)} or {PROBE_PREFIX}<block>, "
                     f"not {core!r}")
