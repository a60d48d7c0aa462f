"""Decode-speed anchor: GatedFWA token-by-token generation in plain PyTorch, in the style of the
authors' inference engine: a cache of every past token (O(T) keys, values and log-gates per layer),
and at every step the gate's prefix sums recomputed over the whole cache, the window applied as a
mask over all T cached keys. Eager bf16, no CUDA graphs, greedy argmax on the GPU.

The model is the 124m-class decoder of configs/gpt124m_gatedfwa.json (12 layers, d 768, 12 heads,
SwiGLU 3072, vocab 50304, W 512, QK-norm, RoPE) with random weights. Decode speed does not depend
on the cache's values, so the prompt's cache is filled with random keys, values and log-gates
instead of a prefill (a 32k-token naive prefill would not fit in memory).
Prints one line per (batch, prompt) shape: decode tokens/s = batch * steps / time.
usage: decode_anchor.py [--shapes "B,P;B,P"] [--new-tokens N]
"""
import argparse
import math
import time

import torch
import torch.nn.functional as F

L, D_MODEL, H, FFN, VOCAB, W = 12, 768, 12, 3072, 50304, 512
HD = D_MODEL // H
dev, dt = "cuda", torch.bfloat16


def rmsnorm(x, w, eps=1e-6):
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).to(dt) * w


def rope(x, pos):  # x [B, H, D], one position per sequence
    half = HD // 2
    freq = 10000.0 ** (-torch.arange(half, device=dev, dtype=torch.float64) * 2 / HD)
    ang = pos[:, None].double() * freq[None]
    c, s = ang.cos().float()[:, None], ang.sin().float()[:, None]
    x1, x2 = x[..., :half].float(), x[..., half:].float()
    return torch.cat([x1 * c - x2 * s, x1 * s + x2 * c], -1).to(dt)


class Model:
    def __init__(self):
        g = torch.Generator(device=dev).manual_seed(0)
        r = lambda *s: (torch.randn(*s, device=dev, generator=g) * 0.02).to(dt)
        self.emb = r(VOCAB, D_MODEL)
        self.layers = [dict(n1=torch.ones(D_MODEL, device=dev, dtype=dt), wqkv=r(3 * D_MODEL, D_MODEL),
                            qn=torch.ones(D_MODEL, device=dev, dtype=dt), kn=torch.ones(D_MODEL, device=dev, dtype=dt),
                            wg=r(H, D_MODEL), bg=torch.zeros(H, device=dev), wl=r(H, D_MODEL), wo=r(D_MODEL, D_MODEL),
                            n2=torch.ones(D_MODEL, device=dev, dtype=dt), w13=r(2 * FFN, D_MODEL), w2=r(D_MODEL, FFN))
                       for _ in range(L)]
        self.nf = torch.ones(D_MODEL, device=dev, dtype=dt)

    def new_cache(self, B, P, N):
        T = P + N
        g = torch.Generator(device=dev).manual_seed(1)
        cache = []
        for _ in range(L):
            k = torch.zeros(B, H, T, HD, device=dev, dtype=dt)
            v = torch.zeros(B, H, T, HD, device=dev, dtype=dt)
            lf = torch.zeros(B, H, T, device=dev)
            k[:, :, :P] = torch.randn(B, H, P, HD, device=dev, generator=g).to(dt)
            v[:, :, :P] = torch.randn(B, H, P, HD, device=dev, generator=g).to(dt)
            lf[:, :, :P] = -torch.rand(B, H, P, device=dev, generator=g)
            cache.append((k, v, lf))
        return cache

    @torch.no_grad()
    def step(self, tok, t, cache):  # tok [B]; t: the position of tok (cache holds 0..t-1)
        B = tok.shape[0]
        x = self.emb[tok]
        pos = torch.full((B,), t, device=dev)
        idx = torch.arange(t + 1, device=dev)
        mask = idx <= t - W  # outside the window of the new query
        for p, (kc, vc, lc) in zip(self.layers, cache):
            h = rmsnorm(x, p["n1"])
            q, k, v = (h @ p["wqkv"].T).split(D_MODEL, -1)
            q = rope(rmsnorm(q, p["qn"]).view(B, H, HD), pos)
            k = rope(rmsnorm(k, p["kn"]).view(B, H, HD), pos)
            hf = h.float()
            hg = hf @ p["wg"].float().T + p["bg"]
            beta = 1 + F.elu(hf @ p["wl"].float().T)
            kc[:, :, t] = k
            vc[:, :, t] = v.view(B, H, HD)
            lc[:, :, t] = F.logsigmoid(beta * hg) / (beta + 1e-3)
            lam = torch.cumsum(lc[:, :, : t + 1], -1)  # the prefix sums, recomputed at every step
            s = torch.einsum("bhd,bhtd->bht", q.float(), kc[:, :, : t + 1].float()) / math.sqrt(HD)
            s = s + (lam[..., -1:] - lam)
            s = s.masked_fill(mask, float("-inf"))
            o = torch.einsum("bht,bhtd->bhd", torch.softmax(s, -1).to(dt), vc[:, :, : t + 1])
            x = x + o.reshape(B, D_MODEL) @ p["wo"].T
            a, b = (rmsnorm(x, p["n2"]) @ p["w13"].T).split(FFN, -1)
            x = x + (F.silu(a) * b) @ p["w2"].T
        return (rmsnorm(x, self.nf) @ self.emb.T).float().argmax(-1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", default="1,1024;64,1024;1,32768;64,32768")
    ap.add_argument("--new-tokens", type=int, default=32)
    a = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = True
    m = Model()
    for shape in a.shapes.split(";"):
        B, P = map(int, shape.split(","))
        cache = m.new_cache(B, P, a.new_tokens)
        tok = torch.randint(0, 50257, (B,), device=dev)
        tok = m.step(tok, P, cache)  # warm-up (kernels, allocator)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for i in range(1, a.new_tokens):
            tok = m.step(tok, P + i, cache)
        torch.cuda.synchronize()
        sec = time.perf_counter() - t0
        tps = B * (a.new_tokens - 1) / sec
        print(f"decode_anchor: B={B} prompt={P} new={a.new_tokens} decode tok/s={tps:.1f} "
              f"step_ms={1e3 * sec / (a.new_tokens - 1):.3f} cache_GiB={torch.cuda.memory_allocated() / 2**30:.2f}",
              flush=True)
        del cache
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
