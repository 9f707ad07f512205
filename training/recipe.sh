#!/usr/bin/env bash
# The bundled demo model (models/llava-mini-shapes) from nothing, on a 2-core CPU machine:
#   bash training/recipe.sh WORKDIR
# writes the data sets with the shapes tokenizer (both cores, ~15 min), trains the picture model
# (colour, shape, count, existence, left/right, top/bottom, the whole-scene JSON) for 41 minutes of an
# 88-minute schedule, fine-tunes it on clips through the video path and conversations, two seeds side
# by side (45 min, one thread each), keeps the one with the better validation score, fine-tunes that
# once more (75 min), then twice more side by side (80 min), and releases the better into
# models/llava-mini-shapes with its measured accuracy (training/release.sh): about 4 1/2 hours.
# Needs `npm run build` first and Debian's python3-torch. The matmuls run in bf16 where the CPU has bf16 instructions (`--bf16 auto`: AMX or
# AVX512-BF16, which doubled the steps on the Xeon stages 1 and 2 were trained on) and in fp32 elsewhere,
# where bf16 would be emulated and several times slower; BF16=on or BF16=off decides instead. Fewer
# steps fit in the fixed minutes on a slower CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
w=${1:?usage: bash training/recipe.sh WORKDIR}
PY=${PYTHON:-/usr/bin/python3}
BF16=${BF16:-auto}
shapes() { node packages/shapes/dist/cli.js "$@"; }
mkdir -p "$w/tok"
node --input-type=module -e "const s = await import('@llava-mini/shapes'); s.writeShapesTokenizer(process.argv[1]);" "$w/tok"
(shapes --out "$w/train" --count 16000 --seed 1 --pixels --tokenizer "$w/tok" && shapes --out "$w/val" --count 400 --seed 2 --pixels --tokenizer "$w/tok") &
(shapes --out "$w/trainv" --count 4500 --seed 3 --pixels --clips --tokenizer "$w/tok" && shapes --out "$w/valv" --count 300 --seed 4 --pixels --clips --tokenizer "$w/tok") &
wait
# Stage 1: pictures, one question at a time, left/right drawn twice as often and the JSON half as often.
$PY training/train.py --data "$w/train" --val "$w/val" --tokenizer "$w/tok" --out "$w/pictures" --bf16 "$BF16" --steps 100000 --minutes 88 --stop-after 41 \
  --val-count 100 --eval-every 250 --lr 2e-3 --followups 0 --locate-weight 0 --where-weight 0 --type-weights side=2,scene=0.5 --seed 0
# Stages 2-4 fine-tune (--init) on pictures, clips (one vision token per frame, the fused text averaged
# over the frames) and conversations; each keeps its best checkpoint on validation.
finetune() {
  $PY training/train.py --data "$w/train" --val "$w/val" --video-data "$w/trainv" --video-val "$w/valv" --tokenizer "$w/tok" --bf16 "$BF16" \
    --aux-steps 0 --aux-weight 0 --curriculum '' --warmup 30 --steps 100000 \
    --val-count 100 --eval-every 150 --locate-weight 0 --where-weight 0 "$@"
}
# A run that fails stops the recipe (set -e); its twin running beside it (python, a child of the
# background job's subshell) stops too.
trap 'for j in $(jobs -p); do pkill -P "$j"; kill "$j"; done 2>/dev/null || true' EXIT
# The folder, of those given, whose run kept the better validation score.
better() { $PY -c "import json, sys; print(max(sys.argv[1:], key=lambda d: json.load(open(d + '/training_state.json'))['val_score']))" "$@"; }
# Stage 2: clips and conversations join; two seeds side by side, one thread each, each run waited for
# by its id, so a failed one stops the recipe (a bare wait returns 0).
stage2=(--init "$w/pictures" --lr 1e-3 --minutes 45 --type-weights side=2,vertical=2,motion=2,scene=0.5)
finetune "${stage2[@]}" --seed 7 --out "$w/a" > "$w/a.log" 2>&1 &
a=$!
finetune "${stage2[@]}" --seed 8 --out "$w/b" > "$w/b.log" 2>&1 &
b=$!
wait "$a"
wait "$b"
kept=$(better "$w/a" "$w/b")
echo "stage 2 kept $kept"
# Stage 3: the kept one again for 75 minutes, the whole-scene JSON drawn twice as often and counting
# 1.5 times, at a lower LR (one run).
finetune --init "$kept" --lr 7e-4 --minutes 75 --type-weights side=2,vertical=2,motion=2,scene=2,count=1.5 --seed 9 --out "$w/more"
# Stage 4: twice more side by side for 80 minutes at LR 5e-4, the JSON drawn 3 or 4 times as often,
# one with twice the picture conversations; the better is the fifth edition (stage 3's checkpoint
# stays if neither beats it on validation).
stage4=(--init "$w/more" --lr 5e-4 --minutes 80)
finetune "${stage4[@]}" --type-weights side=2,vertical=2,motion=2,scene=3,count=2 --followups 16 --seed 10 --out "$w/e" > "$w/e.log" 2>&1 &
e=$!
finetune "${stage4[@]}" --type-weights side=2,vertical=2,motion=2,scene=4,count=1.5 --seed 11 --out "$w/f" > "$w/f.log" 2>&1 &
f=$!
wait "$e"
wait "$f"
kept=$(better "$w/more" "$w/e" "$w/f")
echo "stage 4 kept $kept"
bash training/release.sh "$kept"
