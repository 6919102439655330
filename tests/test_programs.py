"""Hand-written kernels (firmware/kernels/*.s) on the golden model.

Each kernel's header derives its cycle count from the timing rules of
docs/ARCHITECTURE.md; the expected results are computed here with numpy from
the data the program carries.
"""

from pathlib import Path

import numpy as np
import pytest

from firmware.asm import assemble_file
from firmware.isa import ErrorFlag, requantize
from sim.golden import run_image


KERNELS = Path(__file__).parent.parent / "firmware" / "kernels"


def words(image, slice_name, addr, count):
    return image.memory_array(slice_name)[addr:addr + count].view(np.int8).astype(np.int64)


def int32_planes(image, slices, addr, count):
    planes = [image.memory_array(s)[addr:addr + count].astype(np.uint32) for s in slices]
    return (planes[0] | planes[1] << 8 | planes[2] << 16 | planes[3] << 24).view(np.int32)


def expect_vadd(img):
    s = words(img, "MEM_W1", 0, 4) + words(img, "MEM_W0", 0, 4)
    return {"z": np.clip(s, -128, 127)}


def expect_matmul(img):
    a = words(img, "MEM_E2", 0, 4)
    bt = words(img, "MEM_E3", 0, img.config.vl)       # column c of B is word c
    return {"c": (a @ bt.T).astype(np.int32)}


def expect_requant(img):
    x = int32_planes(img, ["MEM_W0", "MEM_W1", "MEM_W2", "MEM_W3"], 0, 4).astype(np.int64)
    # .equ values of requant.s
    y = requantize(x + 1234, mult=11184811, shift=32, zp=-5)
    return {"y": np.maximum(y, 0)}


def expect_transpose(img):
    c = img.config
    src = np.stack([words(img, f"MEM_E{j}", 0, 1)[0] for j in range(c.lanes)])   # [stream, lane]
    L = c.lanes
    out = np.zeros_like(src)
    for k in range(c.tiles):
        for i in range(L):
            for j in range(L):
                out[i, k * L + j] = src[j, k * L + i]
    return {f"t{i}": out[i:i + 1] for i in range(L)}


def expect_repeat(img):
    v = words(img, "MEM_W0", 0, 16)
    return {"r": v[0:16:2][::-1]}


CASES = [
    # kernel, expected outputs, cycles derived in the kernel's header
    ("vadd.s", expect_vadd, 16),
    ("matmul.s", expect_matmul, 32),
    ("requant.s", expect_requant, 24),
    ("transpose.s", expect_transpose, 19),
    ("repeat_loop.s", expect_repeat, 16),
]


@pytest.mark.parametrize("kernel, expect, cycles", CASES, ids=[c[0] for c in CASES])
def test_kernel(kernel, expect, cycles):
    image = assemble_file(KERNELS / kernel)
    result = run_image(image)
    assert result.errors == 0, result.events
    assert result.cycles == cycles
    for name, want in expect(image).items():
        np.testing.assert_array_equal(result.outputs[name], want, err_msg=name)


def test_bank_hazard_is_reported_and_stops_the_machine():
    image = assemble_file(KERNELS / "bank_hazard.s")
    vl, bank1 = image.config.vl, image.config.bank_words      # bank 1 starts at bank_words
    image.set_words("MEM_E0", bank1, [7] * (2 * vl))          # overwritten with zeros (W1 is idle)
    image.set_words("MEM_E0", bank1 + 2, [9] * vl)            # must survive: not written
    result = run_image(image)
    assert result.errors == ErrorFlag.BANK_CONFLICT
    (event,) = result.events
    assert (event.cycle, event.flag, event.where) == (2, ErrorFlag.BANK_CONFLICT, "MEM_E0")
    # every queue stops from cycle 3: H = 3, cycles = H + T
    assert result.cycles == 3 + image.config.tiles
    mem = result.memory["MEM_E0"]
    assert not mem[bank1].any() and not mem[bank1 + 1].any()  # the two good writes (of zeros)
    assert (mem[bank1 + 2] == 9).all()                        # the conflicting one did not happen
