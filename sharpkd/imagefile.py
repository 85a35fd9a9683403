"""Read and write image files without losing what the user had: EXIF, ICC profile, alpha, bit depth.

``read`` returns a :class:`Picture`: the colour pixels (EXIF orientation already applied), the alpha
plane if any, and the metadata to write back. ``write`` writes a picture atomically (temporary file, then
rename), so an interrupted batch never leaves a half-written output behind.

Pillow does most of the work. Two cases it cannot do losslessly are delegated:
16-bit RGB(A) PNG (Pillow has no 16-bit colour mode) goes through pypng, and 16-bit TIFF through
tifffile (a scikit-image dependency). Every failure raises :class:`ImageFileError` naming the file.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import png
from PIL import Image, ImageFile, UnidentifiedImageError

from sharpkd.files import write_atomic

# Output formats and their extensions. Input may be anything Pillow opens; formats not listed here are
# written as PNG.
FORMATS = {"png": ".png", "jpeg": ".jpg", "webp": ".webp", "tiff": ".tif"}
FORMAT_ALIASES = {"jpg": "jpeg", "tif": "tiff"}
IMAGE_SUFFIXES = {
    ".png", ".jpg", ".jpeg", ".jpe", ".webp", ".tif", ".tiff", ".bmp", ".gif", ".ppm", ".pgm", ".pnm", ".tga",
}
# zlib level of PNG output: 3 encodes a 12 MP photo in 1.7 s against 4.5 s at Pillow's default 6, for
# files about 3 % larger (measured; benchmarks/speed.py)
PNG_LEVEL = 3
DEFAULT_MAX_PIXELS = 200_000_000  # larger files are refused unless --max-pixels raises the limit
ORIENTATION_TAG = 0x0112
ICC_TIFF_TAG = 34675


class ImageFileError(Exception):
    """A file that cannot be read or written, with the reason in words."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


@dataclass(frozen=True)
class Picture:
    """Decoded pixels plus the metadata to carry to the output.

    ``color`` is HxWx3 (RGB) or HxWx1 (grayscale), uint8 or uint16. ``alpha``, if present, is HxW of
    the same dtype. ``exif`` already has its orientation reset to 1 (the pixels are upright);
    ``reoriented`` says whether the file's orientation had to be applied for that.
    """

    color: np.ndarray
    alpha: np.ndarray | None = None
    format: str = "png"
    exif: bytes | None = None
    icc: bytes | None = None
    reoriented: bool = False

    @property
    def gray(self) -> bool:
        return self.color.shape[2] == 1

    @property
    def megapixels(self) -> float:
        return self.color.shape[0] * self.color.shape[1] / 1e6


def normalize_format(name: str) -> str:
    name = name.lower().lstrip(".")
    name = FORMAT_ALIASES.get(name, name)
    if name not in FORMATS:
        raise ValueError(f"unsupported output format {name!r} (choose from png, jpg, webp, tiff)")
    return name


def is_image_path(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def orient(array: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1..8) to an HxW[xC] array, as Pillow's ``exif_transpose`` does."""
    swap = (1, 0) + tuple(range(2, array.ndim))
    ops = {
        1: lambda a: a,
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.transpose(swap),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: a[::-1, ::-1].transpose(swap),
        8: lambda a: np.rot90(a, 1),
    }
    return np.ascontiguousarray(ops.get(orientation, ops[1])(array))


def split_pillow(im: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    """Pillow image -> (HxWxC colour, alpha or None), converting exotic modes to RGB(A)/L."""
    mode = im.mode
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif mode == "PA":
        im = im.convert("RGBA")
    elif mode == "1":
        im = im.convert("L")
    elif mode in ("CMYK", "YCbCr", "LAB", "HSV", "RGBX"):
        im = im.convert("RGB")
    mode = im.mode
    if mode.startswith("I;16") or mode == "I":
        a = np.asarray(im)
        if a.min() < 0 or a.max() > 65535:
            raise ValueError(f"32-bit integer pixels ({mode}) are not supported")
        return a.astype(np.uint16)[..., None], None
    if mode == "F":
        raise ValueError("floating-point images are not supported")
    a = np.asarray(im)
    if mode == "L":
        return a[..., None], None
    if mode == "LA":
        return a[..., :1], a[..., 1].copy()
    if mode == "RGB":
        return a, None
    if mode == "RGBA":
        return a[..., :3], a[..., 3].copy()
    raise ValueError(f"unsupported image mode {mode}")


def _png_header(path: Path) -> tuple[int, int] | None:
    """(bit depth, colour type) of a PNG file, or None if it is not a PNG."""
    with open(path, "rb") as f:
        head = f.read(26)
    if len(head) < 26 or head[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    return head[24], head[25]


def _read_png16(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    w, h, rows, info = png.Reader(filename=str(path)).asDirect()
    a = np.vstack([np.asarray(r, dtype=np.uint16) for r in rows]).reshape(h, w, info["planes"])
    if info["alpha"]:
        return a[..., :-1], a[..., -1].copy()
    return a, None


def _check_size(path: Path, width: int, height: int, max_pixels: int | None) -> None:
    """Refuse an image larger than ``max_pixels`` (None: no limit), from its header, before decoding."""
    if max_pixels is not None and width * height > max_pixels:
        raise ImageFileError(path, f"{width}x{height} is {width * height / 1e6:.0f} megapixels, above the limit of "
                                   f"{max_pixels / 1e6:g} (raise it with --max-pixels; tiles keep memory bounded)")


def _is_tiff(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(4) in (b"II*\x00", b"MM\x00*")


def _read_tiff_with_tifffile(path: Path, max_pixels: int | None) -> tuple[np.ndarray, np.ndarray | None, bytes | None]:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            h, w = page.shape[page.axes.index("Y")], page.shape[page.axes.index("X")]
            _check_size(path, w, h, max_pixels)
            if len(tif.pages) > 1:
                raise ImageFileError(path, f"file with {len(tif.pages)} frames or pages: only single images are supported")
            dtype = page.dtype
    except tifffile.TiffFileError as e:
        raise ImageFileError(path, f"damaged TIFF ({e})") from None
    if dtype not in (np.uint8, np.uint16):
        raise ImageFileError(path, f"{dtype} TIFF pixels are not supported (8- and 16-bit only)")
    return _read_tiff16(path)


def _read_tiff16(path: Path) -> tuple[np.ndarray, np.ndarray | None, bytes | None]:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        a = page.asarray()
        if page.planarconfig == tifffile.PLANARCONFIG.SEPARATE and a.ndim == 3 and a.shape[0] == page.samplesperpixel:
            a = np.moveaxis(a, 0, -1)  # stored plane by plane (scanners, raw converters): C x H x W
        icc = page.tags.get(ICC_TIFF_TAG)
        icc = bytes(icc.value) if icc is not None else None
    if a.ndim == 2:
        return a[..., None], None, icc
    if a.shape[2] == 4:
        return a[..., :3], a[..., 3].copy(), icc
    if a.shape[2] == 2:
        return a[..., :1], a[..., 1].copy(), icc
    return a[..., :3], None, icc


def read(path: Path, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Picture:
    """Decode ``path``; raises :class:`ImageFileError` for anything unreadable, animated, or larger than
    ``max_pixels`` (None: no limit; checked from the header, before anything is decoded)."""
    import tifffile

    path = Path(path)
    try:
        with Image.open(path) as im:
            _check_size(path, im.width, im.height, max_pixels)
            frames = getattr(im, "n_frames", 1)
            if frames > 1:
                raise ImageFileError(path, f"{'animated image' if im.format in ('GIF', 'PNG', 'WEBP') else 'file'} with {frames} "
                                           "frames or pages: only single images are supported")
            fmt = (im.format or "png").lower()
            exif = im.getexif()
            orientation = int(exif.get(ORIENTATION_TAG, 1) or 1)
            icc = im.info.get("icc_profile")
            bits = im.tag_v2.get(258) if fmt == "tiff" else None
            header = _png_header(path) if fmt == "png" else None
            # 16-bit colour and grey+alpha: Pillow would reduce them to 8 bits (plain 16-bit grey it reads as I;16)
            if header is not None and header[0] == 16 and header[1] in (2, 4, 6):
                color, alpha = _read_png16(path)
            elif bits is not None and max(np.atleast_1d(bits)) == 16:
                color, alpha, icc = _read_tiff16(path)
            else:
                im.load()
                if im.mode == "CMYK":
                    icc = None  # the profile describes CMYK, not the RGB we convert to
                color, alpha = split_pillow(im)
    except FileNotFoundError:
        raise ImageFileError(path, "file not found") from None
    except UnidentifiedImageError:
        if not _is_tiff(path):
            raise ImageFileError(path, "not an image, or a format Pillow cannot read") from None
        # TIFFs Pillow cannot open (16-bit planar RGB from scanners, for one): tifffile reads them
        fmt, exif, orientation = "tiff", Image.Exif(), 1
        color, alpha, icc = _read_tiff_with_tifffile(path, max_pixels)
    except (OSError, SyntaxError, ValueError, EOFError, png.Error, tifffile.TiffFileError) as e:
        raise ImageFileError(path, str(e) or type(e).__name__) from None
    if color.shape[0] == 0 or color.shape[1] == 0:
        raise ImageFileError(path, "image has no pixels")
    exif_bytes = None
    if len(exif):
        if orientation != 1:
            exif[ORIENTATION_TAG] = 1
        exif_bytes = exif.tobytes()
    color = orient(color, orientation)
    alpha = orient(alpha, orientation) if alpha is not None else None
    return Picture(color=color, alpha=alpha, format=fmt if fmt in FORMATS else "png", exif=exif_bytes, icc=icc, reoriented=orientation != 1)


class ReadAhead:
    """Decodes one photo ahead on a worker thread: the next photo of a batch while the current one is
    restored, and the first while torch loads. Pillow's decoders, zlib and NumPy release the GIL, so the
    decode overlaps the network (and the import) instead of adding to it. At most one photo is held ahead,
    and only one of at most ``ahead_pixels`` (a larger one is decoded when its turn comes, so that two
    large photos are never held at once). Errors surface from :meth:`read`, as from :func:`read`."""

    def __init__(self, max_pixels: int | None = DEFAULT_MAX_PIXELS, ahead_pixels: int = 50_000_000) -> None:
        self.max_pixels = max_pixels
        self.ahead_pixels = ahead_pixels
        self._pool = None
        self._path: Path | None = None
        self._future = None

    def start(self, path: Path) -> None:
        """Begin decoding ``path`` (replacing any photo decoded ahead and not read)."""
        from concurrent.futures import ThreadPoolExecutor

        if self._path == Path(path):
            return
        self._path = self._future = None
        try:
            with Image.open(path) as im:
                if im.width * im.height > self.ahead_pixels:
                    return
        except (OSError, ValueError, SyntaxError, EOFError):  # unreadable: :meth:`read` says why when its turn comes
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sharpkd-read")
        self._path, self._future = Path(path), self._pool.submit(read, path, self.max_pixels)

    def read(self, path: Path, then: Path | None = None) -> Picture:
        """The picture of ``path``: the one decoded ahead if it is that one, else decoded now; then
        (whether or not ``path`` could be read) begins decoding ``then``."""
        try:
            if self._path == Path(path):
                future, self._path, self._future = self._future, None, None
                return future.result()
            return read(path, self.max_pixels)
        finally:
            if then is not None:
                self.start(then)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        self._path = self._future = None


def to_dtype(array: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Convert between uint8 and uint16 keeping the full-scale value."""
    if array.dtype == dtype:
        return array
    if dtype == np.uint8:
        return np.round(array.astype(np.float64) * (255.0 / 65535.0)).astype(np.uint8)
    return array.astype(np.uint16) * 257


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _encode_png16(pic: Picture) -> bytes:
    planes = [pic.color] + ([pic.alpha[..., None]] if pic.alpha is not None else [])
    a = np.concatenate(planes, axis=2)
    h, w, c = a.shape
    writer = png.Writer(w, h, greyscale=c in (1, 2), alpha=c in (2, 4), bitdepth=16, compression=PNG_LEVEL)
    buf = io.BytesIO()
    writer.write_array(buf, a.reshape(-1))
    data = buf.getvalue()
    extra = b""
    if pic.icc:
        extra += _png_chunk(b"iCCP", b"icc\x00\x00" + zlib.compress(pic.icc))
    if pic.exif:
        exif = pic.exif[6:] if pic.exif.startswith(b"Exif\x00\x00") else pic.exif
        extra += _png_chunk(b"eXIf", exif)
    ihdr_end = 8 + 25  # signature + IHDR chunk
    return data[:ihdr_end] + extra + data[ihdr_end:]


def _encode(pic: Picture, fmt: str, quality: int) -> bytes:
    import tifffile

    wide = pic.color.dtype == np.uint16
    if wide and fmt == "png":
        return _encode_png16(pic)
    if wide and fmt == "tiff":
        planes = [pic.color] + ([pic.alpha[..., None]] if pic.alpha is not None else [])
        a = np.concatenate(planes, axis=2)
        buf = io.BytesIO()
        extratags = [(ICC_TIFF_TAG, 7, len(pic.icc), pic.icc, True)] if pic.icc else []
        tifffile.imwrite(
            buf, a if a.shape[2] > 1 else a[..., 0],
            photometric="minisblack" if pic.gray else "rgb",
            extrasamples=["unassalpha"] if pic.alpha is not None else None,
            compression="zlib", extratags=extratags,
        )
        return buf.getvalue()
    color = to_dtype(pic.color, np.uint8)
    alpha = to_dtype(pic.alpha, np.uint8) if pic.alpha is not None and fmt != "jpeg" else None
    if pic.gray:
        im = Image.fromarray(color[..., 0], "L")
        if alpha is not None:
            im = Image.merge("LA", (im, Image.fromarray(alpha, "L")))
    else:
        im = Image.fromarray(color, "RGB")
        if alpha is not None:
            im.putalpha(Image.fromarray(alpha, "L"))
    kwargs: dict = {}
    if pic.icc:
        kwargs["icc_profile"] = pic.icc
    if pic.exif:
        kwargs["exif"] = pic.exif
    if fmt == "png":
        kwargs.update(compress_level=PNG_LEVEL)
    elif fmt == "jpeg":
        kwargs.update(quality=quality, subsampling=0)
    elif fmt == "webp":
        kwargs.update(quality=quality, method=4)
    elif fmt == "tiff":
        kwargs.update(compression="tiff_deflate")
    buf = io.BytesIO()
    im.save(buf, format=fmt.upper(), **kwargs)
    return buf.getvalue()


def write(pic: Picture, path: Path, fmt: str | None = None, quality: int = 95) -> None:
    """Encode ``pic`` as ``fmt`` (default: its own format) and write it atomically to ``path``.

    16-bit pictures stay 16-bit in PNG and TIFF; JPEG and WebP are 8-bit, so they are converted.
    JPEG has no alpha channel: alpha is dropped there.
    """
    path = Path(path)
    fmt = normalize_format(fmt or pic.format)
    try:
        write_atomic(path, _encode(pic, fmt, quality))
    except (OSError, ValueError) as e:
        raise ImageFileError(path, f"cannot write: {e}") from None


def copy(source: Path, path: Path) -> None:
    """Copy ``source`` to ``path`` byte for byte, atomically (for outputs whose pixels did not change)."""
    path = Path(path)
    try:
        write_atomic(path, Path(source).read_bytes())
    except OSError as e:
        raise ImageFileError(path, f"cannot write: {e}") from None


def with_pixels(pic: Picture, color: np.ndarray) -> Picture:
    """The same picture (alpha, metadata) with new colour pixels."""
    return replace(pic, color=color)


# Allow slightly truncated files? No: a truncated photo is reported, not silently half-enhanced.
ImageFile.LOAD_TRUNCATED_IMAGES = False
# The size limit is ours (``read``'s max_pixels, said in words with the option to raise it), not
# Pillow's "decompression bomb" error, which offers no way through.
Image.MAX_IMAGE_PIXELS = None
