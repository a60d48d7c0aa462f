#!/usr/bin/env python3
"""Synthetic associative-recall shards (multi-query key-value recall, MQAR-style) with a controlled
distance between a key's definition and its query.

Every sample is one window of seq_len tokens (the loaders cut windows of T tokens with stride T,
docs/data.md), filled with noise tokens, into which go pairs "key value": each key is defined
once and queried once, `distance` tokens later (query position - definition position), then a few
distractor pairs that are never queried. At a query the model sees the key and must predict the
value it was defined with: the answer is the target at the query's key position. Keys are drawn
without replacement per sample, so only content-based recall can answer.

Writes OUT/train_000000.bin, OUT/val_000000.bin, OUT/val_answers.txt (one evaluated-target index
per line, window-major: `gfwa eval --answers`) and OUT/val_answers.json ({distances: [...] per
answer, seq_len, ...}).

Token ids: noise [base, base+noise), keys [base+noise, +keys), values [.., +values): all below the
model's vocabulary."""
import argparse
import json
import os
import random

from shards import write_shard


def make_sample(rng, T, distances, queries, distractors, ids):
    noise, keys, values = ids
    seq = [rng.choice(noise) for _ in range(T)]
    used = [False] * T
    answers = []  # (answer target position = query key position, distance)

    def free(*pos):
        return all(0 <= p < T - 1 and not used[p] for p in pos)

    def place(pos, key, value):
        seq[pos], seq[pos + 1] = key, value
        used[pos] = used[pos + 1] = True

    chosen = rng.sample(keys, queries + distractors)
    for q in range(queries):
        d = distances[q % len(distances)]
        key, value = chosen[q], rng.choice(values)
        for _ in range(200):  # a free spot: definition at i - d, query at i, each two tokens
            i = rng.randrange(d, T - 1)
            if free(i - d, i - d + 1, i, i + 1):
                place(i - d, key, value)
                place(i, key, value)
                answers.append((i, d))
                break
    for key in chosen[queries:]:
        for _ in range(200):
            i = rng.randrange(0, T - 1)
            if free(i, i + 1):
                place(i, key, rng.choice(values))
                break
    return seq, answers


def generate(out, T, distances, queries, distractors, train_samples, val_samples, seed, base, noise, keys, values):
    if max(distances) > T - 2 or min(distances) < 2:
        raise ValueError(f"distances must lie in [2, {T - 2}] for seq_len {T} (got {distances})")
    if queries + distractors > keys:
        raise ValueError(f"queries + distractors ({queries + distractors}) exceed the {keys} keys")
    ids = (list(range(base, base + noise)), list(range(base + noise, base + noise + keys)),
           list(range(base + noise + keys, base + noise + keys + values)))
    os.makedirs(out, exist_ok=True)
    rng = random.Random(seed)
    for split, n in (("train", train_samples), ("val", val_samples)):
        tokens, index, dist = [], [], []
        for w in range(n):
            seq, answers = make_sample(rng, T, distances, queries, distractors, ids)
            tokens += seq
            for pos, d in sorted(answers):
                index.append(w * T + pos)
                dist.append(d)
        tokens.append(ids[0][0])  # windows need T + 1 tokens: the last one's final target
        write_shard(os.path.join(out, f"{split}_000000.bin"), tokens)
        if split == "val":
            with open(os.path.join(out, "val_answers.txt"), "w") as f:
                f.write("".join(f"{i}\n" for i in index))
            meta = {"seq_len": T, "distances": dist, "queries": queries, "distractors": distractors,
                    "samples": n, "seed": seed, "token_ranges": {"noise": [base, base + noise],
                    "keys": [base + noise, base + noise + keys], "values": [base + noise + keys, base + noise + keys + values]}}
            with open(os.path.join(out, "val_answers.json"), "w") as f:
                json.dump(meta, f)
    return os.path.join(out, "val_answers.txt")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--seq-len", type=int, required=True)
    p.add_argument("--distances", required=True, help="comma-separated key-to-query distances, e.g. 16,64,256,512")
    p.add_argument("--queries", type=int, default=8, help="queried keys per sample (distances used in turn)")
    p.add_argument("--distractors", type=int, default=8, help="pairs per sample that are never queried")
    p.add_argument("--train-samples", type=int, default=2048)
    p.add_argument("--val-samples", type=int, default=256)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--base", type=int, default=1000, help="first token id used")
    p.add_argument("--noise", type=int, default=32, help="noise token ids")
    p.add_argument("--keys", type=int, default=256)
    p.add_argument("--values", type=int, default=256)
    a = p.parse_args()
    generate(a.out, a.seq_len, [int(x) for x in a.distances.split(",")], a.queries, a.distractors,
             a.train_samples, a.val_samples, a.seed, a.base, a.noise, a.keys, a.values)


if __name__ == "__main__":
    main()
