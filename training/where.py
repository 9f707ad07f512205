"""Where things are: the shapes world's geometry as the model sees it (a shape's centre and patches
in the padded picture or the squashed clip frame, the one shape a question names, a question's words
among its prompt rows) and the auxiliary losses about it that train.py can add to the answers'.

- locate: the pre-fused last row of a question says where the object it names is;
- where: each frame's vision token says where each colour is;
- position: each projected patch says where it is (the projector otherwise drops it);
- attend: where pre-fusion looks, as -log of the attention mass on the target (the first layer's
  head from the question's colour and shape words on those shapes, the last layer's from its last
  row on the named object, a head of the vision token on the shapes).

probe.py measures what these losses are about.
"""
import functools
import json
import os

import torch
import torch.nn.functional as F

COLORS = ('red', 'green', 'blue', 'yellow', 'purple', 'orange')
KINDS = ('circle', 'square', 'triangle')


def square_xy(scene, s):
    """A shape's centre as a fraction of the padded square the picture becomes ('pad')."""
    side = max(scene['width'], scene['height'])
    ox, oy = (side - scene['width']) // 2, (side - scene['height']) // 2
    return (s['cx'] + ox) / side, (s['cy'] + oy) / side


def frame_shapes(rec, f):
    """The shapes of a record at frame f, each with its centre as a fraction of the (squashed) frame."""
    scene = rec['scene']
    if 'clip' not in rec:
        return [(s, square_xy(scene, s)) for s in scene['shapes']]
    moves = {m['shape']: m for m in rec['clip']['moves']}
    out = []
    for k, s in enumerate(scene['shapes']):
        m = moves.get(k)
        d = m['step'] * f if m else 0.0
        dx, dy = {'left': (-d, 0), 'right': (d, 0), 'up': (0, -d), 'down': (0, d)}[m['direction']] if m else (0, 0)
        out.append((s, ((s['cx'] + dx) / scene['width'], (s['cy'] + dy) / scene['height'])))
    return out


def named_shape(rec, q):
    """The one shape a question names (colour and/or kind) when exactly one such shape is there, else None."""
    words = q['question'].rstrip('?').split()
    colors = [w for w in words if w in COLORS]
    kinds = [w for w in words if w in KINDS]
    if not colors and not kinds:
        return None
    these = [s for s in rec['scene']['shapes'] if (not colors or s['color'] == colors[0]) and (not kinds or s['kind'] == kinds[0])]
    return these[0] if len(these) == 1 else None


def object_patches(rec, s, xy, grid):
    """The patches (row-major, grid x grid) a shape centred at xy covers, by its bounding box; the patch
    holding its centre when the box covers no patch centre."""
    scene = rec['scene']
    sx, sy = (scene['width'], scene['height']) if 'clip' in rec else (max(scene['width'], scene['height']),) * 2
    c = (torch.arange(grid) + 0.5) / grid
    m = ((c - xy[1]).abs() <= s['ry'] / sy).unsqueeze(1) & ((c - xy[0]).abs() <= s['rx'] / sx).unsqueeze(0)
    if not m.any():
        m[min(int(xy[1] * grid), grid - 1), min(int(xy[0] * grid), grid - 1)] = True
    return m.flatten().float()


@functools.lru_cache(maxsize=None)
def token_pieces(tok_dir):
    """Each token id's text (byte-level BPE: 'Ġ' is a space), to find a question's words among its rows."""
    t = json.load(open(os.path.join(tok_dir, 'tokenizer.json')))
    pieces = {i: w.replace('Ġ', ' ').replace('Ċ', '\n') for w, i in t['model']['vocab'].items()}
    pieces.update({x['id']: x['content'] for x in t.get('added_tokens', [])})
    return pieces


def word_rows(pieces, prompt, words):
    """The prompt row of each word's last token, in the word's last occurrence (the question asked)."""
    text, ends = '', []
    for t in prompt:
        text += pieces.get(t, '')
        ends.append(len(text))
    rows = {}
    for w in words:
        k = text.rfind(' ' + w)
        if k >= 0:
            rows[w] = next(r for r, e in enumerate(ends) if e >= k + 1 + len(w))
    return rows


def attend_loss(ds, idxs, img, asked, looks, frames, prompts, pieces):
    """Where pre-fusion looks among the patches, in every frame. The first layer's first head, from
    a question's colour word and shape word, on the shapes of that colour or kind (one hop: the word
    alone says what to look for); the last layer's first head, from the question's last prompt row,
    on the one object the question names; its second head, from the vision token, on the shapes (not
    the background). Picking out the named object is what lets its position (in the patch features)
    reach the answer; each term is -log of the attention mass on its target."""
    grid = int(round(looks['question'].shape[-1] ** 0.5))
    rows, masks, wrows, wcols, wmasks = [], [], [], [], []
    for j, (b, q) in enumerate(zip(img.tolist(), asked)):
        rec = ds.records[idxs[b]]
        s = named_shape(rec, q)
        words = [w for w in q['question'].rstrip('?').split() if w in COLORS or w in KINDS]
        at = word_rows(pieces, prompts[j], words)
        for t in range(frames):
            shapes = frame_shapes(rec, rec['frameIndices'][t] if 'frameIndices' in rec else 0)
            if s is not None:
                rows.append(j * frames + t)
                masks.append(object_patches(rec, s, next(p for u, p in shapes if u is s), grid))
            for w, r in at.items():
                these = [object_patches(rec, u, p, grid) for u, p in shapes if w in (u['color'], u['kind'])]
                if these:
                    wrows.append(j * frames + t)
                    wcols.append(r)
                    wmasks.append(torch.stack(these).amax(0))
    mass = lambda att, m: -torch.log((att.float() * m).sum(-1) + 1e-4).mean()
    total = mass(looks['question'][rows, 0], torch.stack(masks)) if rows else torch.zeros(())
    if wrows:
        total = total + mass(looks['words'][wrows, wcols], torch.stack(wmasks))
    union = []
    for i in idxs:
        rec = ds.records[i]
        for t in range(frames):
            shapes = frame_shapes(rec, rec['frameIndices'][t] if 'frameIndices' in rec else 0)
            union.append(torch.stack([object_patches(rec, u, p, grid) for u, p in shapes]).amax(0))
    return total + mass(looks['token'][:, 1], torch.stack(union))


def position_loss(model, patches):
    """Each projected patch says where it is (column, row as fractions): the projector otherwise drops
    the position the vision tower's features hold, and pre-fusion has nothing to read a side from."""
    grid = int(round(patches.shape[1] ** 0.5))
    c = (torch.arange(grid * grid) % grid + 0.5) / grid
    r = (torch.arange(grid * grid) // grid + 0.5) / grid
    want = torch.stack([c, r], -1).expand(patches.shape[0], -1, -1)
    return F.mse_loss(model.aux_position(patches.float()), want) * 10


def locate_loss(model, ds, idxs, img, asked, last_row):
    """The pre-fused last row of a question says where the object it names is (x, y in the picture;
    a clip's first frame): how left/right and top/bottom reach the LLM through pre-fusion."""
    rows, want = [], []
    for j, (b, q) in enumerate(zip(img.tolist(), asked)):
        rec = ds.records[idxs[b]]
        s = named_shape(rec, q)
        if s is not None:
            rows.append(j)
            want.append(next(xy for t, xy in frame_shapes(rec, 0) if t is s))
    if not rows:
        return torch.zeros(())
    pred = model.aux_locate(last_row[torch.tensor(rows)].float())
    return F.mse_loss(pred, torch.tensor(want, dtype=torch.float32)) * 10


def quiet_heads(model):
    """Zero the auxiliary heads a fine-tune adds to a trained body (where, locate, position: presence
    1/2, every centre in the middle; the per-patch classes uniform). Fresh and random, they start at
    losses in the thousands (the hidden states' scale) that swamp the answers' gradient through the
    global clip; at zero, their losses start at 1-2 and no gradient reaches the body until they learn."""
    with torch.no_grad():
        for head in (model.aux_head, model.aux_where, model.aux_locate, model.aux_position):
            head.weight.zero_()
            head.bias.zero_()
        model.aux_where.bias[model.AUX_COLORS:] = 0.5
        model.aux_locate.bias[:] = 0.5
        model.aux_position.bias[:] = 0.5


def where_loss(model, ds, idxs, tokens_seen, frames=1):
    """Each vision token the LLM sees says, per colour, whether one shape of that colour is in its
    frame and where (colours with two shapes are left out): what motion across frames is read from."""
    n = model.AUX_COLORS
    pred = model.aux_where(tokens_seen.float())
    present = torch.zeros(len(pred), n)
    xy = torch.zeros(len(pred), n, 2)
    known = torch.ones(len(pred), n)
    for b, i in enumerate(idxs):
        rec = ds.records[i]
        for t in range(frames):
            f = rec['frameIndices'][t] if 'frameIndices' in rec else 0
            row = b * frames + t
            shapes = frame_shapes(rec, f)
            for c, name in enumerate(COLORS):
                these = [p for s, p in shapes if s['color'] == name]
                if len(these) == 1:
                    present[row, c] = 1
                    xy[row, c] = torch.tensor(these[0])
                elif len(these) > 1:
                    known[row, c] = 0
    bce = F.binary_cross_entropy_with_logits(pred[:, :n], present, weight=known)
    pos = pred[:, n:].view(-1, n, 2)
    m = (present * known).unsqueeze(-1)
    mse = ((pos - xy) ** 2 * m).sum() / m.sum().clamp(min=1)
    return bce + 10 * mse


def look_loss(vision, plen, header):
    """-log of the attention mass each LLM layer's first head puts on the vision tokens, from the row
    that predicts an answer's first word (after the assistant header, which every target starts with)."""
    rows = plen - 1 + header
    mass = vision[:, torch.arange(len(rows)), 0, rows]
    return -torch.log(mass.float() + 1e-6).mean()
