#!/usr/bin/env python3
"""Fits the rational tanh of compiler/src/codegen/ptx/math.rs (TANH_P, TANH_Q).

tanh(x) = x P(x^2) / Q(x^2) for |x| <= 7.905311 (then clamped; 1 from |x| = 9 on),
P and Q of degree 4 with P(0) = Q(0) = 1, by least squares on the linearized relative
error P - f Q (f = tanh(x)/x) weighted by 1/(f Q) of the previous iterate (Loeb's
method), on Chebyshev points of [0, 7.905311]. Prints the coefficients as f32 bits and
the largest relative error of the f32 evaluation with fma (as the backends evaluate
it) against f64 tanh. Needs numpy (bench/.venv has it):

    bench/.venv/bin/python scripts/fit_tanh.py
"""
import numpy as np

CLAMP = 7.90531110763549805
DEGREE = 4


def fit(iterations=30):
    n = 6000
    t = np.cos(np.pi * (np.arange(n) + 0.5) / n)
    x = np.concatenate([(t + 1) / 2 * CLAMP, np.linspace(0, CLAMP, 4000)])
    s = x * x
    f = np.where(x > 0, np.tanh(x) / np.where(x > 0, x, 1), 1.0)
    weight = np.ones_like(s)
    powers = np.vander(s, DEGREE + 1, increasing=True)
    for _ in range(iterations):
        # Unknowns: p0..p4, q1..q4 (q0 = 1); rows: P(s) - f (Q(s) - 1) = f.
        a = np.concatenate([powers, -f[:, None] * powers[:, 1:]], axis=1)
        coef, *_ = np.linalg.lstsq(a * weight[:, None], f * weight, rcond=None)
        p, q = coef[: DEGREE + 1], np.concatenate([[1.0], coef[DEGREE + 1 :]])
        weight = 1 / np.abs(f * np.polyval(q[::-1], s))
    p[0] = 1.0  # exactly x near 0
    return np.float32(p), np.float32(q)


def fma32(a, b, c):
    # An f32 fma: the f64 product of two f32 is exact; one rounding to f32.
    return (a.astype(np.float64) * b.astype(np.float64) + c.astype(np.float64)).astype(np.float32)


def model(x, p, q):
    x = x.astype(np.float32)
    a = np.abs(x)
    c = np.minimum(a, np.float32(CLAMP))
    s = c * c
    poly = []
    for k in (p, q):
        r = np.full_like(s, k[-1])
        for coef in k[-2::-1]:
            r = fma32(r, s, np.full_like(s, coef))
        poly.append(r)
    y = (c * poly[0]) / poly[1]
    y = np.where(a >= 9, np.float32(1), y)
    return np.copysign(y, x)


def main():
    p, q = fit()
    for name, k in (("TANH_P", p), ("TANH_Q", q)):
        print(name, [hex(v.view(np.uint32)) for v in k])
    x = np.concatenate([np.linspace(-12, 12, 2_000_001), np.linspace(-1e-3, 1e-3, 100_001)]).astype(np.float32)
    x = x[x != 0]
    exact = np.tanh(x.astype(np.float64))
    rel = np.abs(model(x, p, q) - exact) / np.abs(exact)
    print("largest relative error", rel.max(), "; below 1e-3:", rel[np.abs(x) < 1e-3].max())


if __name__ == "__main__":
    main()
