"""sharpkd: sharpen photos with a small network distilled from a large one.

Python API: :func:`enhance_image` takes a PIL image or a NumPy array and returns the same kind.
"""

from sharpkd.enhance import enhance_image

__all__ = ["enhance_image"]
