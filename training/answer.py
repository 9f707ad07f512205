"""Greedy answers of a trained checkpoint on a shapes data set, from this file's own implementation
of the model (model.py), for checking the TypeScript runtime against it.

    python3 training/answer.py --model CKPT --data DATA [--limit N] [--followups] [--max-new N] --out answers.jsonl

Writes one line per question: {"image", "question", "ids"} (generated token ids without the stop
token, as the runtime reports them; "image" is the picture's or the clip's file). Pixels come from
DATA/pixels.u8, which the generator wrote with the runtime's preprocessing (a clip's sampled frames).
With --followups, each record with two or more questions is also asked as one conversation
(`followup_order`), each answer the model's own, in lines that carry the earlier questions as "history".
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
from model import answer_length, LlavaMini  # noqa: E402


def load(model_dir):
    cfg = json.load(open(os.path.join(model_dir, 'config.json')))
    return load_weights(LlavaMini(cfg, patch_tokens='comparison_variant' in cfg), model_dir).eval(), cfg


def strip(ids, stops):
    return ids[:-1] if ids and ids[-1] in stops else ids


def followup_order(record):
    """The conversation asked about a record: up to three consecutive questions from index id mod n
    (the runtime's eval, followupConversations, asks the same ones)."""
    qs = record['questions']
    n = len(qs)
    return [qs[(record['id'] + k) % n] for k in range(min(3, n))] if n >= 2 else []


@torch.no_grad()
def batched_greedy(model, ds, prefix, records, prompts, stops, max_new):
    """Greedy decoding of every (record index, prompt ids after the prefix) of `prompts` at once, the
    records all of one frame count: each step re-runs the training path on prompt + tokens so far and
    takes the argmax after the last one. `max_new` counts answer tokens, as the runtime does."""
    header = ds.meta['header']
    T = records[0].get('frames', 1)
    px = ds.image([r['id'] for r in records])
    out = [[] for _ in prompts]
    done = [False] * len(prompts)
    while not all(done):
        seqs = [pr + o for (_, pr), o in zip(prompts, out)]
        M = max(len(x) for x in seqs)
        tokens = torch.zeros(len(seqs), M, dtype=torch.long)
        for j, x in enumerate(seqs):
            tokens[j, :len(x)] = torch.tensor(x)
        plen = torch.tensor([len(pr) for _, pr in prompts])
        img = torch.tensor([b for b, _ in prompts])
        logits = model.forward_train(px, prefix, tokens, plen, img, T)[0]
        for j, x in enumerate(seqs):
            if not done[j]:
                t = int(logits[j, len(x) - 1].argmax())
                out[j].append(t)
                done[j] = t in stops or answer_length(out[j], header) >= max_new
    return out


def answer_batch(model, ds, prefix, records, stops, followups, max_new):
    """Lines for every question of `records`, then (with `followups`) their conversations turn by turn."""
    prompts = [(b, q['suffix']) for b, r in enumerate(records) for q in r['questions']]
    asked = [(r, q, []) for r in records for q in r['questions']]
    lines = [(r, q, h, ids) for (r, q, h), ids in zip(asked, batched_greedy(model, ds, prefix, records, prompts, stops, max_new))]
    if followups:
        convs = [(b, followup_order(r)) for b, r in enumerate(records)]
        convs = [(b, c) for b, c in convs if c]
        # The first turn of each conversation is the question asked first, above.
        first = {(id(r), q['question']): ids for r, q, _, ids in lines}
        history = [[(c[0], first[(id(records[b]), c[0]['question'])])] for b, c in convs]
        for turn in (1, 2):
            active = [(b, c, h) for (b, c), h in zip(convs, history) if len(c) > turn]
            if not active:
                break
            prompts = []
            for b, c, h in active:
                pr = []
                for k, (q, ids) in enumerate(h):
                    pr += (q['suffix'] if k == 0 else q['turn']) + ids
                prompts.append((b, pr + c[turn]['turn']))
            for (b, c, h), ids in zip(active, batched_greedy(model, ds, prefix, records, prompts, stops, max_new)):
                lines.append((records[b], c[turn], [q['question'] for q, _ in h], ids))
                h.append((c[turn], ids))
    return lines


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--model', required=True)
    p.add_argument('--data', required=True)
    p.add_argument('--limit', type=int, default=None, help='first N pictures')
    p.add_argument('--out', required=True)
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--one-by-one', action='store_true', help='the reference inference path, one question at a time')
    p.add_argument('--batch', type=int, default=20, help='records per batch')
    p.add_argument('--followups', action='store_true', help='also answer each record\'s conversation (followup_order)')
    p.add_argument('--max-new', type=int, default=200,
                   help='answer tokens at most, a header the model writes not counted (the runtime\'s maxNewTokens; 200: llava-mini eval\'s, MAX_ANSWER_TOKENS)')
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    model, cfg = load(a.model)
    ds = Dataset(a.data)
    stops = set(cfg['eos_token_id'])
    prefix = ds.meta['prefix']
    records = ds.records[:a.limit]
    tmp = f'{a.out}.partial'
    done = 0

    def write(f, r, q, history, ids):
        line = {'image': r['file'], 'question': q['question'], 'ids': strip(ids, stops)}
        if history:
            line['history'] = history
        f.write(json.dumps(line) + '\n')

    with open(tmp, 'w') as f:
        if a.one_by_one:
            assert not a.followups, '--one-by-one answers first questions only'
            for r in records:
                px = ds.image([r['id']])
                for q in r['questions']:
                    write(f, r, q, [], model.greedy(px, prefix + q['suffix'], stops, a.max_new, ds.meta['header']))
                done += 1
                print(f'\ranswered {done}/{len(records)} records', end='', file=sys.stderr, flush=True)
        else:
            groups = {}
            for r in records:
                groups.setdefault(r.get('frames', 1), []).append(r)
            lines = []
            for group in groups.values():
                for s in range(0, len(group), a.batch):
                    batch = group[s:s + a.batch]
                    lines += answer_batch(model, ds, prefix, batch, stops, a.followups, a.max_new)
                    done += len(batch)
                    print(f'\ranswered {done}/{len(records)} records', end='', file=sys.stderr, flush=True)
            # Data set order: every record's first questions, then its conversation's later turns.
            order = {id(r): k for k, r in enumerate(records)}
            lines.sort(key=lambda l: (order[id(l[0])], len(l[2])))
            for r, q, h, ids in lines:
                write(f, r, q, h, ids)
    os.replace(tmp, a.out)
    print(file=sys.stderr)


if __name__ == '__main__':
    main()
