"""Minimal safetensors reader/writer for the model tests, written from the format description
(8-byte little-endian header length, JSON header, data section) independently of plateau's C."""
import json
import os
import struct
import subprocess
import sys

import numpy as np

NP_DTYPE = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "I64": np.int64, "I32": np.int32,
            "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_, "BF16": np.uint16}


def read(path):
    """(header dict in file order, data bytes)."""
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    return header, raw[8 + n:]


def write(path, header, data, header_len=None, pad=True):
    """HEADER: a dict, or a str written verbatim (for malformed JSON)."""
    text = header if isinstance(header, str) else json.dumps(header)
    blob = text.encode()
    if pad:
        blob += b" " * (-(8 + len(blob)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(blob) if header_len is None else header_len))
        f.write(blob)
        f.write(data)


def tensor_f32(header, data, name):
    """The tensor as float32 (bf16 widened by shifting, f16/bool/int by numpy casts)."""
    d = header[name]
    a, b = d["data_offsets"]
    arr = np.frombuffer(data[a:b], dtype=NP_DTYPE[d["dtype"]]).reshape(d["shape"])
    if d["dtype"] == "BF16":
        return (arr.astype(np.uint32) << 16).view(np.float32)
    return arr.astype(np.float32)


def run(args, check_rc=None):
    bin_ = os.environ["PLATEAU_BIN"]
    p = subprocess.run([bin_] + args, capture_output=True, text=True, timeout=600)
    if check_rc is not None and p.returncode != check_rc:
        sys.exit(f"FAIL: plateau {' '.join(args)} exited {p.returncode}, expected {check_rc}\n"
                 f"stdout: {p.stdout[-2000:]}\nstderr: {p.stderr[-2000:]}")
    return p


def synth(out_dir, *extra, layers=2, embd=16, heads=4, ctx=8, vocab=300):
    if "--embd" in extra:  # an override
        i = extra.index("--embd")
        embd, extra = int(extra[i + 1]), extra[:i] + extra[i + 2:]
    args = ["synth", out_dir, "--layers", str(layers), "--embd", str(embd), "--heads", str(heads),
            "--ctx", str(ctx)]
    if "--vocab-from" not in extra:
        args += ["--vocab", str(vocab)]
    run(args + list(extra), check_rc=0)
