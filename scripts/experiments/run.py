#!/usr/bin/env python3
"""The paper's experiments from one command (docs/results.md): quality, length extrapolation,
throughput and memory, learned gates, associative recall. Drives the `gfwa` binary only.

    python3 scripts/experiments/run.py --data DIR --out RUN --preset toy|h200|paper

DIR holds *train_*.bin and *val_*.bin (llm.c shards: train_000000.bin, fineweb_train_000001.bin,
...). RUN receives one folder per stage with each run's config, logs, metrics.jsonl and evaluation
JSON, and RUN/report/: every table as Markdown (report.md gathers them) and every plot as PNG,
built from those files alone (report.py RUN rebuilds it). Re-running the same command skips what
is done (training resumes, finished evaluations are kept), so an interrupted run continues and a
finished one gives the same report.
A step that fails is recorded in RUN/failures.json and the report, the others still run; the
exit status is then 1."""
import argparse
import glob
import json
import math
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import recall_data  # noqa: E402
import report  # noqa: E402
import shards  # noqa: E402
from presets import PRESETS, VARIANTS, gated  # noqa: E402

REPO = os.path.dirname(os.path.dirname(HERE))
SEED = 1337


class Runner:
    """Runs gfwa commands with their output in a log file; remembers failures."""

    def __init__(self, gfwa, out, timeout, launcher, budget):
        self.gfwa, self.out, self.timeout, self.launcher = gfwa, out, timeout, launcher
        self.deadline = time.time() + budget if budget else None
        self.failures = []
        self.skipped = False  # the latest command was not run: the budget was spent

    def run(self, stage, what, cmd, log, env=None):
        t0 = time.time()
        self.skipped = False
        limit = self.timeout
        if self.deadline is not None:
            left = self.deadline - t0
            if left < 1:
                print(f"[{stage}] {what}: skipped (--budget spent)", flush=True)
                self.skipped = True
                self.failures.append({"stage": stage, "what": what, "exit": None, "log": "",
                                      "last_lines": ["skipped: the --budget was spent"]})
                return False
            limit = min(limit or left, left)
        with open(log, "a") as f:
            f.write(f"$ {' '.join(cmd)}\n")
            f.flush()
            try:
                rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, timeout=limit, env=env).returncode
            except subprocess.TimeoutExpired:  # the child is killed
                rc = 124
        secs = time.time() - t0
        print(f"[{stage}] {what}: {'ok' if rc == 0 else f'FAILED (exit {rc})'} in {secs:.1f}s", flush=True)
        if rc != 0:
            with open(log) as f:
                tail = [line.rstrip() for line in f.readlines()[-3:]]
            self.failures.append({"stage": stage, "what": what, "exit": rc, "log": os.path.relpath(log, self.out),
                                  "last_lines": tail})
        return rc == 0

    def train(self, stage, what, folder, config, launch=False):
        """Trains (or resumes, or finds finished) the run in folder, through the launcher when launch;
        True when it has a final checkpoint."""
        os.makedirs(folder, exist_ok=True)
        cfg_path = os.path.join(folder, "config_in.json")
        with open(cfg_path, "w") as f:
            json.dump(config, f, indent=1)
        args = ["--config", cfg_path, "--out", folder, "--resume", "auto"]
        if launch and self.launcher:
            cmd, env = [self.launcher] + args, dict(os.environ, GFWA=self.gfwa)
        else:
            cmd, env = [self.gfwa, "train"] + args, None
        return self.run(stage, what, cmd, os.path.join(folder, "run.log"), env) and last_checkpoint(folder) is not None

    def eval(self, stage, what, checkpoint, log, args):
        return self.run(stage, what, [self.gfwa, "eval", "--checkpoint", checkpoint] + args, log)


def last_checkpoint(folder):
    found = sorted(glob.glob(os.path.join(folder, "checkpoints", "step_*")))
    return found[-1] if found else None


def resolve_gfwa(path):
    for cand in ([path] if path else [os.path.join(REPO, "build", "gfwa"), shutil.which("gfwa")]):
        if cand and os.access(cand, os.X_OK):
            return os.path.abspath(cand)
    sys.exit("run.py: no gfwa binary (build it with scripts/build.sh, or give --gfwa PATH)")


def make_plan(args):
    p = json.loads(json.dumps(PRESETS[args.preset]))
    p["preset"] = args.preset
    p["data"] = os.path.abspath(args.data)
    if args.backend:
        p["backend"] = args.backend
    for split in ("train", "val"):
        if not glob.glob(os.path.join(p["data"], f"*{split}_*.bin")):
            sys.exit(f"run.py: --data {args.data}: no *{split}_*.bin shards there")
    if p["vocab_size"] == "auto":
        top = max(shards.max_token_id(os.path.join(p["data"], f"*{s}_*.bin")) for s in ("train", "val"))
        rc = p["recall"]
        top = max(top, rc["base"] + rc["noise"] + rc["keys"] + rc["values"] - 1)
        p["vocab_size"] = (top // 64 + 1) * 64
    return p


def model_config(plan, variant, data, T, B, steps, lr, eval_every, eval_batches, tokens_per_step=0, log_every=10):
    attn = dict(VARIANTS[variant], window=plan["window"])
    if attn["mode"] == "nsa":
        attn["nsa"] = dict(attn["nsa"], **plan["nsa"])
    return {
        "model": dict(plan["model"], vocab_size=plan["vocab_size"], attention=attn),
        "optimizer": {"lr": lr},
        "schedule": {"type": "cosine", "warmup_steps": min(plan["warmup"], max(0, steps - 1))},
        "train": {"backend": plan["backend"], "seed": SEED, "batch_size": B, "seq_len": T, "max_steps": steps,
                  "tokens_per_step": tokens_per_step},
        "eval": {"every": eval_every, "batches": eval_batches},
        "data": {"train": os.path.join(data, "*train_*.bin"), "val": os.path.join(data, "*val_*.bin")},
        "checkpoint": {"every": 0, "keep_last": 1},
        "logging": {"every": log_every},
    }


def val_windows(data, T):
    """Windows of T tokens the validation loader cuts (per shard: (tokens - 1) // T)."""
    return sum((shards.read_header(p)[0] - 1) // T for p in sorted(glob.glob(os.path.join(data, "*val_*.bin"))))


def eval_shape(plan, T_eval):
    """Batch size and batches for `eval_tokens` validation tokens at T_eval (the same text at every
    length: the split's first tokens); None when the split is shorter than one window."""
    B = max(1, plan["batch_size"] * plan["seq_len"] // T_eval)
    available = val_windows(plan["data"], T_eval) // B
    if available == 0:
        return None
    return B, min(available, max(1, plan["eval_tokens"] // (B * T_eval)))


def stage_quality(run, plan, out):
    """Train every variant; evaluate each at T (per position, gates) and at every length factor."""
    T, B, steps = plan["seq_len"], plan["batch_size"], plan["steps"]
    for v in VARIANTS:
        folder = os.path.join(out, "quality", v)
        cfg = model_config(plan, v, plan["data"], T, B, steps, plan["lr"], plan["eval_every"],
                           max(1, plan["eval_tokens"] // (B * T)), plan.get("tokens_per_step", 0))
        if not run.train("quality", f"train {v}", folder, cfg, launch=True):
            continue
        ck = last_checkpoint(folder)
        for f in plan["length_factors"]:
            T_eval = f * T
            dest = os.path.join(folder, f"eval_T{T_eval}.json")
            shape = eval_shape(plan, T_eval)
            if os.path.exists(dest):
                continue
            if shape is None:
                print(f"[length] {v} at T {T_eval}: the validation split holds no window that long: skipped")
                continue
            extra = []
            if f == 1 and gated(v):
                extra = ["--gate-stats", os.path.join(folder, "gates.json")]
            run.eval("length" if f > 1 else "quality", f"eval {v} at T {T_eval}", ck, os.path.join(folder, "eval.log"),
                     ["--seq-len", str(T_eval), "--batch-size", str(shape[0]), "--batches", str(shape[1]),
                      "--per-position", dest] + extra)


def stage_throughput(run, plan, out):
    """Short training runs at a fixed number of tokens per step, T from the preset's list."""
    tp = plan["throughput"]
    for v in tp["variants"]:
        for T in tp["seq_lens"]:
            folder = os.path.join(out, "throughput", f"{v}_T{T}")
            if os.path.exists(os.path.join(folder, "done")) or os.path.exists(os.path.join(folder, "failed")):
                continue
            B = max(1, tp["tokens_per_step"] // T)
            if val_windows(plan["data"], T) == 0:
                print(f"[throughput] {v} at T {T}: the validation split holds no window that long: skipped")
                continue
            cfg = model_config(plan, v, plan["data"], T, B, tp["steps"], plan["lr"], 0, 1, 0, log_every=1)
            ok = run.train("throughput", f"{v} at T {T} (B {B})", folder, cfg)
            if not run.skipped:  # a failure (out of memory) is a result too; a skipped run is tried again
                open(os.path.join(folder, "done" if ok else "failed"), "w").close()
            shutil.rmtree(os.path.join(folder, "checkpoints"), ignore_errors=True)


def stage_recall(run, plan, out):
    rc = plan["recall"]
    data = os.path.join(out, "recall", "data")
    if not os.path.exists(os.path.join(data, "val_answers.json")):
        recall_data.generate(data, rc["seq_len"], rc["distances"], rc["queries"], rc["distractors"],
                             rc["train_samples"], rc["val_samples"], SEED, rc["base"], rc["noise"], rc["keys"],
                             rc["values"])
    T, B = rc["seq_len"], rc["batch_size"]
    eval_B = math.gcd(rc["val_samples"], B)  # whole batches cover every validation window
    for v in rc["variants"]:
        folder = os.path.join(out, "recall", v)
        dest = os.path.join(folder, "eval.json")
        if os.path.exists(dest):
            continue
        cfg = model_config(plan, v, data, T, B, rc["steps"], rc["lr"], 0, max(1, rc["val_samples"] // B))
        if run.train("recall", f"train {v}", folder, cfg):
            run.eval("recall", f"eval {v}", last_checkpoint(folder), os.path.join(folder, "eval.log"),
                     ["--batch-size", str(eval_B), "--batches", "0", "--per-position", dest,
                      "--answers", os.path.join(data, "val_answers.txt")])


STAGES = {"quality": stage_quality, "throughput": stage_throughput, "recall": stage_recall}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="folder of *train_*.bin and *val_*.bin shards")
    ap.add_argument("--out", required=True, help="run folder (created; re-running continues it)")
    ap.add_argument("--preset", choices=sorted(PRESETS), default="toy")
    ap.add_argument("--gfwa", help="the gfwa binary (default: build/gfwa, else gfwa on PATH)")
    ap.add_argument("--backend", choices=["auto", "cpu", "cuda"], help="override the preset's train.backend")
    ap.add_argument("--stages", default=",".join(STAGES),
                    help="comma-separated subset of quality,throughput,recall (quality includes length and gates)")
    ap.add_argument("--timeout", type=float, help="seconds allowed to each gfwa command")
    ap.add_argument("--budget", type=float, help="seconds for all the commands: once spent, the remaining steps "
                    "are skipped (recorded as failures) and the report is built from what is there")
    ap.add_argument("--train-launcher", help="start the quality stage's training through this script (called as "
                    "SCRIPT CONFIG [gfwa train options], GFWA set), e.g. scripts/launch/torchrun_env.sh for every "
                    "GPU of a node; throughput and recall runs stay on one device")
    ap.add_argument("--no-plots", action="store_true", help="tables only (no matplotlib needed)")
    ap.add_argument("--report-only", action="store_true", help="rebuild RUN/report from the files already there")
    args = ap.parse_args()
    out = os.path.abspath(args.out)
    if not args.report_only:
        if not args.data:
            ap.error("--data is required (unless --report-only)")
        stages = [s for s in args.stages.split(",") if s]
        for s in stages:
            if s not in STAGES:
                ap.error(f"--stages: unknown stage '{s}' (expected {', '.join(STAGES)})")
        if not args.no_plots:
            report.require_matplotlib()
        plan = make_plan(args)
        os.makedirs(out, exist_ok=True)
        plan_path = os.path.join(out, "plan.json")
        if os.path.exists(plan_path):
            with open(plan_path) as f:
                old = json.load(f)
            if old != plan:
                sys.exit(f"run.py: {out} holds a run of another plan (preset, data or backend): use another --out")
        else:
            with open(plan_path, "w") as f:
                json.dump(plan, f, indent=1)
        run = Runner(resolve_gfwa(args.gfwa), out, args.timeout, args.train_launcher, args.budget)
        for s in stages:
            STAGES[s](run, plan, out)
        with open(os.path.join(out, "failures.json"), "w") as f:
            json.dump(run.failures, f, indent=1)
    missing = report.build(out, plots=not args.no_plots)
    failures = report.load_json(os.path.join(out, "failures.json"), [])
    print(f"report: {os.path.join(out, 'report', 'report.md')}"
          + (f" ({len(failures)} failed steps, see failures.json)" if failures else ""))
    if missing:
        print("report: missing results: " + "; ".join(missing))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
