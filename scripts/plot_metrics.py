#!/usr/bin/env python3
"""PNG plots of a run's metrics.jsonl (written by `gfwa train`): training and validation loss,
and throughput (tokens/s, with MFU where the backend reports it).

usage: python3 scripts/plot_metrics.py RUN/metrics.jsonl [--out DIR]   (default DIR: next to the file)
Needs python3-matplotlib (Debian)."""
import argparse
import json
import os
import sys

try:
    import matplotlib
except ImportError:
    sys.exit(f"plot_metrics: {sys.executable} has no matplotlib; install python3-matplotlib (Debian) "
             "and run it with /usr/bin/python3")

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read(path):
    train, evals = [], []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                sys.exit(f"{path}:{n}: not a JSON object")
            if r.get("type") == "train":
                train.append(r)
            elif r.get("type") == "eval":
                evals.append(r)
    if not train:
        sys.exit(f"{path}: no training records")
    return train, evals


def col(records, key):
    pts = [(r["step"], r[key]) for r in records if r.get(key) is not None]
    return [p[0] for p in pts], [p[1] for p in pts]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("metrics")
    ap.add_argument("--out", help="folder for the PNG files")
    a = ap.parse_args()
    out = a.out or os.path.dirname(os.path.abspath(a.metrics))
    os.makedirs(out, exist_ok=True)
    train, evals = read(a.metrics)

    fig, ax = plt.subplots(figsize=(8, 5))
    ax.plot(*col(train, "loss"), label="train loss")
    if evals:
        ax.plot(*col(evals, "val_loss"), "o-", label="validation loss")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.grid(alpha=0.3)
    ax.legend()
    loss_png = os.path.join(out, "loss.png")
    fig.savefig(loss_png, dpi=120, bbox_inches="tight")

    fig, ax = plt.subplots(figsize=(8, 5))
    ax.plot(*col(train, "tokens_per_s"), label="tokens/s")
    ax.set_xlabel("step")
    ax.set_ylabel("tokens/s")
    ax.grid(alpha=0.3)
    steps, mfu = col(train, "mfu")
    if mfu:
        ax2 = ax.twinx()
        ax2.plot(steps, [100 * m for m in mfu], color="tab:orange", label="MFU")
        ax2.set_ylabel("MFU (%)")
        ax2.legend(loc="lower right")
    ax.legend(loc="upper left")
    tput_png = os.path.join(out, "throughput.png")
    fig.savefig(tput_png, dpi=120, bbox_inches="tight")
    print(f"wrote {loss_png} and {tput_png}")


if __name__ == "__main__":
    main()
