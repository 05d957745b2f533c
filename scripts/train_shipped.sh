#!/usr/bin/env bash
# Reproduce the models that ship inside the package (hwaksan/weights/<name>/), then measure them.
# Each trains on the CPU in the background-friendly way (one thread); on a GPU drop OMP_NUM_THREADS.
#   bash scripts/train_shipped.sh digits    # class-conditional digits, 16x16
#   bash scripts/train_shipped.sh shapes    # unconditional shapes world, 16x16
#   bash scripts/train_shipped.sh mini_clip # the mini-CLIP text encoder (+ image tower), 32 px
#   bash scripts/train_shipped.sh shapes_cond              # class-conditional shapes, 16x16
#   bash scripts/train_shipped.sh digits_classifier_noisy  # noise-aware digit classifier
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
name=${1:?usage: train_shipped.sh digits|shapes}

case "$name" in
  digits)
    hwaksan train --data digits --class-conditional --preset tiny --channels 32,64,128 \
      --resolution 16 --steps "${STEPS:-3000}" --batch-size 64 --lr 1e-3 --warmup 100 \
      --ema-decay 0.995 --prediction-type v_prediction --schedule cosine \
      --sample-every 500 --checkpoint-every 250 --out runs/shipped_digits ${RESUME:+--resume}
    ;;
  shapes)
    # The demo's recipe (tiny U-Net, 16 px, v-prediction, cosine, batch 64, lr 2e-3, EMA 0.995)
    # for 2,250 steps; the benchmark also scores it (validity / coverage) on the way.
    python benchmarks/demo_budget.py --out runs/shipped_shapes --steps "${STEPS:-2250}" --n 256
    ;;
  mini_clip)
    # mini-CLIP (text + image towers, contrastive with hard negatives) on 32 px shapes captions
    # with 1-2 objects; ships the EMA weights in fp16 and scores zero-shot retrieval per attribute.
    hwaksan train-clip --steps "${STEPS:-2000}" --max-minutes "${MINUTES:-16}" \
      --out runs/shipped_mini_clip ${RESUME:+--resume}
    python - <<'PY'
import json
import torch
from hwaksan.nets.text import load_mini_clip, save_mini_clip
run = "runs/shipped_mini_clip/model"
info = json.loads(open(f"{run}/config.json").read())["info"]
save_mini_clip(load_mini_clip(run), "hwaksan/weights/mini_clip", info, dtype=torch.float16)
print("saved hwaksan/weights/mini_clip")
PY
    python benchmarks/clip_retrieval.py
    exit 0
    ;;
  shapes_cond)
    # The shapes recipe, class-conditional (class = shape x color, 21 classes) with condition
    # dropout 0.1 so one network is p(x | y) and p(x); scored by benchmarks/guidance_sweep.py.
    hwaksan train --data shapes --resolution 16 --class-conditional --preset tiny \
      --steps "${STEPS:-5000}" --batch-size 64 --lr 2e-3 --warmup 100 --ema-decay 0.995 \
      --sample-every 1000 --checkpoint-every 500 --out runs/shipped_shapes_cond ${RESUME:+--resume}
    python -c "import torch, hwaksan as hk; hk.load('runs/shipped_shapes_cond/model').save(
        'hwaksan/weights/shapes_cond', dtype=torch.float16)"
    echo "saved hwaksan/weights/shapes_cond; measure: python benchmarks/guidance_sweep.py"
    exit 0
    ;;
  digits_classifier_noisy)
    # p(y | x_t, t) on digits noised under the digits model's cosine schedule (the CLI prints
    # its held-out accuracy per t); guides `digits`: benchmarks/guidance_sweep.py.
    hwaksan train-classifier --data digits --steps "${STEPS:-2500}" --batch-size 64 --lr 1e-3 \
      --out runs/shipped_digits_classifier_noisy ${RESUME:+--resume}
    python - <<'PY'
import json
import torch
from hwaksan.nets.classifier import load_classifier, save_classifier
run = "runs/shipped_digits_classifier_noisy/model"
info = {k: v for k, v in json.loads(open(f"{run}/config.json").read()).items()
        if k not in ("model_kind", "config")}
save_classifier(load_classifier(run), "hwaksan/weights/digits_classifier_noisy", torch.float16,
                **info)
print("saved hwaksan/weights/digits_classifier_noisy")
PY
    exit 0
    ;;
  *) echo "unknown model $name" >&2; exit 2 ;;
esac

# Ship the EMA weights in fp16 (a few MB) and measure them.
python - "$name" <<'PY'
import sys
import torch
import hwaksan as hk
name = sys.argv[1]
run = f"runs/shipped_{name}/model"
hk.load(run).save(f"hwaksan/weights/{name}", dtype=torch.float16)  # the EMA weights only
print(f"saved hwaksan/weights/{name}")
PY
python benchmarks/shipped_scores.py "$name"
