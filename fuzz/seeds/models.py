#!/usr/bin/env python3
"""Seeds of the model_source corpus: examples/*.mp and every model text in the test
suites (Rust string literals that hold `model NAME {`, and the diagnostics test's
`base_with(from, to)` variants of its BASE model), written to fuzz/corpus/model_source/
as `<source>-<n>.mp`. Python 3 standard library only; run from the repository root."""

import hashlib
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = ROOT / "fuzz" / "corpus" / "model_source"
TESTS = ["compiler/tests", "tests", "runtime/tests", "runtime/src", "compiler/src", "src", "bench"]

# "..." (with escapes) or r"..." / r#"..."#.
LITERAL = re.compile(r'r(#*)"(.*?)"\1|"((?:[^"\\]|\\.)*)"', re.S)


def unescape(s):
    """A Rust string literal's body: `\\` + newline + indentation removed, escapes read."""
    s = re.sub(r"\\\n\s*", "", s)
    out, i = [], 0
    simple = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "\\": "\\", '"': '"', "'": "'"}
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s):
            n = s[i + 1]
            if n in simple:
                out.append(simple[n])
                i += 2
                continue
            m = re.match(r"u\{([0-9a-fA-F]+)\}", s[i + 1 :])
            if m:
                out.append(chr(int(m.group(1), 16)))
                i += 2 + len(m.group(0)) - 1
                continue
            m = re.match(r"x([0-9a-fA-F]{2})", s[i + 1 :])
            if m:
                out.append(chr(int(m.group(1), 16)))
                i += 4
                continue
        out.append(c)
        i += 1
    return "".join(out)


def literals(text):
    for m in LITERAL.finditer(text):
        if m.group(2) is not None:
            yield m.group(2)
        else:
            yield unescape(m.group(3))


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    seen = set()
    written = 0

    def emit(name, src):
        nonlocal written
        digest = hashlib.sha1(src.encode()).hexdigest()
        if digest in seen:
            return
        seen.add(digest)
        (OUT / f"{name}-{digest[:8]}.mp").write_text(src)
        written += 1

    for p in sorted((ROOT / "examples").glob("*.mp")):
        emit("example-" + p.stem, p.read_text())
    for d in TESTS:
        for p in sorted((ROOT / d).rglob("*.rs")):
            text = p.read_text()
            for lit in literals(text):
                if re.search(r"\bmodel\s+\w+\s*\{", lit):
                    emit("test-" + p.stem, lit)
            base = re.search(r'const BASE: &str = "((?:[^"\\]|\\.)*)"', text, re.S)
            if base:
                base = unescape(base.group(1))
                pair = r'"((?:[^"\\]|\\.)*)"'
                for m in re.finditer(r"base_with\(\s*" + pair + r",\s*" + pair, text):
                    emit("test-" + p.stem, base.replace(unescape(m.group(1)), unescape(m.group(2)), 1))
    print(f"{written} model seeds in {OUT.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
