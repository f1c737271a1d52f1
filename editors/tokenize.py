"""Tokenize .mp source with a TextMate grammar, the way editors apply one.

Usage: python3 tokenize.py GRAMMAR.json FILE.mp
Prints one token per line: `LINE<TAB>SCOPE<TAB>TEXT`. Text that no pattern matches is
not printed. It implements what mpc's grammar uses (single-line `match` rules, `name`,
`captures`, `include` of repository entries; at each position the earliest match wins,
ties going to the first pattern), with Python's `re` standing in for Oniguruma, whose
syntax it shares for these rules. `tests/editor_grammar.rs` runs it.
"""
import json
import re
import sys


def flatten(patterns, repository):
    out = []
    for p in patterns:
        if "include" in p:
            out += flatten(repository[p["include"].lstrip("#")]["patterns"], repository)
        else:
            out.append(p)
    return out


def main(grammar_path, source_path):
    grammar = json.load(open(grammar_path))
    rules = [(re.compile(p["match"]), p) for p in flatten(grammar["patterns"], grammar["repository"])]
    for number, line in enumerate(open(source_path).read().split("\n"), 1):
        pos = 0
        while pos < len(line):
            best = None
            for regex, rule in rules:
                m = regex.search(line, pos)
                if m and m.end() > m.start() and (best is None or m.start() < best[0].start()):
                    best = (m, rule)
            if best is None:
                break
            m, rule = best
            if "name" in rule:
                print(f"{number}\t{rule['name']}\t{m.group(0)}")
            for group, capture in sorted(rule.get("captures", {}).items(), key=lambda kv: int(kv[0])):
                if m.group(int(group)) is not None:
                    print(f"{number}\t{capture['name']}\t{m.group(int(group))}")
            pos = m.end()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
