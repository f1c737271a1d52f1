"""Builds examples/data/char_lm/ (for char_lm.mp) from the language-id words.

    python3 examples/data/make_char_lm.py examples/data/language_id examples/data/char_lm

In: `chars.npy` and `test/chars.npy` of examples/data/language_id (uint8 [rows, 16],
0 padding, 1 unknown letter, 2.. letters; see make_language_id.py). Out, for the
training words and (in test/) the held-out ones, the same words in the same order:

- `tokens.npy` uint8 [rows, 17]: the boundary token `<w>`, then the word's characters,
  then padding (0). What a causal language model reads.
- `next.npy` int8 [rows, 17]: the word's characters, then `<w>` (end of word), then -1
  (no label: cross_entropy and accuracy skip it). Position t holds the token that
  follows tokens[t], so a causal model predicts each character from the ones before it.
- `vocab.txt`: one token per line, line k (0-based) = id k: `<pad>`, `<unk>`, the
  letters, `<w>`. `mpc run --sample` decodes samples through it.

It also prints the baselines a model must beat, in nats per labeled position (every
character and the end of the word, the positions mpc's held-out loss averages over):
the unigram model of the training labels with add-one smoothing over all 52 ids, and,
for context, the add-one bigram model (next token given the current one).

Needs numpy. Deterministic: no randomness, the same inputs give the same files.
"""

import sys

import numpy as np

PAD, UNKNOWN = 0, 1
LETTERS = "abcdefghijklmnopqrstuvwxyz" + "àâäçèéêëîïñòóôöùúûüßáíì"  # ids 2..50 (as language_id)
BOUNDARY = len(LETTERS) + 2  # 51: starts every input, ends every word
VOCAB = BOUNDARY + 1  # 52
NAMES = ["<pad>", "<unk>"] + list(LETTERS) + ["<w>"]
L = 16  # characters per word in language_id
T = L + 1  # positions: the boundary and up to 16 characters
NO_LABEL = -1


def lm_rows(chars):
    """(tokens, next) for words given as character ids padded with PAD."""
    rows = len(chars)
    lengths = (chars != PAD).sum(axis=1)
    tokens = np.full((rows, T), PAD, dtype=np.uint8)
    tokens[:, 0] = BOUNDARY
    tokens[:, 1:] = chars
    nxt = np.full((rows, T), NO_LABEL, dtype=np.int8)
    # Words are padded only after their last character, so the characters are a prefix.
    nxt[:, :L] = np.where(chars != PAD, chars, NO_LABEL)  # ids < 52 fit in int8
    nxt[np.arange(rows), lengths] = BOUNDARY
    return tokens, nxt


def check(chars, tokens, nxt):
    """Every word read back from both arrays is the word it came from."""
    for c, tok, n in zip(chars, tokens, nxt):
        word = [int(x) for x in c if x != PAD]
        assert list(tok[1 : len(word) + 1]) == word and tok[0] == BOUNDARY
        assert all(x == PAD for x in tok[len(word) + 1 :])
        assert list(n[: len(word)]) == word and n[len(word)] == BOUNDARY
        assert all(x == NO_LABEL for x in n[len(word) + 1 :])


def cross_entropy(probs, labels):
    """Mean -log p over labeled positions; `probs` is indexed by the label."""
    return float(-np.log(probs[labels]).mean())


def baselines(train_tokens, train_next, test_tokens, test_next):
    """(unigram, bigram) held-out nats per labeled position, add-one smoothed."""
    train_labels = train_next[train_next != NO_LABEL].astype(np.int64)
    counts = np.bincount(train_labels, minlength=VOCAB) + 1.0
    unigram = counts / counts.sum()
    test_mask = test_next != NO_LABEL
    test_labels = test_next[test_mask].astype(np.int64)
    pairs = np.ones((VOCAB, VOCAB))
    np.add.at(pairs, (train_tokens[train_next != NO_LABEL].astype(np.int64), train_labels), 1.0)
    bigram = pairs / pairs.sum(axis=1, keepdims=True)
    test_prev = test_tokens[test_mask].astype(np.int64)
    return (
        cross_entropy(unigram, test_labels),
        float(-np.log(bigram[test_prev, test_labels]).mean()),
    )


def save(path, a):
    np.save(path, a)
    print(path, a.dtype, a.shape)


def main(language_id_dir, out_dir):
    parts = {}
    for sub in ["", "/test"]:
        chars = np.load(f"{language_id_dir}{sub}/chars.npy")
        assert chars.shape[1] == L and chars.max() < BOUNDARY
        tokens, nxt = lm_rows(chars)
        check(chars, tokens, nxt)
        save(f"{out_dir}{sub}/tokens.npy", tokens)
        save(f"{out_dir}{sub}/next.npy", nxt)
        parts[sub] = (tokens, nxt)
    with open(f"{out_dir}/vocab.txt", "w", encoding="utf-8") as f:
        f.write("".join(name + "\n" for name in NAMES))
    print(f"{out_dir}/vocab.txt", len(NAMES), "tokens")
    unigram, bigram = baselines(*parts[""], *parts["/test"])
    labeled = int((parts["/test"][1] != NO_LABEL).sum())
    print(f"held-out positions: {labeled}")
    print(f"unigram baseline (add-one): {unigram:.4f} nats per character")
    print(f"bigram baseline (add-one):  {bigram:.4f} nats per character")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
