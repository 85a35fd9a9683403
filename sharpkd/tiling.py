"""Plan the tiles of an image: cores and the regions (core + context) a model sees. The running and
stitching is ``inference.enhance_pixels``, which reads each region from the photo's pixels.

The algorithm (after Real-ESRGAN's ``tile_process``): each output tile (the *core*) is computed from an
input region that extends the core by a *margin* of context on every side, clipped at the image edge;
only the core of the result is kept and placed at its exact position.

Why the result does not depend on tiling: an output pixel of our models depends only on input pixels at
most ``context`` away (the models report a safe bound, see ``Student.context``). The margin is at least
that, so every core pixel sees exactly the input it sees in a whole-image pass. Where a region is clipped,
it is clipped at the image edge, where the whole-image pass meets the same zero padding. The models fold
4x4 blocks (pixel-unshuffle), so every region also starts on that 4-pixel grid. No blending is needed:
there is nothing to hide. ``tests/test_tiling.py`` checks tiled == whole to float precision. A model's
spec may state a smaller measured margin (the bundled students: within 1 level, ``benchmarks/margin.py``).
Adjacent tiles may be planned as one block (``across`` x ``down`` tiles, one region): the same argument
holds for any core size, and the margin is then paid once per block instead of once per tile.
"""

from __future__ import annotations

from dataclasses import dataclass

MIN_TILE = 64  # smaller tiles spend nearly all their time on context: --tile 7 ran 70x slower


@dataclass(frozen=True)
class Tile:
    """A core (where the output is kept) and the larger region fed to the model, as [start, stop)."""

    y0: int
    y1: int
    x0: int
    x1: int
    ry0: int
    ry1: int
    rx0: int
    rx1: int


def round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def plan(height: int, width: int, tile: int, context: int, align: int, across: int = 1, down: int = 1) -> list[Tile]:
    """Tiles covering a ``height`` x ``width`` image (both multiples of ``align``).

    ``tile`` is the core size (rounded up to ``align``); ``tile <= 0`` means one tile for the whole image.
    ``across`` x ``down`` > 1: each returned core is a block of that many adjacent tiles (fewer at the
    right and bottom edges), computed as one region: the tiles of a block share their margins instead of
    each computing its own.
    """
    if height % align or width % align:
        raise ValueError(f"{width}x{height} is not a multiple of {align}")
    if tile <= 0:
        return [Tile(0, height, 0, width, 0, height, 0, width)]
    tile = round_up(tile, align)
    margin = round_up(context, align)
    tiles = []
    for y0 in range(0, height, tile * down):
        for x0 in range(0, width, tile * across):
            y1, x1 = min(y0 + tile * down, height), min(x0 + tile * across, width)
            tiles.append(
                Tile(y0, y1, x0, x1, max(y0 - margin, 0), min(y1 + margin, height), max(x0 - margin, 0), min(x1 + margin, width))
            )
    return tiles
