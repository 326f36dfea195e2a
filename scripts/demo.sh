#!/usr/bin/env bash
# End-to-end demo of the main job on a real photo (scikit-image's astronaut):
#   1. take the sample photo (64x64 centre crop)
#   2. make a PyTorch IPT checkpoint (6-task pre-training layout, 118.9M parameters) from seeded weights
#   3. convert it to a MindSpore checkpoint
#   4. layer-by-layer parity, all 6 tasks, on the photo's centre patch
#   5. restore the photo in MindSpore and in PyTorch, and compare the two outputs (`ipt-ms compare`)
# The weights are random (seeded), so the restored images are not meant to look good:
# the point is that both frameworks compute the same thing. Takes a few minutes on 2 CPU cores.
# DEMO_STEPS=parity stops after step 4 (`make demo-parity`: what CI runs again with the
# kernels changed, ONEDNN_MAX_CPU_ISA=AVX2 IPT_MS_CONV_AS_MATMUL=0).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${DEMO_OUT:-demo_out}
PRESET=${DEMO_PRESET:-pretrain}
mkdir -p "$OUT"

echo "== 1/5 sample photo"
python -m ipt_ms.eval.photos "$OUT" --count 1 --height 64 --width 64  # astronaut.png, centre 64x64

echo "== 2/5 seeded PyTorch checkpoint ($PRESET)"
ipt-ms make-weights --preset "$PRESET" --seed 0 -o "$OUT/ipt_seeded.pt" --overwrite   # a rerun replaces its own files

echo "== 3/5 convert PyTorch -> MindSpore"
ipt-ms convert "$OUT/ipt_seeded.pt" "$OUT/ipt_seeded.ckpt" --overwrite

echo "== 4/5 layer-by-layer parity, every task"
ipt-ms parity "$OUT/ipt_seeded.pt" --ckpt "$OUT/ipt_seeded.ckpt" --task all \
    --input "$OUT/astronaut.png" --report "$OUT/parity"

if [ "${DEMO_STEPS:-all}" = parity ]; then
    echo "demo parity done: reports in $OUT/parity/*/report.md"
    exit 0
fi

echo "== 5/5 restore the photo (sr_x2) in both frameworks"
ipt-ms restore --weights "$OUT/ipt_seeded.ckpt" --task sr_x2 "$OUT/astronaut.png" -o "$OUT/mindspore" --save-raw \
    --overwrite
ipt-ms restore --weights "$OUT/ipt_seeded.pt" --task sr_x2 "$OUT/astronaut.png" -o "$OUT/torch" --save-raw --overwrite \
    --framework torch
ipt-ms compare "$OUT/mindspore" "$OUT/torch"   # the PNGs and the float32 .npy outputs, pair by pair

echo "demo done: reports in $OUT/parity/*/report.md, images in $OUT/mindspore and $OUT/torch"
