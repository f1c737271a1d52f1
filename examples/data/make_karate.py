"""Builds examples/data/karate/ from networkx's copy of Zachary's karate club.

    python3 -m venv /tmp/nx && /tmp/nx/bin/pip install networkx numpy
    /tmp/nx/bin/python examples/data/make_karate.py examples/data/karate

Nodes 0..33 are the club's members; the label is the faction each joined after the
split (0 = Mr. Hi, 1 = Officer). Features are one-hot identities (x = I, 34 x 34).
Training labels: TRAIN_NODES below (4 per faction); every other node is -1 there and is
labeled in test/y.npy, where the training nodes are -1.
"""

import sys

import networkx as nx
import numpy as np

# Four members of each faction, the leaders (0: Mr. Hi, 33: the officer) among them.
TRAIN_NODES = [0, 1, 4, 10, 33, 32, 24, 27]


def main(out_dir):
    g = nx.karate_club_graph()
    n = g.number_of_nodes()
    assert n == 34 and g.number_of_edges() == 78
    y = np.array([0 if g.nodes[i]["club"] == "Mr. Hi" else 1 for i in range(n)], dtype=np.int32)
    # Both directions of every undirected edge: [2, 156], row 0 sources, row 1 destinations.
    pairs = sorted([(u, v) for u, v in g.edges()] + [(v, u) for u, v in g.edges()])
    edges = np.array(pairs, dtype=np.int32).T.copy()
    x = np.eye(n, dtype=np.float32)
    train = np.full(n, -1, dtype=np.int32)
    train[TRAIN_NODES] = y[TRAIN_NODES]
    test = y.copy()
    test[TRAIN_NODES] = -1
    for name, a in [("g.edges", edges), ("x", x), ("y", train), ("test/y", test)]:
        np.save(f"{out_dir}/{name}.npy", a)
        print(name, a.dtype, a.shape)
    print("factions:", np.bincount(y), "training labels:", np.bincount(train[train >= 0]))


if __name__ == "__main__":
    main(sys.argv[1])
