"""The ``sharpkd`` command: a thin click group. Each command parses, calls one library function, prints."""

from __future__ import annotations

import json
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import click
from PIL import Image
from rich.markup import escape
from rich.table import Table

from sharpkd import console, enhance, imagefile, pretrained
from sharpkd.console import fail

try:
    __version__ = version("sharpkd")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

MODEL_CHOICES = click.Choice(pretrained.BUNDLED)
DEVICE_CHOICES = click.Choice(["auto", "cpu", "cuda"])


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sharpkd")
def main() -> None:
    """Sharpen soft, blurry or low-resolution photos with a small distilled network, on a CPU."""


def load_model(model: str | None, weights: Path | None, device: str) -> pretrained.Loaded:
    if model and weights:
        raise click.UsageError("give --model or --weights, not both")
    try:
        return pretrained.load(model, weights, pretrained.resolve_device(device))
    except pretrained.WeightsError as e:
        fail(str(e))


def _header_megapixels(path: Path, upscale: int) -> float:
    try:
        with Image.open(path) as im:
            return im.width * im.height * upscale * upscale / 1e6
    except Exception:  # unreadable: it will be reported when it is processed
        return 0.0


@main.command("enhance")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path), help="Output folder (created if needed).")
@click.option("-r", "--recursive", is_flag=True, help="Walk sub-folders and mirror their tree under the output folder.")
@click.option("--format", "fmt", type=click.Choice(["png", "jpg", "webp", "tiff"]), help="Output format [default: same as input].")
@click.option("--quality", type=click.IntRange(1, 100), default=95, show_default=True, help="Quality for JPEG and WebP output.")
@click.option("--overwrite", is_flag=True, help="Redo outputs that already exist (default: skip them, so a stopped batch resumes).")
@click.option("--tile", type=click.IntRange(min=0), default=128, show_default=True, help="Tile size in pixels; 0 = whole image in one pass. Output does not depend on it.")
@click.option("--upscale", type=click.IntRange(1, 8), default=1, show_default=True, help="Bicubic-upsample by N first, then restore (super-resolution).")
@click.option("--strength", type=click.FloatRange(0, 1), default=1.0, show_default=True, help="Blend of input (0) and restored output (1).")
@click.option("--model", type=MODEL_CHOICES, help="Bundled model [default: your installed student, else the bundled student].")
@click.option("--weights", type=click.Path(path_type=Path), help="A weights file or run folder made by train-teacher/distill.")
@click.option("--device", type=DEVICE_CHOICES, default="auto", show_default=True)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no summary (errors still go to stderr).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
@click.option("-v", "--verbose", is_flag=True, help="List every file: done, skipped, ignored (non-image).")
def enhance_cmd(inputs, output, recursive, fmt, quality, overwrite, tile, upscale, strength, model, weights, device, quiet, as_json, verbose) -> None:
    """Sharpen INPUTS (files and/or folders) into the folder OUTPUT.

    Exit code: 0 if every image succeeded (or was skipped as already done), 1 if any failed, 2 for usage errors.
    """
    if output.exists() and not output.is_dir():
        fail(f"{output}: exists and is not a folder")
    options = enhance.Options(tile=tile, strength=strength, upscale=upscale, format=fmt, quality=quality, overwrite=overwrite, recursive=recursive)
    plan = enhance.plan_batch(list(inputs), output, options)
    loaded = load_model(model, weights, device)
    if verbose:
        for p in plan.ignored:
            console.err.print(f"ignored (not an image): {escape(str(p))}")
        console.err.print(f"model: {loaded.name} ({loaded.arch}, {loaded.source})")
    for p, reason in plan.refused:
        console.err.print(f"[red]failed[/] {escape(str(p))}: {escape(reason)}")

    with console.progress("MP", quiet=quiet or as_json) as bar:
        todo = [j for j in plan.jobs if overwrite or not j.target.exists()]
        sizes = {j.source: _header_megapixels(j.source, upscale) for j in todo}
        task = bar.add_task("enhancing", total=sum(sizes.values()) or 1)

        def on_event(kind: str, job: enhance.Job, info: dict) -> None:
            name = escape(job.source.name)
            if kind == "start":
                bar.update(task, description=name)
                on_event.base = bar.tasks[0].completed  # type: ignore[attr-defined]
            elif kind == "tile":
                bar.update(task, completed=on_event.base + sizes[job.source] * info["done"] / info["total"])  # type: ignore[attr-defined]
            elif kind == "skip" and verbose:
                bar.console.print(f"skipped (exists): {escape(str(job.target))}")
            elif kind == "done" and verbose:
                bar.console.print(f"done {name} -> {escape(str(job.target))} (model: {escape(loaded.name)})")
            elif kind == "fail":
                bar.console.print(f"[red]failed[/] {escape(str(job.source))}: {escape(info['reason'])}")
                bar.update(task, completed=on_event.base + sizes[job.source])  # type: ignore[attr-defined]

        summary = enhance.run_batch(loaded, plan, options, on_event)
        bar.update(task, description="done")

    if as_json:
        click.echo(json.dumps(summary.as_dict(), indent=2))
    elif not quiet:
        rate = f", {summary.megapixels / summary.seconds:.2f} MP/s" if summary.seconds > 0 and summary.done else ""
        console.out.print(
            f"{summary.done} done, {summary.skipped} skipped, {len(summary.failed)} failed; "
            f"{summary.megapixels:.2f} MP in {summary.seconds:.1f} s{rate}, model: {escape(loaded.name)}"
        )
    raise SystemExit(1 if summary.failed else 0)


if __name__ == "__main__":
    main()
