#!/usr/bin/env bash
# Put a trained checkpoint in place as the bundled model and measure it:
#   bash training/release.sh CHECKPOINT_DIR [TOKENIZER_DIR]
# copies the checkpoint to models/llava-mini-shapes/, writes the held-out test sets (pictures: seed
# 1000, clips: seed 1001, 60 each) with pixels, records the PyTorch model's greedy answers on them,
# follow-up conversations included (eval/pytorch-answers*.jsonl, what the runtime is tested against),
# and the runtime's accuracy per section and type (eval/results.json, what the model card states).
set -euo pipefail
cd "$(dirname "$0")/.."
src=$1
tok=${2:-$1}
out=${OUT:-models/llava-mini-shapes}
PY=${PYTHON:-/usr/bin/python3}
mkdir -p "$out/eval"
for f in config.json generation_config.json model.safetensors training_state.json; do cp "$src/$f" "$out/$f"; done
for f in tokenizer.json tokenizer_config.json special_tokens_map.json; do cp "$tok/$f" "$out/$f"; done
size=$($PY -c "import json;print(json.load(open('$out/config.json'))['vision_config']['image_size'])")
patch=$($PY -c "import json;print(json.load(open('$out/config.json'))['vision_config']['patch_size'])")
test=${TEST_DIR:-.cache/shapes-test}
clips=${TEST_DIR:-.cache/shapes-test}-clips
rm -rf "$test" "$clips"
node packages/shapes/dist/cli.js --out "$test" --count 60 --seed 1000 --image-size "$size" --patch-size "$patch" --pixels --tokenizer "$out"
node packages/shapes/dist/cli.js --out "$clips" --count 60 --seed 1001 --image-size "$size" --patch-size "$patch" --pixels --clips --tokenizer "$out"
$PY training/answer.py --model "$out" --data "$test" --followups --out "$out/eval/pytorch-answers.jsonl"
$PY training/answer.py --model "$out" --data "$clips" --followups --out "$out/eval/pytorch-answers-video.jsonl"
ORT_DISABLE_TELEMETRY=1 node packages/cli/dist/cli.js eval --model "$out" --data "$test" --video-data "$clips" --device cpu --dtype fp32 --json --answers "$test/runtime-answers.jsonl" > "$test/eval.json"
$PY - "$test/eval.json" "$out/eval/results.json" <<'PYEOF'
import json, sys
r = json.load(open(sys.argv[1]))
acc = lambda s: {'overall': s['overall']['accuracy'], 'perType': {t: v['accuracy'] for t, v in s['perType'].items()}}
sec = r['sections']
fu = acc(sec['followups'])
fu['askedFirst'] = acc(sec['followups']['askedFirst'])
out = {'testSet': {'seed': 1000, 'count': 60}, 'videoSet': {'seed': 1001, 'count': 60}, 'subsetCount': 25, 'videoSubsetCount': 10,
       'questions': {k: v['questions'] for k, v in sec.items()},
       'fp32': acc(sec['pictures']), 'video': acc(sec['video']), 'followups': fu}
json.dump(out, open(sys.argv[2], 'w'), indent=2)
print(json.dumps(out, indent=2))
PYEOF
