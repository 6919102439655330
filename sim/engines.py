"""The engines a program image can run on, by name.

``golden``    the numpy golden model (``sim.golden``)
``rtl``       the gateware's Verilog on Icarus through cocotb (``sim.rtl_runner``)
``amaranth``  the gateware in Amaranth's own simulator (``sim.amaranth_run``)

Every engine returns a result with ``cycles``, ``errors``, ``memory`` and
``outputs``; the two RTL engines are compared with the golden model by their
callers (``rtl`` does it itself and adds ``golden_cycles`` and ``agree``).
"""

ENGINES = ("golden", "rtl", "amaranth")


def run_on(engine, image, waves=None):
    if engine == "golden":
        from sim.golden import run_image
        return run_image(image)
    if engine == "rtl":
        from sim.rtl_runner import run_image_rtl
        return run_image_rtl(image, waves=waves)
    if engine == "amaranth":
        from sim.amaranth_run import run_image_amaranth
        return run_image_amaranth(image, vcd_path=waves)
    raise ValueError(f"unknown engine {engine!r}; engines are {', '.join(ENGINES)}")
