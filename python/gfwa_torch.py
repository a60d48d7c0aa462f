"""The gfwa decoder in plain PyTorch: the readable specification of the model gfwa trains.

    import torch, gfwa_torch
    model = gfwa_torch.GFWAForCausalLM.from_pretrained("exported/")   # a folder from `gfwa export`
    logits = model(torch.tensor([[50256, 464, 3290]]))                 # [batch, time, vocab]

One pre-norm decoder with three attention modes, per layer (config.json "layer_attention"; exports
of format 1 have one "attention_mode" and "sliding_window" for every layer):
  full      causal softmax attention
  swa       causal sliding-window softmax attention: query i sees keys i-W+1 .. i
  gatedfwa  swa plus a learned per-token, per-head decay (GatedFWA, arXiv 2512.07782): the logit
            of (i, j) gets lam[i] - lam[j], lam the prefix sum of log forget gates
Per block, with x the residual stream:
  h = RMSNorm(x);  q = h Wq^T;  k = h Wk^T;  v = h Wv^T   (k, v: num_key_value_heads heads; query head h
                                                    reads K/V head h // (num_attention_heads / num_key_value_heads))
  token_shift:  k_t <- a_t k_t + (1 - a_t) k_{t-1}, a_t = sigmoid(h_t . w_shift[head]) (same for v)
  q, k = RoPE(QKNorm(q)), RoPE(QKNorm(k))      QK-norm: RMSNorm over the whole width, then heads
  x = x + Attention(q, k, v) Wo^T
  x = x + (SiLU(h2 W_gate^T) * (h2 W_up^T)) W_down^T,  h2 = RMSNorm(x)
logits = RMSNorm(x) E^T (tied embedding); loss = mean cross-entropy.
Ground truth: src/model/cpu_model.cpp and src/kernels/*_cpu.cpp; the tensor names and the file
format: docs/interop.md. Plain torch (>= 1.13) only: no Triton, no safetensors package.
"""
import json
import math
import os
import struct

import torch
import torch.nn as nn
import torch.nn.functional as F

GATE_BETA_EPS = 1e-3  # logf = logsigmoid(beta * hg) / (beta + GATE_BETA_EPS)

_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
           "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
           "BOOL": torch.bool}


def load_safetensors(path):
    """Every tensor of a safetensors file, as a dict name -> CPU tensor of the file's dtype."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise ValueError(f"{path}: not a safetensors file ({len(data)} bytes)")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise ValueError(f"{path}: header length {n} exceeds the file (truncated?)")
    header = json.loads(data[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] not in _DTYPES:
            raise ValueError(f"{path}: tensor {name} has unsupported dtype {info['dtype']}")
        begin, end = info["data_offsets"]
        if end > len(data) - 8 - n:
            raise ValueError(f"{path}: tensor {name} runs past the end of the file (truncated?)")
        raw = bytearray(data[8 + n + begin:8 + n + end])
        flat = torch.frombuffer(raw, dtype=torch.uint8) if raw else torch.empty(0, dtype=torch.uint8)
        out[name] = flat.view(_DTYPES[info["dtype"]]).reshape(info["shape"])
    return out


class GFWAConfig:
    """The hyperparameters of config.json (docs/interop.md)."""

    def __init__(self, vocab_size, hidden_size, num_hidden_layers, num_attention_heads, intermediate_size,
                 num_key_value_heads=None, rms_norm_eps=1e-6, rope_theta=10000.0, attention_mode="gatedfwa",
                 sliding_window=512, token_shift=False, max_position_embeddings=1024, layer_attention=None,
                 **_ignored):
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.num_key_value_heads = num_key_value_heads or num_attention_heads
        if num_attention_heads % self.num_key_value_heads != 0:
            raise ValueError(f"num_key_value_heads ({self.num_key_value_heads}) must divide num_attention_heads "
                             f"({num_attention_heads})")
        self.head_dim = hidden_size // num_attention_heads
        self.intermediate_size = intermediate_size
        self.rms_norm_eps = rms_norm_eps
        self.rope_theta = rope_theta
        if layer_attention is None:
            layer_attention = [{"attention_mode": attention_mode, "sliding_window": sliding_window}] * num_hidden_layers
        if len(layer_attention) != num_hidden_layers:
            raise ValueError(f"layer_attention lists {len(layer_attention)} layers, num_hidden_layers is "
                             f"{num_hidden_layers}")
        for i, layer in enumerate(layer_attention):
            if layer["attention_mode"] not in ("full", "swa", "gatedfwa"):
                raise ValueError(f"layer {i}: attention_mode must be full, swa or gatedfwa "
                                 f"(got {layer['attention_mode']!r})")
        # Per layer: its mode and its window (None for full attention).
        self.layer_modes = [layer["attention_mode"] for layer in layer_attention]
        self.layer_windows = [None if layer["attention_mode"] == "full" else layer["sliding_window"]
                              for layer in layer_attention]
        self.token_shift = token_shift
        self.max_position_embeddings = max_position_embeddings

    @classmethod
    def from_json(cls, path):
        with open(path) as f:
            return cls(**json.load(f))


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope(x, theta):
    """Rotary embedding of x [B, T, H, D], halves convention (dims i and i + D/2 form a pair),
    angle t * theta^(-2i/D). Angles in float64: at long T, float32 positions lose digits."""
    T, D = x.shape[1], x.shape[3]
    half = D // 2
    freq = theta ** (-2.0 * torch.arange(half, dtype=torch.float64, device=x.device) / D)
    angle = torch.arange(T, dtype=torch.float64, device=x.device)[:, None] * freq[None, :]
    cos = angle.cos().to(x.dtype)[None, :, None, :]
    sin = angle.sin().to(x.dtype)[None, :, None, :]
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


def token_shift(k, h, shift):
    """k [B, T, H, D] mixed with its predecessor per head: a k_t + (1 - a) k_{t-1}, k_{-1} = 0,
    a = sigmoid(h shift^T) [B, T, H]."""
    a = torch.sigmoid(shift(h))[..., None]
    prev = F.pad(k, (0, 0, 0, 0, 1, 0))[:, :-1]
    return a * k + (1 - a) * prev


def attention(q, k, v, lam, window):
    """Causal softmax attention of q [B, T, H, D] over k, v [B, T, Hkv, D] (Hkv divides H: query head h
    reads K/V head h // (H / Hkv), broadcast, not copied). window: keys per query (itself included), None
    for full attention. lam [B, T, H] (gatedfwa) adds lam[i] - lam[j] to the logit of (i, j)."""
    B, T, H, D = q.shape
    Hkv = k.shape[2]
    q = q.transpose(1, 2).reshape(B, Hkv, H // Hkv, T, D)    # [B, Hkv, group, T, D]
    k, v = (t.transpose(1, 2)[:, :, None] for t in (k, v))  # [B, Hkv, 1, T, D]
    s = (q @ k.transpose(-1, -2)).float() / math.sqrt(D)
    if lam is not None:
        lam = lam.transpose(1, 2).reshape(B, Hkv, H // Hkv, T)
        s = s + (lam[..., :, None] - lam[..., None, :])
    i = torch.arange(T, device=q.device)[:, None]
    j = torch.arange(T, device=q.device)[None, :]
    allowed = j <= i
    if window is not None:
        allowed = allowed & (j > i - window)
    p = torch.softmax(s.masked_fill(~allowed, float("-inf")), dim=-1).to(v.dtype)
    return (p @ v).reshape(B, H, T, D).transpose(1, 2)


class Attention(nn.Module):
    def __init__(self, cfg, layer):
        super().__init__()
        d, H, Hkv = cfg.hidden_size, cfg.num_attention_heads, cfg.num_key_value_heads
        dkv = Hkv * cfg.head_dim
        self.cfg = cfg
        self.gated = cfg.layer_modes[layer] == "gatedfwa"
        self.window = cfg.layer_windows[layer]
        self.q_proj = nn.Linear(d, d, bias=False)
        self.k_proj = nn.Linear(d, dkv, bias=False)
        self.v_proj = nn.Linear(d, dkv, bias=False)
        self.o_proj = nn.Linear(d, d, bias=False)
        self.q_norm = RMSNorm(d, cfg.rms_norm_eps)
        self.k_norm = RMSNorm(dkv, cfg.rms_norm_eps)
        if cfg.token_shift:
            self.k_shift = nn.Linear(d, Hkv, bias=False)
            self.v_shift = nn.Linear(d, Hkv, bias=False)
        if self.gated:
            self.forget_gate = nn.Linear(d, H, bias=True)          # hg = h Wg^T + bg
            self.forget_sharpness = nn.Linear(d, H, bias=False)    # beta = 1 + ELU(h Wl^T)

    def log_decay(self, h):
        """lam [B, T, H]: the inclusive prefix sum over t of logf = logsigmoid(beta hg) / (beta + 1e-3),
        in float32 (the sum in float64: it grows like T)."""
        hg = self.forget_gate(h).float()
        beta = 1 + F.elu(self.forget_sharpness(h).float())
        logf = F.logsigmoid(beta * hg) / (beta + GATE_BETA_EPS)
        return torch.cumsum(logf.double(), dim=1).float()

    def forward(self, h):
        B, T, _ = h.shape
        cfg = self.cfg
        heads = (B, T, cfg.num_attention_heads, cfg.head_dim)
        kv_heads = (B, T, cfg.num_key_value_heads, cfg.head_dim)
        q = self.q_proj(h)
        k = self.k_proj(h).view(kv_heads)
        v = self.v_proj(h).view(kv_heads)
        if cfg.token_shift:
            k = token_shift(k, h, self.k_shift)
            v = token_shift(v, h, self.v_shift)
        q = rope(self.q_norm(q).view(heads), cfg.rope_theta)
        k = rope(self.k_norm(k.reshape(B, T, -1)).view(kv_heads), cfg.rope_theta)
        o = attention(q, k, v, self.log_decay(h) if self.gated else None, self.window)
        return self.o_proj(o.reshape(B, T, -1))


class MLP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d, f = cfg.hidden_size, cfg.intermediate_size
        self.gate_proj = nn.Linear(d, f, bias=False)
        self.up_proj = nn.Linear(d, f, bias=False)
        self.down_proj = nn.Linear(f, d, bias=False)

    def forward(self, h):
        return self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h))


class Block(nn.Module):
    def __init__(self, cfg, layer):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.self_attn = Attention(cfg, layer)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.mlp = MLP(cfg)

    def forward(self, x):
        x = x + self.self_attn(self.input_layernorm(x))
        return x + self.mlp(self.post_attention_layernorm(x))


class Decoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(Block(cfg, layer) for layer in range(cfg.num_hidden_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)


class GFWAForCausalLM(nn.Module):
    """Module names match the exported tensor names, so state_dict() == the safetensors file."""

    def __init__(self, cfg):
        super().__init__()
        self.config = cfg
        self.model = Decoder(cfg)

    @classmethod
    def from_pretrained(cls, path, dtype=torch.float32, device="cpu"):
        """Loads a folder written by `gfwa export` (config.json + model.safetensors); any missing,
        extra or misshapen tensor is an error."""
        model = cls(GFWAConfig.from_json(os.path.join(path, "config.json")))
        tensors = load_safetensors(os.path.join(path, "model.safetensors"))
        model.load_state_dict({k: t.to(torch.float32) for k, t in tensors.items()}, strict=True)
        return model.to(device=device, dtype=dtype).eval()

    def forward(self, ids):
        """ids [B, T] (int64) -> logits [B, T, vocab]."""
        x = self.model.embed_tokens(ids)
        for block in self.model.layers:
            x = block(x)
        return F.linear(self.model.norm(x), self.model.embed_tokens.weight)

    def loss(self, ids, targets):
        """Mean cross-entropy of targets [B, T] given ids [B, T] (what `gfwa eval` reports)."""
        logits = self(ids)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1))

    @torch.no_grad()
    def generate(self, ids, max_new_tokens, top_k=1, temperature=1.0, generator=None):
        """Continues ids [B, T] by max_new_tokens tokens, each drawn from the top_k most likely
        (top_k 1: greedy); the context is the last max_position_embeddings tokens."""
        for _ in range(max_new_tokens):
            context = ids[:, -self.config.max_position_embeddings:]
            logits = self(context)[:, -1, :].float() / temperature
            top, index = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1)
            pick = torch.multinomial(torch.softmax(top, dim=-1), 1, generator=generator)
            ids = torch.cat([ids, index.gather(-1, pick)], dim=1)
        return ids
