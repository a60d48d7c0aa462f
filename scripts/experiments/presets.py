"""Sizes and budgets of the experiment presets (run.py --preset). Every variant of a preset trains
the same model size on the same data, seed and token budget; only the attention differs.

toy:   CPU, seconds in all: checks that every stage runs and every table and plot is produced
       (CI); the numbers mean nothing.
h200:  one H200, a few minutes in all (scripts/device/experiments.sh, the Debian mix).
paper: the paper's scale (124m-class, T 1024, W 512) for users with OpenWebText or FineWeb shards
       and 8 GPUs (run.py --train-launcher scripts/launch/torchrun_env.sh); docs/results.md.
Each preset's "nsa" gives the NSA variants' block and top_k (model.attention.nsa, docs/nsa.md)."""

VARIANTS = {  # name -> model.attention settings (nsa: the preset's "nsa" block and top_k join them)
    "full": {"mode": "full"},
    "swa": {"mode": "swa"},
    "gatedfwa": {"mode": "gatedfwa"},
    "gatedfwa_shift": {"mode": "gatedfwa", "token_shift": True},
    "nsa_swa": {"mode": "nsa", "nsa": {"sliding": "swa"}},
    "nsa_gatedfwa": {"mode": "nsa", "nsa": {"sliding": "gatedfwa"}},
}


def gated(variant):
    """Whether the variant has GatedFWA's gates (gatedfwa, or NSA with a GatedFWA sliding branch)."""
    a = VARIANTS[variant]
    return a["mode"] == "gatedfwa" or (a["mode"] == "nsa" and a["nsa"]["sliding"] == "gatedfwa")


LONG_T = [1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072]  # throughput: 1k to 128k

PRESETS = {
    "toy": {
        "backend": "cpu",
        "vocab_size": "auto",  # smallest multiple of 64 above the data's largest id
        "model": {"n_layers": 2, "d_model": 32, "n_heads": 2},
        "window": 8,
        "nsa": {"block": 8, "top_k": 2},  # the CPU takes any block: 4 blocks of T 32, so the selection chooses
        "seq_len": 32,
        "batch_size": 4,
        "steps": 6,
        "lr": 3e-3,
        "warmup": 1,
        "eval_every": 3,
        "eval_tokens": 512,  # validation tokens of every final and length evaluation
        "length_factors": [1, 2, 4, 8],
        "throughput": {"seq_lens": [16, 32, 64], "tokens_per_step": 128, "steps": 3,
                       "variants": ["full", "swa", "gatedfwa", "nsa_gatedfwa"]},
        "recall": {"seq_len": 64, "distances": [3, 6, 12, 24, 48], "queries": 5, "distractors": 2,
                   "train_samples": 96, "val_samples": 16, "base": 0, "noise": 8, "keys": 32, "values": 32,
                   "steps": 6, "batch_size": 4, "lr": 3e-3, "variants": ["full", "swa", "gatedfwa", "nsa_gatedfwa"]},
    },
    "h200": {
        "backend": "auto",
        "vocab_size": 50304,
        "model": {"n_layers": 6, "d_model": 384, "n_heads": 6},
        "window": 256,
        "nsa": {"block": 64, "top_k": 16},  # the authors' (and the CUDA kernels'); at T 1024 it selects every block
        "seq_len": 1024,
        "batch_size": 32,
        "steps": 300,  # 9.8 M tokens per variant
        "lr": 2e-3,
        "warmup": 30,
        "eval_every": 50,
        "eval_tokens": 262144,
        "length_factors": [1, 2, 4, 8],
        "throughput": {"seq_lens": LONG_T, "tokens_per_step": 131072, "steps": 4,
                       "variants": ["full", "swa", "gatedfwa", "nsa_gatedfwa"]},
        "recall": {"seq_len": 1024, "distances": [16, 64, 128, 192, 240, 320, 448, 640, 896], "queries": 64,
                   "distractors": 32, "train_samples": 19200, "val_samples": 256, "base": 1000, "noise": 32,
                   "keys": 128, "values": 64, "steps": 600, "batch_size": 32, "lr": 2e-3,
                   "variants": ["full", "swa", "gatedfwa", "nsa_gatedfwa"]},
    },
    "paper": {
        "backend": "cuda",
        "vocab_size": 50304,
        "model": {"n_layers": 12, "d_model": 768, "n_heads": 12},
        "window": 512,
        "nsa": {"block": 64, "top_k": 16},
        "seq_len": 1024,
        "batch_size": 32,
        "tokens_per_step": 524288,  # over all GPUs: 2 micro-batches of 32 x 1024 on each of 8
        "steps": 9537,  # 5.0 B tokens
        "lr": 1.5e-3,
        "warmup": 700,
        "eval_every": 500,
        "eval_tokens": 10485760,
        "length_factors": [1, 2, 4, 8],
        "throughput": {"seq_lens": LONG_T, "tokens_per_step": 131072, "steps": 10,
                       "variants": ["full", "swa", "gatedfwa", "nsa_gatedfwa"]},
        "recall": {"seq_len": 1024, "distances": [16, 64, 128, 256, 384, 511, 640, 768, 896], "queries": 64,
                   "distractors": 32, "train_samples": 65536, "val_samples": 1024, "base": 1000, "noise": 32,
                   "keys": 128, "values": 64, "steps": 2000, "batch_size": 32, "lr": 1.5e-3,
                   "variants": ["full", "swa", "gatedfwa", "gatedfwa_shift", "nsa_gatedfwa"]},
    },
}
