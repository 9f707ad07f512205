"""Train the tiny LLaVA-Mini of the shapes world on CPU (bf16 autocast) and write the release's HF layout.

    python3 training/train.py --data DATA --val VAL --out OUT [--steps N] [--minutes M] ...

DATA and VAL are folders written by `llava-mini-shapes --pixels`. The best checkpoint on VAL (exact
match of whole answers, teacher-forced, which equals greedy decoding's exact match) is kept in OUT,
rewritten atomically whenever it improves, so a run stopped early still leaves a usable model.
Recipe (see models/llava-mini-shapes/README.md): a vision-only stage with a per-patch auxiliary head
(colour, shape, shape centre), then everything with a curriculum on the number of shapes.
"""
import argparse
import copy
import json
import math
import os
import random
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checkpoint import Dataset, load_weights, model_config, save_checkpoint, special_ids  # noqa: E402
from model import LlavaMini  # noqa: E402

TYPES = ('color', 'shape', 'count', 'exists', 'side')


def parse():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--data', required=True)
    p.add_argument('--val', required=True)
    p.add_argument('--out', required=True)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--steps', type=int, default=3000, help='steps after the vision-only stage')
    p.add_argument('--aux-steps', type=int, default=200, help='vision-only steps (ViT + per-patch head)')
    p.add_argument('--curriculum', default='1:0.12,2:0.3,3:0.45', help='max shapes per picture until this fraction of the run')
    p.add_argument('--minutes', type=float, default=1e9, help='stop after this much wall time (the schedule follows whichever of steps and time runs out first)')
    p.add_argument('--batch', type=int, default=24, help='pictures per step')
    p.add_argument('--questions', type=int, default=8, help='questions per picture per step')
    p.add_argument('--lr', type=float, default=2e-3)
    p.add_argument('--warmup', type=int, default=150)
    p.add_argument('--aux-weight', type=float, default=0.3)
    p.add_argument('--eval-every', type=int, default=100)
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--bf16', action='store_true', help='bf16 autocast (only pays on CPUs with AVX512-BF16; the fp32 path goes through oneDNN)')
    p.add_argument('--val-count', type=int, default=150, help='validation pictures used')
    p.add_argument('--vision-width', type=int, default=96)
    p.add_argument('--vision-layers', type=int, default=4)
    p.add_argument('--width', type=int, default=128)
    p.add_argument('--layers', type=int, default=2)
    p.add_argument('--prefusion-layers', type=int, default=2)
    p.add_argument('--variant', choices=('mini', 'v15'), default='mini',
                   help='v15: the LLaVA-v1.5-style baseline (every patch spliced into the LLM, no compressor or pre-fusion)')
    p.add_argument('--init', help='start from this checkpoint (a fine-tune: pair it with --aux-steps 0 --aux-weight 0, as the auxiliary head is not saved)')
    p.add_argument('--type-weights', default='', help='how often each question type is drawn, e.g. side=3 (default 1 each)')
    p.add_argument('--test', help='a held-out set: the kept checkpoint is scored on it at the end (training_state.json)')
    a = p.parse_args()
    try:
        a.type_weights = {k: float(v) for k, v in (x.split('=') for x in a.type_weights.split(',') if x)}
    except ValueError:
        p.error(f'--type-weights: expected TYPE=WEIGHT[,TYPE=WEIGHT...], got {a.type_weights!r}')
    for t, w in a.type_weights.items():
        if t not in TYPES or not w > 0:
            p.error(f'--type-weights: {t}={w}: the type must be one of {", ".join(TYPES)} and the weight above 0')
    return a


def architecture(a, meta):
    return {
        'hidden_size': a.width, 'intermediate_size': 2 * a.width, 'num_hidden_layers': a.layers,
        'num_attention_heads': 4, 'num_key_value_heads': 2, 'prefusion_layers': a.prefusion_layers,
        'compressor_heads': 4,
        'vision': {'hidden_size': a.vision_width, 'intermediate_size': 4 * a.vision_width, 'num_hidden_layers': a.vision_layers,
                   'num_attention_heads': 4, 'image_size': meta['imageSize'], 'patch_size': meta['patchSize']},
    }


def collate(ds, idxs, qs_per_image, rng, type_weights=None):
    """Pixels, padded question tokens, suffix lengths, picture index and type of each question
    (types drawn with `type_weights`, 1 each by default, among those the picture still has)."""
    toks, plen, img, types = [], [], [], []
    for b, i in enumerate(idxs):
        qs = ds.records[i]['questions']
        by_type = {}
        for q in qs:
            by_type.setdefault(q['type'], []).append(q)
        chosen = []
        for _ in range(min(qs_per_image, len(qs))):
            left = [t for t in by_type if by_type[t]]
            t = rng.choices(left, [(type_weights or {}).get(t, 1.0) for t in left])[0]
            chosen.append(by_type[t].pop(rng.randrange(len(by_type[t]))))
        for q in chosen:
            toks.append(q['suffix'] + q['target'])
            plen.append(len(q['suffix']))
            img.append(b)
            types.append(q['type'])
    M = max(len(t) for t in toks)
    tokens = torch.zeros(len(toks), M, dtype=torch.long)
    for j, t in enumerate(toks):
        tokens[j, :len(t)] = torch.tensor(t)
    lens = torch.tensor([len(t) for t in toks])
    return ds.image(idxs), tokens, torch.tensor(plen), lens, torch.tensor(img), types


def lm_loss(logits, tokens, plen, lens):
    """Cross-entropy on the target (assistant header, answer, <|eot_id|>); also whether each question is all right."""
    Q, M, V = logits.shape
    ar = torch.arange(M - 1).unsqueeze(0)
    want = (ar >= (plen - 1).unsqueeze(1)) & (ar < (lens - 1).unsqueeze(1))
    labels = tokens[:, 1:].masked_fill(~want, -100)
    lg = logits[:, :-1].float()
    loss = F.cross_entropy(lg.reshape(-1, V), labels.reshape(-1), ignore_index=-100)
    right = ((lg.argmax(-1) == tokens[:, 1:]) | ~want).all(1)
    return loss, right


def aux_loss(model, feats, ds, idxs):
    logits = model.aux_head(feats.float())
    total = 0.0
    start = 0
    grid = int(round(feats.shape[1] ** 0.5))
    for key, n in zip(('color', 'shape', 'center', 'column'), model.AUX_CLASSES):
        if key == 'column':
            labels = (torch.arange(grid * grid) % grid).expand(len(idxs), -1)
        else:
            labels = torch.tensor([ds.records[i]['patches'][key] for i in idxs])
        total = total + F.cross_entropy(logits[..., start:start + n].reshape(-1, n), labels.reshape(-1))
        start += n
    return total


@torch.no_grad()
def evaluate(model, ds, prefix, bf16, batch=25):
    model.eval()
    rng = random.Random(0)
    hits = {t: [0, 0] for t in TYPES}
    for s in range(0, len(ds.records), batch):
        idxs = list(range(s, min(s + batch, len(ds.records))))
        px, tokens, plen, lens, img, types = collate(ds, idxs, 10 ** 6, rng)
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=bf16):
            logits, _ = model.forward_train(px, prefix, tokens, plen, img)
        _, right = lm_loss(logits, tokens, plen, lens)
        for t, r in zip(types, right.tolist()):
            hits[t][0] += int(r)
            hits[t][1] += 1
    model.train()
    per = {t: h[0] / max(h[1], 1) for t, h in hits.items()}
    overall = sum(h[0] for h in hits.values()) / sum(h[1] for h in hits.values())
    return overall, per


def main():
    a = parse()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    rng = random.Random(a.seed)
    bf16 = a.bf16
    ds, val = Dataset(a.data), Dataset(a.val)
    prefix = ds.meta['prefix']
    assert val.meta['prefix'] == prefix, 'train and val sets were tokenized differently'
    ids = special_ids(a.data)
    if a.variant == 'v15':
        a.prefusion_layers = 0
    arch = architecture(a, ds.meta)
    config = model_config(arch, ids)
    if a.variant == 'v15':
        # Not a LLaVA-Mini: another model_type, so the converter refuses it instead of running it as one.
        config.update(model_type='llava_v15_style_shapes', comparison_variant='llava-v1.5-style: every patch spliced, no compressor; the runtime cannot run it')
    model = LlavaMini(config, patch_tokens=a.variant == 'v15')
    if a.init:
        load_weights(model, a.init)
        init_config = json.load(open(os.path.join(a.init, 'config.json')))
        assert all(init_config[k] == config[k] for k in ('hidden_size', 'num_hidden_layers', 'prefusion_layer_num', 'vision_config')), f'{a.init}: another architecture'
    params = sum(p.numel() for k, p in model.checkpoint_state().items())
    print(f'model: {params / 1e6:.2f} M parameters; data {len(ds.records)} pictures; val {len(val.records)}', flush=True)

    vision = [p for n, p in model.named_parameters() if n.startswith('model.vision_tower.') or n.startswith('aux_head.')]
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=a.lr, weight_decay=0.01, betas=(0.9, 0.98))
    curriculum = [(float(s), int(n)) for n, s in (x.split(':') for x in a.curriculum.split(',') if x)]
    val.records = val.records[:a.val_count]
    by_count = {}
    for i, r in enumerate(ds.records):
        by_count.setdefault(len(r['scene']['shapes']), []).append(i)

    t0 = time.time()
    best = -1.0
    log_every = 20
    hist = []
    # Stage 1: the vision tower learns what each patch shows.
    vopt = torch.optim.AdamW(vision, lr=a.lr, weight_decay=0.01)
    for step in range(a.aux_steps):
        idxs = rng.sample(range(len(ds.records)), a.batch)
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=bf16):
            feats = model.model.vision_tower.vision_tower.vision_model(ds.image(idxs))
        loss = aux_loss(model, feats, ds, idxs)
        vopt.zero_grad()
        loss.backward()
        vopt.step()
        if step % log_every == 0 or step == a.aux_steps - 1:
            print(f'vision {step} aux {loss.item():.3f} {time.time() - t0:.0f}s', flush=True)

    # Stage 2: everything, with the curriculum.
    t1 = time.time()
    for step in range(a.steps):
        progress = max(step / a.steps, (time.time() - t1) / (a.minutes * 60))
        if progress >= 1:
            print(f'time limit reached at step {step}', flush=True)
            break
        lr = a.lr * min(1.0, (step + 1) / a.warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))
        for g in opt.param_groups:
            g['lr'] = lr
        limit = next((n for s, n in curriculum if progress < s), 4)
        pool = [i for c in range(1, limit + 1) for i in by_count.get(c, [])]
        idxs = rng.sample(pool, a.batch)
        px, tokens, plen, lens, img, _ = collate(ds, idxs, a.questions, rng, a.type_weights)
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=bf16):
            logits, feats = model.forward_train(px, prefix, tokens, plen, img)
        loss, right = lm_loss(logits, tokens, plen, lens)
        aux = aux_loss(model, feats, ds, idxs) if a.aux_weight else torch.zeros(())
        total = loss + a.aux_weight * aux
        opt.zero_grad()
        total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        hist.append((loss.item(), right.float().mean().item()))
        if step % log_every == 0:
            l, acc = np.mean(hist, axis=0)
            hist = []
            print(f'step {step} loss {l:.3f} train-em {acc:.3f} aux {aux.item():.3f} lr {lr:.2e} shapes<={limit} {time.time() - t0:.0f}s', flush=True)
        if (step + 1) % a.eval_every == 0 or step == a.steps - 1 or (time.time() - t1) >= a.minutes * 60:
            overall, per = evaluate(model, val, prefix, bf16)
            print(f'eval {step + 1} overall {overall:.3f} ' + ' '.join(f'{t} {v:.3f}' for t, v in per.items()), flush=True)
            if overall > best:
                best = overall
                info = {'step': step + 1, 'val_exact_match': overall, 'val_per_type': per, 'minutes': (time.time() - t0) / 60,
                        'args': vars(a)}
                if a.test:
                    best_state = copy.deepcopy(model.state_dict())  # scored on the test set at the end
                save_checkpoint(model, config, a.data, a.out, {'training_state.json': json.dumps(info, indent=2) + '\n'})
                print(f'saved {a.out} (val {overall:.3f})', flush=True)
    print(f'done in {(time.time() - t0) / 60:.1f} min; best val exact match {best:.3f}', flush=True)
    if a.test:
        model.load_state_dict(best_state)
        test = Dataset(a.test)
        assert test.meta['prefix'] == prefix, 'train and test sets were tokenized differently'
        overall, per = evaluate(model, test, prefix, bf16)
        info.update({'test': a.test, 'test_exact_match': overall, 'test_per_type': per, 'test_questions': sum(len(r['questions']) for r in test.records)})
        save_checkpoint(model, config, a.data, a.out, {'training_state.json': json.dumps(info, indent=2) + '\n'})
        print(f'test overall {overall:.3f} ' + ' '.join(f'{t} {v:.3f}' for t, v in per.items()), flush=True)


if __name__ == '__main__':
    main()
