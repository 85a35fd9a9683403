"""The ``sharpkd`` command: a thin click group. Each command parses, calls one library function, prints."""

from __future__ import annotations

import json
import os
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import click
from PIL import Image
from rich.markup import escape
from rich.table import Table

from sharpkd import console, pretrained
from sharpkd.cli_train import (
    DEVICE_CHOICES,
    distill_cmd,
    prepare_cmd,
    reset_default_cmd,
    train_teacher_cmd,
)
from sharpkd.console import fail
from sharpkd.imagefile import DEFAULT_MAX_PIXELS, ReadAhead
from sharpkd.tiling import MIN_TILE

try:
    __version__ = version("sharpkd")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

MODEL_CHOICES = click.Choice([*pretrained.BUNDLED, *pretrained.ALIASES])
MODEL_HELP = ("Bundled model: general (any photo; estimates how soft it is, measures JPEG blocking and noise and "
              "removes them, before restoring a soft photo; leaves sharp, clean ones alone), fast (general "
              "with a smaller network: 1.2-1.5x faster on soft photos, 0.03-0.11 dB less gain; the same estimate, safety and noise/JPEG cleanup), x4 (the "
              "specialist for photos blurred and downscaled 4x; it adds halos to sharp photos; 'student' is its old name), "
              "teacher (large, slow) [default: your installed student (see reset-default), else general].")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sharpkd")
def main() -> None:
    """Sharpen soft, blurry or low-resolution photos with a small distilled network, on a CPU."""
    from sharpkd.distributed import from_env

    if not from_env().main:  # under torchrun only rank 0 talks; errors still reach stderr from every rank
        console.out.quiet = True


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


def parse_color(text: str) -> tuple[int, int, int]:
    """white, black, gray or #rrggbb -> an RGB triple."""
    named = {"white": (255, 255, 255), "black": (0, 0, 0), "gray": (128, 128, 128), "grey": (128, 128, 128)}
    t = text.strip().lower()
    if t in named:
        return named[t]
    if len(t) == 7 and t[0] == "#":
        try:
            return tuple(int(t[i : i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]
        except ValueError:
            pass
    raise click.BadParameter(f"{text!r}: give white, black, gray or #rrggbb")


@main.command("enhance")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path),
              help="Output folder (created if needed); or, for one input file, an output file whose suffix chooses the format.")
@click.option("-r", "--recursive", is_flag=True, help="Walk sub-folders and mirror their tree under the output folder.")
@click.option("--format", "fmt", type=click.Choice(["png", "jpg", "webp", "tiff"]), help="Output format [default: same as input].")
@click.option("--quality", type=click.IntRange(1, 100), default=95, show_default=True, help="Quality for JPEG and WebP output.")
@click.option("--background", default="white", show_default=True, help="Colour that transparent pixels are composited on when the output format has no alpha (JPEG): white, black, gray or #rrggbb.")
@click.option("--overwrite", is_flag=True, help="Redo outputs that already exist (default: skip them, so a stopped batch resumes).")
@click.option("--tile", type=click.IntRange(min=0), default=128, show_default=True,
              help=f"Tile size in pixels (at least {MIN_TILE}; smaller values are raised); 0 = whole image in one pass. Output does not "
                   "depend on it beyond 1 level. Adjacent tiles go through the network as one region of up to 512 px (4 x 4 tiles at 128) "
                   "sharing one margin of context (28 px for general and x4, 20 for fast); a tile of 512 or more runs alone, so the tile "
                   "bounds memory (whole: the photo as floats).")
@click.option("--upscale", type=click.IntRange(1, 8), default=1, show_default=True, help="Bicubic-upsample by N first, then restore (super-resolution).")
@click.option("--strength", type=click.FloatRange(0, 1), default=1.0, show_default=True, help="Blend of input (0) and restored output (1).")
@click.option("--max-pixels", type=click.FloatRange(min=0.001), default=DEFAULT_MAX_PIXELS / 1e6, show_default=True,
              help="Largest image accepted, in megapixels (memory stays bounded by the tiles; raise it for panoramas).")
@click.option("--shard", metavar="I/N|auto", help="Do only this worker's part of the inputs: worker I (0-based) of N, or auto "
              "from a Slurm job array or a Kubernetes indexed Job. Parts are disjoint and cover every file (by a hash of "
              "its path under its input folder); all workers can share one output folder.")
@click.option("--shards", type=click.IntRange(min=1), help="With --shard auto: the number of workers, where the scheduler does not say it (Kubernetes: the Job's completions).")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Restore N photos at a time, each in its own process with 1/N of the CPU threads. On 2 idle cores a folder of "
                   "12 MP photos ran 1.34x faster with 2 (beside another busy program: no faster; docs/performance.md); "
                   "memory: N models and N photos at once.")
@click.option("--model", type=MODEL_CHOICES, help=MODEL_HELP)
@click.option("--weights", type=click.Path(path_type=Path), help="A weights file or run folder made by train-teacher/distill.")
@click.option("--device", type=DEVICE_CHOICES, default="auto", show_default=True)
@click.option("-q", "--quiet", is_flag=True, help="No progress and no summary (errors and warnings still go to stderr).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
@click.option("-v", "--verbose", is_flag=True, help="List every file (done, unchanged, skipped, ignored) and which model ran on each (with the general model's estimate).")
def enhance_cmd(inputs, output, recursive, fmt, quality, background, overwrite, tile, upscale, strength, max_pixels, shard, shards, jobs, model, weights, device, quiet, as_json, verbose) -> None:
    """Sharpen INPUTS (files and/or folders) into OUTPUT.

    Exit codes: 0 every image done (or skipped as already done, or left unchanged); 1 some image failed,
    or no input image was found at all; 2 usage errors; 130 interrupted.
    """
    # OpenMP threads that sleep when they wait instead of spinning, set before torch loads: measured on 2
    # cores, 12 MP: 5-12 % slower on a quiet machine, but beside one busy process 11 s instead of 16, and
    # beside two 15 s instead of 43 (docs/performance.md). OMP_WAIT_POLICY in the environment wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from sharpkd import batch, parallel

    if tile and tile < MIN_TILE:
        console.warn(f"--tile {tile} is below the minimum of {MIN_TILE} px (tiny tiles spend their time on context): using {MIN_TILE}")
        tile = MIN_TILE
    options = batch.Options(tile=tile, strength=strength, upscale=upscale, format=fmt, quality=quality, overwrite=overwrite,
                            recursive=recursive, background=parse_color(background), max_pixels=int(max_pixels * 1e6))
    try:
        plan = batch.plan_batch(list(inputs), output, options)
        part = batch.parse_shard(shard, shards, dict(os.environ)) if shard else None
    except (batch.PlanError, ValueError) as e:
        fail(str(e))
    if shards and not shard:
        raise click.UsageError("--shards goes with --shard auto")
    if part is not None:
        planned = len(plan.jobs)
        plan = batch.select_shard(plan, part)
        if planned and not plan.jobs:
            console.out.print(f"shard {part}: none of the {planned} images falls in this shard; nothing to do")
            raise SystemExit(1 if plan.refused else 0)
    if verbose:
        for p, reason in plan.ignored:
            console.err.print(f"ignored {escape(str(p))}: {escape(reason)}")
    for p, reason in plan.refused:
        console.err.print(f"[red]failed[/] {escape(str(p))}: {escape(reason)}")
    if not plan.jobs:
        reasons = plan.why_nothing()
        for r in reasons:
            console.err.print(escape(r))
        if not plan.refused:
            fail("no input image found" + ("" if reasons else f" in {', '.join(str(i) for i in inputs)}"))
        raise SystemExit(1)
    if plan.left_in_subfolders:
        console.warn(f"{plan.left_in_subfolders} image(s) in sub-folders left out: add -r (--recursive) to include them")
    todo = batch.to_do(plan, overwrite)
    if todo:
        problem = batch.check_output(batch.Plan(jobs=todo))
        if problem:
            fail(problem)
    if model and weights:
        raise click.UsageError("give --model or --weights, not both")
    workers = min(jobs, len(todo))
    live = not (quiet or as_json) and console.err.is_terminal
    plain = not (quiet or as_json) and not live  # logs, nohup, CI: one plain line per file

    def say_model(name: str, arch: str, source: str) -> None:
        if verbose:
            purpose = f": {pretrained.bundled_spec(name).purpose}" if source.startswith("bundled ") else ""
            console.err.print(f"model: {escape(name)} ({arch}, {escape(source)}){escape(purpose)}")

    if workers < 2:
        reader = ReadAhead(options.max_pixels)
        if todo:
            reader.start(todo[0].source)  # the first photo decodes while torch and the model load
        loaded = load_model(model, weights, device)
        say_model(loaded.name, loaded.arch, loaded.source)

    with console.progress("MP", quiet=not live) as bar:
        sizes = {j.source: _header_megapixels(j.source, upscale) for j in todo}
        task = bar.add_task("enhancing", total=sum(sizes.values()) or 1)
        active: dict[Path, float] = {}  # the fraction done of each photo being restored (one per job)
        finished = [0.0]  # megapixels of the photos computed so far

        def show_progress() -> None:
            bar.update(task, completed=finished[0] + sum(sizes[s] * f for s, f in active.items()))

        def uncount(job) -> None:
            """Take a photo that computed nothing (unchanged, failed) out of the total: rates and ETA
            count computed pixels only."""
            active.pop(job.source, None)
            bar.update(task, total=max(bar.tasks[0].total - sizes[job.source], 1e-9))
            show_progress()

        def on_event(kind: str, job, info: dict) -> None:
            name = escape(job.source.name)
            if kind == "start":
                bar.update(task, description=name)
                active[job.source] = 0.0
            elif kind == "tile":
                active[job.source] = info["done"] / info["total"]
                show_progress()
            elif kind == "skip" and verbose:
                bar.console.print(f"skipped (exists): {escape(str(job.target))}")
            elif kind == "done":
                if info["computed"]:
                    active.pop(job.source, None)
                    finished[0] += sizes[job.source]
                    show_progress()
                else:
                    uncount(job)
                what = "done" if info["computed"] else "left unchanged"
                if verbose or plain:
                    bar.console.print(f"{what} {name} -> {escape(str(job.target))} (model: {escape(info['model'])})")
                if verbose:
                    for note in info["notes"]:
                        bar.console.print(f"  {escape(note)}")
            elif kind == "fail":
                bar.console.print(f"[red]failed[/] {escape(str(job.source))}: {escape(info['reason'])}")
                uncount(job)
            elif kind == "warn":
                console.warn(info["message"])

        try:
            if workers < 2:
                summary = batch.run_batch(loaded, plan, options, on_event, batch.sharp_checker(loaded), reader)
            else:
                choice = parallel.ModelChoice(model, weights, device)
                summary = parallel.run(choice, plan, options, workers, sizes, on_event,
                                       lambda m: say_model(m["name"], m["arch"], m["source"]))
            summary.shard = str(part) if part else ""
        except KeyboardInterrupt:
            fail("interrupted: finished outputs are kept; run the same command again to continue", code=130)
        except parallel.WorkerError as e:
            fail(str(e))
        finally:
            if workers < 2:
                reader.close()
        bar.update(task, description="done")

    if as_json:
        click.echo(json.dumps(summary.as_dict(), indent=2))
    elif not quiet:
        rate = f", {summary.mp_per_s:.2f} MP/s" if summary.mp_per_s else ""
        why = "nothing found to restore; -v says why" if strength > 0 else "--strength 0"
        unchanged = f", {summary.unchanged} left unchanged ({why})" if summary.unchanged else ""
        where = f"shard {summary.shard} ({plan.elsewhere} images left to the other shards): " if summary.shard else ""
        console.out.print(
            f"{where}{summary.done} done{unchanged}, {summary.skipped} skipped, {len(summary.failed)} failed; "
            f"{summary.megapixels:.2f} MP computed in {summary.seconds:.1f} s{rate}, model: {escape(summary.model)}"
        )
        if summary.skipped and not (summary.done or summary.unchanged or summary.failed):
            console.out.print(f"all {summary.skipped} outputs exist already: --overwrite redoes them")
    raise SystemExit(1 if summary.failed else 0)


@main.command("demo")
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path), help="Folder for the side-by-side PNGs.")
@click.option("--model", type=MODEL_CHOICES, help=MODEL_HELP)
@click.option("--weights", type=click.Path(path_type=Path), help="A weights file or run folder made by train-teacher/distill.")
@click.option("--tile", type=click.IntRange(min=0), default=128, show_default=True)
@click.option("--device", type=DEVICE_CHOICES, default="auto", show_default=True)
def demo_cmd(output, model, weights, tile, device) -> None:
    """Degrade scikit-image's sample photos, sharpen them, and show the result against the originals."""
    from sharpkd.demo import SHARP_NAME, run_demo
    from sharpkd.metrics import DEFAULT

    loaded = load_model(model, weights, device)
    with console.err.status("enhancing the sample photos..."):
        rows = run_demo(loaded, output, tile)
    table = Table(title=f"sharpkd demo ({escape(loaded.name)}); {DEFAULT.describe()}")
    for col in ("photo", "degraded PSNR-Y", "sharpkd PSNR-Y", "gain dB", "degraded SSIM-Y", "sharpkd SSIM-Y"):
        table.add_column(col, justify="left" if col == "photo" else "right")
    degraded = [r for r in rows if r.photo != SHARP_NAME]
    for r in degraded:
        table.add_row(r.photo, f"{r.lq_psnr:.2f}", f"{r.out_psnr:.2f}", f"{r.gain:+.2f}", f"{r.lq_ssim:.4f}", f"{r.out_ssim:.4f}")
    n = len(degraded)
    table.add_row("mean", f"{sum(r.lq_psnr for r in degraded) / n:.2f}", f"{sum(r.out_psnr for r in degraded) / n:.2f}",
                  f"{sum(r.gain for r in degraded) / n:+.2f}", f"{sum(r.lq_ssim for r in degraded) / n:.4f}",
                  f"{sum(r.out_ssim for r in degraded) / n:.4f}", style="bold")
    console.out.print(table)
    for r in rows:
        if r.photo == SHARP_NAME:
            if r.out_psnr == float("inf"):
                console.out.print(f"{r.photo}: output identical to the input: left alone")
            else:
                verdict = "left alone" if r.out_psnr >= 40 else "changed (over-sharpened)"
                console.out.print(f"{r.photo}: output {r.out_psnr:.2f} dB PSNR-Y from the input (SSIM-Y {r.out_ssim:.4f}): {verdict}")
    console.out.print(f"side-by-side figures (degraded | sharpkd | original): {escape(str(output))}/")


@main.command("score")
@click.argument("out_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("gt_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--baseline", type=click.Path(exists=True, file_okay=False, path_type=Path), help="Folder of degraded inputs: adds their scores and the gain.")
@click.option("--crop", type=click.IntRange(min=0), default=4, show_default=True, help="Border pixels removed on each side before scoring.")
@click.option("--rgb", is_flag=True, help="Score the RGB channels instead of the BT.601 luma Y.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, path_type=Path), help="Also write the table as CSV.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), help="Also write the table as JSON.")
@click.option("--worst", type=click.IntRange(min=1), help="List the N images with the smallest gain (lowest PSNR without --baseline).")
@click.option("--figure", "figure_dir", type=click.Path(file_okay=False, path_type=Path), help="Write a side-by-side PNG per image here (needs --baseline).")
def score_cmd(out_dir, gt_dir, baseline, crop, rgb, csv_path, json_path, worst, figure_dir) -> None:
    """PSNR/SSIM of every image in OUT_DIR against the same-named one in GT_DIR (literature conventions)."""
    from sharpkd import score
    from sharpkd.metrics import Convention

    if figure_dir and not baseline:
        raise click.UsageError("--figure needs --baseline (the figure shows degraded | output | ground truth)")
    report = score.score_folders(out_dir, gt_dir, baseline, Convention(rgb=rgb, crop=crop))
    for p in report.ambiguous:
        console.warn(f"{p}: several files share this name; not scored")
    for p in report.unmatched_out:
        console.warn(f"{p}: no ground truth with this name in {gt_dir}")
    for p in report.unmatched_gt:
        console.warn(f"{p}: no output with this name in {out_dir}")
    fmt = lambda v, spec: "-" if v is None else format(v, spec)  # noqa: E731
    table = Table(title=f"{report.convention.describe()}")
    cols = ["image", "PSNR dB", "SSIM"] + (["baseline PSNR", "baseline SSIM", "gain dB"] if baseline else [])
    for c in cols:
        table.add_column(c, justify="left" if c == "image" else "right", overflow="fold" if c == "image" else "ellipsis")
    for r in report.rows:
        if r.error:
            table.add_row(escape(r.name), f"[red]{escape(r.error)}[/]", *[""] * (len(cols) - 2))
            continue
        extra = [fmt(r.base_psnr, ".2f"), fmt(r.base_ssim, ".4f"), fmt(r.gain, "+.2f")] if baseline else []
        table.add_row(escape(r.name), fmt(r.psnr, ".2f"), fmt(r.ssim, ".4f"), *extra)
    m = report.mean()
    if m:
        extra = [fmt(m["base_psnr"], ".2f"), fmt(m["base_ssim"], ".4f"), fmt(m["gain"], "+.2f")] if baseline else []
        table.add_row(f"mean of {m['images']}", fmt(m["psnr"], ".2f"), fmt(m["ssim"], ".4f"), *extra, style="bold")
    console.out.print(table)
    if worst:
        console.out.print(f"worst {worst}: " + ", ".join(f"{escape(r.name)} ({fmt(r.gain if r.gain is not None else r.psnr, '+.2f' if r.gain is not None else '.2f')})" for r in report.worst(worst)))
    if csv_path:
        score.write_csv(report, csv_path)
    if json_path:
        score.write_json(report, json_path)
    if figure_dir:
        n = score.write_figures(report, out_dir, gt_dir, baseline, figure_dir)
        console.out.print(f"{n} figures in {escape(str(figure_dir))}")
    if not report.rows:
        fail(f"no image in {out_dir} has a same-named ground truth in {gt_dir}")



@main.command("bench")
@click.option("--model", "models", multiple=True, default=["general"], show_default=True, help="Model(s) to time (repeat).")
@click.option("--megapixels", "sizes", type=click.FloatRange(min=0.01), multiple=True, default=[12.0], show_default=True, help="Photo size(s) (repeat).")
@click.option("--format", "formats", type=click.Choice(["png", "jpg"]), multiple=True, default=["png"], show_default=True)
@click.option("--tile", type=click.IntRange(min=0), default=128, show_default=True)
@click.option("--busy", is_flag=True, help="Also time each run beside one competing CPU-bound process.")
@click.option("--work", type=click.Path(file_okay=False, path_type=Path), help="Folder for the test photos and outputs [default: a temporary one].")
def bench_cmd(models, sizes, formats, tile, busy, work) -> None:
    """Time `sharpkd enhance` on this machine: whole process (start-up included), output MP/s and peak memory.

    The test photos are soft mosaics of scikit-image's sample photos. benchmarks/speed.py has the full
    matrix (stages, folders, the CPU's peak)."""
    import tempfile

    from sharpkd import bench

    work = work or Path(tempfile.mkdtemp(prefix="sharpkd-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    table = Table(title="sharpkd enhance, whole process")
    for col in ("model", "photo", "tile", "CPU", "seconds", "output MP/s", "peak RSS MB"):
        table.add_column(col, justify="left" if col in ("model", "photo", "CPU") else "right")
    for model in models:
        for size in sizes:
            for fmt in formats:
                with console.err.status(f"making a {size:g} MP test photo..."):
                    photo = bench.write_photo(work / f"photo-{size:g}mp.{fmt}", size)
                for load in ([False, True] if busy else [False]):
                    with console.err.status(f"timing {model} on {photo.name}{' (busy CPU)' if load else ''}..."):
                        try:
                            r = bench.run_enhance([photo], work / "out", ["--model", model, "--tile", str(tile)], load)
                        except RuntimeError as e:
                            fail(str(e))
                    table.add_row(model, f"{size:g} MP {fmt.upper()}", str(tile or "whole"), "busy" if load else "quiet",
                                  f"{r.seconds:.1f}", f"{r.mp_s:.2f}", f"{r.peak_mb:.0f}")
    console.out.print(table)


for command in (prepare_cmd, train_teacher_cmd, distill_cmd, reset_default_cmd):
    main.add_command(command)

if __name__ == "__main__":
    main()
