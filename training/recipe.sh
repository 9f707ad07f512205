#!/usr/bin/env bash
# The bundled demo model (models/llava-mini-shapes) from nothing, on a 2-core CPU machine:
#   bash training/recipe.sh WORKDIR
# writes the data sets (both cores, ~15 min), trains the first edition's picture model (68 min),
# fine-tunes it on clips, conversations, left/right and top/bottom (38 min), and releases the result
# into models/llava-mini-shapes with its measured accuracy (training/release.sh). Needs
# `npm run build` first and Debian's python3-torch. The whole-scene JSON question came after this
# edition: the data sets have it, and `--type-weights scene=0` leaves it out of training, as the edition
# was trained (validation still asks it, so the step kept can differ from the original run's).
set -euo pipefail
cd "$(dirname "$0")/.."
w=${1:?usage: bash training/recipe.sh WORKDIR}
PY=${PYTHON:-/usr/bin/python3}
shapes() { node packages/shapes/dist/cli.js "$@"; }
mkdir -p "$w/tok"
# The model keeps the byte-level tokenizer of @llava-mini/tiny it was first trained with.
node --input-type=module -e "const t = await import('@llava-mini/tiny'); t.writeTinyTokenizer(process.argv[1]);" "$w/tok"
(shapes --out "$w/train" --count 16000 --seed 1 --pixels --tokenizer "$w/tok" && shapes --out "$w/val" --count 400 --seed 2 --pixels --tokenizer "$w/tok") &
(shapes --out "$w/trainv" --count 4500 --seed 3 --pixels --clips --tokenizer "$w/tok" && shapes --out "$w/valv" --count 300 --seed 4 --pixels --clips --tokenizer "$w/tok") &
wait
# Stage 1: pictures, one question at a time (the first edition: colour, shape, count, existence).
$PY training/train.py --data "$w/train" --val "$w/val" --tokenizer "$w/tok" --out "$w/base" --lr 2e-3 --minutes 68 \
  --followups 0 --locate-weight 0 --where-weight 0 --type-weights scene=0
# Stage 2: clips through the video path, conversations, and the spatial questions drawn twice as often.
$PY training/train.py --data "$w/train" --val "$w/val" --video-data "$w/trainv" --video-val "$w/valv" --tokenizer "$w/tok" \
  --init "$w/base" --aux-steps 0 --aux-weight 0 --curriculum '' --minutes 38 --warmup 50 --eval-every 100 --lr 1e-3 --seed 4 \
  --type-weights side=2,vertical=2,motion=2,scene=0 --locate-weight 0.02 --where-weight 0.01 --out "$w/model"
bash training/release.sh "$w/model"
