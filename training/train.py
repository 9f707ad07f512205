"""Train the tiny LLaVA-Mini of the shapes world on CPU and write the release's HF layout.

    python3 training/train.py --data DATA --val VAL [--video-data CLIPS --video-val CLIPS] --out OUT [--steps N] [--minutes M] ...

DATA and VAL are folders written by `llava-mini-shapes --pixels`, CLIPS by `llava-mini-shapes --pixels
--clips`. The best checkpoint on the validation sets (exact match of whole answers, teacher-forced,
which equals greedy decoding's exact match; pictures, clips and follow-ups averaged) is kept in OUT,
rewritten atomically whenever it improves, so a run stopped early still leaves a usable model.
Recipe (see models/llava-mini-shapes/README.md): a vision-only stage with a per-patch auxiliary head
(colour, shape, shape centre), then everything with a curriculum on the number of shapes, auxiliary
losses that make the pre-fused question rows say where the object they name is and the vision token
say where each colour is, clips run as the runtime runs them (one token per frame, the fused text
averaged over frames) and conversations of up to four questions.
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
from where import attend_loss, locate_loss, look_loss, position_loss, quiet_heads, token_pieces, where_loss  # noqa: E402

TYPES = ('color', 'shape', 'count', 'exists', 'side', 'vertical', 'scene', 'motion', 'moves')


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
    p.add_argument('--stop-after', type=float, default=None, help='stop after this many minutes of the main stage, the schedule still that of --minutes (the checkpoint a longer run had kept by then)')
    p.add_argument('--batch', type=int, default=24, help='pictures per step')
    p.add_argument('--questions', type=int, default=8, help='questions per picture per step')
    p.add_argument('--lr', type=float, default=2e-3)
    p.add_argument('--warmup', type=int, default=150)
    p.add_argument('--aux-weight', type=float, default=0.3)
    p.add_argument('--eval-every', type=int, default=150)
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--bf16', nargs='?', const='on', default='off', choices=('on', 'off', 'auto'),
                   help='bf16 autocast: matmuls in bf16, weights and norms in fp32. Twice the steps per second on a Xeon with AMX; '
                        'on a CPU without bf16 instructions autocast emulates them, several times slower than the fp32 oneDNN path. '
                        'auto: on where the CPU has them (AMX or AVX512-BF16)')
    p.add_argument('--val-count', type=int, default=150, help='validation pictures used')
    p.add_argument('--vision-width', type=int, default=96)
    p.add_argument('--vision-layers', type=int, default=4)
    p.add_argument('--width', type=int, default=128)
    p.add_argument('--layers', type=int, default=2)
    p.add_argument('--prefusion-layers', type=int, default=2)
    p.add_argument('--variant', choices=('mini', 'v15'), default='mini',
                   help='v15: the LLaVA-v1.5-style baseline (every patch spliced into the LLM, no compressor or pre-fusion)')
    p.add_argument('--init', help='start from this checkpoint (a fine-tune: pair it with --aux-steps 0 --aux-weight 0, as the auxiliary head is not saved)')
    p.add_argument('--type-weights', default='', help='how often each question type is drawn, e.g. side=3,scene=0 (default 1 each; 0: never asked)')
    p.add_argument('--look-weight', type=float, default=0.0,
                   help="weight of the loss that makes each LLM layer's first head look at the vision tokens from the row that predicts a clip answer (the LLM otherwise learns to read everything from the fused text, which holds no order of the frames)")
    p.add_argument('--keep-by', help="keep the checkpoint with the best validation score of this one entry (e.g. video.motion, as the eval lines name them) instead of the overall score")
    p.add_argument('--train-only', default='', help='only the parameters whose names start with one of these comma-separated prefixes train, e.g. model.layers,model.norm,lm_head (the LLM alone)')
    p.add_argument('--test', help='a held-out set: the kept checkpoint is scored on it at the end (training_state.json)')
    p.add_argument('--tokenizer', help='folder with the tokenizer files the data sets were written with (default: DATA)')
    p.add_argument('--video-data', help='clips to train on (llava-mini-shapes --clips --pixels)')
    p.add_argument('--video-val', help='clips to validate on')
    p.add_argument('--video-batch', type=int, default=8, help='clips per step')
    p.add_argument('--video-questions', type=int, default=4, help='questions per clip per step')
    p.add_argument('--followups', type=int, default=8, help='pictures per step asked conversations (2-4 questions, the last one scored)')
    p.add_argument('--video-followups', type=int, default=3, help='clips per step asked conversations')
    p.add_argument('--reverse-clips', type=float, default=0.0,
                   help='share of training clips played backwards, their motion answers turned round: a direction then has to be read from the order of the frames')
    p.add_argument('--conversations', type=int, default=2, help='conversations per picture or clip in those')
    p.add_argument('--locate-weight', type=float, default=0.5, help='weight of the loss on where the named object is, from the pre-fused question')
    p.add_argument('--where-weight', type=float, default=0.3, help='weight of the loss on where each colour is, from the vision token')
    p.add_argument('--position-weight', type=float, default=0.0,
                   help='weight of the loss on each projected patch saying where it is (what pre-fusion can then read off the object it looks at)')
    p.add_argument('--head-warmup', type=int, default=0,
                   help='first steps that train only the auxiliary heads (every other weight, and so the answers and the attend loss, wait): fresh heads start with losses 1000x the answers\', and would otherwise move the shared weights for their own sake')
    p.add_argument('--attend-weight', type=float, default=0.0,
                   help="weight of the loss on where pre-fusion looks: the first layer's first head from a question's colour and shape words on those shapes, the last layer's from its last row on the object it names, a head of the vision token on the shapes (needs pre-fusion layers)")
    a = p.parse_args()
    try:
        a.type_weights = {k: float(v) for k, v in (x.split('=') for x in a.type_weights.split(',') if x)}
    except ValueError:
        p.error(f'--type-weights: expected TYPE=WEIGHT[,TYPE=WEIGHT...], got {a.type_weights!r}')
    for t, w in a.type_weights.items():
        if t not in TYPES or not w >= 0:
            p.error(f'--type-weights: {t}={w}: the type must be one of {", ".join(TYPES)} and the weight 0 (never asked) or more')
    native = native_bf16()
    a.bf16 = a.bf16 == 'on' or (a.bf16 == 'auto' and native)
    if a.bf16 and not native:
        print('train.py: --bf16 on a CPU without bf16 instructions (no AMX or AVX512-BF16): autocast emulates them, '
              'several times slower than fp32; --bf16 auto turns it on only where they are', file=sys.stderr, flush=True)
    return a


def native_bf16():
    """Whether this CPU multiplies bf16 in hardware (Linux's cpuinfo flags)."""
    try:
        flags = set(open('/proc/cpuinfo').read().split())
    except OSError:
        return False
    return bool(flags & {'amx_bf16', 'avx512_bf16'})


def architecture(a, meta):
    return {
        'hidden_size': a.width, 'intermediate_size': 2 * a.width, 'num_hidden_layers': a.layers,
        'num_attention_heads': 4, 'num_key_value_heads': 2, 'prefusion_layers': a.prefusion_layers,
        'compressor_heads': 4,
        'vision': {'hidden_size': a.vision_width, 'intermediate_size': 4 * a.vision_width, 'num_hidden_layers': a.vision_layers,
                   'num_attention_heads': 4, 'image_size': meta['imageSize'], 'patch_size': meta['patchSize']},
    }


def collate(ds, idxs, qs_per_image, rng, type_weights=None, followups=0.0):
    """Pixels, padded question tokens, suffix lengths, picture index, type and record of each question
    (types drawn with `type_weights`, 1 each by default, among those the picture still has). A share
    `followups` of the questions come as the last turn of a conversation: 1-3 other questions of the
    same picture with their answers before it, rendered as the runtime renders a follow-up (the
    first question's `suffix`, each answer's `target`, each later question's `turn`). Training asks
    conversations in batches of their own (followups=1), so short questions are not padded to them."""
    toks, plen, img, types, asked = [], [], [], [], []
    weights = type_weights or {}
    for b, i in enumerate(idxs):
        qs = [q for q in ds.records[i]['questions'] if weights.get(q['type'], 1.0) > 0]
        by_type = {}
        for q in qs:
            by_type.setdefault(q['type'], []).append(q)
        chosen = []
        for _ in range(min(qs_per_image, len(qs))):
            left = [t for t in by_type if by_type[t]]
            t = rng.choices(left, [weights.get(t, 1.0) for t in left])[0]
            chosen.append(by_type[t].pop(rng.randrange(len(by_type[t]))))
        for q in chosen:
            others = [o for o in qs if o is not q]
            history = rng.sample(others, rng.randint(1, min(3, len(others)))) if others and rng.random() < followups else []
            prompt = []
            for k, h in enumerate(history):
                prompt += (h['suffix'] if k == 0 else h['turn']) + h['target']
            prompt += q['turn'] if history else q['suffix']
            toks.append(prompt + q['target'])
            plen.append(len(prompt))
            img.append(b)
            types.append(q['type'] if not history else 'followup:' + q['type'])
            asked.append(q)
    if not toks:
        raise ValueError('no question in this batch: every question these pictures have is of a type --type-weights gives 0')
    M = max(len(t) for t in toks)
    tokens = torch.zeros(len(toks), M, dtype=torch.long)
    for j, t in enumerate(toks):
        tokens[j, :len(t)] = torch.tensor(t)
    lens = torch.tensor([len(t) for t in toks])
    return ds.image(idxs), tokens, torch.tensor(plen), lens, torch.tensor(img), types, asked


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


def batches_by_frames(ds, idxs, batch):
    """Records grouped so every batch holds clips of one frame count (a step runs T frames per clip)."""
    groups = {}
    for i in idxs:
        groups.setdefault(ds.records[i].get('frames', 1), []).append(i)
    for T, members in sorted(groups.items()):
        for s in range(0, len(members), batch):
            yield T, members[s:s + batch]


@torch.no_grad()
def evaluate(model, ds, prefix, bf16, batch=25, followups=0.0):
    """Exact match per type on every question of `ds`; with `followups` > 0 each question is instead
    asked as the last turn of a conversation (types 'followup:<type>')."""
    model.eval()
    rng = random.Random(0)
    hits = {}
    for T, idxs in batches_by_frames(ds, range(len(ds.records)), batch):
        for share in ([1.0] if followups else [0.0]):
            px, tokens, plen, lens, img, types, _ = collate(ds, idxs, 10 ** 6, rng, followups=share)
            with torch.autocast('cpu', dtype=torch.bfloat16, enabled=bf16):
                logits = model.forward_train(px, prefix, tokens, plen, img, T)[0]
            _, right = lm_loss(logits, tokens, plen, lens)
            for t, r in zip(types, right.tolist()):
                h = hits.setdefault(t, [0, 0])
                h[0] += int(r)
                h[1] += 1
    model.train()
    per = {t: h[0] / max(h[1], 1) for t, h in sorted(hits.items())}
    first = [h for t, h in hits.items() if not t.startswith('followup:')]
    overall = sum(h[0] for h in first) / max(sum(h[1] for h in first), 1)
    return overall, per


def score_all(model, sets, prefix, bf16, followup_records=60):
    """Validation: pictures, clips and follow-ups (asked about the first `followup_records` records);
    the kept checkpoint is the best mean of the three (follow-ups averaged over both media)."""
    scores, per = [], {}
    for name, ds in sets:
        overall, p = evaluate(model, ds, prefix, bf16)
        sub = copy.copy(ds)
        sub.records = ds.records[:followup_records]
        p.update({t: v for t, v in evaluate(model, sub, prefix, bf16, followups=1.0)[1].items() if t.startswith('followup:')})
        scores.append(overall)
        fu = [v for t, v in p.items() if t.startswith('followup:')]
        per.update({f'{name}.{t}': v for t, v in p.items()})
        per[f'{name}.overall'] = overall
        per[f'{name}.followups'] = sum(fu) / max(len(fu), 1)
    fus = [per[f'{name}.followups'] for name, _ in sets]
    return (sum(scores) + sum(fus) / len(fus)) / (len(scores) + 1), per


def step_loss(model, ds, idxs, a, rng, prefix, frames, qs, followups=0.0):
    """One batch's loss: the answers, plus the auxiliary losses; also whether each answer was right."""
    if ds.video and a.reverse_clips:
        ds = ds.played_backwards(idxs, a.reverse_clips, rng)
    px, tokens, plen, lens, img, _, asked = collate(ds, idxs, qs, rng, a.type_weights, followups)
    # Attention is kept only for the losses that read it.
    watch = ({'prefusion'} if a.attend_weight else set()) | ({'llm'} if a.look_weight and ds.video else set())
    with torch.autocast('cpu', dtype=torch.bfloat16, enabled=a.bf16):
        logits, feats, tokens_seen, last_row, looks = model.forward_train(px, prefix, tokens, plen, img, frames, watch)
    loss, right = lm_loss(logits, tokens, plen, lens)
    total = loss
    if a.aux_weight and not ds.video:
        total = total + a.aux_weight * aux_loss(model, feats, ds, idxs)
    if a.locate_weight:
        total = total + a.locate_weight * locate_loss(model, ds, idxs, img, asked, last_row)
    if a.where_weight:
        total = total + a.where_weight * where_loss(model, ds, idxs, tokens_seen, frames)
    if a.attend_weight:
        prompts = [t[:n] for t, n in zip(tokens.tolist(), plen.tolist())]
        total = total + a.attend_weight * attend_loss(ds, idxs, img, asked, looks, frames, prompts, token_pieces(a.tokenizer or a.data))
    if a.position_weight:
        total = total + a.position_weight * position_loss(model, looks['patches'])
    if 'llm' in watch:
        total = total + a.look_weight * look_loss(looks['vision'], plen, len(ds.meta['header']))
    return total, loss, right


def main():
    a = parse()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    rng = random.Random(a.seed)
    ds, val = Dataset(a.data), Dataset(a.val)
    vds = Dataset(a.video_data) if a.video_data else None
    vval = Dataset(a.video_val) if a.video_val else None
    prefix = ds.meta['prefix']
    for other in (val, vds, vval):
        assert other is None or other.meta['prefix'] == prefix, 'the data sets were tokenized differently'
    tok_dir = a.tokenizer or a.data
    ids = special_ids(tok_dir)
    if a.variant == 'v15':
        a.prefusion_layers = 0
    if a.attend_weight and a.prefusion_layers == 0:
        sys.exit('train.py: --attend-weight needs pre-fusion layers (it is about where they look)')
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
        quiet_heads(model)
    if a.train_only and a.aux_steps:
        sys.exit('train.py: --train-only with --aux-steps: the vision-only stage trains the vision tower; pass --aux-steps 0')
    if a.train_only:
        prefixes = tuple(x for x in a.train_only.split(',') if x)
        for n, p in model.named_parameters():
            p.requires_grad_(p.requires_grad and n.startswith(prefixes))
        if not any(p.requires_grad for p in model.parameters()):
            sys.exit(f'train.py: --train-only {a.train_only}: no parameter name starts with these')
    params = sum(p.numel() for k, p in model.checkpoint_state().items())
    print(f'model: {params / 1e6:.2f} M parameters; data {len(ds.records)} pictures, {len(vds.records) if vds else 0} clips; val {len(val.records)}', flush=True)

    vision = [p for n, p in model.named_parameters() if n.startswith('model.vision_tower.') or n.startswith('aux_head.')]
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=a.lr, weight_decay=0.01, betas=(0.9, 0.98))
    curriculum = [(float(s), int(n)) for n, s in (x.split(':') for x in a.curriculum.split(',') if x)]
    val.records = val.records[:a.val_count]
    sets = [('pictures', val)]
    if vval:
        vval.records = vval.records[:a.val_count]
        sets.append(('video', vval))
    by_count = {}
    for i, r in enumerate(ds.records):
        by_count.setdefault(len(r['scene']['shapes']), []).append(i)
    by_frames = {}
    for i, r in enumerate(vds.records if vds else []):
        by_frames.setdefault(r['frames'], []).append(i)

    t0 = time.time()
    best = -1.0
    log_every = 20
    hist = []
    # Stage 1: the vision tower learns what each patch shows.
    vopt = torch.optim.AdamW(vision, lr=a.lr, weight_decay=0.01)
    for step in range(a.aux_steps):
        idxs = rng.sample(range(len(ds.records)), a.batch)
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=a.bf16):
            feats = model.model.vision_tower.vision_tower.vision_model(ds.image(idxs))
        loss = aux_loss(model, feats, ds, idxs)
        vopt.zero_grad()
        loss.backward()
        vopt.step()
        if step % log_every == 0 or step == a.aux_steps - 1:
            print(f'vision {step} aux {loss.item():.3f} {time.time() - t0:.0f}s', flush=True)

    # Stage 2: everything, with the curriculum; a batch of pictures and one of clips each step.
    t1 = time.time()
    for step in range(a.steps):
        progress = max(step / a.steps, (time.time() - t1) / (a.minutes * 60))
        if progress >= 1 or (a.stop_after is not None and time.time() - t1 >= a.stop_after * 60):
            print(f'time limit reached at step {step}', flush=True)
            break
        lr = a.lr * min(1.0, (step + 1) / a.warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))
        for g in opt.param_groups:
            g['lr'] = lr
        limit = next((n for s, n in curriculum if progress < s), 4)
        pool = [i for c in range(1, limit + 1) for i in by_count.get(c, [])]
        # Single questions and conversations in batches of their own: a conversation is several
        # times longer, and padding every question to it would cost as much again.
        total, loss, right = step_loss(model, ds, rng.sample(pool, a.batch), a, rng, prefix, 1, a.questions)
        stats = [loss.item(), right.float().mean().item()]
        if a.followups:
            ftotal, floss, fright = step_loss(model, ds, rng.sample(pool, min(a.followups, len(pool))), a, rng, prefix, 1, a.conversations, 1.0)
            total = total + ftotal
        if vds:
            T = rng.choices(list(by_frames), [len(v) for v in by_frames.values()])[0]
            clips = by_frames[T]
            vtotal, vloss, vright = step_loss(model, vds, rng.sample(clips, min(a.video_batch, len(clips))), a, rng, prefix, T, a.video_questions)
            total = total + vtotal
            stats += [vloss.item(), vright.float().mean().item()]
            if a.video_followups:
                T = rng.choices(list(by_frames), [len(v) for v in by_frames.values()])[0]
                clips = by_frames[T]
                total = total + step_loss(model, vds, rng.sample(clips, min(a.video_followups, len(clips))), a, rng, prefix, T, a.conversations, 1.0)[0]
        if a.followups:
            stats += [floss.item(), fright.float().mean().item()]
        opt.zero_grad()
        total.backward()
        if step < a.head_warmup:
            for n, p in model.named_parameters():
                if not n.startswith('aux_'):
                    p.grad = None  # AdamW skips a parameter without a gradient (no decay either)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        hist.append(stats)
        if step % log_every == 0:
            m = np.mean(hist, axis=0)
            hist = []
            video = f' video loss {m[2]:.3f} em {m[3]:.3f}' if vds else ''
            fu = f' followup loss {m[-2]:.3f} em {m[-1]:.3f}' if a.followups else ''
            print(f'step {step} loss {m[0]:.3f} train-em {m[1]:.3f}{video}{fu} total {total.item():.3f} lr {lr:.2e} shapes<={limit} {time.time() - t0:.0f}s', flush=True)
        if (step + 1) % a.eval_every == 0 or step == a.steps - 1 or (time.time() - t1) >= a.minutes * 60:
            overall, per = score_all(model, sets, prefix, a.bf16)
            print(f'eval {step + 1} score {overall:.3f} ' + ' '.join(f'{t} {v:.3f}' for t, v in per.items()), flush=True)
            if a.keep_by and a.keep_by not in per:
                sys.exit(f'train.py: --keep-by {a.keep_by}: validation has no such entry (it has {", ".join(per)})')
            kept = per[a.keep_by] if a.keep_by else overall
            if kept > best:
                best = kept
                # val_score stays the overall score (what recipe.sh compares runs by); kept_by says
                # when the checkpoint was chosen on something else.
                info = {'step': step + 1, 'val_score': overall, 'kept_by': a.keep_by or 'overall', 'kept_score': kept, 'val_per_type': per,
                        'minutes': (time.time() - t0) / 60, 'args': vars(a)}
                if a.test:
                    best_state = copy.deepcopy(model.state_dict())  # scored on the test set at the end
                save_checkpoint(model, config, tok_dir, a.out, {'training_state.json': json.dumps(info, indent=2) + '\n'})
                print(f'saved {a.out} (val {overall:.3f}' + (f', {a.keep_by} {kept:.3f})' if a.keep_by else ')'), flush=True)
    print(f'done in {(time.time() - t0) / 60:.1f} min; best {a.keep_by or "val score"} {best:.3f}', flush=True)
    if a.test:
        model.load_state_dict(best_state)
        test = Dataset(a.test)
        assert test.meta['prefix'] == prefix, 'train and test sets were tokenized differently'
        overall, per = evaluate(model, test, prefix, a.bf16)
        info.update({'test': a.test, 'test_exact_match': overall, 'test_per_type': per, 'test_questions': sum(len(r['questions']) for r in test.records)})
        save_checkpoint(model, config, tok_dir, a.out, {'training_state.json': json.dumps(info, indent=2) + '\n'})
        print(f'test overall {overall:.3f} ' + ' '.join(f'{t} {v:.3f}' for t, v in per.items()), flush=True)


if __name__ == '__main__':
    main()
