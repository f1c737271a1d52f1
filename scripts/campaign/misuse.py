"""Command-line misuse (issue 10's list): bad numbers, unknown flags and commands,
devices, FIFOs, symlinks, loops and directories as inputs and outputs, a 10 MB CSV
field, UTF-8 byte order marks, all labels -1."""

import random

from common import CKPT_MODEL, TOKENS_MODEL, Case, i32s, npy_bytes
from data import base_data, encode_column


def misuse_cases(base):
    """The issue's list: bad numbers, unknown flags, special files as inputs and outputs,
    a 10 MB CSV field, byte order marks, all labels -1."""
    tok = ["train", "tok.mp", "--epochs", "1", "--threads", "1"]
    ck = ["train", "ck.mp", "--epochs", "1", "--threads", "1"]
    run = ["run", "ck.mp", "--weights", "w.safetensors"]
    rng = random.Random(5)
    cols = base_data(rng)
    good = {("d/" + r): b for r, b in (encode_column(k, v, "npy") for k, v in cols.items())}
    csvs = {("d/" + r): b for r, b in (encode_column(k, v, "csv") for k, v in cols.items())}
    data = ["--data", "d"]
    cases = [
        ("--batch 0", ck + ["--batch", "0"], ""),
        ("--batch -1", ck + ["--batch", "-1"], ""),
        ("--batch=-1", ck + ["--batch=-1"], ""),
        ("--lr -1", ck + ["--lr", "-1"], ""),
        ("--lr=-1", ck + ["--lr=-1"], ""),
        ("--lr=-1e-3", ck + ["--lr=-1e-3"], ""),
        ("--lr nan", ck + ["--lr", "nan"], ""),
        ("--lr inf", ck + ["--lr", "inf"], ""),
        ("--lr 0", ck + ["--lr", "0"], ""),
        ("--threads 0", ck[:4] + ["--threads", "0"], ""),
        ("--threads=-1", ck[:4] + ["--threads=-1"], ""),
        ("--threads 1000", ["train", "ck.mp", "--epochs", "1", "--threads", "1000"], ""),
        ("--threads 99999999999999999999", ck[:4] + ["--threads", "99999999999999999999"], ""),
        ("--epochs=-1", ck[:2] + ["--epochs=-1"], ""),
        ("--epochs 0", ["train", "ck.mp", "--epochs", "0"], ""),
        ("--seed=-5", ck + ["--seed=-5"], ""),
        ("--seed 2**64", ck + ["--seed", "18446744073709551616"], ""),
        ("--holdout 1.5", ck + data + ["--holdout", "1.5"], ""),
        ("--holdout without --data", ck + ["--holdout", "0.5"], ""),
        ("--device tpu", ck + ["--device", "tpu"], ""),
        ("--device cuda (no GPU here)", ck + ["--device", "cuda"], ""),
        ("unknown flag --epoch", ["train", "ck.mp", "--epoch", "1"], ""),
        ("unknown flag --frobnicate", ck + ["--frobnicate"], ""),
        ("unknown command", ["frobnicate", "ck.mp"], ""),
        ("no command", [], ""),
        ("missing FILE", ["train"], ""),
        ("--dim B", ck + ["--dim", "B"], ""),
        ("--dim B=0", ck + ["--dim", "B=0"], ""),
        ("--dim Z=3", ck + ["--dim", "Z=3"], ""),
        ("--dim B=-3", ck + ["--dim", "B=-3"], ""),
        ("--dim T=4000000000", ck + ["--dim", "T=4000000000"], ""),
        ("--save at /dev/null", ck + ["--save", "/dev/null"], ""),
        ("--save at /dev/full", ck + ["--save", "/dev/full"], ""),
        ("--save at a FIFO", ck + ["--save", "fifo"], "mkfifo fifo"),
        ("--save at a symlink", ck + ["--save", "link"], "touch target && ln -s target link"),
        ("--save at a dangling symlink", ck + ["--save", "link"], "ln -s nowhere link"),
        ("--save in a nonexistent dir", ck + ["--save", "no/such/dir/w.safetensors"], ""),
        ("--save at a directory", ck + ["--save", "adir"], "mkdir adir"),
        ("--save in a read-only dir", ck + ["--save", "ro/w.safetensors"], "mkdir ro && chmod 555 ro"),
        ("--out at /dev/null", run + ["--out", "/dev/null"], ""),
        ("--out at a FIFO", run + ["--out", "fifo"], "mkfifo fifo"),
        ("--out at a symlink", run + ["--out", "link"], "touch target && ln -s target link"),
        ("--out in a nonexistent dir", run + ["--out", "no/such/p.npy"], ""),
        ("model file is a FIFO", ["train", "fifo", "--epochs", "1"], "mkfifo fifo"),
        ("model file is /dev/zero", ["train", "/dev/zero", "--epochs", "1"], ""),
        ("model file is a symlink to /dev/zero", ["check", "z.mp"], "ln -s /dev/zero z.mp"),
        ("model file is a directory", ["train", "adir", "--epochs", "1"], "mkdir adir"),
        ("model file is a symlink loop", ["train", "loop.mp"], "ln -s loop.mp loop.mp"),
        ("model file does not exist", ["train", "none.mp"], ""),
        ("--weights is /dev/zero", ["run", "ck.mp", "--weights", "/dev/zero"], ""),
        ("--weights is a FIFO", ["run", "ck.mp", "--weights", "fifo"], "mkfifo fifo"),
        ("--weights is a directory", ["run", "ck.mp", "--weights", "adir"], "mkdir adir"),
        ("--weights does not exist", ["run", "ck.mp", "--weights", "none"], ""),
        ("run without --weights", ["run", "ck.mp"], ""),
        ("--data is a file", tok + ["--data", "tok.mp"], ""),
        ("--data does not exist", tok + ["--data", "none"], ""),
        ("tokens.npy is a directory", tok + data, "rm d/tokens.npy && mkdir d/tokens.npy"),
        ("tokens.npy is a FIFO", tok + data, "rm d/tokens.npy && mkfifo d/tokens.npy"),
        ("tokens.npy is a symlink loop", tok + data, "rm d/tokens.npy && ln -s tokens.npy d/tokens.npy"),
        ("tokens.npy is a symlink to /dev/zero", tok + data, "rm d/tokens.npy && ln -s /dev/zero d/tokens.npy"),
        ("y.csv holds a 10 MB field", tok + data, "rm d/y.npy && { printf '1\\n'; head -c 10485760 /dev/zero | tr '\\0' 7; printf '\\n'; } > d/y.csv"),
        ("feats.csv holds a 10 MB field", tok + data, "rm d/feats.npy && { head -c 10485760 /dev/zero | tr '\\0' 1; printf ',1,1\\n'; } > d/feats.csv"),
        ("UTF-8 BOM in the .mp", ["train", "bom.mp", "--epochs", "1", "--threads", "1"], "printf '\\357\\273\\277' > bom.mp && cat ck.mp >> bom.mp"),
        ("UTF-8 BOM in every CSV", tok + ["--data", "c"], "for f in c/*.csv; do printf '\\357\\273\\277' > t && cat $f >> t && mv t $f; done"),
        ("all labels -1 (npy)", tok + data, ""),
        ("all labels -1 (csv)", tok + ["--data", "c"], "for i in $(seq 40); do echo -1; done > c/y.csv"),
        ("--json with a bad checkpoint", run + ["--json"], "printf 'xx' > w.safetensors"),
        ("--dim from a checkpoint overridden to 0", run + ["--dim", "B=0"], ""),
    ]
    minus1 = npy_bytes("<i4", [40], i32s([-1] * 40))
    bad_model = ["check", "bad.mp"]
    streams = [
        ("stdout is /dev/full (train)", ck, "/dev/full", None),
        ("stdout is a closed pipe (train)", ck, "closed", None),
        ("stdout is /dev/full (compile --emit ir)", ["compile", "ck.mp"], "/dev/full", None),
        ("stdout is a closed pipe (inspect)", ["inspect", "ck.mp"], "closed", None),
        ("stdout is /dev/full (run --json)", run + ["--json"], "/dev/full", None),
        ("stderr is /dev/full (check of a bad model)", bad_model, None, "/dev/full"),
        ("stderr is a closed pipe (check of a bad model)", bad_model, None, "closed"),
        ("stderr is /dev/full (--batch 0)", ck + ["--batch", "0"], None, "/dev/full"),
        ("stderr is a closed pipe (--threads 1000 warning)", ["train", "ck.mp", "--threads", "1000"], None, "closed"),
    ]
    cases += [(desc, args, "") for desc, args, _, _ in streams]
    redirects = {desc: (out, err) for desc, _, out, err in streams}
    for n, (desc, args, setup) in enumerate(cases):
        out, err = redirects.get(desc, (None, None))
        c = Case("misuse", n, desc, args, setup, stdout=out, stderr=err)
        c.add("bad.mp", CKPT_MODEL.replace("linear(h, 3)", "linear(h, 4)"))
        c.add("tok.mp", TOKENS_MODEL).add("ck.mp", CKPT_MODEL).add("w.safetensors", base)
        for r, b in good.items():
            c.add(r, b)
        for r, b in csvs.items():
            c.add("c/" + r[2:], b)
        if desc == "all labels -1 (npy)":
            c.add("d/y.npy", minus1)
        yield c
