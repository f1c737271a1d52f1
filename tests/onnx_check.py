"""Runs an ONNX model exported by `mpc export` in onnxruntime and compares its output
with the predictions `mpc run --out` wrote for the same rows.

    onnx_check.py MODEL.onnx INPUTS_DIR PREDS.npy

INPUTS_DIR holds one <input>.npy per model input (`mpc export --sample-inputs`): the
first batch of the rows `mpc run` evaluated. The model's output for it must equal the
first rows of PREDS.npy within |onnx - mpc| <= ATOL + RTOL * |mpc| elementwise.
Prints one line and exits 0 on a match, 1 (with the worst element) otherwise.
"""

import os
import sys

import numpy as np
import onnxruntime as ort

ATOL = 1e-5
RTOL = 1e-5


def main(model_path, inputs_dir, preds_path):
    options = ort.SessionOptions()
    # One thread: deterministic, and CI's two cores are shared with cargo.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])
    feeds = {}
    for spec in session.get_inputs():
        x = np.load(os.path.join(inputs_dir, spec.name + ".npy"))
        if list(x.shape) != list(spec.shape):
            sys.exit(f"input {spec.name}: shape {list(x.shape)}, the model takes {spec.shape}")
        feeds[spec.name] = x
    (output,) = session.run(["predictions"], feeds)
    expected = np.load(preds_path)
    # A padded batch of graphs has empty slots; mpc's predictions are the real rows.
    rows = min(len(output), len(expected))
    got, want = output[:rows], expected[:rows]
    if got.shape[1:] != want.shape[1:]:
        sys.exit(f"predictions: shape {got.shape}, mpc's rows {want.shape}")
    err = np.abs(got.astype(np.float64) - want.astype(np.float64))
    bound = ATOL + RTOL * np.abs(want.astype(np.float64))
    if not np.all(np.isfinite(got)) or np.any(err > bound):
        worst = np.unravel_index(np.argmax(err - bound), err.shape)
        print(
            f"MISMATCH {model_path}: {int(np.sum(err > bound))} of {err.size} elements; worst at {tuple(map(int, worst))}: "
            f"onnx {got[worst]!r} mpc {want[worst]!r}"
        )
        return 1
    print(f"ok {model_path}: {rows} rows x {got[0].size} values, max abs diff {err.max():.3g}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    sys.exit(main(*sys.argv[1:]))
