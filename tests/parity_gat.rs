//! Parity with PyTorch Geometric: graph attention written in mpc
//! (`tests/fixtures/parity/gat.mp`: two layers with self-loops; `gat_isolated.mp`: one
//! layer without self-loops, where two nodes receive no message) against
//! `torch_geometric.nn.GATConv` from mpc's initial parameters (`bench/parity_gat.py`
//! made `<model>.json` and says how): the initial logits and the loss of 20 full-graph
//! Adam steps agree to 1e-4 relative.

mod common;

use common::parity::matches_reference;

#[test]
fn two_gat_layers_with_self_loops_match_pyg() {
    matches_reference("gat", "data_graph", "PyG");
}

#[test]
fn a_gat_layer_without_self_loops_matches_pyg_on_nodes_no_edge_reaches() {
    matches_reference("gat_isolated", "data_graph", "PyG");
}
