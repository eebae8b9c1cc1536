"""Golden values for crates/ood-data/tests/transforms.rs (`pil_golden_*`): PIL's BILINEAR resize
(what torchvision's `Resize` applies to PIL images) and PIL's RGB -> "L" conversion, on small
images defined by formulas, printed as Rust arrays.

Run: python crates/ood-data/examples/pil_resize_golden.py   (needs Pillow). The values in the test
were printed identically by Pillow 11.3.0 and 13.0.0. Pillow 13 (PR #9549, 2026) runs the vertical
pass first when the height shrinks much more than the width, which changes some values by 1; the
crate follows the classic order (horizontal then vertical) of every earlier Pillow, i.e. of the
paper's era. Checked by hand: bit-identical to Pillow 11.3.0 on 60 random images and sizes.
"""
from PIL import Image


def gray(h, w):
    return bytes(((x * 37 + y * 91 + 13) % 256) for y in range(h) for x in range(w))


def rgb(h, w):
    return bytes(((x * 29 + y * 53 + c * 101 + 7) % 256) for y in range(h) for x in range(w) for c in range(3))


def show(name, img):
    vals = list(img.tobytes())
    print(f"const {name}: [u8; {len(vals)}] = {vals};")


g = Image.frombytes("L", (9, 6), gray(6, 9))
for (h, w) in [(4, 5), (3, 3), (10, 14)]:
    show(f"GRAY_6X9_TO_{h}X{w}", g.resize((w, h), Image.BILINEAR))
c = Image.frombytes("RGB", (11, 7), rgb(7, 11))
for (h, w) in [(5, 8), (9, 4)]:
    show(f"RGB_7X11_TO_{h}X{w}", c.resize((w, h), Image.BILINEAR))
show("RGB_7X11_TO_L", c.convert("L"))
# BOX (the code of record's `pixelate` validation set: 32 -> 6 -> 32 with Image.BOX)
for (h, w) in [(3, 5), (10, 14)]:
    show(f"RGB_7X11_BOX_{h}X{w}", c.resize((w, h), Image.BOX))
show("RGB_32_BOX_6X6", Image.frombytes("RGB", (32, 32), rgb(32, 32)).resize((6, 6), Image.BOX))
