"""python/gfwa_torch.py against gfwa itself, on freshly trained tiny checkpoints.

For each attention mode (full, swa, gatedfwa) with token shift off and on, each mode once more
with grouped-query attention (one K/V head for two query heads), and per-layer patterns
(model.attention.pattern: letters and a list, with and without grouped-query attention): train a few steps,
`gfwa export`, then check that the PyTorch model loaded from the export reproduces
  - the loss of `gfwa eval --batches 1` within LOSS_RTOL (relative), and
  - the logits that `gfwa eval --logits` writes, within LOGITS_ATOL (absolute),
and that greedy generate() continues with the argmax of those logits.

    python3 tests/python/torch_parity.py --gfwa build/gfwa                  # ctest: cpu backend
    python3 tests/python/torch_parity.py --gfwa build/gfwa --backend cuda   # GPU machine: bf16

Exit status 77 (ctest: skipped) when PyTorch is not installed.
"""
import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

try:
    import torch
except ImportError:
    print("torch_parity: skipped: no PyTorch for", sys.executable, "(Debian: apt-get install python3-torch)")
    sys.exit(77)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))
import gfwa_torch  # noqa: E402

VOCAB = 97
# cpu backend: fp32 on both sides. cuda backend: bf16 weights and activations against fp32 PyTorch.
TOLERANCES = {"cpu": {"loss_rtol": 1e-5, "logits_atol": 1e-4}, "cuda": {"loss_rtol": 2e-2, "logits_atol": 5e-2}}


def write_shard(path, tokens):
    """llm.c token shard (docs/data.md): 256 int32 header (magic, version, count), uint16 tokens."""
    header = [20240520, 1, len(tokens)] + [0] * 253
    with open(path, "wb") as f:
        f.write(struct.pack("<256i", *header))
        f.write(struct.pack(f"<{len(tokens)}H", *tokens))


def make_data(folder):
    gen = torch.Generator().manual_seed(7)
    def tokens(n):  # a noisy repeating pattern: something to learn
        noise = torch.randint(0, VOCAB, (n,), generator=gen)
        keep = torch.rand(n, generator=gen) < 0.8
        return [int((i * 7) % VOCAB) if keep[i] else int(noise[i]) for i in range(n)]
    write_shard(os.path.join(folder, "train_000.bin"), tokens(600))
    write_shard(os.path.join(folder, "val_000.bin"), tokens(300))


# Per-layer patterns checked besides the uniform modes: name -> (mode, model.attention.pattern, n_kv_heads).
PATTERNS = {"pattern_SL": ("gatedfwa", "SL", 0),
            "pattern_SL_kv1": ("gatedfwa", "SL", 1),
            "pattern_list_kv1": ("gatedfwa", [{"mode": "swa", "window": 3}, {"mode": "gatedfwa"}], 1)}


def tiny_config(data, mode, shift, kv_heads, backend, pattern=""):
    width, heads = (16, 2) if backend == "cpu" else (128, 2)  # the cuda backend needs head_dim 64 or 128
    return {
        "model": {"vocab_size": VOCAB, "n_layers": 2, "d_model": width, "n_heads": heads, "n_kv_heads": kv_heads,
                  "attention": {"mode": mode, "window": 5, "token_shift": shift, "gate_bias_init": 1.0,
                                "pattern": pattern}},
        "optimizer": {"lr": 1e-2},
        "schedule": {"type": "constant"},
        "train": {"backend": backend, "seed": 11, "batch_size": 3, "seq_len": 13, "max_steps": 4},
        "eval": {"every": 0, "batches": 1},
        "data": {"train": f"{data}/train_*.bin", "val": f"{data}/val_*.bin"},
        "logging": {"level": "warn"},
    }


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout}{r.stderr}")
    return r.stdout


def check(gfwa, backend, work, mode, shift, kv_heads, pattern="", name=None):
    name = name or f"{mode}_{'shift' if shift else 'noshift'}{f'_kv{kv_heads}' if kv_heads else ''}"
    cfg_path = os.path.join(work, name + ".json")
    with open(cfg_path, "w") as f:
        json.dump(tiny_config(os.path.join(work, "data"), mode, shift, kv_heads, backend, pattern), f)
    out = os.path.join(work, name)
    run([gfwa, "train", "--config", cfg_path, "--out", out])
    ckpt = os.path.join(out, "checkpoints", "step_00000004")
    export = os.path.join(work, name + "_export")
    run([gfwa, "export", "--checkpoint", ckpt, "--out", export])
    dump = os.path.join(work, name + "_logits.safetensors")
    # The JSON is the last line: the cuda backend logs its memory plan to stdout before it.
    ev = json.loads(run([gfwa, "eval", "--checkpoint", ckpt, "--batches", "1", "--json", "--logits", dump]))

    model = gfwa_torch.GFWAForCausalLM.from_pretrained(export)
    ours = gfwa_torch.load_safetensors(dump)
    ids, targets = ours["input_ids"].long(), ours["targets"].long()
    with torch.no_grad():
        logits = model(ids)
        loss = model.loss(ids, targets).item()
    tol = TOLERANCES[backend]
    loss_rel = abs(loss - ev["loss"]) / abs(ev["loss"])
    logits_err = (logits - ours["logits"]).abs().max().item()
    greedy = model.generate(ids[:1], 1)[0, -1].item()
    ok = loss_rel <= tol["loss_rtol"] and logits_err <= tol["logits_atol"] and \
        greedy == int(logits[0, -1].argmax())
    print(f"{name:18s} loss gfwa {ev['loss']:.7f} torch {loss:.7f} (rel {loss_rel:.1e}) | "
          f"max |logits diff| {logits_err:.1e} | {'ok' if ok else 'FAIL'}")
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gfwa", required=True, help="the gfwa executable")
    ap.add_argument("--backend", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--keep", help="work in this folder and keep it (default: a temporary one, removed)")
    args = ap.parse_args()
    torch.manual_seed(0)
    work = args.keep or tempfile.mkdtemp(prefix="gfwa_torch_parity_")
    os.makedirs(os.path.join(work, "data"), exist_ok=True)
    try:
        make_data(os.path.join(work, "data"))
        print(f"torch {torch.__version__}, gfwa backend {args.backend}, tolerances {TOLERANCES[args.backend]}")
        gfwa = os.path.abspath(args.gfwa)
        variants = [(mode, shift, 0) for mode in ("full", "swa", "gatedfwa") for shift in (False, True)]
        variants += [("full", False, 1), ("swa", True, 1), ("gatedfwa", True, 1)]  # 0: n_kv_heads = n_heads
        results = [check(gfwa, args.backend, work, mode, shift, kv_heads) for mode, shift, kv_heads in variants]
        results += [check(gfwa, args.backend, work, mode, True, kv_heads, pattern, name)
                    for name, (mode, pattern, kv_heads) in PATTERNS.items()]
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    if not all(results):
        sys.exit(1)
    print("all variants match")


if __name__ == "__main__":
    main()
