"""An independent float64 numpy SAE in SAELens's conventions, written for the tests from SAELens's
inference classes (StandardSAE, JumpReLUSAE, TopKSAE and SAE.process_sae_in / run_time_activation_norm_fn_*):

    x' = norm_in(x) - b_dec * apply_b_dec_to_input        pre = x' @ W_enc + b_enc
    standard: relu(pre)    jumprelu: relu(pre) * (pre > threshold)    topk: relu at torch.topk(pre, k)
    x_hat = norm_out(acts @ W_dec + b_dec)

normalize_activations: constant_norm_rescale multiplies by sqrt(d_in) / |x| and divides the output by the
same factor; layer_norm subtracts the mean, divides by std + 1e-5 (torch's unbiased std) and undoes it with
std (not std + eps) and the mean. TopK ties (which torch leaves unspecified) go to the lower index, as
plateau documents. It reads cfg.json and sae_weights.safetensors itself (tests/core/ref_gpt2.py's parser).
"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "core"))
from ref_gpt2 import read_safetensors, write_safetensors  # noqa: E402,F401


class SAE:
    def __init__(self, path):
        with open(os.path.join(path, "cfg.json")) as f:
            cfg = json.load(f)
        self.cfg = cfg
        t, _ = read_safetensors(os.path.join(path, "sae_weights.safetensors"))
        self.W_enc, self.b_enc = t["W_enc"][1], t["b_enc"][1]
        self.W_dec, self.b_dec = t["W_dec"][1], t["b_dec"][1]
        arch = cfg.get("architecture") or "standard"
        fn = cfg.get("activation_fn", cfg.get("activation_fn_str"))
        if arch == "standard" and fn == "topk":
            arch = "topk"
        self.arch = arch
        self.threshold = t["threshold"][1] if arch == "jumprelu" else None
        self.k = cfg.get("k") or (cfg.get("activation_fn_kwargs") or {}).get("k")
        norm = cfg.get("normalize_activations")
        self.norm = "none" if norm in (None, False) else norm
        self.apply = cfg.get("apply_b_dec_to_input", True)
        self.d_in, self.d_sae = self.W_enc.shape
        self.hook = cfg.get("hook_name") or cfg.get("hook_point") or (cfg.get("metadata") or {}).get("hook_name")

    def norm_in(self, x):
        """(x normalised, gain, shift): x_hat = gain * (acts W_dec + b_dec) + shift undoes it."""
        x = np.asarray(x, np.float64)
        if self.norm == "constant_norm_rescale":
            coeff = np.sqrt(self.d_in) / np.linalg.norm(x, axis=-1, keepdims=True)
            return x * coeff, 1.0 / coeff[..., 0], np.zeros(x.shape[:-1])
        if self.norm == "layer_norm":
            mu = x.mean(-1, keepdims=True)
            std = x.std(-1, ddof=1, keepdims=True)
            return (x - mu) / (std + 1e-5), std[..., 0], mu[..., 0]
        return x, np.ones(x.shape[:-1]), np.zeros(x.shape[:-1])

    def pre(self, x):
        xn, gain, shift = self.norm_in(x)
        return (xn - (self.b_dec if self.apply else 0.0)) @ self.W_enc + self.b_enc, gain, shift

    def activate(self, pre):
        if self.arch == "standard":
            return np.maximum(pre, 0.0)
        if self.arch == "jumprelu":
            return np.maximum(pre, 0.0) * (pre > self.threshold)
        out = np.zeros_like(pre)
        for i, row in enumerate(np.atleast_2d(pre)):
            order = np.lexsort((np.arange(len(row)), -row))[: self.k]  # largest first, ties: lower index
            out.reshape(-1, self.d_sae)[i, order] = np.maximum(row[order], 0.0)
        return out

    def encode(self, x):
        pre, gain, shift = self.pre(x)
        return self.activate(pre), gain, shift

    def decode(self, acts, gain, shift):
        return np.asarray(gain)[..., None] * (acts @ self.W_dec + self.b_dec) + np.asarray(shift)[..., None]

    def reconstruct(self, x):
        acts, gain, shift = self.encode(x)
        return self.decode(acts, gain, shift)

    def ambiguous(self, pre, tol):
        """Entries whose activity float32 rounding could flip: near 0, near the threshold, or near the
        k-th largest value of their row (with a strict gap to the next one)."""
        amb = np.abs(pre) < tol
        if self.arch == "jumprelu":
            amb |= np.abs(pre - self.threshold) < tol
        if self.arch == "topk":
            for i, row in enumerate(np.atleast_2d(pre)):
                kth = np.sort(row)[::-1][self.k - 1]
                amb.reshape(-1, self.d_sae)[i] |= (np.abs(row - kth) < tol) & (np.abs(row - kth) > 0)
        return amb


def write_sae(path, cfg, tensors, dtype="F32"):
    """A SAELens dir from numpy arrays: cfg.json and sae_weights.safetensors (F32, F16 or F64)."""
    os.makedirs(path, exist_ok=True)
    np_dtype = {"F32": "<f4", "F16": "<f2", "F64": "<f8"}[dtype]
    write_safetensors(os.path.join(path, "sae_weights.safetensors"),
                      [(name, dtype, np.asarray(a).astype(np_dtype)) for name, a in tensors.items()])
    with open(os.path.join(path, "cfg.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    return path
