"""The training commands of the ``sharpkd`` group: prepare, train-teacher, distill.

Registered on the group in :mod:`sharpkd.cli`; each parses, calls one library function, prints.
"""

from __future__ import annotations

import signal
from pathlib import Path

import click
from rich.markup import escape

from sharpkd import console, pretrained
from sharpkd.console import fail
from sharpkd.distributed import finish, from_env

DEVICE_CHOICES = click.Choice(["auto", "cpu", "cuda"])


def device_or_fail(device: str) -> str:
    try:
        return pretrained.resolve_device(device)
    except pretrained.WeightsError as e:
        fail(str(e))


@click.command("prepare")
@click.option("--div2k", type=click.Path(path_type=Path), help="DIV2K folder (holding DIV2K_train_HR/ and/or DIV2K_valid_HR/, or one of them).")
@click.option("--images", type=click.Path(path_type=Path), multiple=True,
              help="A folder of high-resolution images; repeat it to put several folders into one data set (see --val).")
@click.option("--sample", is_flag=True, help="Use scikit-image's sample photos (works on a fresh machine).")
@click.option("--name", help="Data set name [default: div2k, the --images folder name, or sample].")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Data dir to write under [default: $SHARPKD_HOME or the user data dir].")
@click.option("--val-count", type=click.IntRange(min=1), default=10, show_default=True, help="Validation images held out of --images (the last N by name; or of a DIV2K folder without DIV2K_valid_HR).")
@click.option("--val", "val_rules", multiple=True, metavar="RULE",
              help="Validation of each --images folder, in the same order (one rule: all folders): last:N (the last N files "
                   "by name) or groups:K (every K-th photo group, sorted by name; crops of one photo share a group) "
                   "[default: last:--val-count].")
@click.option("--subimage", type=click.IntRange(min=0), default=0, show_default=True, help="Cut pairs into sub-images of this size (e.g. 480); 0 keeps whole images.")
@click.option("--step", type=click.IntRange(min=1), default=240, show_default=True, help="Stride between sub-images.")
@click.option("--sigma", type=click.FloatRange(min=0), default=1.0, show_default=True, help="Gaussian blur sigma of the degradation.")
@click.option("--scale", type=click.IntRange(min=1), default=4, show_default=True, help="Down/up-scaling factor of the degradation.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True, help="Parallel processes.")
@click.option("--degradations", type=click.Choice(["canonical", "general", "artifacts"]), default="canonical", show_default=True,
              help="general: training degrades each crop on the fly with a random blur/resize/noise/JPEG from a range "
                   "(sharp crops included); the stored pairs, used for validation, follow the recipe. artifacts: noise and/or "
                   "JPEG alone (and 10 % clean crops), for the general model's cleanup network (train-teacher --told-only).")
@click.option("--artifacts-share", type=click.FloatRange(0, 0.7),
              help="general: the share of crops with noise and/or JPEG alone on a sharp photo [default: 0.15]; e.g. 0.7 for "
                   "a stage that teaches noise and JPEG (docs/training.md).")
def prepare_cmd(div2k, images, sample, name, out, val_count, val_rules, subimage, step, sigma, scale, workers, degradations, artifacts_share) -> None:
    """Degrade high-resolution images into training pairs (blur, x4 bicubic down, bicubic up)."""
    from dataclasses import replace

    from sharpkd import paths, prepare
    from sharpkd.degrade import ARTIFACTS, GENERAL, Recipe

    if sum(map(bool, (div2k, images, sample))) != 1:
        raise click.UsageError("give exactly one of --div2k PATH, --images DIR, --sample")
    if artifacts_share is not None and degradations != "general":
        raise click.UsageError("--artifacts-share goes with --degradations general")
    general = GENERAL if artifacts_share is None else replace(GENERAL, artifacts_only_share=artifacts_share)
    try:
        if div2k:
            sources, default = prepare.div2k_sources(div2k, val_count), "div2k"
        elif images:
            for folder in images:
                if not folder.is_dir():
                    fail(f"{folder}: not a folder")
            if len(val_rules) not in (0, 1, len(images)):
                raise click.UsageError(f"give one --val rule, or one per --images folder ({len(images)}), not {len(val_rules)}")
            rules = list(val_rules) * (len(images) if len(val_rules) == 1 else 1) or [f"last:{val_count}"] * len(images)
            holdouts = [prepare.Holdout.parse(r) for r in rules]
            holdout = {Path(f).resolve().name: r for f, r in zip(images, rules)}
            sources, default = prepare.folder_sources(list(images), holdouts), "+".join(Path(f).resolve().name for f in images)
        else:
            sources, default = prepare.sample_sources(), "sample"
        dataset_dir = paths.datasets_dir(out) / (name or default)
        with console.progress("img") as bar:
            task = bar.add_task(f"preparing {escape(dataset_dir.name)}", total=len(sources))
            result = prepare.prepare(
                sources, dataset_dir, Recipe(sigma=sigma, scale=scale), subimage, step, workers, lambda e: bar.advance(task),
                {"general": general, "artifacts": ARTIFACTS}.get(degradations), holdout if images else None,
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
    """A rich progress bar for a training loop and the on_step callback that drives it (rank 0 only
    under torchrun: the other ranks train silently)."""
    bar = console.progress("it", quiet=not from_env().main)
    task = bar.add_task(total_label, total=1)

    def on_step(step: int, total: int, parts: dict) -> None:
        bar.update(task, completed=step, total=total, description=f"{total_label} loss {parts['loss']:.4f}")

    return bar, on_step


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def run_training(label: str, train_fn) -> dict:
    """Run a training function under a progress bar; Ctrl-C saves a checkpoint and says how to resume."""
    from sharpkd.pairs import DatasetError
    from sharpkd.training import TrainError

    bar, on_step = training_progress(label)
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` saves a checkpoint too, like Ctrl-C
    try:
        with bar:
            return train_fn(on_step)
    except KeyboardInterrupt:
        if not from_env().main:  # rank 0 says it, once
            raise SystemExit(130) from None
        fail("interrupted: checkpoint saved; run the same command again to resume", code=130)
    except (TrainError, DatasetError, pretrained.WeightsError) as e:
        fail(str(e))


def say_resuming(run_dir: Path) -> None:
    """Tell the user when a run continues from its checkpoint (and so ignores --init)."""
    from sharpkd.training import TrainError, resume_step

    try:
        step = resume_step(run_dir)
    except TrainError as e:
        fail(str(e))
    if step is not None:
        console.out.print(f"resuming run {escape(Path(run_dir).name)} at step {step} ({escape(str(run_dir))})")


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
        click.option("--run", "--run-dir", "run_dir", type=click.Path(file_okay=False, path_type=Path),
                     help="Run folder; an existing one is resumed. (Under torchrun write --run-dir: torchrun takes --run for its --run-path.)"),
        click.option("--steps", type=click.IntRange(min=1), default=20000, show_default=True),
        click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True,
                     help="Crops per step, in all (under torchrun: split evenly across the processes)."),
        click.option("--patch", type=click.IntRange(min=16), default=128, show_default=True, help="Crop size in pixels."),
        click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=5e-4, show_default=True, help="Peak learning rate (cosine schedule)."),
        click.option("--seed", type=int, default=0, show_default=True),
        click.option("--val-every", type=click.IntRange(min=1), default=1000, show_default=True, help="Validate, save weights and redraw curves every N steps."),
        click.option("--log-every", type=click.IntRange(min=1), default=25, show_default=True, help="Write the mean loss to log.jsonl every N steps."),
        click.option("--device", type=DEVICE_CHOICES, default="auto", show_default=True),
        click.option("--init", "init_from", help="Start a new run from these weights (a run folder, weights file, or 'bundled'); ignored when resuming."),
        click.option("--workers", type=click.IntRange(min=0), default=0, show_default=True,
                     help="Processes making training crops (use several on a GPU); 0 makes them in the training process, "
                          "which keeps resuming bit-exact."),
    ]):
        f = opt(f)
    return f


def shape_options(f):
    """Options of the trained model's shape, shared by the two training commands."""
    for opt in reversed([
        click.option("--channels", type=click.IntRange(min=1), help="Override the trained model's width."),
        click.option("--blocks", type=click.IntRange(min=1), help="Override the trained model's depth."),
        click.option("--linear-estimate", is_flag=True,
                     help="A general model: the estimator's output is linear, clamped to 0..1, instead of a sigmoid (whose noise "
                          "and JPEG guesses saturate at 0 for good; docs/training.md). With --init of a sigmoid model its head starts at zero."),
        click.option("--negative-slope", type=click.FloatRange(min=0, max=1), default=0.0, show_default=True,
                     help="A student or general model: leaky ReLUs with this slope (0: plain ReLUs, as the bundled models; docs/training.md)."),
    ]):
        f = opt(f)
    return f


def model_overrides(arch: str, channels: int | None, blocks: int | None, linear_estimate: bool, negative_slope: float) -> dict:
    """The shape options as overrides of ``arch``'s config; a usage error where ``arch`` has no such setting."""
    if linear_estimate and arch != "general":
        raise click.UsageError("--linear-estimate is for a general model (--arch general, or distill from a general teacher)")
    if negative_slope and arch == "teacher":
        raise click.UsageError("--negative-slope is for a student or general model, not the teacher")
    given = (("channels", channels), ("blocks", blocks), ("linear_estimate", linear_estimate or None), ("negative_slope", negative_slope or None))
    return {k: v for k, v in given if v is not None}


def train_config(steps, batch_size, patch, lr, seed, val_every, workers=0, log_every=25):
    from sharpkd.training import TrainConfig

    return TrainConfig(
        steps=steps, batch_size=batch_size, patch=patch, lr=lr, seed=seed, val_every=val_every, warmup=min(200, steps // 10),
        workers=workers, log_every=log_every,
    )


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


@click.command("train-teacher")
@train_options
@click.option("--arch", type=click.Choice(["teacher", "student", "general"]), default="teacher", show_default=True,
              help="student: train the student alone with plain L1 (the no-distillation baseline). general: the general "
                   "student (needs a data set prepared with --degradations general).")
@shape_options
@click.option("--calibrate/--no-calibrate", default=True, show_default=True,
              help="general: calibrate the blur estimate on the training photos after training.")
@click.option("--balance-loss", is_flag=True,
              help="general: weight each crop's L1 by 1 / (its input's error + 0.01), so that noisy and JPEG crops, whose "
                   "inputs are only a little off, count as much as blurred ones (docs/training.md).")
@click.option("--keep-estimator", is_flag=True,
              help="general: keep the estimator of --init as it is, calibration included; only the network trains.")
@click.option("--told-only", is_flag=True,
              help="general: every crop is restored told its true degradation (not half with the estimator's guess) and the "
                   "estimator is kept as --init's: trains a cleanup network (data set prepared with --degradations artifacts).")
@click.option("--told-measured", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="general: like --told-only, but each crop is told what the cleanup stage of this weights file measures "
                   "on it (through its knots) instead of the truth.")
def train_teacher_cmd(dataset, run_dir, steps, batch_size, patch, lr, seed, val_every, log_every, device, init_from, workers, arch, channels, blocks, calibrate, balance_loss, linear_estimate, negative_slope, keep_estimator, told_only, told_measured) -> None:
    """Train the teacher (deep, wide residual CNN) with L1 against HR. Re-running resumes."""
    from sharpkd import paths
    from sharpkd.train_teacher import train

    dataset_dir = dataset_or_fail(dataset)
    run_dir = run_dir or paths.runs_dir() / f"{arch}-{dataset_dir.name}"
    overrides = model_overrides(arch, channels, blocks, linear_estimate, negative_slope)
    if keep_estimator and (arch != "general" or init_from is None):
        raise click.UsageError("--keep-estimator is for --arch general with --init (the estimator to keep)")
    if (told_only or told_measured) and arch != "general":
        raise click.UsageError("--told-only and --told-measured are for --arch general")
    measured_by = None
    if told_measured:
        try:
            measured_by = pretrained.load_file(told_measured).model.cleanup
        except (pretrained.WeightsError, AttributeError) as e:
            fail(f"--told-measured {told_measured}: {e}")
        if measured_by is None:
            fail(f"--told-measured {told_measured}: this model has no cleanup stage (tools/add_cleanup.py makes one)")
    if balance_loss and arch != "general":
        raise click.UsageError("--balance-loss is for --arch general")
    cfg = train_config(steps, batch_size, patch, lr, seed, val_every, workers, log_every)
    dev = device_or_fail(device)
    console.out.print(f"training {arch} on {escape(str(dataset_dir))} -> {escape(str(run_dir))}")
    say_resuming(run_dir)
    init = init_weights(init_from, arch)
    val = run_training(f"train {arch}", lambda on_step: train(dataset_dir, run_dir, cfg, arch, overrides, dev, on_step, init, calibrate, balance_loss, keep_estimator, told_only, measured_by))
    print_validation(val, run_dir)
    finish()


@click.command("distill")
@train_options
@click.option("--teacher", help="Teacher: a run folder or weights file from train-teacher, 'bundled', or a general model "
              "(a run folder, or 'bundled-general': trains a smaller general student from it, with --lambda-feat 0 --lambda-out 1; "
              "the data set must be prepared with --degradations general), or a student ('bundled-x4', a run folder: teaches "
              "a smaller student) [default: the latest trained teacher, else the bundled one].")
@click.option("--lambda-feat", type=click.FloatRange(min=0), default=1.0, show_default=True, help="Weight of the feature loss: MSE between adapted student features and teacher features.")
@click.option("--lambda-out", type=click.FloatRange(min=0), default=0.0, show_default=True, help="Weight of an L1 loss to the teacher's output (0 = off).")
@click.option("--baseline", is_flag=True, help="Also train the same student without the teacher and write a report card (report.md, report.json).")
@click.option("--install", "install_it", is_flag=True, help="Make the trained student your default for enhance, demo and the Python API "
              "(stored in the data dir; `sharpkd reset-default` undoes it).")
@shape_options
@click.option("--calibrate/--no-calibrate", default=True, show_default=True,
              help="general student: calibrate its blur estimate on the training photos after training.")
@click.option("--keep-estimator", is_flag=True,
              help="general student: keep the estimator it starts with (from --init, else the teacher's) as it is, calibration "
                   "included; only the network trains, so blind mode guesses what that estimator guesses.")
def distill_cmd(dataset, run_dir, steps, batch_size, patch, lr, seed, val_every, log_every, device, init_from, workers, teacher, lambda_feat, lambda_out, baseline, install_it, channels, blocks, linear_estimate, negative_slope, calibrate, keep_estimator) -> None:
    """Train the compact student from the teacher: L1 to HR + feature MSE (+ L1 to the teacher's output).

    Re-running with the same run folder resumes; with --baseline, the report card compares the degraded
    input, the teacher, the distilled student and the student trained alone.
    """
    from sharpkd import distill, paths
    from sharpkd.train_teacher import train as train_plain
    from sharpkd.training import TrainError

    dataset_dir = dataset_or_fail(dataset)
    run_dir = run_dir or paths.runs_dir() / f"student-kd-{dataset_dir.name}"
    cfg = train_config(steps, batch_size, patch, lr, seed, val_every, workers, log_every)
    dev = device_or_fail(device)
    try:
        loaded_teacher = distill.load_teacher(teacher, dev)
    except (TrainError, pretrained.WeightsError) as e:
        fail(str(e))
    student_arch = "general" if loaded_teacher.arch == "general" else "student"
    if keep_estimator and student_arch != "general":
        raise click.UsageError("--keep-estimator is for a general student: give a general model as --teacher")
    overrides = model_overrides(student_arch, channels, blocks, linear_estimate, negative_slope)
    kd = distill.DistillConfig(lambda_feat=lambda_feat, lambda_out=lambda_out)
    console.out.print(f"distilling {escape(loaded_teacher.source)} into a student on {escape(str(dataset_dir))} -> {escape(str(run_dir))}")
    init = init_weights(init_from, student_arch)
    say_resuming(run_dir)
    val = run_training("distill", lambda on_step: distill.train(dataset_dir, run_dir, cfg, loaded_teacher, kd, overrides, dev, on_step, init, calibrate, keep_estimator))
    print_validation(val, run_dir)
    if baseline:
        base_dir = run_dir / "baseline"
        console.out.print(f"baseline: the same student without the teacher (same steps, seed, data and starting weights) -> {escape(str(base_dir))}")
        say_resuming(base_dir)
        # a general student takes its starting estimator from the teacher: so does its baseline
        base_init = init or (loaded_teacher if student_arch == "general" else None)
        base_val = run_training("baseline", lambda on_step: train_plain(dataset_dir, base_dir, cfg, student_arch, overrides, dev, on_step, base_init,
                                                                                 keep_estimator=keep_estimator))
        print_validation(base_val, base_dir)
        if not from_env().main:
            finish()
        with console.err.status("measuring the report card..."):
            text = distill.report_card(dataset_dir, run_dir, loaded_teacher, val, base_val, cfg, kd, init.source if init else None)
        console.out.print(escape(text))
        console.out.print(f"report: {escape(str(run_dir / 'report.md'))}")
    if install_it and from_env().main:
        try:
            target = distill.install(run_dir)
        except (TrainError, pretrained.WeightsError) as e:
            fail(str(e))
        console.out.print(
            f"installed: {escape(str(target))} is now the default model of enhance, demo and the Python API "
            "(instead of the bundled general model); `sharpkd reset-default` goes back to the bundled default"
        )
    finish()


@click.command("reset-default")
def reset_default_cmd() -> None:
    """Go back to the bundled default model after `distill --install` (the installed student is kept as a backup)."""
    from sharpkd import distill

    backup = distill.uninstall()
    if backup is None:
        console.out.print("no installed student: the default is already the bundled general model")
        return
    console.out.print(f"the default is the bundled general model again; the installed student was moved to {escape(str(backup))}")
