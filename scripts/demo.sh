#!/usr/bin/env bash
# End-to-end demo on real photos:
#   1. a real restoration: the shipped small model (ipt_small, trained by this project,
#      docs/model_card_small.md) denoises, super-resolves and derains a photo it never saw
#      (scikit-image's coffee), prints PSNR/SSIM against the baseline and writes
#      input | model | reference side-by-side PNGs; fails if it does not beat the baseline
#   then the main job, parity with the official PyTorch model, on scikit-image's astronaut:
#   2. take the sample photo (64x64 centre crop)
#   3. make a PyTorch IPT checkpoint (6-task pre-training layout, 118.9M parameters) from seeded weights
#   4. convert it to a MindSpore checkpoint
#   5. layer-by-layer parity, all 6 tasks, on the photo's centre patch
#   6. restore the photo in MindSpore and in PyTorch, and compare the two outputs (`ipt-ms compare`)
# The full-size weights of steps 3-6 are random (seeded), so those restored images are not
# meant to look good: the point is that both frameworks compute the same thing. Takes a few
# minutes on 2 CPU cores. DEMO_STEPS=parity runs steps 2-5 only (`make demo-parity`: what CI
# runs again with the kernels changed, ONEDNN_MAX_CPU_ISA=AVX2 IPT_MS_CONV_AS_MATMUL=0).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${DEMO_OUT:-demo_out}
PRESET=${DEMO_PRESET:-pretrain}
mkdir -p "$OUT"

if [ "${DEMO_STEPS:-all}" != parity ]; then
    echo "== 1/6 restore a held-out photo with the shipped model (ipt_small)"
    python -m ipt_ms.eval.showcase "$OUT/showcase" --model ipt_small --photo coffee \
        --tasks denoise_30,sr_x2,derain --overwrite
fi

echo "== 2/6 sample photo"
python -m ipt_ms.eval.photos "$OUT" --count 1 --height 64 --width 64  # astronaut.png, centre 64x64

echo "== 3/6 seeded PyTorch checkpoint ($PRESET)"
ipt-ms make-weights --preset "$PRESET" --seed 0 -o "$OUT/ipt_seeded.pt" --overwrite   # a rerun replaces its own files

echo "== 4/6 convert PyTorch -> MindSpore"
ipt-ms convert "$OUT/ipt_seeded.pt" "$OUT/ipt_seeded.ckpt" --overwrite

echo "== 5/6 layer-by-layer parity, every task"
ipt-ms parity "$OUT/ipt_seeded.pt" --ckpt "$OUT/ipt_seeded.ckpt" --task all \
    --input "$OUT/astronaut.png" --report "$OUT/parity"

if [ "${DEMO_STEPS:-all}" = parity ]; then
    echo "demo parity done: reports in $OUT/parity/*/report.md"
    exit 0
fi

echo "== 6/6 restore the photo (sr_x2) in both frameworks"
ipt-ms restore --weights "$OUT/ipt_seeded.ckpt" --task sr_x2 "$OUT/astronaut.png" -o "$OUT/mindspore" --save-raw \
    --overwrite
ipt-ms restore --weights "$OUT/ipt_seeded.pt" --task sr_x2 "$OUT/astronaut.png" -o "$OUT/torch" --save-raw --overwrite \
    --framework torch
ipt-ms compare "$OUT/mindspore" "$OUT/torch"   # the PNGs and the float32 .npy outputs, pair by pair

echo "demo done: side by side in $OUT/showcase, parity reports in $OUT/parity/*/report.md, images in $OUT/mindspore and $OUT/torch"
