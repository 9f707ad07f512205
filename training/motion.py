"""Which way a checkpoint says each moving shape goes, against the truth, on a clip set; and whether
its answer turns round when the clip is played backwards:

  /usr/bin/python3 training/motion.py --model models/llava-mini-shapes --clips CLIPS_DIR [--count 300]

Prints the confusion table (truth by row, answer by column), then as JSON: how often the answer is
right, names the right axis (horizontal or vertical), and, given the axis, the right sign; and of
the motion questions answered on the clip and on the same clip backwards (frames in reverse, every
move the other way: train.py's --reverse-clips), how often the two answers are opposite. A model that
does not use the order of the frames gives the same answer both ways and is right on the sign about
half the time, whatever it learned about the axis. Answers are teacher-forced greedy (the argmax at
each target position, the answer word included), which is greedy decoding's answer for one word.
"""
import argparse
import collections
import copy
import json
import os
import random
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checkpoint import OPPOSITE, Dataset, load_weights  # noqa: E402
from model import LlavaMini  # noqa: E402
from train import TYPES, batches_by_frames, collate  # noqa: E402

DIRECTIONS = ('left', 'right', 'up', 'down')
AXIS = {'left': 'x', 'right': 'x', 'up': 'y', 'down': 'y'}


@torch.no_grad()
def motion_answers(model, ds, idxs, frames):
    """{(record, question): (truth, answer)} for every motion question of the clips `idxs`; answer is
    None where the model's is no direction."""
    px, tokens, plen, _, img, _, asked = collate(ds, idxs, 10 ** 6, random.Random(0), {t: 0 for t in TYPES if t != 'motion'})
    logits = model.forward_train(px, ds.meta['prefix'], tokens, plen, img, frames)[0]
    said = {tuple(t): d for d, t in ds.motion_targets.items()}
    out = {}
    for j, q in enumerate(asked):
        n = len(q['target'])
        answer = said.get(tuple(logits[j, plen[j] - 1:plen[j] - 1 + n].argmax(-1).tolist()))
        out[(idxs[img[j]], q['question'])] = (q['answer'], answer)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--model', required=True)
    p.add_argument('--clips', required=True, help='a clip set written with the model\'s tokenizer (llava-mini-shapes --pixels --clips)')
    p.add_argument('--count', type=int, default=300, help='clips read')
    a = p.parse_args()
    torch.set_num_threads(1)
    model = LlavaMini(json.load(open(os.path.join(a.model, 'config.json'))))
    load_weights(model, a.model)
    model.eval()
    ds = Dataset(a.clips)
    ds.records = ds.records[:a.count]
    back = copy.copy(ds)
    back.records = [ds.backwards(i) for i in range(len(ds.records))]
    moving = [i for i, r in enumerate(ds.records) if any(q['type'] == 'motion' for q in r['questions'])]
    pairs = []
    for T, idxs in batches_by_frames(ds, moving, 25):
        fwd, bwd = motion_answers(model, ds, idxs, T), motion_answers(model, back, idxs, T)
        pairs += [(fwd[k], bwd[k]) for k in fwd]
    table = collections.Counter(fwd for fwd, _ in pairs)
    print('truth \\ said ' + ''.join(f'{d:>7}' for d in DIRECTIONS + ('other',)))
    for t in DIRECTIONS:
        print(f'{t:>12} ' + ''.join(f'{table[(t, d)]:>7}' for d in DIRECTIONS + (None,)))
    on_axis = [(t, s) for (t, s), _ in pairs if s and AXIS[s] == AXIS[t]]
    n = max(len(pairs), 1)
    print(json.dumps({
        'motion questions': len(pairs),
        'right': sum(t == s for (t, s), _ in pairs) / n,
        'right axis': len(on_axis) / n,
        'right sign, given the axis': sum(t == s for t, s in on_axis) / max(len(on_axis), 1),
        'opposite answer when played backwards': sum(f is not None and b == OPPOSITE[f] for (_, f), (_, b) in pairs) / n,
        'same answer when played backwards': sum(f is not None and b == f for (_, f), (_, b) in pairs) / n,
    }, indent=2))


if __name__ == '__main__':
    main()
