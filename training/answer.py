"""Greedy answers of a trained checkpoint on a shapes data set, from this file's own implementation
of the model (model.py), for checking the TypeScript runtime against it.

    python3 training/answer.py --model CKPT --data DATA [--limit N] --out answers.jsonl

Writes one line per question: {"image", "question", "ids"} (generated token ids without the stop
token, as the runtime reports them). Pixels come from DATA/pixels.u8, which the generator wrote with the runtime's preprocessing.
By default questions are decoded in batches through the training path (each picture's prefix shared
by its questions; `forward_train`); `--one-by-one` uses the reference's inference path (`greedy`)
instead, which gives the same tokens (training.test.ts checks both against the runtime) but is slower.
"""
import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checkpoint import Dataset, load_weights  # noqa: E402
from model import LlavaMini  # noqa: E402


def load(model_dir):
    cfg = json.load(open(os.path.join(model_dir, 'config.json')))
    return load_weights(LlavaMini(cfg, patch_tokens='comparison_variant' in cfg), model_dir).eval(), cfg


def strip(ids, stops):
    return ids[:-1] if ids and ids[-1] in stops else ids


@torch.no_grad()
def batched_greedy(model, ds, prefix, records, stops, max_new=16):
    """Greedy decoding of every question of `records` at once: each step re-runs the training path
    on prompt + tokens so far and takes the argmax after the last one."""
    qs = [(b, r, q) for b, r in enumerate(records) for q in r['questions']]
    px = ds.image([r['id'] for r in records])
    out = [[] for _ in qs]
    done = [False] * len(qs)
    for _ in range(max_new):
        seqs = [q['suffix'] + o for (_, _, q), o in zip(qs, out)]
        M = max(len(x) for x in seqs)
        tokens = torch.zeros(len(qs), M, dtype=torch.long)
        for j, x in enumerate(seqs):
            tokens[j, :len(x)] = torch.tensor(x)
        plen = torch.tensor([len(q['suffix']) for _, _, q in qs])
        img = torch.tensor([b for b, _, _ in qs])
        logits, _ = model.forward_train(px, prefix, tokens, plen, img)
        for j, x in enumerate(seqs):
            if not done[j]:
                t = int(logits[j, len(x) - 1].argmax())
                out[j].append(t)
                done[j] = t in stops
        if all(done):
            break
    return [(r, q, o) for (_, r, q), o in zip(qs, out)]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--model', required=True)
    p.add_argument('--data', required=True)
    p.add_argument('--limit', type=int, default=None, help='first N pictures')
    p.add_argument('--out', required=True)
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--one-by-one', action='store_true', help='the reference inference path, one question at a time')
    p.add_argument('--batch', type=int, default=20, help='pictures per batch')
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    model, cfg = load(a.model)
    ds = Dataset(a.data)
    stops = set(cfg['eos_token_id'])
    prefix = ds.meta['prefix']
    records = ds.records[:a.limit]
    tmp = f'{a.out}.partial'
    with open(tmp, 'w') as f:
        if a.one_by_one:
            for n, r in enumerate(records):
                px = ds.image([r['id']])
                for q in r['questions']:
                    ids = model.greedy(px, prefix + q['suffix'], stops)
                    f.write(json.dumps({'image': r['file'], 'question': q['question'], 'ids': strip(ids, stops)}) + '\n')
                print(f'\ranswered {n + 1}/{len(records)} pictures', end='', file=sys.stderr, flush=True)
        else:
            for s in range(0, len(records), a.batch):
                batch = records[s:s + a.batch]
                for r, q, ids in batched_greedy(model, ds, prefix, batch, stops):
                    f.write(json.dumps({'image': r['file'], 'question': q['question'], 'ids': strip(ids, stops)}) + '\n')
                print(f'\ranswered {s + len(batch)}/{len(records)} pictures', end='', file=sys.stderr, flush=True)
    os.replace(tmp, a.out)
    print(file=sys.stderr)


if __name__ == '__main__':
    main()
