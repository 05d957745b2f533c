#!/usr/bin/env bash
# Reproduce the shipped autoencoders (hwaksan/weights/autoencoder_kl, autoencoder_vq) and the
# perceptual net their loss reads (hwaksan/weights/perceptual), then measure them. One thread each.
#   bash scripts/train_autoencoders.sh perceptual   # the shapes perceptual net (~2 min)
#   bash scripts/train_autoencoders.sh kl           # 1,500 steps, then resumed to 3,000 at lr 2e-4
#   bash scripts/train_autoencoders.sh vq           # the same with a 256-code book, on to 4,500
# The --max-minutes caps stopped the shipped runs at 2,850 (kl) and 2,889 (vq, then resumed to
# 4,500) steps on this 2-vCPU machine; a faster machine gets further in the same minutes.
#   bash scripts/train_autoencoders.sh measure      # benchmarks/results/autoencoders.md
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
name=${1:?usage: train_autoencoders.sh perceptual|kl|vq|measure}
common=(--channels 16,32,64 --batch-size 16 --warmup 50 --disc-start 700 --bf16
        --sample-every 250 --checkpoint-every 250)

case "$name" in
  perceptual)
    python scripts/train_perceptual_net.py --steps 400
    ;;
  kl)
    hwaksan train-autoencoder --kind kl "${common[@]}" --steps 1500 --lr 5e-4 --out runs/ae_kl
    hwaksan train-autoencoder --kind kl "${common[@]}" --steps 3000 --lr 2e-4 --out runs/ae_kl \
      --resume --max-minutes 9
    rm -rf hwaksan/weights/autoencoder_kl && cp -r runs/ae_kl/model hwaksan/weights/autoencoder_kl
    ;;
  vq)
    hwaksan train-autoencoder --kind vq "${common[@]}" --num-embeddings 256 --steps 1500 \
      --lr 5e-4 --max-minutes 9 --out runs/ae_vq
    hwaksan train-autoencoder --kind vq "${common[@]}" --num-embeddings 256 --steps 3000 \
      --lr 2e-4 --out runs/ae_vq --resume --max-minutes 9
    hwaksan train-autoencoder --kind vq "${common[@]}" --num-embeddings 256 --steps 4500 \
      --lr 2e-4 --out runs/ae_vq --resume --max-minutes 10
    rm -rf hwaksan/weights/autoencoder_vq && cp -r runs/ae_vq/model hwaksan/weights/autoencoder_vq
    ;;
  measure)
    python benchmarks/autoencoders.py --n 1000
    ;;
  *) echo "unknown: $name" >&2; exit 2 ;;
esac
