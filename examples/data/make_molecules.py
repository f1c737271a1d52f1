"""Builds examples/data/molecules/ (graph-level regression: TPSA) from RDKit's NCI data.

    cd /tmp && apt-get download rdkit-data && dpkg-deb -x rdkit-data_*.deb rdkit-data
    python3 -m venv /tmp/molvenv && /tmp/molvenv/bin/pip install rdkit numpy
    /tmp/molvenv/bin/python examples/data/make_molecules.py \
        /tmp/rdkit-data/usr/share/RDKit/Data/NCI/first_5k.tpsa.csv examples/data/molecules

In: `first_5k.tpsa.csv` of Debian's `rdkit-data` (202209.3-1): a `#` comment line, then
4,999 lines `SMILES,TPSA`, the topological polar surface area (square angstroms) computed
by Daylight's tools. Each SMILES is parsed by RDKit (`Chem.MolFromSmiles`, default
sanitization, hydrogens implicit); the few it rejects are skipped, counted and listed.

Out: one graph per molecule (atoms are nodes, each bond two directed edges), written in
the graph data set layout of examples/data/README.md:

    x.npy              i8  [total_nodes, 18]   node features (ATOM_FEATURES below)
    edges.npy          i16 [2, total_edges]    row 0 sources, row 1 destinations, graph-local
    edge_features.npy  i8  [total_edges, 4]    bond type one-hot (BOND_TYPES below)
    node_counts.npy    i32 [G]
    edge_counts.npy    i32 [G]
    y.npy              f32 [G]                 TPSA as given in the CSV
    test/...           the same files for the held-out 20% of the molecules

The split is seeded (SEED), so the same CSV gives byte-identical files. The statistics
that examples/data/README.md quotes (sizes, TPSA mean and std, the mean predictor's
held-out MAE) are printed at the end.
"""

import os
import sys

import numpy as np
from rdkit import Chem, RDLogger, rdBase
from rdkit.Chem import rdMolDescriptors

SEED = 2026  # numpy default_rng seed of the 80/20 split
TEST_FRACTION = 0.2

# Node feature columns of x.npy, in order (F = 18). Every value is a small integer.
ELEMENTS = ["C", "N", "O", "S", "F", "Cl", "Br", "I", "P"]  # columns 0-8; column 9: any other
HYDROGENS = 4  # columns 12-15: one-hot of the attached hydrogens 0, 1, 2, 3 or more
ATOM_FEATURES = (
    [f"element {e}" for e in ELEMENTS]
    + ["element other"]
    + ["degree (bonded heavy atoms)", "formal charge"]
    + ["0 hydrogens", "1 hydrogen", "2 hydrogens", "3+ hydrogens"]
    + ["aromatic", "in a ring"]
)

# Edge feature columns of edge_features.npy: bond type one-hot. Any other RDKit bond type
# (one DATIVE bond in this file) is a row of zeros.
BOND_TYPES = [
    Chem.BondType.SINGLE,
    Chem.BondType.DOUBLE,
    Chem.BondType.TRIPLE,
    Chem.BondType.AROMATIC,
]


def atom_features(atom):
    f = np.zeros(len(ATOM_FEATURES), dtype=np.float32)
    symbol = atom.GetSymbol()
    f[ELEMENTS.index(symbol) if symbol in ELEMENTS else len(ELEMENTS)] = 1
    f[10] = atom.GetDegree()
    f[11] = atom.GetFormalCharge()
    f[12 + min(atom.GetTotalNumHs(), HYDROGENS - 1)] = 1
    f[16] = atom.GetIsAromatic()
    f[17] = atom.IsInRing()
    return f


def graph(mol):
    """Node features [n, F], edges [2, 2 * bonds] (graph-local ids), edge features [2 * bonds, 4].

    Nodes are RDKit's atoms in SMILES order. Bond k (RDKit's order) gives edges 2k
    (begin -> end) and 2k + 1 (end -> begin), both with the bond's features.
    """
    x = np.stack([atom_features(a) for a in mol.GetAtoms()])
    src, dst, feats = [], [], []
    for bond in mol.GetBonds():
        a, b = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
        f = np.zeros(len(BOND_TYPES), dtype=np.float32)
        if bond.GetBondType() in BOND_TYPES:
            f[BOND_TYPES.index(bond.GetBondType())] = 1
        src += [a, b]
        dst += [b, a]
        feats += [f, f]
    edges = np.array([src, dst], dtype=np.int32).reshape(2, -1)
    ef = np.stack(feats) if feats else np.zeros((0, len(BOND_TYPES)), dtype=np.float32)
    return x, edges, ef


def read(csv_path):
    """Parsed molecules as (line number, mol, TPSA), and the lines RDKit rejected."""
    RDLogger.DisableLog("rdApp.*")  # rejections are reported below, one line each
    mols, rejected = [], []
    with open(csv_path) as f:
        for line_no, line in enumerate(f, start=1):
            if line.startswith("#") or not line.strip():
                continue
            smiles, tpsa = line.strip().rsplit(",", 1)
            mol = Chem.MolFromSmiles(smiles)
            if mol is None:
                rejected.append((line_no, smiles))
            else:
                mols.append((line_no, mol, float(tpsa)))
    return mols, rejected


def checked_int8(a):
    """`a` (small integers held as floats) as int8, after checking nothing is lost."""
    b = a.astype(np.int8)
    assert (b.astype(np.float32) == a).all(), "a feature is not a small integer"
    return b


def write(out_dir, graphs, y):
    os.makedirs(out_dir, exist_ok=True)
    arrays = {
        # Every feature is a small integer (one-hots, counts, a charge): stored as int8,
        # a quarter of f32's bytes; the loader reads integer files into f32 inputs exactly.
        "x": checked_int8(np.concatenate([g[0] for g in graphs])),
        "edges": np.concatenate([g[1] for g in graphs], axis=1).astype(np.int16),
        "edge_features": checked_int8(np.concatenate([g[2] for g in graphs])),
        "node_counts": np.array([len(g[0]) for g in graphs], dtype=np.int32),
        "edge_counts": np.array([g[1].shape[1] for g in graphs], dtype=np.int32),
        "y": np.asarray(y, dtype=np.float32),
    }
    for name, a in arrays.items():
        path = f"{out_dir}/{name}.npy"
        np.save(path, a)
        print(f"  {path}: {a.dtype} {list(a.shape)}, {os.path.getsize(path):,} bytes")
    return arrays


def describe(name, counts):
    return f"{name} per graph: min {counts.min()}, median {np.median(counts):g}, max {counts.max()}"


def main(csv_path, out_dir):
    print(f"RDKit {rdBase.rdkitVersion}, numpy {np.__version__}")
    mols, rejected = read(csv_path)
    print(f"{len(mols) + len(rejected)} molecules in {csv_path}: {len(mols)} parsed, "
          f"{len(rejected)} rejected by RDKit (skipped):")
    for line_no, smiles in rejected:
        print(f"  line {line_no}: {smiles}")

    # RDKit's own TPSA, as a check that the graphs carry what the target depends on.
    off = [(n, t, rdMolDescriptors.CalcTPSA(m)) for n, m, t in mols
           if abs(rdMolDescriptors.CalcTPSA(m) - t) > 0.01]
    print(f"RDKit's TPSA matches the file's within 0.01 for {len(mols) - len(off)} of "
          f"{len(mols)}; the others: " + ", ".join(f"line {n}: {t} vs {r:.2f}" for n, t, r in off))

    rng = np.random.default_rng(SEED)
    order = rng.permutation(len(mols))
    n_test = round(TEST_FRACTION * len(mols))
    test_ids, train_ids = np.sort(order[:n_test]), np.sort(order[n_test:])

    graphs = [graph(m) for _, m, _ in mols]
    tpsa = np.array([t for _, _, t in mols])
    print(f"training graphs ({len(train_ids)}):")
    train = write(out_dir, [graphs[i] for i in train_ids], tpsa[train_ids])
    print(f"held-out graphs ({len(test_ids)}):")
    test = write(f"{out_dir}/test", [graphs[i] for i in test_ids], tpsa[test_ids])

    nodes = np.array([len(g[0]) for g in graphs])
    edges = np.array([g[1].shape[1] for g in graphs])
    fragments = sum(len(Chem.GetMolFrags(m)) > 1 for _, m, _ in mols)
    print(f"{len(mols)} graphs ({len(train_ids)} training, {len(test_ids)} held out, seed {SEED}); "
          f"{nodes.sum()} nodes, {edges.sum()} directed edges; "
          f"{fragments} graphs of several fragments (salts, mixtures)")
    print(describe("nodes", nodes))
    print(describe("edges", edges))
    print(f"F = {train['x'].shape[1]} node features, B = {train['edge_features'].shape[1]} edge features")
    for name, t in [("all", tpsa), ("training", train["y"]), ("held out", test["y"])]:
        print(f"TPSA ({name}): mean {t.mean():.2f}, std {t.std():.2f}, "
              f"min {t.min():.2f}, median {np.median(t):.2f}, max {t.max():.2f}")
    mean = train["y"].astype(np.float64).mean()
    median = np.median(train["y"].astype(np.float64))
    held = test["y"].astype(np.float64)
    print(f"mean predictor (training mean {mean:.2f}): held-out MAE {np.abs(held - mean).mean():.2f}, "
          f"RMSE {np.sqrt(((held - mean) ** 2).mean()):.2f}")
    print(f"median predictor (training median {median:.2f}): held-out MAE "
          f"{np.abs(held - median).mean():.2f}")
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(out_dir) for f in fs)
    print(f"{total:,} bytes in {out_dir}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
