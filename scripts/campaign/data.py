"""Data corruptions: `mpc train --data DIR` on a valid directory for the token model
(npy or CSV per column) or the karate graph with one file damaged (truncation, bit
flips, header edits, wrong dtypes and shapes, NaN, out-of-range ids and labels, huge
fields, BOMs) or the directory's layout changed (missing, doubled or short files,
`test/` variants)."""

import re
import struct

from common import ROOT, TOKENS_MODEL, Case, f32s, i32s, npy_bytes


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
