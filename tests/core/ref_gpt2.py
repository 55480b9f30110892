"""An independent numpy GPT-2 (float64) used as the reference in plateau's tests.

It shares no code with plateau: it reads a Hugging Face model dir on its own (safetensors parsed
here, F32/F16/BF16, optional `transformer.` prefix, tied `lm_head.weight`, causal-mask buffers
ignored) and computes the forward pass the way HF's GPT2LMHeadModel does.

Run with Debian's python3 (/usr/bin/python3), which has numpy.
"""
import json
import os
import struct

import numpy as np

_DTYPES = {"F32": np.dtype("<f4"), "F16": np.dtype("<f2"), "F64": np.dtype("<f8"), "I64": np.dtype("<i8"),
           "I32": np.dtype("<i4"), "U8": np.dtype("u1"), "BOOL": np.dtype("u1")}


def read_safetensors(path):
    """Return {name: (dtype_string, float64 array or raw array)} and the metadata dict."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    tensors = {}
    meta = header.pop("__metadata__", {})
    for name, info in header.items():
        begin, end = info["data_offsets"]
        buf = data[begin:end]
        shape = tuple(info["shape"])
        if info["dtype"] == "BF16":
            u16 = np.frombuffer(buf, dtype="<u2").astype(np.uint32) << 16
            arr = u16.view(np.float32).astype(np.float64)
        else:
            arr = np.frombuffer(buf, dtype=_DTYPES[info["dtype"]])
            if arr.dtype.kind == "f":
                arr = arr.astype(np.float64)
        tensors[name] = (info["dtype"], arr.reshape(shape))
    return tensors, meta


def write_safetensors(path, tensors, metadata=None):
    """tensors: list of (name, dtype_string, numpy array already in that dtype's storage)."""
    header = {}
    offset = 0
    blobs = []
    for name, dtype, arr in tensors:
        b = np.ascontiguousarray(arr).tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [offset, offset + len(b)]}
        offset += len(b)
        blobs.append(b)
    if metadata is not None:
        header["__metadata__"] = metadata
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


class TLHooks:
    """TransformerLens's hook points on a reference model: each model calls self.hook(l, site, a) where
    TL's TransformerBlock.forward calls blocks.l.<site> (transformer_lens/components/transformer_block.py;
    attn.hook_z in abstract_attention.py; ln_final.hook_normalized, the final norm's x / scale before
    its weight and bias, in layer_norm.py / rms_norm.py). run_with_hooks records every hook of a forward,
    and replaces one hook's activation at one position (or at a list of positions, each its own row of
    the vector [P, W]: whole contexts), as a TL forward hook would."""

    hook_patch = None  # (layer, site, pos, vector)
    hook_cache = None  # {(layer, site): [T, W]} while recording

    def hook(self, l, site, a):
        if self.hook_patch is not None and self.hook_patch[:2] == (l, site):
            a = a.copy()
            a[self.hook_patch[2]] = self.hook_patch[3]
        if self.hook_cache is not None:
            self.hook_cache[(l, site)] = a.copy()
        return a

    def run_with_hooks(self, tokens, patch=None):
        """({hook name: [T, W]}, logits[T, V]) of a forward; patch = (hook name, pos, vector)."""
        self.hook_cache = {}
        self.hook_patch = None
        if patch is not None:
            name, pos, vec = patch
            if name == "ln_final.hook_normalized":
                l, site = self.L, name
            else:
                _, l, site = name.split(".", 2)
            self.hook_patch = (int(l), site, pos, vec)
        try:
            _, logits = self.forward(tokens)
            cache = {(k[1] if k[1].startswith("ln_final") else f"blocks.{k[0]}.{k[1]}"): v
                     for k, v in self.hook_cache.items()}
        finally:
            self.hook_cache = self.hook_patch = None
        return cache, logits


def normalized(x, eps, layer_norm):
    """TL's hook_normalized: (x - mean) / sqrt(var + eps) (LayerNorm) or x / sqrt(mean x^2 + eps) (RMSNorm)."""
    if layer_norm:
        x = x - x.mean(-1, keepdims=True)
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps)


class GPT2(TLHooks):
    def __init__(self, model_dir):
        with open(os.path.join(model_dir, "config.json")) as f:
            cfg = json.load(f)
        self.L = cfg["n_layer"]
        self.H = cfg["n_head"]
        self.C = cfg["n_embd"]
        self.eps = cfg.get("layer_norm_epsilon", 1e-5)
        tensors, _ = read_safetensors(os.path.join(model_dir, "model.safetensors"))
        w = {}
        for name, (_, arr) in tensors.items():
            if name.startswith("transformer."):
                name = name[len("transformer."):]
            w[name] = arr
        self.w = w
        self.V = w["wte.weight"].shape[0]

    def _ln(self, x, name):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + self.eps) * self.w[name + ".weight"] + self.w[name + ".bias"]

    def _lin(self, x, name):
        return x @ self.w[name + ".weight"] + self.w[name + ".bias"]

    @staticmethod
    def _gelu(x):
        return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x ** 3)))

    def forward(self, tokens, patch=None):
        """Return (resid, logits): resid[r] is the [T, C] residual at resid index r (r = l is
        blocks.l.hook_resid_pre, r = L is the final block's output); logits[T, V].
        patch = (r, pos, vector) replaces the residual at (r, pos) before it flows on."""
        T = len(tokens)
        x = self.w["wte.weight"][tokens] + self.w["wpe.weight"][:T]
        resid = []
        C, H = self.C, self.H
        hs = C // H
        mask = np.tril(np.ones((T, T), dtype=bool))
        for l in range(self.L + 1):
            if patch is not None and patch[0] == l:
                x = x.copy()
                x[patch[1]] = patch[2]
            resid.append(x.copy())
            if l == self.L:
                break
            x = self.hook(l, "hook_resid_pre", x)
            p = f"h.{l}."
            qkv = self._lin(self._ln(x, p + "ln_1"), p + "attn.c_attn")
            q, k, v = qkv[:, :C], qkv[:, C:2 * C], qkv[:, 2 * C:]
            out = np.zeros((T, C))
            for h in range(H):
                sl = slice(h * hs, (h + 1) * hs)
                att = q[:, sl] @ k[:, sl].T / np.sqrt(hs)
                att = np.where(mask, att, -np.inf)
                att = np.exp(att - att.max(-1, keepdims=True))
                att /= att.sum(-1, keepdims=True)
                out[:, sl] = att @ v[:, sl]
            out = self.hook(l, "attn.hook_z", out)
            x = self.hook(l, "hook_resid_mid", x + self.hook(l, "hook_attn_out", self._lin(out, p + "attn.c_proj")))
            m = self._lin(self._gelu(self._lin(self._ln(x, p + "ln_2"), p + "mlp.c_fc")), p + "mlp.c_proj")
            x = self.hook(l, "hook_resid_post", x + self.hook(l, "hook_mlp_out", m))
        self.hook(self.L, "ln_final.hook_normalized", normalized(x, self.eps, True))
        logits = self._ln(x, "ln_f") @ self.w["wte.weight"].T
        return resid, logits


def log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))
