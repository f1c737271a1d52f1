"""What the campaign's cases are made of: the small models the data, checkpoint and
misuse classes train and run, a [`Case`] (files, shell setup, mpc arguments), and
byte-level writers of `.npy` and safetensors files."""

import json
import struct
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


TOKENS_MODEL = """model Tok {
  dims { B = 8, T = 4 }
  input tokens: i32[B, T] vocab 20
  input feats: f32[B, 3]
  label y: i32[B] classes 3
  let z = mean(embed(tokens, 8), axis: 1) + linear(feats, 8)
  loss cross_entropy(linear(relu(z), 3), y)
}
train { optimizer adam(lr: 1e-2) epochs 1 batch B seed 1 }
"""

REGRESS_MODEL = """model Reg {
  dims { B = 4 }
  input x: f32[B, 2, 2]
  label target: f32[B, 1]
  loss mse(linear(flatten(x), 1), target)
}
"""

CKPT_MODEL = """model Ck {
  dims { B = 16, T = 8 }
  input tokens: i32[B, T] vocab 50
  label y: i32[B] classes 3
  let h = relu(linear(mean(embed(tokens, 8), axis: 1), 16))
  loss cross_entropy(linear(h, 3), y)
}
train { optimizer adam(lr: 1e-2) epochs 1 batch B seed 3 }
"""

NUMBERS = ["0", "-1", "1", "2", "3", "4000000000", "4294967296", "99999999999999999999",
           "9223372036854775807", "1e30", "1e-30", "-1e30", "NaN", "nan", "inf", "1e308",
           "0.0", "-0", "65536", "1000000"]

# --- npy and safetensors writing --------------------------------------------------------


def npy_bytes(descr, shape, data, fortran=False, major=1, header_extra=""):
    """A .npy file: magic, version, header dict padded to 64 bytes, data."""
    dims = ", ".join(str(d) for d in shape)
    shape_txt = f"({dims},)" if len(shape) == 1 else f"({dims})"
    header = (f"{{'descr': '{descr}', 'fortran_order': {fortran}, "
              f"'shape': {shape_txt}, {header_extra}}}")
    size_len = 2 if major == 1 else 4
    while (6 + 2 + size_len + len(header) + 1) % 64:
        header += " "
    header += "\n"
    out = b"\x93NUMPY" + bytes([major, 0])
    out += struct.pack("<H" if major == 1 else "<I", len(header))
    return out + header.encode("latin-1") + data


def i32s(values):
    return struct.pack(f"<{len(values)}i", *values)


def f32s(values):
    return struct.pack(f"<{len(values)}f", *values)


def split_safetensors(data):
    """(header dict, data bytes) of a safetensors file, or None."""
    if len(data) < 8:
        return None
    n = struct.unpack("<Q", data[:8])[0]
    try:
        header = json.loads(data[8:8 + n])
    except (ValueError, UnicodeDecodeError):
        return None
    return header, data[8 + n:]


def join_safetensors(header, body, pad=True):
    text = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + body


class Case:
    """One run: a directory with its files, an optional shell setup (FIFOs, links),
    and the mpc arguments (paths relative to the directory)."""

    def __init__(self, cls, n, desc, args, setup="", stdout=None, stderr=None):
        self.cls, self.n, self.desc, self.args, self.setup = cls, n, desc, args, setup
        # None: captured; "/dev/full"; or "closed": a pipe whose reader is gone.
        self.stdout, self.stderr = stdout, stderr
        self.files = {}  # relative path -> bytes

    def add(self, rel, data):
        self.files[rel] = data if isinstance(data, bytes) else data.encode()
        return self
