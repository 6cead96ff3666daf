#!/usr/bin/python3
"""Reference for owl's perplexity statistics (src/eval/ppl.c), in float64.

usage: ppl_ref.py LOGITS BASE_LOGITS TARGETS N_VOCAB

LOGITS and BASE_LOGITS: float32 little-endian, n x N_VOCAB (the model's and
the base model's logits at n scored positions); TARGETS: int32 little-endian,
n (the token that follows each position). Prints one line:

  n ppl ppl_err base_ppl base_ppl_err ratio ratio_err kl kl_err agree agree_err
  kl_median kl_p99 kl_max

ppl = exp(mean nll), its error by the delta method from the standard error of
the mean nll (sample variance with n - 1); ratio = exp(mean(nll - base_nll));
kl = mean over positions of KL(base || model); agree = share of positions
whose argmaxes are equal, with the binomial standard error; quantiles of
the per-position KL by NumPy's default (linear) percentile."""
import sys

import numpy as np


def log_softmax(x):
    m = x.max(axis=1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=1, keepdims=True))


def sem(v):
    n = len(v)
    return np.sqrt(np.var(v) / (n - 1)) if n > 1 else 0.0


def main():
    nv = int(sys.argv[4])
    lm = np.fromfile(sys.argv[1], dtype="<f4").astype(np.float64).reshape(-1, nv)
    lb = np.fromfile(sys.argv[2], dtype="<f4").astype(np.float64).reshape(-1, nv)
    t = np.fromfile(sys.argv[3], dtype="<i4")
    n = len(t)
    pm, pb = log_softmax(lm), log_softmax(lb)
    nll = -pm[np.arange(n), t]
    bnll = -pb[np.arange(n), t]
    kl = (np.exp(pb) * (pb - pm)).sum(axis=1)
    agree = (lm.argmax(axis=1) == lb.argmax(axis=1)).astype(np.float64)
    ppl, bppl, ratio = np.exp(nll.mean()), np.exp(bnll.mean()), np.exp((nll - bnll).mean())
    a = agree.mean()
    out = [n, ppl, ppl * sem(nll), bppl, bppl * sem(bnll), ratio, ratio * sem(nll - bnll),
           kl.mean(), sem(kl), a, np.sqrt(a * (1 - a) / (n - 1)),
           np.percentile(kl, 50), np.percentile(kl, 99), kl.max()]
    print(" ".join(repr(float(x)) for x in out))


main()
