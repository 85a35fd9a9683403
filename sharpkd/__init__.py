"""sharpkd: sharpen photos with a small network distilled from a large one.

Python API: load a model once, then enhance any number of images (PIL images or NumPy arrays; each
comes back as the same kind)::

    import sharpkd
    model = sharpkd.load()            # the default; or load("x4"), load(weights="run/")
    sharp = sharpkd.enhance(model, image)

:func:`enhance_image` does both in one call (bundled models are cached).
"""

__all__ = ["enhance", "enhance_image", "load"]


def __getattr__(name: str):
    # imported on first use, so that `sharpkd --help` does not wait for torch
    if name in __all__:
        from sharpkd import inference as _core

        return getattr(_core, name)
    raise AttributeError(f"module 'sharpkd' has no attribute {name!r}")
