"""Read a shapes data set and write the release's Hugging Face layout (config.json, safetensors,
tokenizer files) without the `safetensors` or `transformers` packages (Debian has neither)."""
import copy
import json
import os
import shutil
import struct

import numpy as np
import torch

TRANSFORMERS_VERSION = '4.43.1'
TOKENIZER_FILES = ('tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json')
EOS_NAMES = ('<|end_of_text|>', '<|eom_id|>', '<|eot_id|>')


def special_ids(tokenizer_dir):
    tok = json.load(open(os.path.join(tokenizer_dir, 'tokenizer.json')))
    ids = dict(tok['model']['vocab'])
    ids.update({t['content']: t['id'] for t in tok['added_tokens']})
    return {'bos': ids['<|begin_of_text|>'], 'eos': [ids[n] for n in EOS_NAMES if n in ids], 'vocab_size': max(ids.values()) + 1}


def model_config(arch, ids):
    """config.json: a transformers 4.43 LlamaConfig plus LLaVA-Mini's keys (spec 4.1, 7.3), as packages/tiny writes it."""
    v = arch['vision']
    return {
        'architectures': ['LlavaMiniLlamaForCausalLM'],
        'model_type': 'llava_mini_llama',
        'hidden_size': arch['hidden_size'],
        'intermediate_size': arch['intermediate_size'],
        'num_hidden_layers': arch['num_hidden_layers'],
        'num_attention_heads': arch['num_attention_heads'],
        'num_key_value_heads': arch['num_key_value_heads'],
        'head_dim': arch['hidden_size'] // arch['num_attention_heads'],
        'hidden_act': 'silu',
        'rms_norm_eps': 1e-05,
        'rope_theta': 500000.0,
        'rope_scaling': {'rope_type': 'llama3', 'factor': 8.0, 'low_freq_factor': 1.0, 'high_freq_factor': 4.0,
                         'original_max_position_embeddings': 8192},
        'max_position_embeddings': 131072,
        'vocab_size': ids['vocab_size'],
        'tie_word_embeddings': False,
        'attention_bias': False,
        'attention_dropout': 0.0,
        'mlp_bias': False,
        'initializer_range': 0.02,
        'pretraining_tp': 1,
        'bos_token_id': ids['bos'],
        'eos_token_id': ids['eos'],
        'torch_dtype': 'float32',
        'transformers_version': TRANSFORMERS_VERSION,
        'use_cache': True,
        'compressor_size': 1,
        'prefusion_layer_num': arch['prefusion_layers'],
        'resolution_ratio': 1,
        'mm_vision_tower': 'openai/clip-vit-large-patch14-336',
        'mm_vision_select_layer': -2,
        'mm_vision_select_feature': 'patch',
        'mm_projector_type': 'mlp2x_gelu',
        'mm_hidden_size': v['hidden_size'],
        'image_aspect_ratio': 'pad',
        'mm_use_im_start_end': False,
        'mm_use_im_patch_token': False,
        'mm_patch_merge_type': 'flat',
        'tokenizer_model_max_length': 4096,
        'tokenizer_padding_side': 'right',
        'freeze_mm_mlp_adapter': False,
        'tune_mm_mlp_adapter': False,
        'use_mm_proj': True,
        'mm_projector_lr': None,
        'vision_config': {
            'hidden_size': v['hidden_size'],
            'intermediate_size': v['intermediate_size'],
            'num_hidden_layers': v['num_hidden_layers'],
            'num_attention_heads': v['num_attention_heads'],
            'image_size': v['image_size'],
            'patch_size': v['patch_size'],
            'layer_norm_eps': 1e-05,
            'hidden_act': 'quick_gelu',
            'num_channels': 3,
            'model_type': 'clip_vision_model',
        },
        'compressor_num_heads': arch['compressor_heads'],
    }


def write_safetensors(path, tensors):
    """The safetensors format: u64 header length, JSON header (names sorted), then raw little-endian data."""
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        arr = tensors[name].detach().to(torch.float32).contiguous().numpy().astype('<f4')
        b = arr.tobytes()
        header[name] = {'dtype': 'F32', 'shape': list(arr.shape), 'data_offsets': [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    header['__metadata__'] = {'format': 'pt'}
    h = json.dumps(header, separators=(',', ':')).encode()
    h += b' ' * (-len(h) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    with open(path, 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == '__metadata__':
            continue
        assert info['dtype'] == 'F32', f'{name}: only F32 is read here'
        s, e = info['data_offsets']
        out[name] = torch.from_numpy(np.frombuffer(data[s:e], dtype='<f4').copy()).view(info['shape'])
    return out


def load_weights(model, model_dir):
    """A checkpoint's model.safetensors into `model`: every tensor but the training-only aux_* heads."""
    missing, unexpected = model.load_state_dict(read_safetensors(os.path.join(model_dir, 'model.safetensors')), strict=False)
    assert not unexpected and all(k.startswith('aux_') for k in missing), (missing, unexpected)
    return model


def save_checkpoint(model, config, tokenizer_dir, out_dir, extra_files=None):
    """Write the folder atomically: a temp folder beside it, renamed over the old one."""
    tmp = f'{out_dir}.partial-{os.getpid()}'
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    write_safetensors(os.path.join(tmp, 'model.safetensors'), model.checkpoint_state())
    with open(os.path.join(tmp, 'config.json'), 'w') as f:
        json.dump(config, f, indent=2)
        f.write('\n')
    gen = {'_from_model_config': True, 'bos_token_id': config['bos_token_id'], 'eos_token_id': config['eos_token_id'],
           'transformers_version': TRANSFORMERS_VERSION}
    with open(os.path.join(tmp, 'generation_config.json'), 'w') as f:
        json.dump(gen, f, indent=2)
        f.write('\n')
    for name in TOKENIZER_FILES:
        shutil.copyfile(os.path.join(tokenizer_dir, name), os.path.join(tmp, name))
    for name, text in (extra_files or {}).items():
        with open(os.path.join(tmp, name), 'w') as f:
            f.write(text)
    old = f'{out_dir}.old-{os.getpid()}'
    if os.path.exists(out_dir):
        os.rename(out_dir, old)
    os.rename(tmp, out_dir)
    shutil.rmtree(old, ignore_errors=True)


OPPOSITE = {'left': 'right', 'right': 'left', 'up': 'down', 'down': 'up'}


class Dataset:
    """A data set written by `llava-mini-shapes --pixels` (pictures, or clips with --clips): meta.json,
    scenes.jsonl, pixels.u8 (every picture, or every sampled frame of every clip, in record order)."""

    MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32).reshape(3, 1, 1)
    STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32).reshape(3, 1, 1)

    def __init__(self, d):
        self.dir = d
        self.meta = json.load(open(os.path.join(d, 'meta.json')))
        self.video = self.meta.get('media') == 'video'
        self.records = [json.loads(l) for l in open(os.path.join(d, 'scenes.jsonl')) if l.strip()]
        S = self.meta['imageSize']
        self.pixels = np.memmap(os.path.join(d, 'pixels.u8'), dtype=np.uint8, mode='r').reshape(-1, 3, S, S)
        frames = sum(r.get('frames', 1) for r in self.records)
        assert len(self.pixels) == frames, 'pixels.u8 and scenes.jsonl disagree'
        # Each direction's target (assistant header, the answer's ids, <|eot_id|>) under the
        # tokenizer the set was written with: what a clip played backwards answers instead.
        self.motion_targets = {q['answer']: q['target'] for r in self.records for q in r['questions'] if q['type'] == 'motion'}

    def image(self, idxs):
        """Pixels of the records `idxs` (every frame of each, in order; a clip `backwards` from its
        last frame) as [frames, 3, S, S]."""
        rows = [r for i in idxs for r in self.frame_rows(self.records[i], i)]
        px = self.pixels[np.asarray(rows)].astype(np.float32) / 255.0
        # The runtime's normalisation: (v / 255 - mean) / std in float32.
        return torch.from_numpy((px - self.MEAN) / self.STD)

    @staticmethod
    def frame_rows(rec, i):
        first = rec.get('pixel', i)
        rows = range(first, first + rec.get('frames', 1))
        return reversed(rows) if rec.get('backwards') else rows

    def played_backwards(self, idxs, share, rng):
        """A view of this set in which each of the clips `idxs` is, with probability `share`, played
        backwards (the records themselves are left as they are)."""
        view = copy.copy(self)
        view.records = list(self.records)
        for i in idxs:
            if rng.random() < share:
                view.records[i] = self.backwards(i)
        return view

    def backwards(self, i):
        """Record i's clip played backwards: another clip, whose every moving shape goes the other way
        (its motion answers turned round; whether a shape moves and how many there are stay)."""
        rec = self.records[i]
        missing = [d for d in OPPOSITE if d not in self.motion_targets]
        if missing:
            raise ValueError(f'{self.dir}: no clip answers {", ".join(missing)}, so a clip cannot be played backwards (a larger set has every direction)')
        turn = lambda q: dict(q, answer=OPPOSITE[q['answer']], target=self.motion_targets[OPPOSITE[q['answer']]]) if q['type'] == 'motion' else q
        # frameIndices still names the file's frame each shown frame is, so where a shape is in
        # each of them (where.frame_shapes) stays right.
        return dict(rec, backwards=not rec.get('backwards'), questions=[turn(q) for q in rec['questions']], frameIndices=rec['frameIndices'][::-1])
