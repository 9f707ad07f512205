"""The paper's claim in miniature (its Tables 1 and 6): models trained with the same data, budget and
seed by `train.py --test` (LLaVA-Mini, LLaVA-Mini with 0 pre-fusion layers, the `--variant v15`
baseline) side by side: held-out accuracy per question type, FLOPs of each stage and time to first
token, all in PyTorch fp32 on one thread (the v1.5-style baseline is not a model the runtime runs).

    python3 training/compare.py --data TEST NAME=CKPT [NAME=CKPT ...] > table.md

The last NAME=CKPT is the baseline the FLOPs and TTFT ratios are taken against.

TTFT = normalised pixels to the first answer token's logits (vision tower, compressor, projector,
pre-fusion, LLM prefill), batch 1, median of --runs runs over the test pictures after 10 warm-ups.
FLOPs count 2 per multiply-add of every matmul and of causal attention, for the same prompt.
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from answer import load  # noqa: E402
from checkpoint import Dataset  # noqa: E402
from model import IMAGE_TOKEN_INDEX  # noqa: E402
from train import TYPES  # noqa: E402


def llama_layer_flops(cfg, rows):
    h, i = cfg['hidden_size'], cfg['intermediate_size']
    kv = cfg['num_key_value_heads'] * (h // cfg['num_attention_heads'])
    weights = 2 * h * h + 2 * h * kv + 3 * h * i
    return 2 * rows * weights + 2 * rows * rows * h  # causal QK^T and AV: rows^2 / 2 multiply-adds each


def flops(cfg, patch_tokens, n_text):
    """Per stage, for one picture and a prompt of n_text tokens besides <image>."""
    v = cfg['vision_config']
    d, grid = v['hidden_size'], v['image_size'] // v['patch_size']
    m, t = grid * grid, grid * grid + 1
    vit = 2 * m * 3 * v['patch_size'] ** 2 * d + (v['num_hidden_layers'] - 1) * (2 * t * (4 * d * d + 2 * d * v['intermediate_size']) + 4 * t * t * d)
    h = cfg['hidden_size']
    out = {'vision tower': vit}
    if patch_tokens:
        out['projector'] = 2 * m * (d * h + h * h)
        llm_rows = n_text + m
    else:
        out['compressor'] = 2 * (2 * m * d * d + 2 * d * d + 2 * m * d)
        out['projector'] = 2 * (m + 1) * (d * h + h * h)
        out['pre-fusion'] = cfg['prefusion_layer_num'] * llama_layer_flops(cfg, m + 1 + n_text)
        llm_rows = n_text + 1
    out['LLM prefill'] = cfg['num_hidden_layers'] * llama_layer_flops(cfg, llm_rows) + 2 * h * cfg['vocab_size']
    return out, llm_rows


@torch.no_grad()
def ttft_ms(model, ds, ids, runs):
    times = []
    for r in range(runs + 10):
        px = ds.image([r % len(ds.records)])
        t0 = time.perf_counter()
        x = model.prompt_embeddings(px, ids)
        model.llm_logits(x)[0, -1].argmax()
        if r >= 10:
            times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--data', required=True, help='the held-out set (its pictures time the TTFT)')
    p.add_argument('--runs', type=int, default=30)
    p.add_argument('models', nargs='+', help='NAME=CHECKPOINT_DIR')
    a = p.parse_args()
    torch.set_num_threads(1)
    ds = Dataset(a.data)
    question = next(q for q in ds.records[0]['questions'] if q['type'] == 'count')
    ids = ds.meta['prefix'] + question['suffix']
    n_text = len(ids) - 1
    assert ids.count(IMAGE_TOKEN_INDEX) == 1
    rows = []
    for spec in a.models:
        name, path = spec.split('=', 1)
        model, cfg = load(path)
        state = json.load(open(os.path.join(path, 'training_state.json')))
        assert 'test_per_type' in state, f'{path}: trained without --test'
        f, llm_rows = flops(cfg, model.patch_tokens, n_text)
        rows.append({'name': name, 'state': state, 'flops': f, 'llm_rows': llm_rows, 'ttft': ttft_ms(model, ds, ids, a.runs)})
    base = rows[-1]
    # The types the test set asks (a picture set asks no clip questions).
    types = [t for t in TYPES if all(t in r['state']['test_per_type'] for r in rows)]
    print('| model | vision tokens in the LLM | ' + ' | '.join(types) + ' | overall | kept at step |')
    print('|---|---:|' + '---:|' * (len(types) + 2))
    for r in rows:
        s = r['state']
        print(f"| {r['name']} | {r['llm_rows'] - n_text} | " + ' | '.join(f"{100 * s['test_per_type'][t]:.1f}" for t in types)
              + f" | **{100 * s['test_exact_match']:.1f}** | {s['step']} |")
    print()
    stages = ['vision tower', 'compressor', 'projector', 'pre-fusion', 'LLM prefill']
    print('| model | ' + ' | '.join(f'{st} MFLOPs' for st in stages) + f' | total MFLOPs | vs {base["name"]} | TTFT ms | vs {base["name"]} |')
    print('|---|' + '---:|' * (len(stages) + 4))
    for r in rows:
        total = sum(r['flops'].values())
        cells = [f"{r['flops'][st] / 1e6:.2f}" if st in r['flops'] else '-' for st in stages]
        print(f"| {r['name']} | " + ' | '.join(cells) + f" | {total / 1e6:.2f} | {total / sum(base['flops'].values()):.2f}x"
              + f" | {r['ttft']:.2f} | {r['ttft'] / base['ttft']:.2f}x |")
    print()
    print(f"Prompt: the release's template with `{question['question']}` ({n_text} text tokens); "
          f"{len(ds.records)} test pictures, {rows[0]['state']['test_questions']} questions; PyTorch {torch.__version__}, fp32, 1 thread.")


if __name__ == '__main__':
    main()
