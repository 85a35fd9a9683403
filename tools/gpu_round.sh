#!/usr/bin/env bash
# One GPU round of the bundled weights (maintainers' tool; see docs/model-card.md), run on a lent GPU
# machine from the repository root, with the training photos unpacked under $DATA (sun80/ with all 80,
# natural_sr_train/) and $OUT for what comes back. Two phases, each stopped by a deadline (SIGTERM: a
# run saves last.pt, whose EMA weights are used):
#   A: the teacher and the general model, fine-tuned from the bundled weights on the mixed data set;
#   B: four x4 students from the bundled x4, equal steps: two seeds with output distillation from the
#      new teacher, two seeds alone (the seed-to-seed spread).
#   C: the speed-shaped students (docs/performance.md), fresh: x4 at 32 channels x 8 blocks, two seeds
#      with output distillation from the bundled teacher and two alone; one seed each at 32 x 6; the
#      general model at both shapes (estimator from the bundled general, body fresh).
#   D: the general model on the degradation range that also has noise and JPEG alone (artifacts_only_share),
#      with a linear estimate and leaky ReLUs (the bundled body's ReLUs are dead on sharp-looking crops, so it
#      cannot learn noise or JPEG: docs/model-card.md): a 40 x 8 fresh and one from the bundled weights made
#      leaky, and two seeds of the 32 x 8 general alone (estimator convolutions from the bundled);
#   E: two seeds of the 32 x 8 general distilled from D's better 40 x 8 (output L1; validation gain), same
#      start and steps as D's 32 x 8 runs: does distillation pay for a general student half the cost of
#      today's? Beside them that 40 x 8 goes on from its weights (general40c). (no run
#      calibrates its general model on the GPU: calibrate all on CPU afterwards with
#      tools/calibrate_general.py, as for the bundled general.)
#   F: noise and JPEG as a stage of their own (fourth round: the mixture, even told the truth, teaches no
#      noise, noise-only crops do; docs/model-card.md): the leaky 40 x 8 general from $F_INIT on a data set
#      prepared with --artifacts-share 0.7, then on the usual mixture, beside the mixture alone for as many
#      steps (control). Then tools/probe_artifacts.py, calibrate and sweep on CPU. To start from general40c,
#      carry it (gpudata/w/general40c.pt, ignored) and set F_INIT=gpudata/w/general40c.pt.
#   G: the cleanup network of general and fast (noise and JPEG alone, every crop told the truth) trained
#      longer than 2 CPU cores allow: the shipped width (40 x 8) going on from $G_INIT (carried, e.g.
#      gpudata/w/cleanup4.pt: the CPU run cleanup4-cpu), beside a 64 x 8 one from nothing (its estimator
#      from $G_INIT, unused by the stage): is it training or width that limits JPEG q40? Both by
#      tools/train_gpu.py in G_SECONDS of training. Then tools/add_cleanup.py, cleanup_safety and the sweep on CPU.
# D, E and F were checked end to end on CPU with tiny data (DEVICE=cpu D_STEPS=3 G40_STEPS=3 F1_STEPS=3
# F2_STEPS=3, 64 small photos): configs and init_taken as intended.
# G was checked the same way (DEVICE=cpu PHASES=G G_PROBE=4 G_EXTRA="--log-every 1", 59 small photos).
# PHASES=A, B, C, D, E, F or G runs one phase per call (each under the device tool's 10-minute limit).
#
# Getting the photos there (the device tool sends at most 64 MiB a call, the repository included):
# tar the training files into chunks of <= 44 MB under an ignored folder (gpudata/cK/data.tar, listed in
# .git/info/exclude), then one call per chunk with carry ["gpudata/cK"] and the command
# `mkdir -p /root/data && tar xf gpudata/cK/data.tar -C /root/data`: files outside the repository stay on
# the warm machine between calls (seen 2026-11-27: five chunks, about 6 s of device time each after the
# first start). platformdirs and pypng are not on the machine: carry their wheels (.whl) and
# `pip install --target /tmp/site`, PYTHONPATH=/tmp/site:$PWD.
set -u
DATA=${DATA:-/root/data}
OUT=${OUT:-out}
export SHARPKD_HOME=${SHARPKD_HOME:-/root/skhome} PYTHONUNBUFFERED=1
DEVICE=${DEVICE:-cuda}
RUNS=$SHARPKD_HOME/gpu-runs
A_SECONDS=${A_SECONDS:-260}
B_SECONDS=${B_SECONDS:-230}
TEACHER_STEPS=${TEACHER_STEPS:-5000}
GENERAL_STEPS=${GENERAL_STEPS:-6000}
STUDENT_STEPS=${STUDENT_STEPS:-4000}
C_SECONDS=${C_SECONDS:-480}
C_STEPS=${C_STEPS:-8000}
C_GENERAL_STEPS=${C_GENERAL_STEPS:-7000}
D_SECONDS=${D_SECONDS:-320}
E_SECONDS=${E_SECONDS:-320}
D_STEPS=${D_STEPS:-5000}  # the 32 x 8 generals: four runs side by side; all must finish for the KD comparison's equal steps
G40_STEPS=${G40_STEPS:-6000}
F_INIT=${F_INIT:-bundled}
F1_SECONDS=${F1_SECONDS:-250}
F2_SECONDS=${F2_SECONDS:-250}
F1_STEPS=${F1_STEPS:-4000}
F2_STEPS=${F2_STEPS:-4000}
G_INIT=${G_INIT:-gpudata/w/cleanup4.pt}
G_SECONDS=${G_SECONDS:-380}
G_DEADLINE=${G_DEADLINE:-470}
G_WORKERS=${G_WORKERS:-7}
G_PROBE=${G_PROBE:-100}
G_EXTRA=${G_EXTRA:-}  # e.g. "--log-every 1" for a check on CPU with G_PROBE=4
PHASES=${PHASES:-AB}  # A, B, AB, C, D, E, F or G: the phases to run in this call (B needs A's teacher, E needs D's general)
sk() { python3 -m sharpkd "$@"; }
mkdir -p "$RUNS" "$OUT"
t0=$(date +%s)
if [[ $PHASES == *A* || $PHASES == *C* ]]; then
sk prepare --images "$DATA/sun80" --images "$DATA/natural_sr_train" --val last:10 --val groups:20 --name mixed --workers 14 2>&1 | tail -2
fi
if [[ $PHASES == *A* || $PHASES == *C* || $PHASES == *D* || $PHASES == *F* ]]; then
sk prepare --images "$DATA/sun80" --images "$DATA/natural_sr_train" --val last:10 --val groups:20 --name mixed-general --degradations general --workers 14 2>&1 | tail -1
[[ $PHASES == *F* ]] && sk prepare --images "$DATA/sun80" --images "$DATA/natural_sr_train" --val last:10 --val groups:20 \
  --name mixed-artifacts --degradations general --artifacts-share 0.7 --workers 14 2>&1 | tail -1
echo "prepared in $(( $(date +%s) - t0 )) s"
fi
if [[ $PHASES == *G* ]]; then
sk prepare --images "$DATA/sun80" --images "$DATA/natural_sr_train" --val last:10 --val groups:20 --name mixed-cleanup \
  --degradations artifacts --workers 14 2>&1 | tail -1
echo "prepared in $(( $(date +%s) - t0 )) s"
CLEAN="train-teacher --arch general --linear-estimate --negative-slope 0.1 --no-calibrate --told-only --keep-estimator \
  --dataset mixed-cleanup --init $G_INIT --blocks 8 --batch-size 64 --workers $G_WORKERS --val-every 1000000 $G_EXTRA"
python3 tools/train_gpu.py --budget $G_SECONDS --deadline $G_DEADLINE --probe $G_PROBE --out $RUNS/g --device $DEVICE \
  "c40=$CLEAN --channels 40 --lr 2e-4" "c64=$CLEAN --channels 64 --lr 5e-4"
mv $RUNS/g/runs/* $RUNS/ && cp $RUNS/g/*.log $RUNS/ 2>/dev/null
echo "phase G done at $(( $(date +%s) - t0 )) s"
for r in c40 c64; do echo "$r $(tail -n 1 $RUNS/$r/log.jsonl)"; done
fi
if [[ $PHASES == *A* ]]; then

timeout -s TERM $A_SECONDS python3 -m sharpkd train-teacher --dataset mixed --init bundled --batch-size 32 --patch 192 --lr 2e-4 \
  --workers 3 --val-every 2500 --steps $TEACHER_STEPS --run $RUNS/teacher --device $DEVICE > $RUNS/teacher.log 2>&1 &
timeout -s TERM $A_SECONDS python3 -m sharpkd train-teacher --arch general --no-calibrate --dataset mixed-general --init bundled \
  --batch-size 32 --lr 2e-4 --workers 8 --val-every 3000 --steps $GENERAL_STEPS --run $RUNS/general --device $DEVICE > $RUNS/general.log 2>&1 &
wait
echo "phase A done at $(( $(date +%s) - t0 )) s"; tail -n 2 $RUNS/teacher/log.jsonl $RUNS/general/log.jsonl
fi
if [[ $PHASES == *B* ]]; then

COMMON="--dataset mixed --init bundled --channels 40 --blocks 8 --batch-size 32 --lr 2e-4 --workers 2 --val-every 2000 --steps $STUDENT_STEPS --device $DEVICE"
for seed in 0 1; do
  timeout -s TERM $B_SECONDS python3 -m sharpkd distill $COMMON --seed $seed --teacher $RUNS/teacher/last.pt --lambda-feat 0 --lambda-out 1 \
    --run $RUNS/kd$seed > $RUNS/kd$seed.log 2>&1 &
  timeout -s TERM $B_SECONDS python3 -m sharpkd train-teacher --arch student $COMMON --seed $seed --run $RUNS/alone$seed > $RUNS/alone$seed.log 2>&1 &
done
wait
echo "phase B done at $(( $(date +%s) - t0 )) s"
for r in kd0 kd1 alone0 alone1; do tail -n 1 $RUNS/$r/log.jsonl; done
fi

if [[ $PHASES == *C* ]]; then
student() {  # name channels blocks seed mode(kd|alone)
  local common="--dataset mixed --channels $2 --blocks $3 --seed $4 --batch-size 32 --lr 5e-4 --workers 1 --val-every 2000 --steps $C_STEPS --device $DEVICE --run $RUNS/$1"
  if [[ $5 == kd ]]; then
    timeout -s TERM $C_SECONDS python3 -m sharpkd distill $common --teacher bundled --lambda-feat 0 --lambda-out 1 > $RUNS/$1.log 2>&1 &
  else
    timeout -s TERM $C_SECONDS python3 -m sharpkd train-teacher --arch student $common > $RUNS/$1.log 2>&1 &
  fi
}
student kd0 32 8 0 kd; student kd1 32 8 1 kd; student alone0 32 8 0 alone; student alone1 32 8 1 alone
student kd6 32 6 0 kd; student alone6 32 6 0 alone
for b in 8 6; do
  timeout -s TERM $C_SECONDS python3 -m sharpkd train-teacher --arch general --no-calibrate --dataset mixed-general --init bundled \
    --channels 32 --blocks $b --batch-size 32 --lr 5e-4 --workers 4 --val-every 2000 --steps $C_GENERAL_STEPS --run $RUNS/general$b \
    --device $DEVICE > $RUNS/general$b.log 2>&1 &
done
wait
echo "phase C done at $(( $(date +%s) - t0 )) s"
for r in kd0 kd1 alone0 alone1 kd6 alone6 general8 general6; do echo "$r $(tail -n 1 $RUNS/$r/log.jsonl)"; done
fi

GENERAL32="--arch general --linear-estimate --negative-slope 0.1 --dataset mixed-general --init bundled --channels 32 --blocks 8 --batch-size 32 --lr 5e-4 --workers 3 --val-every 2000 --steps $D_STEPS --device $DEVICE"
GENERAL40="--arch general --linear-estimate --negative-slope 0.1 --no-calibrate --dataset mixed-general --batch-size 32 --workers 4 --val-every 2000 --steps $G40_STEPS --device $DEVICE"
if [[ $PHASES == *D* ]]; then
timeout -s TERM $D_SECONDS python3 -m sharpkd train-teacher $GENERAL40 --lr 5e-4 --run $RUNS/general40 > $RUNS/general40.log 2>&1 &
timeout -s TERM $D_SECONDS python3 -m sharpkd train-teacher $GENERAL40 --lr 2e-4 --init bundled --run $RUNS/general40w > $RUNS/general40w.log 2>&1 &
for seed in 0 1; do
  timeout -s TERM $D_SECONDS python3 -m sharpkd train-teacher $GENERAL32 --no-calibrate --seed $seed --run $RUNS/g32alone$seed > $RUNS/g32alone$seed.log 2>&1 &
done
wait
echo "phase D done at $(( $(date +%s) - t0 )) s"
for r in general40 general40w g32alone0 g32alone1; do echo "$r $(grep '"val"' $RUNS/$r/log.jsonl | tail -n 1)"; done
fi
if [[ $PHASES == *E* ]]; then
best=$(python3 - "$RUNS" <<'PY'
import json, sys
from pathlib import Path
def gain(name):
    vals = [json.loads(l)["val"]["gain"] for l in (Path(sys.argv[1]) / name / "log.jsonl").read_text().splitlines() if '"val"' in l]
    return vals[-1] if vals else float("-inf")
print(max(["general40", "general40w"], key=gain))
PY
)
echo "the better 40 x 8 general of phase D: $best"
for seed in 0 1; do
  timeout -s TERM $E_SECONDS python3 -m sharpkd distill ${GENERAL32/--arch general /} --seed $seed --teacher $RUNS/$best --no-calibrate \
    --lambda-feat 0 --lambda-out 1 --run $RUNS/g32kd$seed > $RUNS/g32kd$seed.log 2>&1 &
done
timeout -s TERM $E_SECONDS python3 -m sharpkd train-teacher $GENERAL40 --lr 2e-4 --init $RUNS/$best --run $RUNS/general40c > $RUNS/general40c.log 2>&1 &
wait
echo "phase E done at $(( $(date +%s) - t0 )) s"
for r in g32kd0 g32kd1 general40c; do echo "$r $(grep '"val"' $RUNS/$r/log.jsonl | tail -n 1)"; done
fi

if [[ $PHASES == *F* ]]; then
# a noise/JPEG stage (70 % of crops sharp with noise and/or JPEG alone), then the usual mixture, against
# the mixture alone for the same steps from the same start ($F_INIT: the bundled general, or general40c
# of the fourth round carried as a file)
LEAKY40="--arch general --linear-estimate --negative-slope 0.1 --no-calibrate --batch-size 32 --lr 2e-4 --workers 5 --val-every 2000 --device $DEVICE"
(timeout -s TERM $F1_SECONDS python3 -m sharpkd train-teacher $LEAKY40 --dataset mixed-artifacts --init "$F_INIT" --steps $F1_STEPS \
   --run $RUNS/artifacts > $RUNS/artifacts.log 2>&1
 timeout -s TERM $F2_SECONDS python3 -m sharpkd train-teacher $LEAKY40 --dataset mixed-general --init $RUNS/artifacts --steps $F2_STEPS \
   --run $RUNS/remix > $RUNS/remix.log 2>&1) &
timeout -s TERM $(( F1_SECONDS + F2_SECONDS )) python3 -m sharpkd train-teacher $LEAKY40 --dataset mixed-general --init "$F_INIT" \
  --steps $(( F1_STEPS + F2_STEPS )) --run $RUNS/control > $RUNS/control.log 2>&1 &
wait
echo "phase F done at $(( $(date +%s) - t0 )) s"
for r in artifacts remix control; do echo "$r $(grep '"val"' $RUNS/$r/log.jsonl | tail -n 1)"; done
fi

python3 - "$RUNS" "$OUT" <<'PY'
import json, sys, tarfile
from pathlib import Path
from sharpkd import pretrained
runs, out = Path(sys.argv[1]), Path(sys.argv[2])
w = out / "w"; w.mkdir(parents=True, exist_ok=True)
for name in sorted(r.name for r in runs.iterdir() if (r / "last.pt").exists()):
    try:
        pretrained.write_bundle(runs / name / "last.pt", name, "gpu round", {}, {}, w)
    except Exception as e:
        print(name, "not bundled:", e)
(w / "teacher.pt").rename(out / "teacher.pt") if (w / "teacher.pt").exists() else None
with tarfile.open(out / "bundle.tar", "w") as t:
    t.add(w, arcname="w")
    for r in runs.iterdir():
        for f in ("log.jsonl", "config.json"):
            if (r / f).exists():
                t.add(r / f, arcname=f"runs/{r.name}/{f}")
        if r.suffix == ".log":
            t.add(r, arcname=f"logs/{r.name}")
PY
rm -rf "$OUT/w"
echo "all done at $(( $(date +%s) - t0 )) s"
