"""Maintainers: make a training run's weights a bundled model of the package.

    python tools/bundle_weights.py RUN_DIR NAME --purpose "..." [--trained-json FILE] [--validation-json FILE] [--context PX] [--context-note TEXT]

Writes sharpkd/weights/NAME.pt and NAME.json (architecture, config, sha256, purpose, how it was trained,
and the run's last validation numbers). Commit both, and update docs/model-card.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from sharpkd import pretrained


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("name")
    ap.add_argument("--purpose", required=True)
    ap.add_argument("--trained-json", type=Path, help="JSON object: commands, steps, wall time, hardware")
    ap.add_argument("--validation-json", type=Path, help="JSON object of validation numbers [default: the run's last validation]")
    ap.add_argument("--context", type=int, help="tile margin measured with benchmarks/margin.py [default: the full receptive field]")
    ap.add_argument("--context-note", help="how the margin was measured [default: the bundled NAME's note when --context is its margin]")
    args = ap.parse_args()
    model_file = args.run / "model.pt" if args.run.is_dir() else args.run
    info = json.loads(pretrained._torch_load(model_file).get("info", "{}"))
    trained = json.loads(args.trained_json.read_text()) if args.trained_json else {}
    config = args.run / "config.json"
    if config.exists():
        trained = {"run_config": json.loads(config.read_text())} | trained
    validation = json.loads(args.validation_json.read_text()) if args.validation_json else info.get("val", {})
    note = args.context_note
    if note is None and (pretrained.WEIGHTS_DIR / f"{args.name}.json").exists():
        current = pretrained.bundled_spec(args.name)
        note = current.context_note if current.context == args.context else ""
    spec = pretrained.write_bundle(model_file, args.name, args.purpose, trained, validation, context=args.context, context_note=note or "")
    print(f"wrote {pretrained.WEIGHTS_DIR / spec.file} (sha256 {spec.sha256[:12]}...) and {spec.name}.json")


if __name__ == "__main__":
    main()
