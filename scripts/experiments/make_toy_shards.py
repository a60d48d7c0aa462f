#!/usr/bin/env python3
"""Tiny synthetic shards for the CI run of run.py --preset toy: a random order-2 Markov chain over
a small vocabulary (so a model's loss falls within a few steps), with occasional copies of earlier
spans (so context helps). The header's UTF-8 byte count is set to 4 bytes per token, an arbitrary
figure that lets bits per byte be computed."""
import argparse
import os
import random

from shards import write_shard


def stream(rng, n, vocab, nxt):
    """n tokens; nxt (the chain's transitions, filled as met) is shared by the splits."""
    out = [rng.randrange(vocab), rng.randrange(vocab)]
    while len(out) < n:
        if len(out) > 64 and rng.random() < 0.02:  # copy a span from earlier on
            start = rng.randrange(len(out) - 32)
            out += out[start:start + 16]
            continue
        key = (out[-2], out[-1])
        if key not in nxt:
            nxt[key] = [rng.randrange(vocab) for _ in range(3)]
        out.append(rng.choice(nxt[key]))
    return out[:n]


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", required=True)
    p.add_argument("--vocab", type=int, default=256)
    p.add_argument("--train-tokens", type=int, default=60000)
    p.add_argument("--val-tokens", type=int, default=6000)
    p.add_argument("--seed", type=int, default=7)
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    rng, nxt = random.Random(a.seed), {}
    for split, n in (("train", a.train_tokens), ("val", a.val_tokens)):
        write_shard(os.path.join(a.out, f"{split}_000000.bin"), stream(rng, n, a.vocab, nxt), utf8_bytes=4 * n)


if __name__ == "__main__":
    main()
