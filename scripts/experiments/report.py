#!/usr/bin/env python3
"""Builds RUN/report/ (tables as Markdown, plots as PNG, report.md gathering them) from the files
run.py left in RUN: plan.json, each run's metrics.jsonl and train.log, the evaluation JSON of
`gfwa eval --per-position / --gate-stats`, the recall answers. Reads nothing else, so the same
files always give the same report.

    python3 scripts/experiments/report.py RUN [--no-plots]"""
import argparse
import glob
import json
import math
import os
import re
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from presets import VARIANTS, gated  # noqa: E402

TABLES = ["quality", "length", "throughput", "gates", "recall"]
PLOTS = ["quality_loss_curves", "quality_loss_by_position", "length_perplexity", "length_loss_by_position",
         "throughput", "gates_heatmap", "gates_alpha", "recall_accuracy"]


def require_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        sys.exit("report: matplotlib is missing (apt-get install python3-matplotlib), or pass --no-plots")


def load_json(path, default=None):
    if not os.path.exists(path):
        return default
    with open(path) as f:
        return json.load(f)


def records(path, kind):
    out = []
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line:
                    r = json.loads(line)
                    if r.get("type") == kind:
                        out.append(r)
    return out


def params_millions(folder):
    path = os.path.join(folder, "train.log")
    if os.path.exists(path):
        with open(path) as f:
            found = re.findall(r"\| ([0-9.]+)M parameters \|", f.read())
        if found:
            return float(found[-1])
    return None


def fmt(x, digits=3):
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    if isinstance(x, int):
        return f"{x:,}"
    return f"{x:.{digits}f}"


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def buckets(values, n=64):
    """(centre position, mean) of up to n equal runs of positions: a readable curve at any T."""
    size = max(1, len(values) // n)
    out = []
    for s in range(0, len(values), size):
        part = values[s:s + size]
        out.append((s + (len(part) - 1) / 2, sum(part) / len(part)))
    return out


class Report:
    def __init__(self, run, plots):
        self.run, self.plots = run, plots
        self.dir = os.path.join(run, "report")
        self.plan = load_json(os.path.join(run, "plan.json"))
        if self.plan is None:
            sys.exit(f"report: {run}/plan.json is missing: not a run folder of run.py")
        self.sections, self.missing = [], []
        if plots:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
            self.plt = plt

    def path(self, *parts):
        return os.path.join(self.run, *parts)

    def write_table(self, name, title, intro, text):
        with open(os.path.join(self.dir, name + ".md"), "w") as f:
            f.write(f"## {title}\n\n{intro}\n\n{text}")
        self.sections.append((title, intro, text, name))

    def save_plot(self, fig, name):
        fig.tight_layout()
        fig.savefig(os.path.join(self.dir, name + ".png"), dpi=110)
        self.plt.close(fig)

    def variants(self):
        return [v for v in VARIANTS if os.path.isdir(self.path("quality", v))]

    # 1. Quality
    def quality(self):
        p, T = self.plan, self.plan["seq_len"]
        rows, curves, positions = [], {}, {}
        for v in self.variants():
            folder = self.path("quality", v)
            ev = load_json(os.path.join(folder, f"eval_T{T}.json"))
            train = records(os.path.join(folder, "metrics.jsonl"), "train")
            if ev is None:
                self.missing.append(f"quality: {v} has no evaluation at T {T}")
                continue
            tps = [r["tokens_per_s"] for r in train[1:] or train if r.get("tokens_per_s")]
            rows.append([v, fmt(params_millions(folder), 2), fmt(train[-1]["tokens"] if train else None),
                         fmt(ev["loss"], 4), fmt(ev["perplexity"], 2), fmt(ev["bits_per_byte"], 4),
                         fmt(ev["tokens"]), fmt(statistics.median(tps) if tps else None, 0)])
            curves[v] = (train, records(os.path.join(folder, "metrics.jsonl"), "eval"))
            positions[v] = ev["loss_by_position"]
        intro = (f"Same data, seed, model ({p['model']['n_layers']} layers, d {p['model']['d_model']}, "
                 f"{p['model']['n_heads']} heads, vocabulary {p['vocab_size']}), T {T}, window {p['window']}, "
                 f"{p['steps']} steps: validation loss (nats/token), perplexity and bits per byte of the final "
                 f"checkpoint on the first {p['eval_tokens']:,} validation tokens (bits per byte: n/a when the "
                 "shards record no byte count)."
                 + (f" NSA rows: blocks of {p['nsa']['block']}, top {p['nsa']['top_k']} blocks per query group, the "
                    "window as the sliding branch's." if "nsa" in p else ""))
        self.write_table("quality", "Quality", intro, table(
            ["variant", "params (M)", "train tokens", "val loss", "perplexity", "bits/byte", "val tokens",
             "train tok/s (median)"], rows))
        if not self.plots or not rows:
            return
        fig, ax = self.plt.subplots(figsize=(7, 4.5))
        for v, (train, evals) in curves.items():
            line, = ax.plot([r["tokens"] for r in train], [r["loss"] for r in train], lw=1, alpha=0.8, label=f"{v} train")
            per_step = train[-1]["tokens"] / train[-1]["step"] if train else 0
            ax.plot([r["step"] * per_step for r in evals], [r["val_loss"] for r in evals], "o--",
                    color=line.get_color(), ms=4, label=f"{v} val")
        ax.set(xlabel="training tokens", ylabel="loss (nats/token)", title="Loss curves")
        ax.legend(fontsize=8)
        self.save_plot(fig, "quality_loss_curves")
        fig, ax = self.plt.subplots(figsize=(7, 4.5))
        for v, losses in positions.items():
            pts = buckets(losses)
            ax.plot([x for x, _ in pts], [y for _, y in pts], label=v)
        ax.axvline(p["window"], color="gray", ls=":", label=f"window {p['window']}")
        ax.set(xlabel="position in the context", ylabel="val loss (nats/token)", title=f"Loss by position (T {T})")
        ax.legend(fontsize=8)
        self.save_plot(fig, "quality_loss_by_position")

    # 2. Length
    def length(self):
        p, T = self.plan, self.plan["seq_len"]
        lengths = [f * T for f in p["length_factors"]]
        rows, series, longest = [], {}, {}
        for v in self.variants():
            evs = {L: load_json(self.path("quality", v, f"eval_T{L}.json")) for L in lengths}
            rows.append([v] + [fmt(evs[L]["perplexity"], 2) if evs[L] else "n/a" for L in lengths])
            series[v] = [(L, evs[L]["perplexity"]) for L in lengths if evs[L]]
            done = [L for L in lengths if evs[L]]
            if done:
                longest[v] = (done[-1], evs[done[-1]]["loss_by_position"])
            if len(done) < len(lengths):
                self.missing.append(f"length: {v} lacks T_eval {[L for L in lengths if not evs[L]]}")
        intro = (f"Validation perplexity of the models trained at T {T} (window {p['window']}), evaluated on "
                 "windows of T_eval tokens (`gfwa eval --seq-len`), the same validation text at every length. "
                 "Windowed models should hold; full attention meets positions it never trained on.")
        self.write_table("length", "Length extrapolation", intro,
                         table(["variant"] + [f"T_eval {L}" for L in lengths], rows))
        if not self.plots or not series:
            return
        fig, ax = self.plt.subplots(figsize=(6, 4.5))
        for v, pts in series.items():
            ax.plot([x for x, _ in pts], [y for _, y in pts], "o-", label=v)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.axvline(T, color="gray", ls=":", label=f"trained T {T}")
        ax.set(xlabel="T_eval (tokens)", ylabel="val perplexity", title="Perplexity against evaluation length")
        ax.legend(fontsize=8)
        self.save_plot(fig, "length_perplexity")
        fig, ax = self.plt.subplots(figsize=(7, 4.5))
        for v, (L, losses) in longest.items():
            pts = buckets(losses)
            ax.plot([x for x, _ in pts], [y for _, y in pts], label=f"{v} (T_eval {L})")
        ax.axvline(T, color="gray", ls=":", label=f"trained T {T}")
        ax.set(xlabel="position in the context", ylabel="val loss (nats/token)",
               title="Loss by position at the longest T_eval")
        ax.legend(fontsize=8)
        self.save_plot(fig, "length_loss_by_position")

    # 3. Throughput and memory
    def throughput(self):
        tp = self.plan["throughput"]
        res = {}
        for v in tp["variants"]:
            for T in tp["seq_lens"]:
                folder = self.path("throughput", f"{v}_T{T}")
                train = records(os.path.join(folder, "metrics.jsonl"), "train")
                tps = [r["tokens_per_s"] for r in train[1:] if r.get("tokens_per_s")]  # step 1 warms up
                mem = [r["memory_bytes"] for r in train if r.get("memory_bytes")]
                if os.path.exists(os.path.join(folder, "failed")):
                    res[v, T] = "failed"
                elif tps:
                    res[v, T] = (statistics.median(tps), max(mem) if mem else None)
                else:
                    self.missing.append(f"throughput: {v} at T {T}")
        def cell(v, T):
            r = res.get((v, T))
            if r is None or r == "failed":
                return r or "n/a"
            return f"{r[0]:,.0f} / {fmt(r[1] / 2**30 if r[1] else None, 2)}"
        rows = [[f"{T:,}", f"{max(1, tp['tokens_per_step'] // T)}"] + [cell(v, T) for v in tp["variants"]]
                for T in tp["seq_lens"]]
        ratio = ""
        both = [T for T in tp["seq_lens"] if isinstance(res.get(("full", T)), tuple)
                and isinstance(res.get(("gatedfwa", T)), tuple)]
        if both:
            T = both[-1]
            f, g = res["full", T], res["gatedfwa", T]
            mem = f" and {g[1] / f[1]:.2f}x its memory" if f[1] and g[1] else ""
            ratio = (f"\nAt the longest T where both ran ({T:,}), GatedFWA trains at {g[0] / f[0]:.2f}x the "
                     f"tokens/s of full attention{mem}.\n")
        intro = (f"Training tokens/s (median over steps 2..{tp['steps']}) / memory in use (GiB: the GPU's for "
                 f"cuda, the resident set size for cpu) at {tp['tokens_per_step']:,} tokens per step "
                 f"(B = tokens / T), window {self.plan['window']}; `failed`: the run did not finish "
                 "(out of memory, see failures.json).")
        self.write_table("throughput", "Throughput and memory", intro,
                         table(["T", "B"] + [f"{v} tok/s / GiB" for v in tp["variants"]], rows) + ratio)
        if not self.plots:
            return
        fig, axes = self.plt.subplots(1, 2, figsize=(11, 4.5))
        if not any(isinstance(r, tuple) for r in res.values()):
            return
        for v in tp["variants"]:
            pts = [(T, res[v, T]) for T in tp["seq_lens"] if isinstance(res.get((v, T)), tuple)]
            axes[0].plot([T for T, _ in pts], [r[0] for _, r in pts], "o-", label=v)
            axes[1].plot([T for T, r in pts if r[1]], [r[1] / 2**30 for _, r in pts if r[1]], "o-", label=v)
        for ax, label in zip(axes, ["training tokens/s", "memory in use (GiB)"]):
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set(xlabel="T (tokens)", ylabel=label)
            ax.legend(fontsize=8)
        axes[0].set_title(f"Throughput at {tp['tokens_per_step']:,} tokens/step")
        axes[1].set_title("Memory")
        self.save_plot(fig, "throughput")

    # 4. Gates
    def gates(self):
        gated_runs = {v: load_json(self.path("quality", v, "gates.json")) for v in self.variants() if gated(v)}
        for v, g in gated_runs.items():
            if g is None:
                self.missing.append(f"gates: {v} has no gates.json")
        gated_runs = {v: g for v, g in gated_runs.items() if g}
        rows = []
        for v, g in gated_runs.items():
            for h in g["heads_stats"]:
                mem = [f"{fmt(m['median'])} / {fmt(m['p90'])} ({100 * m['reached']:.0f}%)" for m in h["memory"]]
                rows.append([v, h["layer"], h["head"], f"{h['alpha_mean']:.3g}", f"{h['alpha_p10']:.3g}",
                             f"{h['alpha_p50']:.3g}", f"{h['alpha_p90']:.3g}"] + mem)
        T = self.plan["seq_len"]
        intro = ("Decay alpha = -log f per layer and head on the validation text, and the effective memory "
                 "length: tokens back from a query until the accumulated gate bias falls below -1 and -5 "
                 f"(median / 90th percentile over queries; n/a when more than that share of queries never "
                 f"reach it within their context of up to T {T}; in brackets the share that does). "
                 f"The window ({self.plan['window']}) cuts attention off anyway beyond it.")
        self.write_table("gates", "Learned gates", intro, table(
            ["variant", "layer", "head", "alpha mean", "alpha p10", "alpha p50", "alpha p90",
             "memory to -1: median / p90", "memory to -5: median / p90"], rows))
        if not self.plots or not gated_runs:
            return
        fig, axes = self.plt.subplots(len(gated_runs), 2, figsize=(10, 3.2 * len(gated_runs) + 0.6), squeeze=False)
        for row, (v, g) in zip(axes, gated_runs.items()):
            L, H = g["layers"], g["heads"]
            grid_a = [[0.0] * H for _ in range(L)]
            grid_m = [[0.0] * H for _ in range(L)]
            for h in g["heads_stats"]:
                grid_a[h["layer"]][h["head"]] = math.log10(max(h["alpha_p50"], 1e-12))
                med = h["memory"][0]["median"]
                grid_m[h["layer"]][h["head"]] = math.log2(med if med is not None else g["seq_len"])
            for ax, grid, title in ((row[0], grid_a, f"{v}: log10 median alpha"),
                                    (row[1], grid_m, f"{v}: log2 memory to -1 (>= T: {g['seq_len']})")):
                im = ax.imshow(grid, aspect="auto", cmap="viridis")
                ax.set(xlabel="head", ylabel="layer", title=title)
                ax.set_xticks(range(H))
                ax.set_yticks(range(L))
                fig.colorbar(im, ax=ax)
        self.save_plot(fig, "gates_heatmap")
        fig, axes = self.plt.subplots(1, len(gated_runs), figsize=(6 * len(gated_runs), 4.2), squeeze=False)
        for ax, (v, g) in zip(axes[0], gated_runs.items()):
            edges = g["alpha_log10_edges"]
            centres = [(a + b) / 2 for a, b in zip(edges, edges[1:])]
            for layer in range(g["layers"]):
                counts = [0] * len(centres)
                for h in g["heads_stats"]:
                    if h["layer"] == layer:
                        counts = [c + x for c, x in zip(counts, h["alpha_histogram"])]
                total = sum(counts) or 1
                ax.plot(centres, [c / total for c in counts], label=f"layer {layer}")
            ax.set(xlabel="log10 alpha", ylabel="share of tokens", title=f"{v}: decay alpha by layer (all heads)")
            ax.legend(fontsize=7)
        self.save_plot(fig, "gates_alpha")

    # 5. Recall
    def recall(self):
        rc = self.plan["recall"]
        meta = load_json(self.path("recall", "data", "val_answers.json"))
        W = self.plan["window"]
        acc = {}
        for v in rc["variants"]:
            ev = load_json(self.path("recall", v, "eval.json"))
            if ev is None or meta is None:
                self.missing.append(f"recall: {v} has no evaluation")
                continue
            by = {}
            for d, ok in zip(meta["distances"], ev["answers"]["correct"]):
                by.setdefault(d, []).append(ok)
            acc[v] = {d: sum(x) / len(x) for d, x in by.items()}
        dists = sorted({d for a in acc.values() for d in a})
        counts = {d: meta["distances"].count(d) for d in dists} if meta else {}
        rows = [[d, "inside" if d <= W - 1 else "beyond", counts.get(d, 0)]
                + [fmt(acc[v].get(d), 3) for v in acc] for d in dists]
        intro = (f"Synthetic multi-query associative recall (recall_data.py): T {rc['seq_len']}, {rc['keys']} keys, "
                 f"{rc['values']} values (chance {1 / rc['values']:.3f}), {rc['queries']} queries and "
                 f"{rc['distractors']} distractor pairs per sample, {rc['steps']} training steps per variant. "
                 f"Arg-max accuracy at the answer positions by the distance from a key's definition to its "
                 f"query, inside or beyond the window ({W}: a query sees keys up to {W - 1} back in one layer).")
        self.write_table("recall", "Associative recall", intro,
                         table(["distance", "window", "answers"] + list(acc), rows))
        if not self.plots or not acc:
            return
        fig, ax = self.plt.subplots(figsize=(6.5, 4.5))
        for v, a in acc.items():
            ax.plot(dists, [a.get(d) for d in dists], "o-", label=v)
        ax.axvline(W - 1, color="gray", ls=":", label=f"window {W}")
        ax.axhline(1 / rc["values"], color="k", lw=0.5, ls="--", label="chance")
        ax.set(xlabel="key-to-query distance (tokens)", ylabel="accuracy", title="Recall against distance",
               ylim=(-0.02, 1.02))
        ax.legend(fontsize=8)
        self.save_plot(fig, "recall_accuracy")

    def build(self):
        os.makedirs(self.dir, exist_ok=True)
        for name in TABLES:
            try:
                getattr(self, name)()
            except Exception as e:  # one broken section must not cost the others (a partial run)
                self.missing.append(f"{name}: the report section failed: {type(e).__name__}: {e}")
        p = self.plan
        lines = [f"# Experiment report: preset {p['preset']}\n",
                 f"Data: `{p['data']}`; backend {p['backend']}; seed 1337. Built by scripts/experiments/report.py "
                 "from this folder's files.\n"]
        failures = load_json(self.path("failures.json"), [])
        if failures:
            lines.append("Failed steps (their results are missing below):\n")
            lines += [f"- {f['stage']}: {f['what']}: exit {f['exit']} ({f['log']}): {' / '.join(f['last_lines'])}"
                      for f in failures]
            lines.append("")
        images = {"quality": ["quality_loss_curves", "quality_loss_by_position"],
                  "length": ["length_perplexity", "length_loss_by_position"], "throughput": ["throughput"],
                  "gates": ["gates_heatmap", "gates_alpha"], "recall": ["recall_accuracy"]}
        for title, intro, text, name in self.sections:
            lines.append(f"## {title}\n\n{intro}\n\n{text}")
            for img in images[name]:
                if os.path.exists(os.path.join(self.dir, img + ".png")):
                    lines.append(f"![{img}]({img}.png)\n")
        with open(os.path.join(self.dir, "report.md"), "w") as f:
            f.write("\n".join(lines))
        self.missing += [f"plot {p}.png" for p in PLOTS if not os.path.exists(os.path.join(self.dir, p + ".png"))
                         and self.plots]
        return self.missing


def build(run, plots=True):
    """Writes RUN/report/; returns what is missing (results absent from RUN), empty when complete."""
    return Report(run, plots).build()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run")
    ap.add_argument("--no-plots", action="store_true")
    a = ap.parse_args()
    if not a.no_plots:
        require_matplotlib()
    missing = build(a.run, plots=not a.no_plots)
    for m in missing:
        print(f"report: missing: {m}")
    print(f"report: {os.path.join(a.run, 'report', 'report.md')}")


if __name__ == "__main__":
    main()
