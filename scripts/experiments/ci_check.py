#!/usr/bin/env python3
"""CI test of the experiment layer (ctest -R experiments): the toy preset end to end on tiny
synthetic shards, then checks that every table and plot exists, that the quality and length tables
have a row for every variant (the NSA rows included), and that rebuilding the report from the run
folder gives the same tables.

    python3 scripts/experiments/ci_check.py --gfwa build/gfwa --work DIR"""
import argparse
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import report  # noqa: E402
from presets import VARIANTS  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--gfwa", required=True)
    ap.add_argument("--work", required=True, help="scratch folder (emptied first)")
    a = ap.parse_args()
    shutil.rmtree(a.work, ignore_errors=True)
    data, run = os.path.join(a.work, "data"), os.path.join(a.work, "run")
    py = sys.executable
    subprocess.run([py, os.path.join(HERE, "make_toy_shards.py"), "--out", data], check=True)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    rc = subprocess.run([py, os.path.join(HERE, "run.py"), "--data", data, "--out", run, "--preset", "toy",
                         "--gfwa", a.gfwa], env=env).returncode
    problems = [] if rc == 0 else [f"run.py exited {rc}"]
    out = os.path.join(run, "report")
    for name in report.TABLES + ["report"]:
        path = os.path.join(out, name + ".md")
        rows = [line for line in open(path) if line.startswith("| ")] if os.path.exists(path) else []
        if len(rows) < 2:  # a header and at least one row
            problems.append(f"table {name}.md missing or empty")
    for name in ("quality", "length"):
        path = os.path.join(out, name + ".md")
        text = open(path).read() if os.path.exists(path) else ""
        problems += [f"table {name}.md has no row for {v}" for v in VARIANTS if f"| {v} |" not in text]
    for name in report.PLOTS:
        path = os.path.join(out, name + ".png")
        if not os.path.exists(path) or os.path.getsize(path) < 1000:
            problems.append(f"plot {name}.png missing")
    tables = {n: open(os.path.join(out, n + ".md")).read() for n in report.TABLES if os.path.exists(os.path.join(out, n + ".md"))}
    missing = report.build(run, plots=False)
    problems += [f"missing result: {m}" for m in missing]
    for n, text in tables.items():
        if open(os.path.join(out, n + ".md")).read() != text:
            problems.append(f"{n}.md differs when rebuilt from the run folder")
    for p in problems:
        print(f"ci_check: {p}")
    print("ci_check: " + ("FAILED" if problems else f"ok: {len(report.TABLES)} tables, {len(report.PLOTS)} plots"))
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
