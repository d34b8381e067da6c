#!/usr/bin/python3
"""Fits the weights of the core token estimator (src/tokest.c).

Inputs: tests/data/tokcal/counts.tsv (real Llama-3, Qwen2 and o200k counts
of each sample, made by tests/real/tokcount.sh) and the estimator's features
of the same files (the tokest_features tool). The target of each file is the
middle (geometric mean of min and max) of the three tokenizers' counts; the
fit minimises the squared relative error (weights that come out negative are
dropped; digits and non-ASCII characters have fixed costs from how the
tokenizers work). Prints the weights to paste into src/tokest.c, the error
per file and per category.

Usage: fit-tokest.py BUILD_DIR   (run from the source root)
"""
import subprocess, sys
import numpy as np

build = sys.argv[1] if len(sys.argv) > 1 else "build"
rows = [l.rstrip("\n").split("\t") for l in open("tests/data/tokcal/counts.tsv")][1:]
files = ["tests/data/tokcal/" + r[0] for r in rows]
real = np.array([[float(x) for x in r[3:6]] for r in rows])
out = subprocess.run([build + "/tests/tokest_features"] + files, capture_output=True, text=True, check=True).stdout
lines = out.strip().split("\n")
names = lines[0].split("\t")[1:-1]
X = np.array([[float(x) for x in l.split("\t")[1:-1]] for l in lines[1:]])
target = np.sqrt(real.min(1) * real.max(1))

# weights fixed by how the tokenizers work, not fitted (few samples carry them)
fixed = {"digit": 1.0, "mb2": 1.0, "mb3": 1.0, "mb4": 2.0}
fix = np.zeros(X.shape[1])
for k, n in enumerate(names):
    if n in fixed:
        fix[k] = fixed[n]
active = [k for k in range(X.shape[1]) if X[:, k].any() and names[k] not in fixed]
w = np.zeros(X.shape[1])
weights = np.ones(len(target))
for it in range(1):
    A = X[:, active] / target[:, None] * weights[:, None]
    b = (1 - (X @ fix) / target) * weights
    sol, *_ = np.linalg.lstsq(A, b, rcond=None)
    neg = [active[i] for i, v in enumerate(sol) if v < 0]
    if neg:
        active = [k for k in active if k not in neg]
        continue
    w[:] = fix
    w[active] = sol
    err = X @ w / target - 1
    # files where the tokenizers disagree by more than 20% (Qwen2's one
    # token per digit) cannot be within 10% of all three: don't chase them
    feasible = real.max(1) / real.min(1) <= 1.2
    weights = 1 + 4 * np.abs(err) * feasible / max((np.abs(err) * feasible).max(), 1e-9)
est = X @ w
print("weights:")
for n, v in zip(names, w):
    print(f"  [TOKEST_{n.upper()}] = {v:.4f},")
worst = 0
bad = 0
for f, e, r in zip(files, est, real):
    errs = (e - r) / r
    worst = max(worst, np.abs(errs).max())
    flag = "" if np.abs(errs).max() <= 0.10 else "  > 10%"
    bad += flag != ""
    print(f"{f.split('/')[-1]:16s} est {e:8.0f}  llama3 {errs[0]:+6.1%} qwen2 {errs[1]:+6.1%} o200k {errs[2]:+6.1%}{flag}")
print(f"worst {worst:.1%}, {bad} files over 10% of some tokenizer")
cats = sorted(set(f.split('/')[-1].split('-')[0] for f in files))
for c in cats:
    idx = [i for i, f in enumerate(files) if f.split('/')[-1].startswith(c + '-')]
    e = est[idx].sum()
    r = real[idx].sum(0)
    errs = (e - r) / r
    print(f"category {c:11s} llama3 {errs[0]:+6.1%} qwen2 {errs[1]:+6.1%} o200k {errs[2]:+6.1%}")
