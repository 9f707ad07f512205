"""LLaVA-Mini in PyTorch, written from the spec (docs/llava-mini-spec.md sections 1-4), not from the
TypeScript runtime: the runtime is checked against this file's answers.

Module and parameter names equal the release's Hugging Face tensor names, so `state_dict()` (minus the
training-only `aux_head`) is the checkpoint.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

IMAGE_TOKEN_INDEX = -200


def _mm_nt(a, b):
    """a @ b.T through oneDNN: Debian's torch sends dense fp32 matmuls to a generic BLAS (~5 GFLOP/s
    here, AVX2 only), while oneDNN's linear runs ~10x faster on the same core."""
    return torch._C._nn.mkldnn_linear(a.contiguous().to_mkldnn(), b.contiguous().to_mkldnn()).to_dense()


def _bmm_nt(a, b):
    """a[g] @ b[g].T for every g as one grouped 1x1 convolution in oneDNN (~4x the generic bmm here)."""
    G, n, k = a.shape
    m = b.shape[1]
    x = a.transpose(1, 2).reshape(1, G * k, n, 1).contiguous()
    w = b.reshape(G * m, k, 1, 1).contiguous()
    return torch.mkldnn_convolution(x, w, None, [0, 0], [1, 1], [1, 1], G).view(G, m, n).transpose(1, 2)


def _nt_function(nt):
    """An autograd function for c = nt(a, b) = a @ b^T (over the last two dims), whose backward
    runs through the same kernel: dc/da = g @ b, dc/db = g^T @ a."""

    class NT(torch.autograd.Function):
        @staticmethod
        def forward(ctx, a, b):
            ctx.save_for_backward(a, b)
            return nt(a, b)

        @staticmethod
        def backward(ctx, g):
            a, b = ctx.saved_tensors
            return nt(g, b.transpose(-1, -2)), nt(g.transpose(-1, -2), a.transpose(-1, -2))

    return NT


_FastMatmulNT = _nt_function(_mm_nt)
_FastBmmNT = _nt_function(_bmm_nt)


def matmul_nt(a, b):
    """a @ b.transpose(-1, -2) over leading batch dimensions (same math as torch.matmul)."""
    if a.dtype != torch.float32 or not torch.backends.mkldnn.is_available() or torch.is_autocast_cpu_enabled():
        return a @ b.transpose(-1, -2)
    lead = a.shape[:-2]
    c = _FastBmmNT.apply(a.reshape(-1, *a.shape[-2:]), b.reshape(-1, *b.shape[-2:]))
    return c.reshape(*lead, a.shape[-2], b.shape[-2])


def linear(x, w, b=None):
    """F.linear, through oneDNN for fp32 CPU tensors (same math); under bf16 autocast, F.linear itself,
    which autocast runs in bf16 (on AMX, 6-18x the fp32 oneDNN path at this model's shapes)."""
    if x.dtype != torch.float32 or not torch.backends.mkldnn.is_available() or torch.is_autocast_cpu_enabled():
        return F.linear(x, w, b)
    y = _FastMatmulNT.apply(x.reshape(-1, x.shape[-1]), w).view(*x.shape[:-1], w.shape[0])
    return y if b is None else y + b


def answer_length(ids, header):
    """The generated tokens the runtime's maxNewTokens counts: a header the model writes first is
    outside the budget, while it is being written too; one it breaks off is no header at all."""
    header = list(header)
    n = min(len(ids), len(header))
    return len(ids) - n if list(ids[:n]) == header[:n] else len(ids)


class Linear(nn.Linear):
    def forward(self, x):
        return linear(x, self.weight, self.bias)


# ---------------------------------------------------------------- CLIP vision tower (spec 1.1)

class LayerNorm(nn.LayerNorm):
    """LayerNorm computed in fp32 (CPU autocast in torch 1.13 leaves bf16 inputs with fp32 weights)."""

    def forward(self, x):
        return F.layer_norm(x.float(), self.normalized_shape, self.weight, self.bias, self.eps)


class ClipAttention(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.q_proj = Linear(d, d)
        self.k_proj = Linear(d, d)
        self.v_proj = Linear(d, d)
        self.out_proj = Linear(d, d)

    def forward(self, x):
        b, n, d = x.shape
        hd = d // self.heads
        split = lambda t: t.view(b, n, self.heads, hd).transpose(1, 2)
        q, k, v = split(self.q_proj(x)), split(self.k_proj(x)), split(self.v_proj(x))
        a = torch.softmax(matmul_nt(q, k).float() * hd ** -0.5, dim=-1).to(v.dtype)
        return self.out_proj(matmul_nt(a, v.transpose(-1, -2)).transpose(1, 2).reshape(b, n, d))


class ClipMlp(nn.Module):
    def __init__(self, d, inter):
        super().__init__()
        self.fc1 = Linear(d, inter)
        self.fc2 = Linear(inter, d)

    def forward(self, x):
        h = self.fc1(x)
        return self.fc2(h * torch.sigmoid(1.702 * h))  # quick_gelu


class ClipLayer(nn.Module):
    def __init__(self, d, inter, heads):
        super().__init__()
        self.self_attn = ClipAttention(d, heads)
        self.layer_norm1 = LayerNorm(d, eps=1e-5)
        self.mlp = ClipMlp(d, inter)
        self.layer_norm2 = LayerNorm(d, eps=1e-5)

    def forward(self, x):
        x = x + self.self_attn(self.layer_norm1(x))
        return x + self.mlp(self.layer_norm2(x))


class ClipEmbeddings(nn.Module):
    def __init__(self, d, patch, grid):
        super().__init__()
        self.class_embedding = nn.Parameter(torch.randn(d) * 0.02)
        self.patch_embedding = nn.Conv2d(3, d, kernel_size=patch, stride=patch, bias=False)
        self.position_embedding = nn.Embedding(grid * grid + 1, d)


class ClipEncoder(nn.Module):
    def __init__(self, d, inter, heads, layers):
        super().__init__()
        self.layers = nn.ModuleList([ClipLayer(d, inter, heads) for _ in range(layers)])


class ClipVisionModel(nn.Module):
    def __init__(self, vc):
        super().__init__()
        d = vc['hidden_size']
        grid = vc['image_size'] // vc['patch_size']
        self.embeddings = ClipEmbeddings(d, vc['patch_size'], grid)
        self.pre_layrnorm = LayerNorm(d, eps=1e-5)
        self.encoder = ClipEncoder(d, vc['intermediate_size'], vc['num_attention_heads'], vc['num_hidden_layers'])
        # Unused with select layer -2, kept because the release carries it.
        self.post_layernorm = LayerNorm(d, eps=1e-5)

    def forward(self, pixels):
        """[B, 3, S, S] normalised pixels -> [B, grid*grid, d]: block L-1's output without CLS."""
        e = self.embeddings
        x = e.patch_embedding(pixels).flatten(2).transpose(1, 2)
        cls = e.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + e.position_embedding.weight.to(x.dtype)
        x = self.pre_layrnorm(x)
        for layer in self.encoder.layers[:-1]:  # hidden_states[-2]
            x = layer(x)
        return x[:, 1:]


class VisionTowerInner(nn.Module):
    def __init__(self, vc):
        super().__init__()
        self.vision_model = ClipVisionModel(vc)


class VisionTower(nn.Module):
    """`model.vision_tower.vision_tower.vision_model.*`, the release's nesting."""

    def __init__(self, vc):
        super().__init__()
        self.vision_tower = VisionTowerInner(vc)


# ---------------------------------------------------------------- compressor (spec 2)

def sincos_pos_embed(grid, dim):
    """Spec 2.1: row m = i*grid + j is [sin(j w), cos(j w), sin(i w), cos(i w)], w_k = 10000^(-k/(dim/4))."""
    q = dim // 4
    omega = 1.0 / 10000 ** (torch.arange(q, dtype=torch.float64) / q)
    rows = []
    for i in range(grid):
        for j in range(grid):
            rows.append(torch.cat([torch.sin(j * omega), torch.cos(j * omega), torch.sin(i * omega), torch.cos(i * omega)]))
    return torch.stack(rows).float()


class PackedAttention(nn.Module):
    """nn.MultiheadAttention's parameters (packed in_proj), with the math written out."""

    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.randn(3 * d, d) * d ** -0.5)
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * d))
        self.out_proj = Linear(d, d)

    def forward(self, q_in, k_in, v_in):
        d = q_in.shape[-1]
        w, b = self.in_proj_weight, self.in_proj_bias
        q = linear(q_in, w[:d], b[:d])
        k = linear(k_in, w[d:2 * d], b[d:2 * d])
        v = linear(v_in, w[2 * d:], b[2 * d:])
        B, nq, nk, h = q.shape[0], q.shape[1], k.shape[1], self.heads
        hd = d // h
        q = q.view(B, nq, h, hd).transpose(1, 2)
        k = k.view(B, nk, h, hd).transpose(1, 2)
        v = v.view(B, nk, h, hd).transpose(1, 2)
        a = torch.softmax(matmul_nt(q, k).float() / math.sqrt(hd), dim=-1).to(v.dtype)
        return self.out_proj(matmul_nt(a, v.transpose(-1, -2)).transpose(1, 2).reshape(B, nq, d))


class Compressor(nn.Module):
    """The Resampler with C = 1: one query, one cross-attention, in the vision width (spec 2.2)."""

    def __init__(self, d, heads, c=1):
        super().__init__()
        assert c == 1, 'the key table below is the C = 1 case (a constant; spec 10.2)'
        self.query = nn.Parameter(torch.randn(c * c, d) * 0.02)
        self.pos_embed = nn.Parameter(sincos_pos_embed(c, d), requires_grad=False)
        self.attn = PackedAttention(d, heads)
        self.ln_q = LayerNorm(d, eps=1e-5)
        self.ln_kv = LayerNorm(d, eps=1e-5)

    def forward(self, x):
        B, M, d = x.shape
        # Bicubic upsampling of a 1x1 table is that value everywhere.
        pos_k = self.pos_embed.to(x.dtype).expand(M, d)
        x = self.ln_kv(x)
        q = (self.ln_q(self.query) + self.pos_embed).to(x.dtype).expand(B, -1, -1)
        return self.attn(q, x + pos_k, x)


# ---------------------------------------------------------------- Llama layers (spec 3.1, 4.1)

def llama3_inv_freq(head_dim, theta, scaling):
    inv = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim)
    if not scaling:
        return inv
    factor, low, high, orig = scaling['factor'], scaling['low_freq_factor'], scaling['high_freq_factor'], scaling['original_max_position_embeddings']
    low_wl, high_wl = orig / low, orig / high
    wl = 2 * math.pi / inv
    out = torch.where(wl > low_wl, inv / factor, inv)
    smooth = (orig / wl - low) / (high - low)
    smoothed = (1 - smooth) * out / factor + smooth * out
    medium = (wl >= high_wl) & (wl <= low_wl)
    return torch.where(medium, smoothed, out)


class RMSNorm(nn.Module):
    def __init__(self, d, eps=1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        dt = x.dtype
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(dt)


def rotate_half(x):
    a, b = x.chunk(2, dim=-1)
    return torch.cat([-b, a], dim=-1)


class LlamaAttention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        h, self.nh, self.nkv = cfg['hidden_size'], cfg['num_attention_heads'], cfg['num_key_value_heads']
        self.hd = h // self.nh
        self.q_proj = Linear(h, self.nh * self.hd, bias=False)
        self.k_proj = Linear(h, self.nkv * self.hd, bias=False)
        self.v_proj = Linear(h, self.nkv * self.hd, bias=False)
        self.o_proj = Linear(self.nh * self.hd, h, bias=False)
        # Training only: the last call's attention probabilities, for a loss on where a head looks.
        self.keep_attn = False
        self.attn = None

    def forward(self, x, cos, sin, mask, past=None):
        """x [B, n, h]; cos/sin [B, n, hd]; mask [B, n, n_past + n] True = may attend; past (k, v) [B, nkv, n_past, hd]."""
        B, n, _ = x.shape
        q = self.q_proj(x).view(B, n, self.nh, self.hd).transpose(1, 2)
        k = self.k_proj(x).view(B, n, self.nkv, self.hd).transpose(1, 2)
        v = self.v_proj(x).view(B, n, self.nkv, self.hd).transpose(1, 2)
        c, s = cos.unsqueeze(1).to(q.dtype), sin.unsqueeze(1).to(q.dtype)
        q = q * c + rotate_half(q) * s
        k = k * c + rotate_half(k) * s
        if past is not None:
            k = torch.cat([past[0], k], dim=2)
            v = torch.cat([past[1], v], dim=2)
        kv = (k, v)
        rep = self.nh // self.nkv
        kr, vr = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        scores = matmul_nt(q, kr).float() / math.sqrt(self.hd)
        scores = scores.masked_fill(~mask.unsqueeze(1), float('-inf'))
        a = torch.softmax(scores, dim=-1).nan_to_num(0.0).to(vr.dtype)
        if self.keep_attn:
            self.attn = a
        return self.o_proj(matmul_nt(a, vr.transpose(-1, -2)).transpose(1, 2).reshape(B, n, -1)), kv


class LlamaMlp(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        h, i = cfg['hidden_size'], cfg['intermediate_size']
        self.gate_proj = Linear(h, i, bias=False)
        self.up_proj = Linear(h, i, bias=False)
        self.down_proj = Linear(i, h, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class LlamaLayer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg['hidden_size'], cfg['rms_norm_eps'])
        self.self_attn = LlamaAttention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg['hidden_size'], cfg['rms_norm_eps'])
        self.mlp = LlamaMlp(cfg)

    def forward(self, x, cos, sin, mask, past=None):
        a, kv = self.self_attn(self.input_layernorm(x), cos, sin, mask, past)
        x = x + a
        return x + self.mlp(self.post_attention_layernorm(x)), kv


# ---------------------------------------------------------------- the whole model

class Inner(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        h, dv = cfg['hidden_size'], cfg['mm_hidden_size']
        self.embed_tokens = nn.Embedding(cfg['vocab_size'], h)
        self.layers = nn.ModuleList([LlamaLayer(cfg) for _ in range(cfg['num_hidden_layers'])])
        self.norm = RMSNorm(h, cfg['rms_norm_eps'])
        self.prefusion_layers = nn.ModuleList([LlamaLayer(cfg) for _ in range(cfg['prefusion_layer_num'])])
        self.mm_projector = nn.Sequential(Linear(dv, h), nn.GELU(), Linear(h, h))
        self.compressor = Compressor(dv, cfg['compressor_num_heads'], cfg['compressor_size'])
        self.vision_tower = VisionTower(cfg['vision_config'])


def causal_key_mask(n_past, key_valid):
    """[B, n, n_past + n]: query i sees every valid past key and valid keys j <= i of its own block."""
    B, total = key_valid.shape
    n = total - n_past
    tri = torch.ones(n, n, dtype=torch.bool).tril()
    own = torch.cat([torch.ones(n, n_past, dtype=torch.bool), tri], dim=1)
    return own.unsqueeze(0) & key_valid.unsqueeze(1)


class LlavaMini(nn.Module):
    # colour (+background), shape (+background), shape centre in patch, patch column (so features carry x for left/right)
    AUX_CLASSES = (7, 4, 2, 8)
    AUX_COLORS = 6

    def __init__(self, cfg, patch_tokens=False):
        """patch_tokens=True is the LLaVA-v1.5-style baseline of the paper's comparison: every projected
        patch spliced into the LLM, no compressor, no pre-fusion (the runtime does not run it)."""
        super().__init__()
        assert not patch_tokens or cfg['prefusion_layer_num'] == 0, 'the v1.5-style baseline has no pre-fusion'
        self.cfg = cfg
        self.patch_tokens = patch_tokens
        self.model = Inner(cfg)
        self.lm_head = Linear(cfg['hidden_size'], cfg['vocab_size'], bias=False)
        # Training only, not saved: per-patch labels from the vision features; where the object a
        # question names is, from its last pre-fused prompt row; where each colour is, from the
        # vision token the LLM sees (presence + x, y per colour).
        self.aux_head = Linear(cfg['mm_hidden_size'], sum(self.AUX_CLASSES))
        self.aux_locate = Linear(cfg['hidden_size'], 2)
        self.aux_where = Linear(cfg['hidden_size'], 3 * self.AUX_COLORS)
        self.aux_position = Linear(cfg['hidden_size'], 2)
        hd = cfg['hidden_size'] // cfg['num_attention_heads']
        self.register_buffer('inv_freq', llama3_inv_freq(hd, cfg['rope_theta'], cfg.get('rope_scaling')), persistent=False)

    def rope(self, pos):
        freqs = pos.float().unsqueeze(-1) * self.inv_freq
        emb = torch.cat([freqs, freqs], dim=-1)
        return emb.cos(), emb.sin()

    def checkpoint_state(self):
        return {k: v for k, v in self.state_dict().items() if not k.startswith('aux_')}

    # -- vision side: features, the compressed token, the projected patches
    def encode(self, pixels):
        feats = self.model.vision_tower.vision_tower.vision_model(pixels)
        proj = self.model.mm_projector
        return feats, proj(self.model.compressor(feats)), proj(feats)

    def run_layers(self, layers, x, pos, mask, past=None):
        cos, sin = self.rope(pos)
        kvs = []
        for i, layer in enumerate(layers):
            x, kv = layer(x, cos, sin, mask, None if past is None else past[i])
            kvs.append(kv)
        return x, kvs

    # -- the reference's inference path, one sequence at a time (spec 3.2-4.6)
    def prompt_embeddings(self, pixels, ids):
        """LLM input embeddings [1, L-1+V, h] for a picture [1,3,S,S] or a video's T frames [T,3,S,S] and
        prompt ids (list with one -200): V = 1 compressed token per frame (each frame pre-fused with the
        whole prompt on its own, the fused text averaged over frames, spec 6.2), or every patch for the
        v1.5-style baseline."""
        ids_t = torch.tensor([ids])
        pad = ids_t <= 0
        p = ids.index(IMAGE_TOKEN_INDEX)
        if self.patch_tokens:
            g = self.model.mm_projector(self.model.vision_tower.vision_tower.vision_model(pixels))
            e = self.model.embed_tokens(ids_t.clamp(min=0)).to(g.dtype)
            return torch.cat([e[:, :p], g, e[:, p + 1:]], dim=1)
        _, zc, g = self.encode(pixels)
        T = g.shape[0]
        e = self.model.embed_tokens(ids_t.clamp(min=0)).to(g.dtype).expand(T, -1, -1)
        x = torch.cat([g, zc, e], dim=1)
        nv = g.shape[1] + zc.shape[1]
        valid = torch.cat([torch.ones(T, nv, dtype=torch.bool), ~pad.expand(T, -1)], dim=1)
        pos = valid.long().cumsum(1) - 1
        pos = pos.masked_fill(~valid, 1)
        out, _ = self.run_layers(self.model.prefusion_layers, x, pos, causal_key_mask(0, valid))
        vision = out[:, nv - zc.shape[1]:nv].reshape(1, -1, out.shape[-1])
        fused = out[:, nv:].float().mean(0, keepdim=True).to(out.dtype)
        fused = torch.where(pad.unsqueeze(-1), e[:1], fused)
        return torch.cat([fused[:, :p], vision, fused[:, p + 1:]], dim=1)

    def llm_logits(self, x):
        n = x.shape[1]
        pos = torch.arange(n).unsqueeze(0)
        h, _ = self.run_layers(self.model.layers, x, pos, causal_key_mask(0, torch.ones(1, n, dtype=torch.bool)))
        return self.lm_head(self.model.norm(h)).float()

    @torch.no_grad()
    def greedy(self, pixels, ids, stop_ids, max_new=200, header=()):
        """Greedy answer ids; `max_new` counts the answer's tokens, a `header` the model writes first
        not included (the runtime's maxNewTokens)."""
        x = self.prompt_embeddings(pixels, ids)
        out = []
        while True:
            t = int(self.llm_logits(x)[0, -1].argmax())
            out.append(t)
            if t in stop_ids or answer_length(out, header) >= max_new:
                break
            x = torch.cat([x, self.model.embed_tokens(torch.tensor([[t]])).to(x.dtype)], dim=1)
        return out

    # -- training path: one picture prefix shared by many questions
    def forward_train(self, pixels, prefix, tokens, prompt_len, img_index, frames=1, watch=()):
        """
        pixels [B*T,3,S,S]: B pictures (T = frames = 1) or B clips of T frames each, frame-major per clip;
        prefix: the prompt ids every question shares (ends after <image>\\n);
        tokens [Q, M]: each question's prompt suffix then its target, right-padded with 0;
        prompt_len [Q]: suffix length; img_index [Q]: the picture or clip each question is about.
        Each frame is pre-fused with the whole prompt on its own and the fused text averaged over the
        frames (spec 6.2), as the runtime does. Returns logits [Q, M, V] (position i predicts
        tokens[:, i + 1]), the vision features [B*T, patches, dv], the vision tokens the LLM sees
        [B*T, h], the pre-fusion output of each question's last prompt row [Q, h], and where the last
        pre-fusion layer's heads look among the patches: from each frame's vision token ('token',
        [B*T, heads, patches]) and from each question's last prompt row in each frame ('question',
        [Q*T, heads, patches]), where the first layer's first head looks from every prompt row of each
        question ('words', [Q*T, M, patches]), the projected patches pre-fusion reads ('patches',
        [B*T, patches, h]) and each LLM head's attention mass on the vision tokens from every question
        row ('vision', [layers, Q, heads, M]). Attention is kept only where `watch` asks for it
        ('prefusion': token, question, words; 'llm': vision): the losses that read it train on it.
        """
        T = frames
        feats, zc, g = self.encode(pixels)
        BT, nv = g.shape[0], g.shape[1] + zc.shape[1]
        B = BT // T
        pre = torch.tensor(prefix).unsqueeze(0).expand(BT, -1)
        pre_pad = pre <= 0
        e_pre = self.model.embed_tokens(pre.clamp(min=0)).to(g.dtype)
        x = torch.cat([g, zc, e_pre], dim=1)
        valid = torch.cat([torch.ones(BT, nv, dtype=torch.bool), ~pre_pad], dim=1)
        pos = (valid.long().cumsum(1) - 1).masked_fill(~valid, 1)
        # Where the first and last pre-fusion layers look (none without pre-fusion: the comparison's arms).
        prefusion = self.model.prefusion_layers
        first_attn, last_attn = (prefusion[0].self_attn, prefusion[-1].self_attn) if len(prefusion) and 'prefusion' in watch else (None, None)

        def looking(on):
            for m in (first_attn, last_attn) if last_attn else ():
                m.keep_attn = on
        n_patch = g.shape[1]
        looking(True)
        out, kv_pre = self.run_layers(self.model.prefusion_layers, x, pos, causal_key_mask(0, valid))
        looks = {'token': last_attn.attn[:, :, nv - 1, :n_patch]} if last_attn else {}
        looks['patches'] = g
        tokens_seen = out[:, nv - 1]
        vision = g if self.patch_tokens else tokens_seen.view(B, T, -1)
        mean_t = lambda t: t.float().view(-1, T, *t.shape[1:]).mean(1).to(t.dtype)
        fused_pre = torch.where(pre_pad[::T].unsqueeze(-1), e_pre[::T], mean_t(out[:, nv:]))
        p = prefix.index(IMAGE_TOKEN_INDEX)
        llm_pre = torch.cat([fused_pre[:, :p], vision, fused_pre[:, p + 1:]], dim=1)

        Q, M = tokens.shape
        ar = torch.arange(M).unsqueeze(0)
        is_prompt = ar < prompt_len.unsqueeze(1)
        s_valid = is_prompt & (tokens > 0)
        e_s = self.model.embed_tokens(tokens).to(g.dtype)
        base = valid.sum(1)[0]
        s_pos = (base + s_valid.long().cumsum(1) - 1).masked_fill(~s_valid, 1)
        # Every question runs once per frame of its clip, each against that frame's pre-fused prefix.
        frame = (img_index.unsqueeze(1) * T + torch.arange(T)).reshape(-1)
        rep = lambda t: t.repeat_interleave(T, 0)
        past = [(k[frame], v[frame]) for k, v in kv_pre]
        mask = causal_key_mask(valid.shape[1], torch.cat([valid[frame], rep(s_valid)], dim=1))
        s_out, _ = self.run_layers(self.model.prefusion_layers, rep(e_s), rep(s_pos), mask, past)
        looking(False)
        if last_attn:
            looks['question'] = last_attn.attn[torch.arange(Q * T), :, rep(prompt_len - 1), :n_patch]
            looks['words'] = first_attn.attn[:, 0, :, :n_patch]
            first_attn.attn = last_attn.attn = None
        s_out = mean_t(s_out)
        llm_s = torch.where(is_prompt.unsqueeze(-1), torch.where(s_valid.unsqueeze(-1), s_out, e_s), e_s)
        last_row = s_out[torch.arange(Q), prompt_len - 1]

        P = llm_pre.shape[1]
        ones = torch.ones(B, P, dtype=torch.bool)
        h_pre, kv_llm = self.run_layers(self.model.layers, llm_pre, torch.arange(P).unsqueeze(0).expand(B, -1), causal_key_mask(0, ones))
        past = [(k[img_index], v[img_index]) for k, v in kv_llm]
        mask = causal_key_mask(P, torch.cat([ones[img_index], torch.ones(Q, M, dtype=torch.bool)], dim=1))
        llm = [layer.self_attn for layer in self.model.layers] if 'llm' in watch else []
        for m in llm:
            m.keep_attn = True
        h, _ = self.run_layers(self.model.layers, llm_s, (P + ar).expand(Q, -1), mask, past)
        # For train.py's --look-weight: the trained LLM otherwise gives these tokens almost none.
        if llm:
            looks['vision'] = torch.stack([m.attn[..., p:p + vision.shape[1]].sum(-1) for m in llm])
        for m in llm:
            m.keep_attn, m.attn = False, None
        return self.lm_head(self.model.norm(h)), feats, tokens_seen, last_row, looks
