"""Builds examples/data/language_id/ from Debian's word-list packages.

    cd /tmp && apt-get download wamerican wngerman wfrench wspanish witalian
    for f in w*.deb; do dpkg -x "$f" root; done
    python3 examples/data/make_language_id.py /tmp/root/usr/share/dict examples/data/language_id

Needs numpy. Seeded: the same word lists give the same files.
"""

import sys

import numpy as np

# Label order: the class ids of y.npy.
LANGUAGES = [
    ("english", "american-english"),
    ("german", "ngerman"),
    ("french", "french"),
    ("spanish", "spanish"),
    ("italian", "italian"),
]
L = 16  # characters per word (longer words are left out)
TRAIN, TEST = 3000, 1000  # words per language
PAD, UNKNOWN = 0, 1
LETTERS = "abcdefghijklmnopqrstuvwxyz" + "àâäçèéêëîïñòóôöùúûüßáíì"
IDS = {c: i + 2 for i, c in enumerate(LETTERS)}
VOCAB = len(LETTERS) + 2  # 52; bigram ids are below VOCAB * VOCAB = 2704


def words(path):
    out = set()
    for line in open(path, encoding="utf-8"):
        w = line.strip().lower()
        # Letters only: no possessives (dog's), elisions (dell'), hyphens or dots.
        if 2 <= len(w) <= L and w.isalpha():
            out.add(w)
    return out


def encode(ws):
    a = np.full((len(ws), L), PAD, dtype=np.uint8)
    for r, w in enumerate(ws):
        for i, c in enumerate(w):
            a[r, i] = IDS.get(c, UNKNOWN)
    return a


def bigrams(chars):
    """Bigram ids: position i holds (char i-1) * VOCAB + char i, with char -1 = PAD."""
    c = chars.astype(np.uint16)
    prev = np.concatenate([np.zeros((len(c), 1), np.uint16), c[:, :-1]], axis=1)
    return prev * VOCAB + c


def save(path, a):
    np.save(path, a)
    print(path, a.dtype, a.shape)


def main(dict_dir, out_dir):
    lists = [words(f"{dict_dir}/{f}") for _, f in LANGUAGES]
    seen = {}
    for ws in lists:
        for w in ws:
            seen[w] = seen.get(w, 0) + 1
    rng = np.random.default_rng(2026)
    train, test = [], []
    for label, ws in enumerate(lists):
        unique = sorted(w for w in ws if seen[w] == 1)
        pick = rng.choice(len(unique), TRAIN + TEST, replace=False)
        chosen = [unique[i] for i in pick]
        train += [(w, label) for w in chosen[:TRAIN]]
        test += [(w, label) for w in chosen[TRAIN:]]
        print(LANGUAGES[label][0], len(ws), "words,", len(unique), "in no other list")
    for part, rows, sub in [("train", train, ""), ("test", test, "/test")]:
        order = rng.permutation(len(rows))
        rows = [rows[i] for i in order]
        chars = encode([w for w, _ in rows])
        save(f"{out_dir}{sub}/chars.npy", chars)
        save(f"{out_dir}{sub}/bigrams.npy", bigrams(chars))
        save(f"{out_dir}{sub}/y.npy", np.array([y for _, y in rows], dtype=np.uint8))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
