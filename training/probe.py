"""Where a checkpoint keeps the position of things, by linear probes and attention masses:

  /usr/bin/python3 training/probe.py --model models/llava-mini-shapes --data VAL_DIR [--count 150] [--clips CLIPS_DIR --clip-count 300]

- patches: which half of the picture a patch is in, read from the vision tower's features and from
  the projected patches pre-fusion reads (a projector that drops position leaves pre-fusion nothing
  to find a side in);
- the first pre-fusion layer's first head, from a question's colour word: its attention mass on the
  shape of that colour, and that shape's side read from the projected patches it gathers; from a
  question's shape word: its mass on the shapes of that kind;
- the last pre-fusion layer's first head, from the question's last prompt row: its mass on the object
  the question names, its mass on all the shapes, and how much its pattern changes between two
  questions about one picture that name different shapes (total variation: 0 when the head looks
  the same whatever is asked);
- the last pre-fused row: the named shape's side read from it (what the LLM is given);
- with --clips CLIPS_DIR (alone or with --data): each colour's x and y read from a frame's vision
  token (R^2), and the direction each moving shape goes, read as the larger change of those between
  its first and last frames: whether the vision tokens the LLM compares carry the motion it is asked
  about.

Each probe is fitted on 70 % of the rows (of the clips, for --clips) and scored on the rest: least
squares, ridge for the clips. `--attend-weight` and
`--position-weight` in train.py are the losses these numbers are about (bench/RESULTS.md).
"""
import argparse
import json
import os
import random
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checkpoint import Dataset, load_weights  # noqa: E402
from model import LlavaMini  # noqa: E402
from train import batches_by_frames, collate  # noqa: E402
from where import COLORS, KINDS, frame_shapes, named_shape, object_patches, token_pieces, word_rows  # noqa: E402


def side_probe(rows, x):
    """Held-out accuracy of a linear read of x > 0.5 (the right half) from rows."""
    Z, y = torch.stack(rows), torch.tensor(x)
    n = len(y)
    cut = int(n * 0.7)
    A = torch.cat([Z, torch.ones(n, 1)], 1)
    w = torch.linalg.lstsq(A[:cut], y[:cut].unsqueeze(1), driver='gelsd').solution
    return float((((A[cut:] @ w).squeeze(1) > 0.5) == (y[cut:] > 0.5)).float().mean())


def fit(rows, targets, train, ridge=0.1):
    """Ridge regression from rows to targets on the `train` mask (standardized rows; a clip's frames are
    nearly alike, so plain least squares overfits them); the predictions for every row."""
    Z = torch.stack(rows).double()
    Z = (Z - Z[train].mean(0)) / Z[train].std(0).clamp(min=1e-6)
    Y = torch.tensor(targets, dtype=torch.float64)
    mu = Y[train].mean(0)
    A = Z[train]
    w = torch.linalg.solve(A.T @ A + ridge * len(A) * torch.eye(A.shape[1], dtype=A.dtype), A.T @ (Y[train] - mu))
    return (Z @ w + mu).float()


def clip_probe(model, ds, count):
    """Per colour, a linear read of its centre (x, y) from a frame's vision token, fitted on the frames
    of 70 % of the clips; on the rest, R^2 of x and y, and each moving shape's direction taken as the
    larger change of the read centre between its first and last frames."""
    rng = random.Random(0)
    rows, where, keys = [], [], []  # a frame's vision token, (colour, x, y), (clip, frame, colour)
    with torch.no_grad():
        for T, idxs in batches_by_frames(ds, range(min(count, len(ds.records))), 25):
            px, tokens, plen, _, img, _, _ = collate(ds, idxs, 1, rng)
            seen = model.forward_train(px, ds.meta['prefix'], tokens, plen, img, T)[2].float()
            for b, i in enumerate(idxs):
                rec = ds.records[i]
                for t in range(T):
                    shapes = frame_shapes(rec, rec['frameIndices'][t])
                    for c in COLORS:
                        these = [xy for u, xy in shapes if u['color'] == c]
                        if len(these) == 1:
                            rows.append(seen[b * T + t])
                            where.append(these[0])
                            keys.append((i, t, c))
    clips = sorted({k[0] for k in keys})
    held = set(clips[int(0.7 * len(clips)):])
    read, r2 = {}, {}
    for c in COLORS:
        mine = [j for j, k in enumerate(keys) if k[2] == c]
        train = torch.tensor([keys[j][0] not in held for j in mine], dtype=torch.bool)
        if int(train.sum()) < 2:
            continue  # too few frames of this colour to fit; its shapes go unread
        pred = fit([rows[j] for j in mine], [where[j] for j in mine], train)
        for j, q in zip(mine, pred.tolist()):
            read[keys[j]] = q
    test = [j for j, k in enumerate(keys) if k[0] in held and k in read]
    got, want = torch.tensor([read[keys[j]] for j in test]), torch.tensor([where[j] for j in test])
    for d, name in enumerate('xy'):
        r2[name] = 1 - float(((got[:, d] - want[:, d]) ** 2).sum() / ((want[:, d] - want[:, d].mean()) ** 2).sum())
    right, moves = 0, 0
    for i in sorted(held):
        rec = ds.records[i]
        last = len(rec['frameIndices']) - 1
        for m in rec['clip']['moves']:
            c = rec['scene']['shapes'][m['shape']]['color']
            if (i, 0, c) not in read or (i, last, c) not in read:
                continue
            dx, dy = (b - a for a, b in zip(read[(i, 0, c)], read[(i, last, c)]))
            guess = ('right' if dx > 0 else 'left') if abs(dx) > abs(dy) else ('down' if dy > 0 else 'up')
            right += guess == m['direction']
            moves += 1
    return {'clip frames: x from the vision token (R^2)': round(r2['x'], 3), 'clip frames: y from the vision token (R^2)': round(r2['y'], 3),
            'moving shapes: direction from the first and last vision tokens': round(right / max(moves, 1), 3), 'moving shapes': moves}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--model', required=True)
    p.add_argument('--data', help='a picture set written with the model\'s tokenizer (llava-mini-shapes --pixels)')
    p.add_argument('--count', type=int, default=150, help='pictures probed')
    p.add_argument('--clips', help='a clip set (llava-mini-shapes --pixels --clips): probe motion in the vision tokens')
    p.add_argument('--clip-count', type=int, default=300, help='clips probed')
    a = p.parse_args()
    if not a.data and not a.clips:
        p.error('give --data, --clips or both')
    torch.set_num_threads(1)
    model = LlavaMini(json.load(open(os.path.join(a.model, 'config.json'))))
    load_weights(model, a.model)
    model.eval()
    out = clip_probe(model, Dataset(a.clips), a.clip_count) if a.clips else {}
    if a.data:
        out.update(picture_probe(model, Dataset(a.data), a.count, token_pieces(a.model)))
    print(json.dumps(out, indent=2))


def picture_probe(model, ds, count, pieces):
    """The picture probes of the module's list, on the first `count` records of `ds`."""
    rng = random.Random(0)
    feat_rows, proj_rows, cols = [], [], []
    word_mass, word_rows_, word_x, kind_mass = [], [], [], []
    named_mass, shapes_mass, last_rows, last_x, changes = [], [], [], [], []
    with torch.no_grad():
        for start in range(0, min(count, len(ds.records)), 25):
            idxs = list(range(start, min(start + 25, count, len(ds.records))))
            px, tokens, plen, _, img, _, asked = collate(ds, idxs, 10 ** 6, rng)
            _, feats, _, last_row, looks = model.forward_train(px, ds.meta['prefix'], tokens, plen, img, 1, watch={'prefusion'})
            g = looks['patches']
            grid = int(round(g.shape[1] ** 0.5))
            feat_rows += list(feats.reshape(-1, feats.shape[-1]))
            proj_rows += list(g.reshape(-1, g.shape[-1]))
            cols += [(k % grid + 0.5) / grid for _ in idxs for k in range(grid * grid)]
            seen = {}  # picture -> (named shape, the head's pattern) of its first question naming one
            for j, (b, q) in enumerate(zip(img.tolist(), asked)):
                rec = ds.records[idxs[b]]
                shapes = frame_shapes(rec, 0)
                s = named_shape(rec, q)
                kind = next((w for w in q['question'].rstrip('?').split() if w in KINDS), None)
                r = word_rows(pieces, tokens[j, :plen[j]].tolist(), [kind]).get(kind) if kind else None
                these = [object_patches(rec, u, p, grid) for u, p in shapes if u['kind'] == kind]
                if r is not None and these:
                    kind_mass.append(float((looks['words'][j, r] * torch.stack(these).amax(0)).sum()))
                if s is None:
                    continue
                pattern = looks['question'][j, 0]
                if b in seen and seen[b][0] is not s:
                    changes.append(float((pattern - seen[b][1]).abs().sum() / 2))
                seen.setdefault(b, (s, pattern))
                xy = next(xy for u, xy in shapes if u is s)
                obj = object_patches(rec, s, xy, grid)
                every = torch.stack([object_patches(rec, u, p, grid) for u, p in shapes]).amax(0)
                named_mass.append(float((looks['question'][j, 0] * obj).sum()))
                shapes_mass.append(float((looks['question'][j, 0] * every).sum()))
                last_rows.append(last_row[j])
                last_x.append(xy[0])
                color = next((w for w in q['question'].rstrip('?').split() if w in COLORS), None)
                if color is None or sum(u['color'] == color for u, _ in shapes) != 1:
                    continue
                r = word_rows(pieces, tokens[j, :plen[j]].tolist(), [color]).get(color)
                if r is None:
                    continue
                att = looks['words'][j, r]
                word_mass.append(float((att * obj).sum()))
                word_rows_.append((att.unsqueeze(-1) * g[b]).sum(0))
                word_x.append(xy[0])
    mean = lambda v: sum(v) / max(len(v), 1)
    return {
        'patch side from vision features': round(side_probe(feat_rows, cols), 3),
        'patch side from projected patches': round(side_probe(proj_rows, cols), 3),
        'colour word (first layer, head 0): mass on that shape': round(mean(word_mass), 3),
        'colour word: side from the patches it gathers': round(side_probe(word_rows_, word_x), 3) if len(word_x) > 10 else None,
        'shape word (first layer, head 0): mass on shapes of that kind': round(mean(kind_mass), 3),
        'last row (last layer, head 0): mass on the named object': round(mean(named_mass), 3),
        'last row: mass on all shapes': round(mean(shapes_mass), 3),
        'last row: change between questions naming different shapes': round(mean(changes), 3),
        'side from the last pre-fused row': round(side_probe(last_rows, last_x), 3),
        'questions': len(last_x), 'colour questions': len(word_x),
    }


if __name__ == '__main__':
    main()
