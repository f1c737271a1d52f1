#!/usr/bin/env python3
"""Fits the rational tanh and erf of compiler/src/codegen/ptx/math.rs (TANH_P, TANH_Q)
and compiler/src/ir/erf.rs (ERF_P, ERF_Q).

f(x) = x P(x^2) / Q(x^2) for |x| <= CLAMP (then evaluated at CLAMP), Q(0) = 1, by least
squares on the linearized relative error P - g Q (g = f(x)/x) weighted by 1/(g Q) of the
previous iterate (Loeb's method), on Chebyshev points of [0, CLAMP]; P(0) is then set to
g(0) in f32 (exactly x near 0 for tanh, 2/sqrt(pi) x for erf). The backends then take
tanh to 1 from |x| = 9 on, and erf to min(y, 1) (the fit overshoots 1 by an ulp near its
clamp, where erf is 1 in f32). Prints the coefficients as f32 bits and the largest
relative error of the f32 evaluation with fma (as the backends evaluate it) against f64.
Needs numpy (bench/.venv has it):

    bench/.venv/bin/python scripts/fit_rational.py tanh|erf
"""
import math
import sys

import numpy as np

# name: (f in f64, f(x)/x at 0, CLAMP, degree of P, degree of Q, the line checked)
FUNCTIONS = {
    "tanh": (np.tanh, 1.0, 7.90531110763549805, 4, 4, 12.0),
    "erf": (np.vectorize(math.erf), 2 / math.sqrt(math.pi), 4.0, 5, 5, 6.0),
}


def fit(f, g0, clamp, dp, dq, iterations=30):
    n = 6000
    t = np.cos(np.pi * (np.arange(n) + 0.5) / n)
    x = np.concatenate([(t + 1) / 2 * clamp, np.linspace(0, clamp, 4000)])
    s = x * x
    g = np.where(x > 0, f(x) / np.where(x > 0, x, 1), g0)
    weight = np.ones_like(s)
    ps, qs = np.vander(s, dp + 1, increasing=True), np.vander(s, dq + 1, increasing=True)
    for _ in range(iterations):
        # Unknowns: p0..p_dp, q1..q_dq (q0 = 1); rows: P(s) - g (Q(s) - 1) = g.
        a = np.concatenate([ps, -g[:, None] * qs[:, 1:]], axis=1)
        coef, *_ = np.linalg.lstsq(a * weight[:, None], g * weight, rcond=None)
        p, q = coef[: dp + 1], np.concatenate([[1.0], coef[dp + 1 :]])
        weight = 1 / np.abs(g * np.polyval(q[::-1], s))
    p[0] = g0
    return np.float32(p), np.float32(q)


def fma32(a, b, c):
    # An f32 fma: the f64 product of two f32 is exact; one rounding to f32.
    return (a.astype(np.float64) * b.astype(np.float64) + c.astype(np.float64)).astype(np.float32)


def model(name, x, p, q, clamp):
    x = x.astype(np.float32)
    a = np.abs(x)
    c = np.minimum(a, np.float32(clamp))
    s = c * c
    poly = []
    for k in (p, q):
        r = np.full_like(s, k[-1])
        for coef in k[-2::-1]:
            r = fma32(r, s, np.full_like(s, coef))
        poly.append(r)
    y = (c * poly[0]) / poly[1]
    y = np.where(a >= 9, np.float32(1), y) if name == "tanh" else np.minimum(y, np.float32(1))
    return np.copysign(y, x)


def main():
    name = sys.argv[1] if len(sys.argv) > 1 else "tanh"
    f, g0, clamp, dp, dq, line = FUNCTIONS[name]
    p, q = fit(f, g0, clamp, dp, dq)
    for part, k in (("P", p), ("Q", q)):
        print(f"{name.upper()}_{part}", [hex(v.view(np.uint32)) for v in k])
    x = np.concatenate([np.linspace(-line, line, 2_000_001), np.linspace(-1e-3, 1e-3, 100_001)]).astype(np.float32)
    x = x[x != 0]
    exact = f(x.astype(np.float64))
    rel = np.abs(model(name, x, p, q, clamp) - exact) / np.abs(exact)
    print("largest relative error", rel.max(), "; below 1e-3:", rel[np.abs(x) < 1e-3].max())


if __name__ == "__main__":
    main()
