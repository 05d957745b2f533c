#!/usr/bin/env bash
# Reproduce the models that ship inside the package (hwaksan/weights/<name>/), then measure them.
# Each trains on the CPU in the background-friendly way (one thread); on a GPU drop OMP_NUM_THREADS.
#   bash scripts/train_shipped.sh digits    # class-conditional digits, 16x16
#   bash scripts/train_shipped.sh shapes    # unconditional shapes world, 16x16
#   bash scripts/train_shipped.sh mini_clip # the mini-CLIP text encoder (+ image tower), 32 px
#   bash scripts/train_shipped.sh shapes_cond              # class-conditional shapes, 16x16
#   bash scripts/train_shipped.sh digits_classifier_noisy  # noise-aware digit classifier
#   bash scripts/train_shipped.sh shapes_t2i               # text-to-image shapes, 32 px
#   bash scripts/train_shipped.sh shapes_t2i_64            # text-to-image, 64 px latent space
#   bash scripts/train_shipped.sh shapes_ldm               # latent diffusion, 64 px shapes
#   bash scripts/train_shipped.sh shapes_t2i_64_controlnet_seg    # ControlNet: silhouettes
#   bash scripts/train_shipped.sh shapes_t2i_64_controlnet_edges  # ControlNet: edge maps
#   bash scripts/train_shipped.sh shapes_t2i_64_ip_adapter # IP-Adapter (image prompts) on it
#   bash scripts/train_shipped.sh digits_cd    # consistency distillation of digits (1-2 steps)
#   bash scripts/train_shipped.sh digits_pd    # progressive distillation of digits (128 -> 1)
#   bash scripts/train_shipped.sh digits_ct    # consistency training on digits, no teacher
#   bash scripts/train_shipped.sh shapes32     # issue 16's teacher: 32 px shapes, 1-3 objects
#   bash scripts/train_shipped.sh shapes32_pd  # its students: also shapes32_cd, shapes32_ct
#   bash scripts/train_shipped.sh shapes_sr                # super-resolution 32 -> 64 px
#   bash scripts/train_shipped.sh shapes_sr16              # super-resolution 16 -> 64 px
#   bash scripts/train_shipped.sh shapes_t2i_64_watermark_lora  # a LoRA: the watermark look
#   bash scripts/train_shipped.sh shapes_t2i_64_inpaint    # dedicated inpainting model
#   bash scripts/train_shipped.sh shapes_layout            # layout-to-image (boxes + labels)
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
    # The shipped one: no image-tower attention, a fifth of two-object negatives swap the objects
    # (2,000 steps, batch 128, 15:45 on one thread).
    hwaksan train-clip --steps "${STEPS:-2000}" --image-attention 0 --relation-negatives 0.2 \
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
  shapes_t2i)
    # Text-to-image on 1-2 object scenes (every caption phrasing of 8,000 scenes), 32 px,
    # cross-attention at 8x8 to a frozen text encoder (TEXT_ENCODER=mini_clip or minilm),
    # v-prediction + cosine, bf16, cosine lr. Two stages:
    # 1. the plain model: 1,886 steps or 23 minutes (the shipped run reached 1,847);
    # 2. grown by two context layers (nets/context.py, identity at the start) and trained on
    #    for 4,800 more steps at lr 5e-4 (70-minute cap). The shipped run started stage 2 from
    #    stage 1's EMA weights as shipped in fp16 (`--init-from shapes_t2i` at that commit).
    enc=${TEXT_ENCODER:-mini_clip}
    if [ ! -f "runs/t2i_$enc/model/config.json" ]; then
      hwaksan train --text-encoder "$enc" --data shapes --resolution 32 --preset tiny \
        --channels 32,64,128 --attention-resolutions 8 --steps 1886 --minutes 23 \
        --batch-size 64 --lr 1e-3 --warmup 100 --lr-schedule cosine --bf16 --ema-decay 0.995 \
        --sample-every 500 --sample-steps 25 --out "runs/t2i_$enc"
    fi
    hwaksan train --text-encoder "$enc" --data shapes --resolution 32 --preset tiny \
      --channels 32,64,128 --attention-resolutions 8 --context-layers 2 \
      --init-from "runs/t2i_$enc/model" --steps "${STEPS:-4800}" --minutes "${MINUTES:-70}" \
      --batch-size 64 --lr 5e-4 --warmup 100 --lr-schedule cosine --bf16 --ema-decay 0.995 \
      --sample-every 1200 --sample-steps 25 --checkpoint-every 400 \
      --out "runs/t2i_${enc}_ctx2" ${RESUME:+--resume}
    python -c "import torch, hwaksan as hk; hk.load('runs/t2i_${enc}_ctx2/model').save(
        'hwaksan/weights/shapes_t2i', dtype=torch.float16)"
    python benchmarks/prompt_score.py --model shapes_t2i --n 200 --steps 25 --bf16
    exit 0
    ;;
  shapes_t2i_64)
    # Text-to-image in the shipped KL autoencoder's latent space (64 px scenes, 4x16x16
    # latents): mini-CLIP prompts, two context layers, cross-attention at 8x8 and 4x4. Two stages:
    # 1. from scratch on 8,000 scenes: 10,000 steps or 62 minutes on one thread (43 min here);
    # 2. 10,000 more steps on 40,000 scenes with the token grounding loss (weight 0.05) at
    #    lr 5e-4 (48 min). The shipped run started stage 2 from stage 1's EMA weights as shipped
    #    in fp16 (`--init-from shapes_t2i_64` at commit eb45675).
    if [ ! -f runs/t2i_64/model/config.json ]; then
      hwaksan train --text-encoder mini_clip --autoencoder autoencoder_kl --data shapes \
        --resolution 64 --preset tiny --channels 32,64,128 --attention-resolutions 8 \
        --context-layers 2 --steps 10000 --minutes 62 --batch-size 64 \
        --lr 1e-3 --warmup 100 --lr-schedule cosine --bf16 --ema-decay 0.995 \
        --sample-every 2000 --sample-steps 25 --checkpoint-every 500 --out runs/t2i_64
    fi
    hwaksan train --text-encoder mini_clip --autoencoder autoencoder_kl --data shapes \
      --resolution 64 --scenes 40000 --grounding-loss 0.05 --init-from runs/t2i_64/model \
      --preset tiny --channels 32,64,128 --attention-resolutions 8 --context-layers 2 \
      --steps "${STEPS:-10000}" --minutes "${MINUTES:-55}" --batch-size 64 --lr 5e-4 \
      --warmup 100 --lr-schedule cosine --bf16 --ema-decay 0.995 --sample-every 2500 \
      --sample-steps 25 --checkpoint-every 500 --out runs/t2i_64_ground ${RESUME:+--resume}
    python -c "import torch, hwaksan as hk; hk.load('runs/t2i_64_ground/model').save(
        'hwaksan/weights/shapes_t2i_64', dtype=torch.float16)"
    python benchmarks/prompt_score.py --model shapes_t2i_64 --n 200 --steps 25 --bf16
    python benchmarks/prompt_score.py --model shapes_t2i_64 --families relation --n 200 \
      --steps 25 --bf16 --layout-scale 1 --name prompt_score_layout --grids docs/layout
    exit 0
    ;;
  shapes_ldm)
    # Latent diffusion on the shipped KL autoencoder (f = 4, 4x16x16 latents): the latent side of
    # benchmarks/latent_vs_pixel.py, 10 wall-clock minutes on one thread (encoding included);
    # then the pixel side with the same budget and the comparison (table, JSON, plot).
    bench=benchmarks/latent_vs_pixel.py
    python $bench train latent --autoencoder autoencoder_kl --minutes "${MINUTES:-10}" \
      --out runs/lvp_latent
    python -c "import torch, hwaksan as hk; hk.load('runs/lvp_latent').save(
        'hwaksan/weights/shapes_ldm', dtype=torch.float16)"
    python $bench train pixel --minutes "${MINUTES:-10}" --out runs/lvp_pixel
    python $bench measure --n 100
    exit 0
    ;;
  shapes_t2i_64_controlnet_seg|shapes_t2i_64_controlnet_edges)
    # A ControlNet on the frozen shapes_t2i_64 (8,000 scenes, batch 16, lr 3e-4, 50% empty
    # prompts, a snapshot every 100 steps), its adapter folder shipped as it is written (fp16);
    # then IoU with the control against the base, and IoU against training steps (the curve).
    control=$([ "$name" = shapes_t2i_64_controlnet_seg ] && echo segmentation || echo edges)
    run=runs/shipped_$name
    hwaksan train-controlnet --control "$control" --steps "${STEPS:-1200}" --out "$run" \
      ${RESUME:+--resume}
    rm -rf "hwaksan/weights/$name" && cp -r "$run/model" "hwaksan/weights/$name"
    python benchmarks/controlnet_iou.py --control "$control" --controlnet "hwaksan/weights/$name" \
      --snapshots "$run/snapshots" --curve-n 16 --n 100 --name "controlnet_iou_${name#shapes_t2i_64_controlnet_}"
    exit 0
    ;;
  shapes_t2i_64_ip_adapter)
    # IP-Adapter on the frozen shapes_t2i_64 (benchmarks/ip_adapter.py): 4 image tokens from the
    # shipped mini-CLIP image tower, decoupled cross-attention in its 4 cross-attention layers;
    # 10,000 scenes whose references show the same objects moved, half the captions cut to their
    # position or to "", text / image / both dropped 5% each; bf16, one thread.
    hwaksan train-ip-adapter --model shapes_t2i_64 --scenes 10000 --steps "${STEPS:-600}" \
      --bf16 --batch-size 64 --lr 1e-3 --warmup 100 --ema-decay 0.995 --reference moved \
      --position-captions 0.5 --checkpoint-every 500 --out runs/shipped_ip_adapter \
      ${MINUTES:+--max-minutes "$MINUTES"} ${RESUME:+--resume}
    rm -rf hwaksan/weights/shapes_t2i_64_ip_adapter
    cp -r runs/shipped_ip_adapter/model hwaksan/weights/shapes_t2i_64_ip_adapter
    python benchmarks/ip_adapter.py --adapter hwaksan/weights/shapes_t2i_64_ip_adapter --n 63
    exit 0
    ;;
  digits_cd|digits_ct|shapes32_cd|shapes32_ct)
    # Consistency distillation from the shipped teacher (`digits` or `shapes32`: teacher Heun
    # steps on a 12-level Karras grid, target EMA 0.95, L2), or consistency training from its
    # data alone (no teacher: fresh weights, pseudo-Huber, lognormal levels, 11 -> 1281 levels).
    teacher=${name%_*}
    if [ "${name##*_}" = cd ]; then
      hwaksan distill consistency --teacher "$teacher" --steps "${STEPS:-3000}" --batch-size 32 \
        --num-levels 12 --lr 1e-4 --out "runs/$name" ${RESUME:+--resume}
    else
      hwaksan distill consistency-training --teacher "$teacher" --steps "${STEPS:-3000}" \
        --batch-size 32 --lr 1e-3 --warmup 50 --out "runs/$name" ${RESUME:+--resume}
    fi
    python -c "import torch, hwaksan as hk; hk.load('runs/$name/model').save(
        'hwaksan/weights/$name', dtype=torch.float16)"
    python benchmarks/distillation.py --teacher "$teacher" --n 500  # with its shipped students
    exit 0
    ;;
  shapes32)
    # The 32 px teacher for few-step students: unconditional scenes of 1-3 objects, U-Net
    # (32, 64, 128) with attention at 8 x 8, v-prediction, cosine, 8,000 steps of 64, fp32
    # channels-last (1.00 s/step on 2 threads vs 1.33 in bf16). Checkpoints every 250 steps.
    hwaksan train --data shapes --objects 3 --scenes 40000 --resolution 32 --preset tiny \
      --channels 32,64,128 --attention-resolutions 8 --steps "${STEPS:-8000}" --batch-size 64 \
      --lr 1e-3 --warmup 100 --lr-schedule cosine --ema-decay 0.999 \
      --prediction-type v_prediction --schedule cosine --sample-every 1000 --sample-steps 50 \
      --checkpoint-every 250 --out runs/shapes32_teacher ${RESUME:+--resume}
    python -c "import torch, hwaksan as hk; hk.load('runs/shapes32_teacher/model').save(
        'hwaksan/weights/shapes32', dtype=torch.float16)"
    python benchmarks/distillation.py --teacher shapes32 --n 500 --teacher-rows all
    exit 0
    ;;
  digits_pd|shapes32_pd)
    # Progressive distillation of the shipped teacher (`digits` or `shapes32`): DDIM-128 -> 64
    # -> ... -> 1, 300 steps a halving at batch 32 (lr 1e-4 decayed to 0 in each); ships the
    # 4-step student as <teacher>_pd and the 1-step one as <teacher>_pd1.
    teacher=${name%_pd}
    hwaksan distill progressive --teacher "$teacher" --teacher-steps 128 --final-steps 1 \
      --steps "${STEPS:-300}" --batch-size 32 --lr 1e-4 --out "runs/$name" ${RESUME:+--resume}
    python -c "import torch, hwaksan as hk
hk.load('runs/$name/steps_0004/model').save('hwaksan/weights/$name', dtype=torch.float16)
hk.load('runs/$name/steps_0001/model').save('hwaksan/weights/${name}1', dtype=torch.float16)"
    python benchmarks/distillation.py --teacher "$teacher" --n 500  # with its shipped students
    exit 0
    ;;
  shapes_sr)
    # Super-resolution 32 -> 64 px in autoencoder_kl's latents (4x16x16), the low-res image
    # folded onto the latent grid (space-to-depth, 12 channels) with conditioning augmentation
    # (10 levels up to sigma 0.5, level 0 for half the examples; the level a class label);
    # U-Net (32, 64, 128) without attention; 900 steps on 10,000 scenes of 1-3 objects
    # (set by steps; MINUTES=15 caps it, as the shipped run did).
    python scripts/train_super_resolution.py --low-res 32 --scenes 10000 \
      --steps "${STEPS:-900}" ${MINUTES:+--minutes "$MINUTES"} --lr 2e-3 --out runs/sr32
    python -c "import torch, hwaksan as hk; hk.load('runs/sr32/model').save(
        'hwaksan/weights/shapes_sr', dtype=torch.float16)"
    (cd benchmarks && python super_resolution.py --model shapes_sr --n 100 --cascade shapes_t2i)
    exit 0
    ;;
  shapes_sr16)
    # shapes_sr's network and recipe from 16 px inputs: 2,000 steps on 20,000 scenes of 1-3
    # objects (12 minutes on one thread).
    python scripts/train_super_resolution.py --low-res 16 --scenes 20000 \
      --steps "${STEPS:-2000}" --lr 2e-3 --out runs/sr16
    python -c "import torch, hwaksan as hk; hk.load('runs/sr16/model').save(
        'hwaksan/weights/shapes_sr16', dtype=torch.float16)"
    (cd benchmarks && python super_resolution.py --model shapes_sr16 --n 100 --name sr16)
    exit 0
    ;;
  shapes_t2i_64_watermark_lora)
    # A rank-4 LoRA on shapes_t2i_64 (the base frozen) that teaches it the watermark look (a
    # white mark near the bottom-right corner, data/shapes/watermark.py) on every image. Targets:
    # the attention projections, plus the full-resolution ResBlocks' convolutions and conv_out
    # (attention runs at 8x8 and 4x4 only; the mark is a 16x16-latent detail: attention alone
    # reached 31% after 400 steps in the pilot). 4,000 scenes with the mark, 1,500 steps of 32,
    # bf16, one thread (about 10 minutes); then the look rate against the scale and the score.
    full_res=up.6.res.conv1,up.6.res.conv2,up.6.res.skip,up.7.res.conv1,up.7.res.conv2
    hwaksan train-lora --base shapes_t2i_64 --watermark --scenes 4000 --rank 4 \
      --target-modules "to_q,to_k,to_v,to_out,$full_res,up.7.res.skip,conv_out" \
      --steps "${STEPS:-1500}" --batch-size 32 --lr 2e-3 --warmup 50 --bf16 --ema-decay 0.99 \
      --num-samples 8 --checkpoint-every 250 --out runs/lora_watermark ${RESUME:+--resume} \
      ${OVERWRITE:+--overwrite}
    mkdir -p hwaksan/weights/shapes_t2i_64_watermark_lora
    cp runs/lora_watermark/lora/pytorch_lora_weights.safetensors \
      hwaksan/weights/shapes_t2i_64_watermark_lora/
    python benchmarks/lora_look.py --lora hwaksan/weights/shapes_t2i_64_watermark_lora \
      --n 200 --scales 0,0.25,0.5,0.75,1 --bf16
    exit 0
    ;;
  shapes_t2i_64_inpaint)
    # Stable Diffusion's inpainting arrangement on shapes_t2i_64: the mask (at latent size) and
    # the masked image's latents concatenated to the input (4 + 1 + 4 channels), random box masks
    # in training; the U-Net starts from shapes_t2i_64 with zero weights on the 5 new input
    # channels. 3,000 steps of 64 on 20,000 scenes, lr 5e-4, bf16, one thread (about 45 min).
    hwaksan train --text-encoder mini_clip --autoencoder autoencoder_kl --data shapes \
      --resolution 64 --scenes 20000 --inpainting --init-from shapes_t2i_64 \
      --preset tiny --channels 32,64,128 --attention-resolutions 8 --context-layers 2 \
      --steps "${STEPS:-3000}" --batch-size 64 --lr 5e-4 --warmup 100 --lr-schedule cosine \
      --bf16 --ema-decay 0.995 --sample-every 1000 --sample-steps 25 --checkpoint-every 500 \
      --out runs/t2i_64_inpaint ${RESUME:+--resume}
    python -c "import torch, hwaksan as hk; hk.load('runs/t2i_64_inpaint/model').save(
        'hwaksan/weights/shapes_t2i_64_inpaint', dtype=torch.float16)"
    python benchmarks/inpainting.py --model shapes_t2i_64_inpaint --model shapes_t2i_64 --n 120
    exit 0
    ;;
  shapes_layout)
    # Layout-to-image in autoencoder_kl's latents: each box a token (label + Fourier features of
    # its corners) through a 2-layer layout encoder, read by cross-attention; the U-Net starts
    # from shapes_t2i_64's (its context layers then read layout tokens). 2,500 steps of 64 on
    # 20,000 scenes of 1-3 objects, lr 5e-4, bf16 (about 25 min on 2 threads).
    python scripts/train_layout.py --boxes fourier --init-from shapes_t2i_64 --context-layers 2 \
      --scenes 20000 --steps "${STEPS:-2500}" --batch-size 64 --lr 5e-4 --bf16 --out runs/layout
    python -c "import torch, hwaksan as hk; hk.load('runs/layout/model').save(
        'hwaksan/weights/shapes_layout', dtype=torch.float16)"
    python benchmarks/layout_to_image.py --model shapes_layout --n 100
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
