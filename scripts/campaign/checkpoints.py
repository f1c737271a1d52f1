"""Checkpoint corruptions: `mpc run FILE --weights W` on a checkpoint of a small token
model damaged (truncation, bit flips, header length and JSON edits, dtypes, shapes,
offsets, missing, renamed and extra tensors, metadata edits such as huge dims, NaN
weights) or replaced by another model's checkpoint."""

import shutil
import struct
import subprocess
import sys

from common import CKPT_MODEL, ROOT, Case, join_safetensors, split_safetensors


def corrupt_checkpoint(rng, base, other):
    split = split_safetensors(base)
    header, body = split
    names = sorted(k for k in header if k != "__metadata__")
    op = rng.randrange(16)
    if op == 0:
        return base[:rng.randrange(len(base))], "truncated"
    if op == 1:
        b = bytearray(base)
        for _ in range(rng.randint(1, 8)):
            k = rng.randrange(len(b))
            b[k] ^= 1 << rng.randrange(8)
        return bytes(b), "bit flips"
    if op == 2:
        b = bytearray(base)
        n = struct.unpack("<Q", base[:8])[0]
        for _ in range(rng.randint(1, 4)):
            k = rng.randrange(8, 8 + n)
            b[k] ^= 1 << rng.randrange(8)
        return bytes(b), "header bit flips"
    if op == 3:
        v = rng.choice([0, 1, 7, 2**63, 2**64 - 1, len(base), len(base) - 8, 100000000])
        return struct.pack("<Q", v) + base[8:], f"header length {v}"
    if op == 4:
        t = rng.choice(names)
        header[t]["dtype"] = rng.choice(["F16", "BF16", "I32", "F64", "U8", "BOOL", "X", ""])
        return join_safetensors(header, body), f"{t} dtype {header[t]['dtype']}"
    if op == 5:
        t = rng.choice(names)
        shape = header[t]["shape"]
        new = rng.choice([[], [0], shape[::-1], shape + [1], [4000000000], [-1] + shape[1:],
                          [2**63] * 2, [1] * 40, [shape[0] * 2] + shape[1:]])
        header[t]["shape"] = new
        return join_safetensors(header, body), f"{t} shape {new}"
    if op == 6:
        t = rng.choice(names)
        a, b = header[t]["data_offsets"]
        new = rng.choice([[b, a], [a, b + 4], [a, 2**64 - 1], [-1, b], [a, a], [0, len(body) + 8]])
        header[t]["data_offsets"] = new
        return join_safetensors(header, body), f"{t} offsets {new}"
    if op == 7:
        t = rng.choice(names)
        del header[t]
        return join_safetensors(header, body), f"{t} removed from the header"
    if op == 8:
        t = rng.choice(names)
        header[t + "x"] = header.pop(t)
        return join_safetensors(header, body), f"{t} renamed"
    if op == 9:
        meta = header.setdefault("__metadata__", {})
        key = rng.choice(["dims", "dims", "dims", "step", "seed", "model", "format"])
        val = rng.choice({
            "dims": ["B=0", "B=99999999999", "T=4000000000", "B=-1", "", "B", "X=3",
                     "B=16,B=2", "T=0", "B=4000000000,T=4000000000", "B=1,T=1", "=,=,",
                     "B=18446744073709551616", "B=2,T=3,Z=1"],
            "step": ["-1", "x", "99999999999", "", "2147483648"],
            "seed": ["-1", "x", "18446744073709551616", ""],
            "model": ["", "Other", "x" * 10000],
            "format": ["other", "", "pt"],
        }[key])
        meta[key] = val
        return join_safetensors(header, body), f"metadata {key}={val[:40]!r}"
    if op == 10:
        header.pop("__metadata__", None)
        return join_safetensors(header, body), "no metadata"
    if op == 11:
        b = bytearray(body)
        for _ in range(rng.randint(1, 10)):
            k = rng.randrange(len(b) // 4) * 4
            b[k:k + 4] = struct.pack("<f", rng.choice([float("nan"), float("inf"), -float("inf"), 3e38]))
        return join_safetensors(header, bytes(b)), "NaN/inf weights"
    if op == 12:
        return other, "another model's checkpoint"
    if op == 13:
        return base[:8] + b"{not json" + base[17:], "invalid JSON"
    if op == 14:
        n = struct.unpack("<Q", base[:8])[0]
        return base[:8 + n // 2] + b"\xff\xfe" + base[10 + n // 2:], "invalid UTF-8 header"
    extra = dict(header)
    extra["z.extra"] = {"dtype": "F32", "shape": [1], "data_offsets": [len(body), len(body) + 4]}
    return join_safetensors(extra, body + b"\0\0\0\0"), "an extra tensor"


def make_checkpoints(mpc, work):
    """Trains CKPT_MODEL and the graph example once each and saves their checkpoints."""
    d = work / "base-checkpoints"
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    (d / "ck.mp").write_text(CKPT_MODEL)
    for model, out in [("ck.mp", "ck.safetensors"), (str(ROOT / "examples/graph.mp"), "graph.safetensors")]:
        r = subprocess.run([mpc, "train", model, "--epochs", "1", "--threads", "1", "--save", out],
                           cwd=d, capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"cannot make the base checkpoint {out}: {r.stderr}")
    return (d / "ck.safetensors").read_bytes(), (d / "graph.safetensors").read_bytes()


def checkpoint_cases(rng, count, base, other):
    for n in range(count):
        data, what = corrupt_checkpoint(rng, base, other)
        args = ["run", "ck.mp", "--weights", "w.safetensors"]
        if rng.random() < 0.2:
            args += ["--out", "preds.npy"]
        if rng.random() < 0.2:
            args += ["--json"]
        c = Case("checkpoint", n, f"Ck checkpoint: {what}", args)
        yield c.add("ck.mp", CKPT_MODEL).add("w.safetensors", data)
