"""sharpkd: sharpen photos with a small network distilled from a large one.

Python API: load a model once, then enhance any number of images (PIL images or NumPy arrays; each
comes back as the same kind)::

    import sharpkd
    model = sharpkd.load()            # the default; or load("x4"), load(weights="run/")
    sharp = sharpkd.enhance(model, image)

:func:`enhance_image` does both in one call (bundled models are cached).
"""

from sharpkd.enhance import enhance, enhance_image, load

__all__ = ["enhance", "enhance_image", "load"]
