#!/usr/bin/env python3
"""AdamW vs Muon (issue 18): two `gfwa train` runs that differ only in optimizer.type (same model,
data, seed, schedule and token budget), their numbers and their loss curves as a PNG.

    python3 scripts/experiments/muon_vs_adamw.py --preset cpu|h200 [--data data/debian_mix]
        [--out runs/muon_vs_adamw_PRESET] [--gfwa build/gfwa] [--set key=value ...] [--plot-only]

OUT receives adamw/ and muon/ (each run's config_in.json, run.log, metrics.jsonl; re-running
resumes an interrupted run and keeps a finished one), summary.json and summary.md (final training
loss, validation loss and bits per byte, tokens, tokens/s and wall time of each run) and
muon_vs_adamw.png (training and validation loss against tokens). --set goes to both runs
(optimizer.muon.* matters to the Muon run only). Without matplotlib the runs and the summary are
still made; --plot-only rebuilds the summary and the plot from OUT (e.g. after a GPU run:
scripts/device/muon_vs_adamw.sh)."""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from report import records  # noqa: E402
from run import REPO, SEED, resolve_gfwa  # noqa: E402

OPTIMIZERS = ["adamw", "muon"]

PRESETS = {
    # 2 shared CPU cores, one to two minutes per run: the quickstart's model size (the tied
    # 50304-row embedding dominates its cost), 150 steps of 8 x 128 tokens.
    "cpu": {"backend": "cpu", "model": {"n_layers": 4, "d_model": 64, "n_heads": 1}, "window": 64,
            "seq_len": 128, "batch_size": 8, "steps": 150, "lr": 3e-3, "muon_lr": 0.02, "warmup": 15,
            "eval_every": 50, "eval_batches": 8, "log_every": 5},
    # One H200, under a minute per run: the 124m-class GatedFWA model, 300 steps of 32 x 1024
    # tokens = 9.8 M tokens, one pass over the train shard scripts/device/experiments.sh stages.
    "h200": {"backend": "cuda", "model": {"n_layers": 12, "d_model": 768, "n_heads": 12}, "window": 512,
             "seq_len": 1024, "batch_size": 32, "steps": 300, "lr": 1e-3, "muon_lr": 0.02, "warmup": 30,
             "eval_every": 50, "eval_batches": 16, "log_every": 10},
}


def run_config(p, data, optimizer):
    return {
        "model": dict(p["model"], vocab_size=50304, attention={"mode": "gatedfwa", "window": p["window"]}),
        "optimizer": {"type": optimizer, "lr": p["lr"], "muon": {"lr": p["muon_lr"]}},
        "schedule": {"type": "cosine", "warmup_steps": p["warmup"]},
        "train": {"backend": p["backend"], "seed": SEED, "batch_size": p["batch_size"], "seq_len": p["seq_len"],
                  "max_steps": p["steps"]},
        "eval": {"every": p["eval_every"], "batches": p["eval_batches"]},
        "data": {"train": os.path.join(data, "train_*.bin"), "val": os.path.join(data, "val_*.bin")},
        "checkpoint": {"every": 0, "keep_last": 1},
        "logging": {"every": p["log_every"]},
    }


def train(gfwa, folder, config, sets):
    """Trains (or resumes, or finds finished) one run; returns its wall time in seconds."""
    os.makedirs(folder, exist_ok=True)
    cfg_path = os.path.join(folder, "config_in.json")
    with open(cfg_path, "w") as f:
        json.dump(config, f, indent=1)
    cmd = [gfwa, "train", "--config", cfg_path, "--out", folder, "--resume", "auto"]
    for s in sets:
        cmd += ["--set", s]
    t0 = time.time()
    with open(os.path.join(folder, "run.log"), "a") as log:
        log.write("$ " + " ".join(cmd) + "\n")
        log.flush()
        rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT).returncode
    secs = time.time() - t0
    if rc != 0:
        with open(os.path.join(folder, "run.log")) as log:
            tail = "".join(log.readlines()[-5:])
        sys.exit(f"muon_vs_adamw: {os.path.basename(folder)} failed (exit {rc}):\n{tail}")
    return secs


def summarise(out, name):
    metrics = os.path.join(out, name, "metrics.jsonl")
    tr, ev = records(metrics, "train"), records(metrics, "eval")
    if not tr:
        sys.exit(f"muon_vs_adamw: {metrics}: no training records")
    tail = tr[-max(1, len(tr) // 10):]
    wall = None
    wall_path = os.path.join(out, name, "wall_s.json")
    if os.path.exists(wall_path):
        with open(wall_path) as f:
            wall = json.load(f)["seconds"]
    return {
        "optimizer": name,
        "steps": tr[-1]["step"],
        "tokens": tr[-1]["tokens"],
        "train_loss_last": tr[-1]["loss"],
        "train_loss_last_10pct": statistics.mean(r["loss"] for r in tail),
        "val_loss": ev[-1]["val_loss"] if ev else None,
        "val_bpb": ev[-1].get("val_bpb") if ev else None,
        "tokens_per_s": statistics.median(r["tokens_per_s"] for r in tr),
        "wall_s": wall,
    }


def fmt(x, digits=4):
    return "n/a" if x is None else f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def write_summary(out, preset, rows):
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump({"preset": preset, "runs": rows}, f, indent=1)
    keys = ["optimizer", "steps", "tokens", "train_loss_last", "train_loss_last_10pct", "val_loss", "val_bpb",
            "tokens_per_s", "wall_s"]
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for r in rows:
        lines.append("| " + " | ".join(fmt(r[k], 1 if k in ("tokens_per_s", "wall_s") else 4) for k in keys) + " |")
    text = "\n".join(lines) + "\n"
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write(f"AdamW vs Muon, preset {preset} (scripts/experiments/muon_vs_adamw.py)\n\n" + text)
    print(text, end="")


def plot(out, preset):
    try:
        import matplotlib
    except ImportError:
        print(f"muon_vs_adamw: {sys.executable} has no matplotlib (apt-get install python3-matplotlib): no plot; "
              f"rebuild it with --plot-only --out {out} where it is installed")
        return
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.5))
    for name, color in zip(OPTIMIZERS, ["tab:blue", "tab:red"]):
        metrics = os.path.join(out, name, "metrics.jsonl")
        tr, ev = records(metrics, "train"), records(metrics, "eval")
        per_step = tr[-1]["tokens"] / tr[-1]["step"]  # eval records carry the step only
        a.plot([r["tokens"] / 1e6 for r in tr], [r["loss"] for r in tr], color=color, lw=1, label=name)
        b.plot([r["step"] * per_step / 1e6 for r in ev], [r["val_loss"] for r in ev], "o-", color=color, label=name)
    a.set_title("training loss")
    b.set_title("validation loss")
    for ax in (a, b):
        ax.set_xlabel("tokens (M)")
        ax.set_ylabel("cross-entropy (nats/token)")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"AdamW vs Muon on the Debian mix, preset {preset}")
    png = os.path.join(out, "muon_vs_adamw.png")
    fig.savefig(png, dpi=110, bbox_inches="tight")
    print(f"wrote {png}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), required=True)
    ap.add_argument("--data", default=os.path.join(REPO, "data", "debian_mix"),
                    help="folder of train_*.bin and val_*.bin (scripts/data/prepare_debian_mix.sh)")
    ap.add_argument("--out", help="default runs/muon_vs_adamw_PRESET")
    ap.add_argument("--gfwa", help="the gfwa binary (default build/gfwa)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="an override for both runs")
    ap.add_argument("--plot-only", action="store_true", help="summary and plot from OUT, no training")
    a = ap.parse_args()
    out = os.path.abspath(a.out or os.path.join("runs", "muon_vs_adamw_" + a.preset))
    if not a.plot_only:
        data = os.path.abspath(a.data)
        for split in ("train", "val"):
            if not any(f.startswith(split + "_") and f.endswith(".bin") for f in os.listdir(data)):
                sys.exit(f"muon_vs_adamw: --data {a.data}: no {split}_*.bin shards there "
                         "(scripts/data/prepare_debian_mix.sh prepares the Debian mix)")
        gfwa = resolve_gfwa(a.gfwa)
        for name in OPTIMIZERS:
            print(f"[{name}] training ...", flush=True)
            secs = train(gfwa, os.path.join(out, name), run_config(PRESETS[a.preset], data, name), a.set)
            wall_path = os.path.join(out, name, "wall_s.json")  # summed over resumed attempts
            before = json.load(open(wall_path))["seconds"] if os.path.exists(wall_path) else 0.0
            with open(wall_path, "w") as f:
                json.dump({"seconds": before + secs}, f)
            print(f"[{name}] done in {secs:.1f}s", flush=True)
    write_summary(out, a.preset, [summarise(out, name) for name in OPTIMIZERS])
    plot(out, a.preset)


if __name__ == "__main__":
    main()
