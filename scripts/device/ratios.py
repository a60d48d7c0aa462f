"""Ratio tables from one device call: our `gfwa bench` lines against the PyTorch anchors.
usage: ratios.py BENCH_LOG ATTN_ANCHOR_LOG E2E_ANCHOR_LOG   (missing files are skipped)"""
import json
import re
import sys


def kv(line):
    return dict(re.findall(r"([A-Za-z_/%+]+)=([^\s]+)", line))


def lines(path):
    try:
        return open(path).read().splitlines()
    except OSError:
        return []


ours_attn, ours_train, flex, e2e = {}, {}, {}, {}
for line in lines(sys.argv[1]):
    if line.startswith("bench attention"):
        d = kv(line)
        ours_attn[(d["mode"], d["B"], d["H"], d["T"], d["D"], d["W"])] = float(d["fwdbwd_tflops"])
    elif line.startswith("bench train:"):
        d = kv(line)
        ours_train[(d["mode"], d["T"], d["B"])] = float(d["tok/s"])
for line in lines(sys.argv[2]):
    if line.startswith("{"):
        r = json.loads(line)
        if r.get("kind") == "attn" and "fwdbwd_tflops" in r:
            flex[(r["impl"], str(r["B"]), str(r["H"]), str(r["T"]), str(r["D"]))] = (str(r["W"]), r["fwdbwd_tflops"])
for line in lines(sys.argv[3]):
    m = re.match(r"(sdpa|swa|gated)\s+T=", line)
    if m:
        d = kv(line)
        e2e[(m.group(1), d["T"], d["B"])] = float(d["tok/s"].replace(",", ""))

print("attention fwd+bwd TFLOP/s (mask-pairs convention), same call")
print(f"{'B,H,T,D,W':22s} {'gated':>7s} {'swa':>7s} {'flex_g':>7s} {'ours/flex':>9s} {'gated/swa':>9s}")
for (mode, B, H, T, D, W), g in ours_attn.items():
    if mode != "gatedfwa":
        continue
    s = ours_attn.get(("swa", B, H, T, D, W), float("nan"))
    f = flex.get(("flex_gated", B, H, T, D), (W, float("nan")))[1]
    print(f"{','.join((B, H, T, D, W)):22s} {g:7.1f} {s:7.1f} {f:7.1f} {g / f:9.2f} {g / s:9.3f}")
for (mode, B, H, T, D, W), v in ours_attn.items():
    if mode == "full":
        sd = flex.get(("sdpa_causal", B, H, T, D), (W, float("nan")))[1]
        print(f"full {B},{H},{T},{D}: ours {v:.1f} vs sdpa {sd:.1f}: {v / sd:.2f}x")
print("\ntraining tokens/s (ours / torch.compile reference), same call")
for (mode, T, B), tps in ours_train.items():
    ref = e2e.get(({"gatedfwa": "gated", "full": "sdpa", "swa": "swa"}[mode], T, B), float("nan"))
    print(f"{mode:9s} T={T:5s} B={B:3s} ours {tps:10,.0f}  torch {ref:10,.0f}  ratio {tps / ref:5.2f}")
