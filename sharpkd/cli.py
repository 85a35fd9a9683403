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


@main.command("demo")
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path), help="Folder for the side-by-side PNGs.")
@click.option("--model", type=MODEL_CHOICES, help="Bundled model [default: your installed student, else the bundled student].")
@click.option("--weights", type=click.Path(path_type=Path), help="A weights file or run folder made by train-teacher/distill.")
@click.option("--tile", type=click.IntRange(min=0), default=128, show_default=True)
@click.option("--device", type=DEVICE_CHOICES, default="auto", show_default=True)
def demo_cmd(output, model, weights, tile, device) -> None:
    """Degrade scikit-image's sample photos, sharpen them, and show the result against the originals."""
    from sharpkd.demo import run_demo
    from sharpkd.metrics import DEFAULT

    loaded = load_model(model, weights, device)
    with console.err.status("enhancing the sample photos..."):
        rows = run_demo(loaded, output, tile)
    table = Table(title=f"sharpkd demo ({escape(loaded.name)}); {DEFAULT.describe()}")
    for col in ("photo", "degraded PSNR-Y", "sharpkd PSNR-Y", "gain dB", "degraded SSIM-Y", "sharpkd SSIM-Y"):
        table.add_column(col, justify="left" if col == "photo" else "right")
    for r in rows:
        table.add_row(r.photo, f"{r.lq_psnr:.2f}", f"{r.out_psnr:.2f}", f"{r.gain:+.2f}", f"{r.lq_ssim:.4f}", f"{r.out_ssim:.4f}")
    n = len(rows)
    table.add_row("mean", f"{sum(r.lq_psnr for r in rows) / n:.2f}", f"{sum(r.out_psnr for r in rows) / n:.2f}",
                  f"{sum(r.gain for r in rows) / n:+.2f}", f"{sum(r.lq_ssim for r in rows) / n:.4f}", f"{sum(r.out_ssim for r in rows) / n:.4f}", style="bold")
    console.out.print(table)
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
        table.add_column(c, justify="left" if c == "image" else "right")
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


@main.command("prepare")
@click.option("--div2k", type=click.Path(path_type=Path), help="DIV2K folder (holding DIV2K_train_HR/ and/or DIV2K_valid_HR/, or one of them).")
@click.option("--images", type=click.Path(path_type=Path), help="Any folder of high-resolution images; the last --val-count (by name) are validation.")
@click.option("--sample", is_flag=True, help="Use scikit-image's sample photos (works on a fresh machine).")
@click.option("--name", help="Data set name [default: div2k, the --images folder name, or sample].")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Data dir to write under [default: $SHARPKD_HOME or the user data dir].")
@click.option("--val-count", type=click.IntRange(min=1), default=10, show_default=True, help="Validation images held out of --images (or of a DIV2K folder without DIV2K_valid_HR).")
@click.option("--subimage", type=click.IntRange(min=0), default=0, show_default=True, help="Cut pairs into sub-images of this size (e.g. 480); 0 keeps whole images.")
@click.option("--step", type=click.IntRange(min=1), default=240, show_default=True, help="Stride between sub-images.")
@click.option("--sigma", type=click.FloatRange(min=0), default=1.0, show_default=True, help="Gaussian blur sigma of the degradation.")
@click.option("--scale", type=click.IntRange(min=1), default=4, show_default=True, help="Down/up-scaling factor of the degradation.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True, help="Parallel processes.")
@click.option("--degradations", type=click.Choice(["canonical", "general"]), default="canonical", show_default=True,
              help="general: training degrades each crop on the fly with a random blur/resize/noise/JPEG from a range "
                   "(sharp crops included); the stored pairs, used for validation, follow the recipe.")
def prepare_cmd(div2k, images, sample, name, out, val_count, subimage, step, sigma, scale, workers, degradations) -> None:
    """Degrade high-resolution images into training pairs (blur, x4 bicubic down, bicubic up)."""
    from sharpkd import paths, prepare
    from sharpkd.degrade import GENERAL, Recipe

    if sum(map(bool, (div2k, images, sample))) != 1:
        raise click.UsageError("give exactly one of --div2k PATH, --images DIR, --sample")
    try:
        if div2k:
            sources, default = prepare.div2k_sources(div2k, val_count), "div2k"
        elif images:
            if not images.is_dir():
                fail(f"{images}: not a folder")
            sources, default = prepare.split_folder(images, val_count), images.resolve().name
        else:
            sources, default = prepare.sample_sources(), "sample"
        dataset_dir = paths.datasets_dir(out) / (name or default)
        with console.progress("img") as bar:
            task = bar.add_task(f"preparing {escape(dataset_dir.name)}", total=len(sources))
            result = prepare.prepare(
                sources, dataset_dir, Recipe(sigma=sigma, scale=scale), subimage, step, workers, lambda e: bar.advance(task),
                GENERAL if degradations == "general" else None,
            )
    except prepare.PrepareError as e:
        fail(str(e))
    for path, reason in result.skipped:
        console.warn(f"skipped {path}: {reason}")
    console.out.print(
        f"{escape(str(dataset_dir))}: {result.counts['train']} train / {result.counts['val']} val pairs "
        f"({result.written} sources written, {result.existing} already there, {len(result.skipped)} skipped)"
    )
    if result.counts["train"] == 0:
        fail("no training pairs: every source was skipped")


def training_progress(total_label: str):
    """A rich progress bar for a training loop and the on_step callback that drives it."""
    bar = console.progress("it")
    task = bar.add_task(total_label, total=1)

    def on_step(step: int, total: int, parts: dict) -> None:
        bar.update(task, completed=step, total=total, description=f"{total_label} loss {parts['loss']:.4f}")

    return bar, on_step


def run_training(label: str, train_fn) -> dict:
    """Run a training function under a progress bar; Ctrl-C saves a checkpoint and says how to resume."""
    from sharpkd.pairs import DatasetError
    from sharpkd.training import TrainError

    bar, on_step = training_progress(label)
    try:
        with bar:
            return train_fn(on_step)
    except KeyboardInterrupt:
        fail("interrupted: checkpoint saved; run the same command again to resume", code=130)
    except (TrainError, DatasetError, pretrained.WeightsError) as e:
        fail(str(e))


def print_validation(val: dict, run_dir: Path) -> None:
    if "psnr_y" in val:
        console.out.print(
            f"step {val['step']}: PSNR-Y {val['psnr_y']:.2f} dB (input {val['psnr_in']:.2f}, gain {val['gain']:+.2f}), "
            f"SSIM-Y {val['ssim_y']:.4f} on {val['images']} validation images"
        )
    console.out.print(f"weights: {escape(str(run_dir / 'model.pt'))}  (use: sharpkd enhance --weights {escape(str(run_dir))} ...)")


def train_options(f):
    """Options shared by the two training commands."""
    for opt in reversed([
        click.option("--dataset", help="Prepared data set: name or folder [default: the newest prepared one]."),
        click.option("--run", "run_dir", type=click.Path(file_okay=False, path_type=Path), help="Run folder; an existing one is resumed."),
        click.option("--steps", type=click.IntRange(min=1), default=20000, show_default=True),
        click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True),
        click.option("--patch", type=click.IntRange(min=16), default=128, show_default=True, help="Crop size in pixels."),
        click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=5e-4, show_default=True, help="Peak learning rate (cosine schedule)."),
        click.option("--seed", type=int, default=0, show_default=True),
        click.option("--val-every", type=click.IntRange(min=1), default=1000, show_default=True, help="Validate, save weights and redraw curves every N steps."),
        click.option("--device", type=DEVICE_CHOICES, default="auto", show_default=True),
        click.option("--init", "init_from", help="Start a new run from these weights (a run folder, weights file, or 'bundled'); ignored when resuming."),
    ]):
        f = opt(f)
    return f


def train_config(steps, batch_size, patch, lr, seed, val_every):
    from sharpkd.training import TrainConfig

    return TrainConfig(steps=steps, batch_size=batch_size, patch=patch, lr=lr, seed=seed, val_every=val_every, warmup=min(200, steps // 10))


def device_or_fail(device: str) -> str:
    try:
        return pretrained.resolve_device(device)
    except pretrained.WeightsError as e:
        fail(str(e))


def init_weights(init_from: str | None, arch: str) -> pretrained.Loaded | None:
    """``--init``: None, "bundled" (the bundled model of this architecture), or a run folder / weights file."""
    if init_from is None:
        return None
    try:
        return pretrained.load(arch) if init_from == "bundled" else pretrained.load_file(Path(init_from))
    except pretrained.WeightsError as e:
        fail(str(e))


def dataset_or_fail(name: str | None) -> Path:
    from sharpkd.pairs import DatasetError, find_dataset

    try:
        return find_dataset(name)
    except DatasetError as e:
        fail(str(e))


@main.command("train-teacher")
@train_options
@click.option("--arch", type=click.Choice(["teacher", "student"]), default="teacher", show_default=True, help="student: train the student alone with plain L1 (the no-distillation baseline).")
@click.option("--channels", type=click.IntRange(min=1), help="Override the architecture's width.")
@click.option("--blocks", type=click.IntRange(min=1), help="Override the architecture's depth.")
def train_teacher_cmd(dataset, run_dir, steps, batch_size, patch, lr, seed, val_every, device, init_from, arch, channels, blocks) -> None:
    """Train the teacher (deep, wide residual CNN) with L1 against HR. Re-running resumes."""
    from sharpkd import paths
    from sharpkd.train_teacher import train

    dataset_dir = dataset_or_fail(dataset)
    run_dir = run_dir or paths.runs_dir() / f"{arch}-{dataset_dir.name}"
    overrides = {k: v for k, v in (("channels", channels), ("blocks", blocks)) if v is not None}
    cfg = train_config(steps, batch_size, patch, lr, seed, val_every)
    dev = device_or_fail(device)
    console.out.print(f"training {arch} on {escape(str(dataset_dir))} -> {escape(str(run_dir))}")
    init = init_weights(init_from, arch)
    val = run_training(f"train {arch}", lambda on_step: train(dataset_dir, run_dir, cfg, arch, overrides, dev, on_step, init))
    print_validation(val, run_dir)


@main.command("distill")
@train_options
@click.option("--teacher", help="Teacher: a run folder or weights file from train-teacher, or 'bundled' [default: the latest trained teacher, else the bundled one].")
@click.option("--lambda-feat", type=click.FloatRange(min=0), default=1.0, show_default=True, help="Weight of the feature loss: MSE between adapted student features and teacher features.")
@click.option("--lambda-out", type=click.FloatRange(min=0), default=0.0, show_default=True, help="Weight of an L1 loss to the teacher's output (0 = off).")
@click.option("--baseline", is_flag=True, help="Also train the same student without the teacher and write a report card (report.md, report.json).")
@click.option("--install", "install_it", is_flag=True, help="Make the trained student your default for enhance and demo (stored in the data dir).")
@click.option("--channels", type=click.IntRange(min=1), help="Override the student's width.")
@click.option("--blocks", type=click.IntRange(min=1), help="Override the student's depth.")
def distill_cmd(dataset, run_dir, steps, batch_size, patch, lr, seed, val_every, device, init_from, teacher, lambda_feat, lambda_out, baseline, install_it, channels, blocks) -> None:
    """Train the compact student from the teacher: L1 to HR + feature MSE (+ L1 to the teacher's output).

    Re-running with the same run folder resumes; with --baseline, the report card compares the degraded
    input, the teacher, the distilled student and the student trained alone.
    """
    from sharpkd import distill, paths
    from sharpkd.train_teacher import train as train_plain
    from sharpkd.training import TrainError

    dataset_dir = dataset_or_fail(dataset)
    run_dir = run_dir or paths.runs_dir() / f"student-kd-{dataset_dir.name}"
    overrides = {k: v for k, v in (("channels", channels), ("blocks", blocks)) if v is not None}
    cfg = train_config(steps, batch_size, patch, lr, seed, val_every)
    dev = device_or_fail(device)
    try:
        loaded_teacher = distill.load_teacher(teacher, dev)
    except (TrainError, pretrained.WeightsError) as e:
        fail(str(e))
    kd = distill.DistillConfig(lambda_feat=lambda_feat, lambda_out=lambda_out)
    console.out.print(f"distilling {escape(loaded_teacher.source)} into a student on {escape(str(dataset_dir))} -> {escape(str(run_dir))}")
    init = init_weights(init_from, "student")
    val = run_training("distill", lambda on_step: distill.train(dataset_dir, run_dir, cfg, loaded_teacher, kd, overrides, dev, on_step, init))
    print_validation(val, run_dir)
    if baseline:
        base_dir = run_dir / "baseline"
        console.out.print(f"baseline: the same student without the teacher -> {escape(str(base_dir))}")
        base_val = run_training("baseline", lambda on_step: train_plain(dataset_dir, base_dir, cfg, "student", overrides, dev, on_step))
        print_validation(base_val, base_dir)
        with console.err.status("measuring the report card..."):
            text = distill.report_card(dataset_dir, run_dir, loaded_teacher, val, base_val, cfg, kd)
        console.out.print(escape(text))
        console.out.print(f"report: {escape(str(run_dir / 'report.md'))}")
    if install_it:
        try:
            target = distill.install(run_dir)
        except (TrainError, pretrained.WeightsError) as e:
            fail(str(e))
        console.out.print(f"installed: {escape(str(target))} is now the default student of enhance and demo")


if __name__ == "__main__":
    main()
