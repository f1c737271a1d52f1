#!/usr/bin/env python3
"""A hostile-input campaign against a release `mpc` binary (issue 10): seeded mutations
of the example models through `mpc train FILE --epochs 1`, corrupted data directories
(`--data DIR`, npy and CSV), corrupted checkpoints (`mpc run FILE --weights W`), and a
fixed list of command-line misuse. Every run is classified:

  clean     exit 0, or exit 1 with a line of stderr starting `error:` (rendered
            diagnostics end with their source excerpt, so not always the last line)
            and no `panicked at`
  panic     exit 101, or `panicked at` on stderr
  hang      no exit within --timeout seconds (confirmed by one rerun alone; a run that
            only timed out under parallel load is reported as `slow`, and clean)
  abort     killed by a signal or exit >= 128 (an allocation failure aborts: SIGABRT),
            or any other exit code

and the table `class | tried | clean errors | panics | hangs | aborts/OOM` is printed
(plus `succeeded`: the clean runs that exited 0). Every non-clean case is kept under
OUT/findings/<class>-<n>/ with its files, `cmd.sh` (the reproducer), stdout and stderr.

Python 3 standard library only. Reproducible: the same --seed and --count give the same
cases. Each run has an address-space limit (--memory-gb) so that a huge allocation
fails (an abort, counted) instead of taking the machine down.

  python3 scripts/campaign/run.py --mpc /work/campaign-bin/mpc --out /work/campaign-out \\
      --seed 1 --count model=3000 --count data=400 --count checkpoint=300
"""

import argparse
import concurrent.futures
import json
import os
import random
import re
import resource
import shlex
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLASSES = ["model", "data", "checkpoint", "misuse"]

# --- small models the data and checkpoint classes use -------------------------------

TOKENS_MODEL = """model Tok {
  dims { B = 8, T = 4 }
  input tokens: i32[B, T] vocab 20
  input feats: f32[B, 3]
  label y: i32[B] classes 3
  let z = mean(embed(tokens, 8), axis: 1) + linear(feats, 8)
  loss cross_entropy(linear(relu(z), 3), y)
}
train { optimizer adam(lr: 1e-2) epochs 1 batch B seed 1 }
"""

REGRESS_MODEL = """model Reg {
  dims { B = 4 }
  input x: f32[B, 2, 2]
  label target: f32[B, 1]
  loss mse(linear(flatten(x), 1), target)
}
"""

CKPT_MODEL = """model Ck {
  dims { B = 16, T = 8 }
  input tokens: i32[B, T] vocab 50
  label y: i32[B] classes 3
  let h = relu(linear(mean(embed(tokens, 8), axis: 1), 16))
  loss cross_entropy(linear(h, 3), y)
}
train { optimizer adam(lr: 1e-2) epochs 1 batch B seed 3 }
"""

NUMBERS = ["0", "-1", "1", "2", "3", "4000000000", "4294967296", "99999999999999999999",
           "9223372036854775807", "1e30", "1e-30", "-1e30", "NaN", "nan", "inf", "1e308",
           "0.0", "-0", "65536", "1000000"]

# --- npy and safetensors writing --------------------------------------------------------


def npy_bytes(descr, shape, data, fortran=False, major=1, header_extra=""):
    """A .npy file: magic, version, header dict padded to 64 bytes, data."""
    dims = ", ".join(str(d) for d in shape)
    shape_txt = f"({dims},)" if len(shape) == 1 else f"({dims})"
    header = (f"{{'descr': '{descr}', 'fortran_order': {fortran}, "
              f"'shape': {shape_txt}, {header_extra}}}")
    size_len = 2 if major == 1 else 4
    while (6 + 2 + size_len + len(header) + 1) % 64:
        header += " "
    header += "\n"
    out = b"\x93NUMPY" + bytes([major, 0])
    out += struct.pack("<H" if major == 1 else "<I", len(header))
    return out + header.encode("latin-1") + data


def i32s(values):
    return struct.pack(f"<{len(values)}i", *values)


def f32s(values):
    return struct.pack(f"<{len(values)}f", *values)


def split_safetensors(data):
    """(header dict, data bytes) of a safetensors file, or None."""
    if len(data) < 8:
        return None
    n = struct.unpack("<Q", data[:8])[0]
    try:
        header = json.loads(data[8:8 + n])
    except (ValueError, UnicodeDecodeError):
        return None
    return header, data[8 + n:]


def join_safetensors(header, body, pad=True):
    text = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + body

# --- runs and their classification ------------------------------------------------------


class Case:
    """One run: a directory with its files, an optional shell setup (FIFOs, links),
    and the mpc arguments (paths relative to the directory)."""

    def __init__(self, cls, n, desc, args, setup=""):
        self.cls, self.n, self.desc, self.args, self.setup = cls, n, desc, args, setup
        self.files = {}  # relative path -> bytes

    def add(self, rel, data):
        self.files[rel] = data if isinstance(data, bytes) else data.encode()
        return self


def limit_memory(gb):
    def apply():
        os.setsid()
        limit = int(gb * (1 << 30))
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    return apply


def execute(case, mpc, work, timeout, memory_gb):
    """Runs `case` in `work`/<class>-<n>; returns (kind, code, seconds, stdout, stderr)."""
    d = work / f"{case.cls}-{case.n}"
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    for rel, data in case.files.items():
        p = d / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    if case.setup:
        subprocess.run(["sh", "-c", case.setup], cwd=d, check=True)
    t = time.monotonic()
    env = dict(os.environ, RUST_BACKTRACE="1")
    proc = subprocess.Popen([mpc] + case.args, cwd=d, stdin=subprocess.DEVNULL, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=limit_memory(memory_gb))
    try:
        out, err = proc.communicate(timeout=timeout)
        code = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        out, err = proc.communicate()
        code = None
    dt = time.monotonic() - t
    out = out.decode("utf-8", "replace")
    err = err.decode("utf-8", "replace")
    return classify(code, err), code, dt, out, err, d


def classify(code, err):
    if code is None:
        return "hang"
    if code == 101 or "panicked at" in err:
        return "panic"
    if code == 0:
        return "ok"
    if code == 1 and any(line.startswith("error:") for line in err.splitlines()):
        return "clean"
    return "abort"


def signature(err):
    """Where a run failed: a panic's location and message, or an abort's message and
    first mpc stack frame (RUST_BACKTRACE=1 is set for every run)."""
    lines = [line.strip() for line in err.splitlines() if line.strip()]
    for k, line in enumerate(lines):
        if "panicked at" in line:
            return line[line.index("panicked at"):] + " " + (lines[k + 1][:120] if k + 1 < len(lines) else "")
    first = lines[0][:120] if lines else "(no stderr)"
    first = re.sub(r"\d{4,}", "N", first)
    frames = [line.split(": ", 1)[1] for line in lines if re.match(r"\d+: ", line)]
    mpc = next((f for f in frames if f.startswith("mpc")), None)
    return first + (f" in {mpc}" if mpc else "")


def keep(case, kind, code, dt, out, err, d, findings):
    """Moves a non-clean case's directory to findings/, with its reproducer."""
    dest = findings / f"{case.cls}-{case.n}"
    if dest.exists():
        shutil.rmtree(dest)
    shutil.move(str(d), dest)
    # The setup made FIFOs and links in the directory: cmd.sh makes them again.
    for rel in list(dest.rglob("*")):
        if rel.is_fifo() or rel.is_symlink():
            rel.unlink()
    cmd = "#!/bin/sh\n# " + case.desc.replace("\n", " ") + "\ncd \"$(dirname \"$0\")\"\n"
    if case.setup:
        cmd += case.setup + "\n"
    cmd += "exec \"${MPC:-mpc}\" " + " ".join(shlex.quote(a) for a in case.args) + "\n"
    (dest / "cmd.sh").write_text(cmd)
    (dest / "stdout.txt").write_text(out)
    (dest / "stderr.txt").write_text(err)
    (dest / "result.txt").write_text(f"{kind} exit={code} seconds={dt:.2f}\n")

# --- model mutations ----------------------------------------------------------------------


def tokens(src):
    return re.findall(r"[A-Za-z0-9_.]+|\s+|.", src, re.S)


def mutate(rng, src):
    t = tokens(src)
    if not t:
        return src
    i, j = rng.randrange(len(t)), rng.randrange(len(t))
    op = rng.randrange(10)
    if op == 0:  # truncation
        return src[:rng.randrange(len(src) + 1)]
    if op == 1:
        del t[i]
    elif op == 2:
        t.insert(i, t[i])
    elif op == 3:
        t[i], t[j] = t[j], t[i]
    elif op in (4, 5):  # a number changed
        nums = [k for k, s in enumerate(t) if re.match(r"[0-9]", s)]
        if nums:
            t[rng.choice(nums)] = rng.choice(NUMBERS)
    elif op == 6:  # an identifier swapped for another of the file
        ids = [k for k, s in enumerate(t) if re.match(r"[A-Za-z_]", s)]
        if ids:
            t[rng.choice(ids)] = t[rng.choice(ids)]
    elif op == 7:  # byte flips (may leave invalid UTF-8: returned as bytes)
        b = bytearray(src.encode())
        for _ in range(rng.randint(1, 3)):
            k = rng.randrange(len(b))
            b[k] ^= 1 << rng.randrange(8)
        return bytes(b)
    elif op == 8:  # a line deleted or duplicated
        lines = src.split("\n")
        k = rng.randrange(len(lines))
        if rng.random() < 0.5:
            del lines[k]
        else:
            lines.insert(k, lines[k])
        return "\n".join(lines)
    else:  # several edits
        s = src
        for _ in range(rng.randint(2, 4)):
            s = mutate(rng, s)
            if isinstance(s, bytes):
                return s
        return s
    return "".join(t)


def model_cases(rng, count):
    sources = [(p.stem, p.read_text()) for p in sorted((ROOT / "examples").glob("*.mp"))]
    data_dirs = {"graph": ROOT / "examples/data/karate"}
    for n in range(count):
        name, src = sources[n % len(sources)]
        m = mutate(rng, src)
        args = ["train", "model.mp", "--epochs", "1", "--threads", "1"]
        text = m.decode("utf-8", "replace") if isinstance(m, bytes) else m
        dims = re.search(r"dims\s*\{([^}]*)\}", text)
        if dims and rng.random() < 0.3:
            declared = re.findall(r"(\w+)\s*=", dims.group(1))
            if declared:
                args += ["--dim", f"{rng.choice(declared)}={rng.choice([1, 2, 3, 5])}"]
        if name in data_dirs and rng.random() < 0.2:
            args += ["--data", str(data_dirs[name])]
        yield Case("model", n, f"mutant of examples/{name}.mp", args).add("model.mp", m)

# --- data corruptions ---------------------------------------------------------------------


def base_data(rng, rows=40):
    """A valid data directory for TOKENS_MODEL: {name: (kind, values, row shape)}."""
    tokens_v = [rng.randrange(20) for _ in range(rows * 4)]
    feats_v = [round(rng.uniform(-1, 1), 3) for _ in range(rows * 3)]
    y_v = [rng.randrange(3) for _ in range(rows)]
    return {"tokens": ("i", tokens_v, [4]), "feats": ("f", feats_v, [3]), "y": ("i", y_v, [])}


def encode_column(name, col, fmt):
    kind, values, row = col
    width = 1
    for d in row:
        width *= d
    rows = len(values) // width
    if fmt == "npy":
        data = i32s(values) if kind == "i" else f32s(values)
        return f"{name}.npy", npy_bytes("<i4" if kind == "i" else "<f4", [rows] + row, data)
    lines = [",".join(str(v) for v in values[r * width:(r + 1) * width]) for r in range(rows)]
    return f"{name}.csv", ("\n".join(lines) + "\n").encode()


def corrupt_npy(rng, data, kind):
    b = bytearray(data)
    hdr_end = data.index(b"\n") + 1 if b"\n" in data else 10
    op = rng.randrange(14)
    if op == 0:
        return bytes(b[:rng.randrange(len(b))]), "truncated"
    if op == 1:
        for _ in range(rng.randint(1, 8)):
            k = rng.randrange(len(b))
            b[k] ^= 1 << rng.randrange(8)
        return bytes(b), "bit flips"
    if op == 2:
        k = rng.randrange(10, hdr_end)
        for _ in range(rng.randint(1, 4)):
            k = rng.randrange(10, hdr_end)
            b[k] ^= 1 << rng.randrange(8)
        return bytes(b), "header bit flips"
    text = data[:hdr_end].decode("latin-1")
    if op == 3:
        new = rng.choice(["<f4", "<i8", "|u1", ">i4", "<f8", "<i2", "|b1", "O", "<U3", "<c8",
                          "x", "", "<f2", "<u8", "|i1", "<i4", ">f4"])
        text2 = re.sub(r"'descr': '[^']*'", f"'descr': '{new}'", text)
        return text2.encode("latin-1") + data[hdr_end:], f"descr -> {new}"
    if op == 4:
        new = rng.choice(["(40,)", "(41, 4)", "(0, 4)", "(40, 4, 1)", "(4000000000, 4)",
                          "(-1, 4)", "()", "(18446744073709551615, 4)", "(40, 3)", "(4, 40)",
                          "(1e3, 4)", "(40, 4, 0)", "(99999999999, 99999999999)", "(,)"])
        text2 = re.sub(r"'shape': \([^)]*\)", f"'shape': {new}", text)
        return text2.encode("latin-1") + data[hdr_end:], f"shape -> {new}"
    if op == 5:
        text2 = text.replace("False", rng.choice(["True", "1", "None", "Fals"]))
        return text2.encode("latin-1") + data[hdr_end:], "fortran_order edit"
    if op == 6:
        b[6] = rng.choice([0, 2, 3, 4, 255])
        return bytes(b), f"version {b[6]}"
    if op == 7:
        v = rng.choice([0, 1, 9, 0xFFFF, len(b)])
        b[8:10] = struct.pack("<H", v)
        return bytes(b), f"header length {v}"
    if op == 8:
        return b"\x93NUMPZ" + bytes(b[6:]), "bad magic"
    if op == 9:  # values out of range / not finite
        body = bytearray(data[hdr_end:])
        if len(body) >= 4:
            k = rng.randrange(len(body) // 4) * 4
            if kind == "i":
                v = rng.choice([-1, -2, 20, 3, 2**31 - 1, -2**31, 1000])
                body[k:k + 4] = struct.pack("<i", v)
                what = f"value {v}"
            else:
                v = rng.choice([float("nan"), float("inf"), -float("inf"), 3.4e38])
                body[k:k + 4] = struct.pack("<f", v)
                what = f"value {v}"
            return data[:hdr_end] + bytes(body), what
        return bytes(b), "unchanged"
    if op == 10:
        return b"", "empty"
    if op == 11:
        return data + bytes(rng.randrange(1, 64)), "trailing bytes"
    if op == 12:  # header dict garbage
        text2 = text.replace("{", rng.choice(["{{", "[", "{'a': {'b': ", ""]), 1)
        return text2.encode("latin-1") + data[hdr_end:], "header dict garbage"
    return data[:hdr_end] + data[hdr_end:][: len(data[hdr_end:]) // 2], "body halved"


def corrupt_csv(rng, data, kind):
    text = data.decode()
    lines = text.split("\n")
    op = rng.randrange(16)
    if op == 0:
        return data[:rng.randrange(len(data))], "truncated"
    if op == 1:
        b = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            k = rng.randrange(len(b))
            b[k] ^= 1 << rng.randrange(8)
        return bytes(b), "bit flips"
    if op == 2:
        return ("\ufeff" + text).encode(), "BOM"
    if op == 3:
        return ("a,b,c,d\n" + text).encode(), "header line"
    if op == 4:
        k = rng.randrange(len(lines))
        lines[k] = "7" * (10 << 20)
        return "\n".join(lines).encode(), "10 MB field"
    if op == 5:
        k = rng.randrange(max(1, len(lines) - 1))
        f = lines[k].split(",")
        f[rng.randrange(len(f))] = rng.choice(["nan", "NaN", "inf", "-inf", "1e39", "1e400"])
        lines[k] = ",".join(f)
        return "\n".join(lines).encode(), "not finite"
    if op == 6:
        k = rng.randrange(max(1, len(lines) - 1))
        f = lines[k].split(",")
        v = rng.choice(["-1", "-2", "20", "3", "2147483648", "-9223372036854775809",
                        "99999999999999999999", "1.5", "3.000e+00", "0x10", "", " ", "1,"])
        f[rng.randrange(len(f))] = v
        lines[k] = ",".join(f)
        return "\n".join(lines).encode(), f"value {v!r}"
    if op == 7:
        return "\n".join("-1" if line else line for line in lines).encode(), "all -1"
    if op == 8:
        k = rng.randrange(max(1, len(lines) - 1))
        lines[k] += ",1"
        return "\n".join(lines).encode(), "extra field"
    if op == 9:
        k = rng.randrange(max(1, len(lines) - 1))
        lines[k] = lines[k].rsplit(",", 1)[0] if "," in lines[k] else ""
        return "\n".join(lines).encode(), "missing field"
    if op == 10:
        return text.replace("\n", "\r\n\n\n").encode(), "CRLF and blank lines"
    if op == 11:
        return data[:10] + b"\xff\xfe" + data[10:], "invalid UTF-8"
    if op == 12:
        return text.replace(",", rng.choice([";", "\t", " ,", ",,", '","'])).encode(), "separators"
    if op == 13:
        return b"", "empty"
    if op == 14:
        return ("\n".join(lines[: len(lines) // 2])).encode(), "rows dropped"
    return (text + "\x00\n").encode(), "NUL line"


def data_cases(rng, count):
    model = TOKENS_MODEL
    karate = ROOT / "examples/data/karate"
    for n in range(count):
        mode = rng.random()
        if mode < 0.15:
            # The karate club graph: a corrupted edge list, features or labels.
            files = {str(p.relative_to(karate)): p.read_bytes() for p in karate.rglob("*.npy")}
            rel = rng.choice(sorted(files))
            kind = "f" if rel == "x.npy" else "i"
            data, what = corrupt_npy(rng, files[rel], kind)
            if rng.random() < 0.3:
                # As CSV instead.
                arr = files[rel]
                what = "as csv"
                if rel == "g.edges.npy":
                    vals = struct.unpack("<312i", arr[-1248:])
                    text = "\n".join(f"{vals[k]},{vals[156 + k]}" for k in range(156)) + "\n"
                    data, w = corrupt_csv(rng, text.encode(), "i")
                    what += ", " + w
                    del files[rel]
                    rel = "g.edges.csv"
            files[rel] = data
            c = Case("data", n, f"karate data, {rel}: {what}",
                     ["train", "graph.mp", "--data", "d", "--epochs", "1", "--threads", "1"])
            c.add("graph.mp", (ROOT / "examples/graph.mp").read_text())
            for r, b in files.items():
                c.add("d/" + r, b)
            yield c
            continue
        cols = base_data(rng)
        fmts = {name: rng.choice(["npy", "csv"]) for name in cols}
        target = rng.choice(sorted(cols))
        files = {}
        for name, col in cols.items():
            rel, data = encode_column(name, col, fmts[name])
            files[rel] = data
        rel = next(r for r in files if r.startswith(target + "."))
        kind = cols[target][0]
        structural = rng.random() < 0.15
        if structural:
            op = rng.randrange(6)
            if op == 0:
                del files[rel]
                what = "missing file"
            elif op == 1:
                other = encode_column(target, cols[target], "csv" if rel.endswith(".npy") else "npy")
                files[other[0]] = other[1]
                what = "both .npy and .csv"
            elif op == 2:
                short = (cols[target][0], cols[target][1][: len(cols[target][1]) * 3 // 4], cols[target][2])
                files[rel] = encode_column(target, short, fmts[target])[1]
                what = "fewer rows than the others"
            elif op == 3:
                for r, b in list(files.items()):
                    files["test/" + r] = b
                t_rel = "test/" + rel
                files[t_rel] = (corrupt_npy if rel.endswith(".npy") else corrupt_csv)(rng, files[t_rel], kind)[0]
                what = "corrupt test/ file"
            elif op == 4:
                files = {"test/" + r: b for r, b in files.items()} | files
                del files["test/" + rel]
                what = "test/ lacks a file"
            else:
                files[rel] = files[rel][:0]
                what = "zero-length file"
        else:
            corrupt = corrupt_npy if rel.endswith(".npy") else corrupt_csv
            files[rel], what = corrupt(rng, files[rel], kind)
        args = ["train", "tok.mp", "--data", "d", "--epochs", "1", "--threads", "1"]
        if rng.random() < 0.2:
            args += ["--holdout", rng.choice(["0.25", "0.5", "0.01", "0.99"])]
        if rng.random() < 0.2:
            args += ["--batch", rng.choice(["1", "3", "40", "1000"])]
        c = Case("data", n, f"Tok data, {rel}: {what}", args).add("tok.mp", model)
        for r, b in files.items():
            c.add("d/" + r, b)
        yield c

# --- checkpoint corruptions ---------------------------------------------------------------


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

# --- command-line misuse ------------------------------------------------------------------


def misuse_cases(base):
    """The issue's list: bad numbers, unknown flags, special files as inputs and outputs,
    a 10 MB CSV field, byte order marks, all labels -1."""
    tok = ["train", "tok.mp", "--epochs", "1", "--threads", "1"]
    ck = ["train", "ck.mp", "--epochs", "1", "--threads", "1"]
    run = ["run", "ck.mp", "--weights", "w.safetensors"]
    rng = random.Random(5)
    cols = base_data(rng)
    good = {("d/" + r): b for r, b in (encode_column(k, v, "npy") for k, v in cols.items())}
    csvs = {("d/" + r): b for r, b in (encode_column(k, v, "csv") for k, v in cols.items())}
    data = ["--data", "d"]
    cases = [
        ("--batch 0", ck + ["--batch", "0"], ""),
        ("--batch -1", ck + ["--batch", "-1"], ""),
        ("--batch=-1", ck + ["--batch=-1"], ""),
        ("--lr -1", ck + ["--lr", "-1"], ""),
        ("--lr=-1", ck + ["--lr=-1"], ""),
        ("--lr=-1e-3", ck + ["--lr=-1e-3"], ""),
        ("--lr nan", ck + ["--lr", "nan"], ""),
        ("--lr inf", ck + ["--lr", "inf"], ""),
        ("--lr 0", ck + ["--lr", "0"], ""),
        ("--threads 0", ck[:4] + ["--threads", "0"], ""),
        ("--threads=-1", ck[:4] + ["--threads=-1"], ""),
        ("--threads 1000", ["train", "ck.mp", "--epochs", "1", "--threads", "1000"], ""),
        ("--threads 99999999999999999999", ck[:4] + ["--threads", "99999999999999999999"], ""),
        ("--epochs=-1", ck[:2] + ["--epochs=-1"], ""),
        ("--epochs 0", ["train", "ck.mp", "--epochs", "0"], ""),
        ("--seed=-5", ck + ["--seed=-5"], ""),
        ("--seed 2**64", ck + ["--seed", "18446744073709551616"], ""),
        ("--holdout 1.5", ck + data + ["--holdout", "1.5"], ""),
        ("--holdout without --data", ck + ["--holdout", "0.5"], ""),
        ("--device tpu", ck + ["--device", "tpu"], ""),
        ("--device cuda (no GPU here)", ck + ["--device", "cuda"], ""),
        ("unknown flag --epoch", ["train", "ck.mp", "--epoch", "1"], ""),
        ("unknown flag --frobnicate", ck + ["--frobnicate"], ""),
        ("unknown command", ["frobnicate", "ck.mp"], ""),
        ("no command", [], ""),
        ("missing FILE", ["train"], ""),
        ("--dim B", ck + ["--dim", "B"], ""),
        ("--dim B=0", ck + ["--dim", "B=0"], ""),
        ("--dim Z=3", ck + ["--dim", "Z=3"], ""),
        ("--dim B=-3", ck + ["--dim", "B=-3"], ""),
        ("--dim T=4000000000", ck + ["--dim", "T=4000000000"], ""),
        ("--save at /dev/null", ck + ["--save", "/dev/null"], ""),
        ("--save at /dev/full", ck + ["--save", "/dev/full"], ""),
        ("--save at a FIFO", ck + ["--save", "fifo"], "mkfifo fifo"),
        ("--save at a symlink", ck + ["--save", "link"], "touch target && ln -s target link"),
        ("--save at a dangling symlink", ck + ["--save", "link"], "ln -s nowhere link"),
        ("--save in a nonexistent dir", ck + ["--save", "no/such/dir/w.safetensors"], ""),
        ("--save at a directory", ck + ["--save", "adir"], "mkdir adir"),
        ("--save in a read-only dir", ck + ["--save", "ro/w.safetensors"], "mkdir ro && chmod 555 ro"),
        ("--out at /dev/null", run + ["--out", "/dev/null"], ""),
        ("--out at a FIFO", run + ["--out", "fifo"], "mkfifo fifo"),
        ("--out at a symlink", run + ["--out", "link"], "touch target && ln -s target link"),
        ("--out in a nonexistent dir", run + ["--out", "no/such/p.npy"], ""),
        ("model file is a FIFO", ["train", "fifo", "--epochs", "1"], "mkfifo fifo"),
        ("model file is /dev/zero", ["train", "/dev/zero", "--epochs", "1"], ""),
        ("model file is a symlink to /dev/zero", ["check", "z.mp"], "ln -s /dev/zero z.mp"),
        ("model file is a directory", ["train", "adir", "--epochs", "1"], "mkdir adir"),
        ("model file is a symlink loop", ["train", "loop.mp"], "ln -s loop.mp loop.mp"),
        ("model file does not exist", ["train", "none.mp"], ""),
        ("--weights is /dev/zero", ["run", "ck.mp", "--weights", "/dev/zero"], ""),
        ("--weights is a FIFO", ["run", "ck.mp", "--weights", "fifo"], "mkfifo fifo"),
        ("--weights is a directory", ["run", "ck.mp", "--weights", "adir"], "mkdir adir"),
        ("--weights does not exist", ["run", "ck.mp", "--weights", "none"], ""),
        ("run without --weights", ["run", "ck.mp"], ""),
        ("--data is a file", tok + ["--data", "tok.mp"], ""),
        ("--data does not exist", tok + ["--data", "none"], ""),
        ("tokens.npy is a directory", tok + data, "rm d/tokens.npy && mkdir d/tokens.npy"),
        ("tokens.npy is a FIFO", tok + data, "rm d/tokens.npy && mkfifo d/tokens.npy"),
        ("tokens.npy is a symlink loop", tok + data, "rm d/tokens.npy && ln -s tokens.npy d/tokens.npy"),
        ("tokens.npy is a symlink to /dev/zero", tok + data, "rm d/tokens.npy && ln -s /dev/zero d/tokens.npy"),
        ("y.csv holds a 10 MB field", tok + data, "rm d/y.npy && { printf '1\\n'; head -c 10485760 /dev/zero | tr '\\0' 7; printf '\\n'; } > d/y.csv"),
        ("feats.csv holds a 10 MB field", tok + data, "rm d/feats.npy && { head -c 10485760 /dev/zero | tr '\\0' 1; printf ',1,1\\n'; } > d/feats.csv"),
        ("UTF-8 BOM in the .mp", ["train", "bom.mp", "--epochs", "1", "--threads", "1"], "printf '\\357\\273\\277' > bom.mp && cat ck.mp >> bom.mp"),
        ("UTF-8 BOM in every CSV", tok + ["--data", "c"], "for f in c/*.csv; do printf '\\357\\273\\277' > t && cat $f >> t && mv t $f; done"),
        ("all labels -1 (npy)", tok + data, ""),
        ("all labels -1 (csv)", tok + ["--data", "c"], "for i in $(seq 40); do echo -1; done > c/y.csv"),
        ("--json with a bad checkpoint", run + ["--json"], "printf 'xx' > w.safetensors"),
        ("--dim from a checkpoint overridden to 0", run + ["--dim", "B=0"], ""),
    ]
    minus1 = npy_bytes("<i4", [40], i32s([-1] * 40))
    for n, (desc, args, setup) in enumerate(cases):
        c = Case("misuse", n, desc, args, setup)
        c.add("tok.mp", TOKENS_MODEL).add("ck.mp", CKPT_MODEL).add("w.safetensors", base)
        for r, b in good.items():
            c.add(r, b)
        for r, b in csvs.items():
            c.add("c/" + r[2:], b)
        if desc == "all labels -1 (npy)":
            c.add("d/y.npy", minus1)
        yield c

# --- main ---------------------------------------------------------------------------------


def parse_counts(specs):
    counts = {"model": 3000, "data": 400, "checkpoint": 300, "misuse": 1}
    for s in specs or []:
        if "=" in s:
            k, v = s.split("=", 1)
            if k not in counts:
                sys.exit(f"--count {s}: classes are {', '.join(counts)}")
            counts[k] = int(v)
        else:
            for k in ("model", "data", "checkpoint"):
                counts[k] = int(s)
    return counts


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mpc", default="/work/campaign-bin/mpc", help="the mpc binary (a release build)")
    ap.add_argument("--out", default="/work/campaign-out", help="findings and scratch directory")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--count", action="append",
                    help="N (every generated class) or CLASS=N (model, data, checkpoint; misuse=0 skips the list)")
    ap.add_argument("--classes", default=",".join(CLASSES), help="comma-separated subset of " + ",".join(CLASSES))
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds before a run counts as a hang")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--verbose", action="store_true", help="one line per run: case, kind, exit, last stderr line")
    ap.add_argument("--memory-gb", type=float, default=6.0, help="address-space limit of each run")
    args = ap.parse_args()
    mpc = str(Path(args.mpc).resolve())
    counts = parse_counts(args.count)
    classes = [c for c in args.classes.split(",") if c]
    out = Path(args.out)
    work, findings = out / "work", out / "findings"
    for d in (work, findings):
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
    base, other = make_checkpoints(mpc, work)

    cases = []
    for cls in classes:
        rng = random.Random(f"{args.seed}-{cls}")
        if cls == "model":
            cases += model_cases(rng, counts["model"])
        elif cls == "data":
            cases += data_cases(rng, counts["data"])
        elif cls == "checkpoint":
            cases += checkpoint_cases(rng, counts["checkpoint"], base, other)
        elif cls == "misuse" and counts["misuse"]:
            cases += misuse_cases(base)
        elif cls != "misuse":
            sys.exit(f"unknown class {cls}")

    stats = {c: {"tried": 0, "ok": 0, "clean": 0, "panic": 0, "hang": 0, "abort": 0, "slow": 0} for c in classes}
    bad = []
    start = time.monotonic()
    done = 0

    def one(case):
        result = execute(case, mpc, work, args.timeout, args.memory_gb)
        return case, result

    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        for case, (kind, code, dt, so, se, d) in pool.map(one, cases):
            if kind == "hang":
                # Confirm alone (the machine may just have been busy).
                kind, code, dt, so, se, d = execute(case, mpc, work, args.timeout, args.memory_gb)
                if kind != "hang":
                    stats[case.cls]["slow"] += 1
            if args.verbose:
                last = next((line for line in reversed(se.splitlines()) if line.strip()), "")
                print(f"{case.cls}-{case.n} {kind} exit={code} {dt:.1f}s [{case.desc[:80]}] {last[:150]}",
                      file=sys.stderr)
            s = stats[case.cls]
            s["tried"] += 1
            s[kind] += 1
            if kind in ("ok", "clean"):
                shutil.rmtree(d, ignore_errors=True)
            else:
                keep(case, kind, code, dt, so, se, d, findings)
                bad.append((case, kind, code, se))
            done += 1
            if done % 200 == 0:
                print(f"... {done}/{len(cases)} runs, {time.monotonic() - start:.0f} s", file=sys.stderr)

    print(f"\nmpc campaign: seed {args.seed}, {len(cases)} runs in {time.monotonic() - start:.0f} s, "
          f"timeout {args.timeout:g} s, binary {mpc}\n")
    print("| class | tried | clean errors | panics | hangs | aborts/OOM | succeeded (exit 0) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    total = {k: 0 for k in ("tried", "ok", "clean", "panic", "hang", "abort")}
    for cls in classes:
        s = stats[cls]
        for k in total:
            total[k] += s[k]
        print(f"| {cls} | {s['tried']} | {s['clean']} | {s['panic']} | {s['hang']} | {s['abort']} | {s['ok']} |")
    t = total
    print(f"| all | {t['tried']} | {t['clean']} | {t['panic']} | {t['hang']} | {t['abort']} | {t['ok']} |")
    slow = sum(s["slow"] for s in stats.values())
    if slow:
        print(f"\n{slow} run(s) timed out under parallel load but finished when rerun alone (counted clean).")
    if bad:
        groups = {}
        for case, kind, code, err in bad:
            groups.setdefault((kind, signature(err)), []).append(case)
        print(f"\nNon-clean cases ({len(bad)}) in {len(groups)} groups (kind, where); reproducers: "
              f"{findings}/<case>/cmd.sh (MPC=/path/to/mpc sh cmd.sh)")
        for (kind, where), group in sorted(groups.items(), key=lambda g: -len(g[1])):
            print(f"\n{kind} x{len(group)}: {where}")
            for case in group[:5]:
                print(f"  - {case.cls}-{case.n}: {case.desc[:150]}")
            if len(group) > 5:
                print(f"  - ... and {len(group) - 5} more: "
                      + " ".join(f"{c.cls}-{c.n}" for c in group[5:40]) + (" ..." if len(group) > 40 else ""))
    shutil.rmtree(work, ignore_errors=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
