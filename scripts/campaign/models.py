"""Model mutations: seeded edits of `examples/*.mp` (truncations, token deletions,
duplications and swaps, numbers made 0, -1, huge, 1e30 or NaN, identifier swaps, byte
flips, line deletions and duplications, several at once), each trained for one epoch."""

import re

from common import NUMBERS, ROOT, Case


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
            # Not the batch dim B: a smaller batch means more steps on the same rows.
            declared = [d for d in re.findall(r"(\w+)\s*=", dims.group(1)) if d != "B"]
            if declared:
                args += ["--dim", f"{rng.choice(declared)}={rng.choice([1, 2, 3, 5])}"]
        if name in data_dirs and rng.random() < 0.2:
            args += ["--data", str(data_dirs[name])]
        yield Case("model", n, f"mutant of examples/{name}.mp", args).add("model.mp", m)
