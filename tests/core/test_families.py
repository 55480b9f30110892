"""plateau's forward pass and fast path for every model family against the independent numpy
reference (ref_models.py), on model files written here in Python (not by plateau synth), with
weights large enough that attention is far from uniform (so a wrong rotary embedding shows):

  llama    GQA ratio 1, untied, F32; GQA 2 with explicit head_dim (!= hidden/heads), tied,
           attention_bias, rope_theta 500000 and llama3 rope_scaling, F16
  mistral  GQA 4, sliding_window shorter than max_position_embeddings (plateau then takes at most
           sliding_window positions), BF16
  qwen2    q/k/v biases, GQA 2, tied, sharded into 3 files, F32
  gpt_neox rotary_pct 0.25 parallel residual untied F32; 0.5 sequential sharded rotary_emb_base 1000
           BF16; 1.0 parallel tied F16
  gemma2   GQA 2, head_dim 16 != hidden/heads, query_pre_attn_scalar 24 != head_dim, attention
           soft-cap 2 and final soft-cap 5 (small enough to bend the scores and logits), sliding_window
           4 on the even layers (transformers' default), tied, F32; GQA 2, explicit layer_types (full,
           sliding), window 3, no soft-caps (null), untied, BF16; plateau synth --family gemma2
           (--sliding-window 5); sliding_window null with only full_attention layers (accepted, as
           transformers does). Every sequence is longer than its window (T = 11): the windows are
           exercised in the full forward and in the fast path
  llama2.c version 1 untied GQA 2; version 0 tied
  gpt2     sharded into 3 files (written by plateau synth --shards 3 --hf-quirks), BF16

For each: `plateau logits --all` vs numpy within 1e-3, the residual at every hook within 1e-3,
patched forwards vs numpy within 1e-3, the fast path == the full patched forward within 1e-4
(several hooks, positions, M = 1, 4, 17), batched forwards and grouped fast path == one at a time
(test_forward.check_model), and with q, k, v and gate, up unfused (probe_forward --unfused): vs numpy
within 1e-3 and vs the fused matrices within 1e-4. Also: `plateau info` names the family (and the
fused matrices of the Llama-like and Gemma 2 dirs), and a sequence longer than the
mistral window is refused.
"""
import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ref_gpt2  # noqa: E402
import ref_models  # noqa: E402
import test_forward  # noqa: E402


def storage(arr, dtype):
    return test_forward.to_storage(arr, dtype)


def write_dir(path, cfg, params, dtype, shards=1):
    """config.json plus params (list of (name, float64 array)) in one file or SHARDS files + index."""
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(cfg, f)
    tensors = [(name, dtype, storage(a, dtype)) for name, a in params]
    if shards == 1:
        ref_gpt2.write_safetensors(os.path.join(path, "model.safetensors"), tensors, {"format": "pt"})
        return
    tensors.reverse()  # shards need not follow any order
    weight_map = {}
    for s in range(shards):
        part = tensors[s::shards]
        name = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        ref_gpt2.write_safetensors(os.path.join(path, name), part, {"format": "pt"})
        weight_map.update({t[0]: name for t in part})
    with open(os.path.join(path, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": 0}, "weight_map": weight_map}, f)


def llama_dir(path, rng, family, L, C, H, KVH, V, N, dtype, head_dim=None, tied=False, attn_bias=False,
              theta=10000.0, llama3=None, window=None, shards=1):
    hd = head_dim or C // H
    I = 3 * C - 8
    cfg = {"model_type": family, "hidden_size": C, "intermediate_size": I, "num_hidden_layers": L,
           "num_attention_heads": H, "num_key_value_heads": KVH, "vocab_size": V, "max_position_embeddings": N,
           "rms_norm_eps": 1e-5, "rope_theta": theta, "tie_word_embeddings": tied, "hidden_act": "silu"}
    if head_dim:
        cfg["head_dim"] = head_dim
    if family == "llama":
        cfg["attention_bias"] = attn_bias
    if llama3:
        cfg["rope_scaling"] = dict(zip(["factor", "low_freq_factor", "high_freq_factor",
                                        "original_max_position_embeddings"], llama3), rope_type="llama3")
    if window:
        cfg["sliding_window"] = window

    def w(*shape, scale=0.1):
        return rng.normal(0.0, scale, shape)

    params = [("model.embed_tokens.weight", w(V, C, scale=1.0)), ("model.norm.weight", 1 + w(C))]
    if not tied:
        params.append(("lm_head.weight", w(V, C, scale=0.3)))
    for l in range(L):
        p = f"model.layers.{l}."
        params += [(p + "input_layernorm.weight", 1 + w(C)), (p + "post_attention_layernorm.weight", 1 + w(C)),
                   (p + "self_attn.q_proj.weight", w(H * hd, C, scale=0.25)),
                   (p + "self_attn.k_proj.weight", w(KVH * hd, C, scale=0.25)),
                   (p + "self_attn.v_proj.weight", w(KVH * hd, C, scale=0.2)),
                   (p + "self_attn.o_proj.weight", w(C, H * hd, scale=0.1)),
                   (p + "mlp.gate_proj.weight", w(I, C, scale=0.15)), (p + "mlp.up_proj.weight", w(I, C, scale=0.15)),
                   (p + "mlp.down_proj.weight", w(C, I, scale=0.08))]
        if family == "qwen2" or attn_bias:
            params += [(p + "self_attn.q_proj.bias", w(H * hd, scale=0.5)),
                       (p + "self_attn.k_proj.bias", w(KVH * hd, scale=0.5)),
                       (p + "self_attn.v_proj.bias", w(KVH * hd))]
        if attn_bias:
            params.append((p + "self_attn.o_proj.bias", w(C)))
    write_dir(path, cfg, params, dtype, shards)


def neox_dir(path, rng, L, C, H, V, N, dtype, pct, parallel, tied=False, base=None, shards=1):
    I = 4 * C
    cfg = {"model_type": "gpt_neox", "hidden_size": C, "intermediate_size": I, "num_hidden_layers": L,
           "num_attention_heads": H, "vocab_size": V, "max_position_embeddings": N, "rotary_pct": pct,
           "use_parallel_residual": parallel, "layer_norm_eps": 1e-5, "hidden_act": "gelu",
           "tie_word_embeddings": tied}
    if base:
        cfg["rotary_emb_base"] = base

    def w(*shape, scale=0.1):
        return rng.normal(0.0, scale, shape)

    params = [("gpt_neox.embed_in.weight", w(V, C, scale=1.0)), ("gpt_neox.final_layer_norm.weight", 1 + w(C)),
              ("gpt_neox.final_layer_norm.bias", w(C))]
    if not tied:
        params.append(("embed_out.weight", w(V, C, scale=0.3)))
    for l in range(L):
        p = f"gpt_neox.layers.{l}."
        params += [(p + "input_layernorm.weight", 1 + w(C)), (p + "input_layernorm.bias", w(C)),
                   (p + "post_attention_layernorm.weight", 1 + w(C)), (p + "post_attention_layernorm.bias", w(C)),
                   (p + "attention.query_key_value.weight", w(3 * C, C, scale=0.25)),
                   (p + "attention.query_key_value.bias", w(3 * C, scale=0.3)),
                   (p + "attention.dense.weight", w(C, C)), (p + "attention.dense.bias", w(C)),
                   (p + "mlp.dense_h_to_4h.weight", w(I, C, scale=0.15)), (p + "mlp.dense_h_to_4h.bias", w(I)),
                   (p + "mlp.dense_4h_to_h.weight", w(C, I, scale=0.05)), (p + "mlp.dense_4h_to_h.bias", w(C))]
    write_dir(path, cfg, params, dtype, shards)


def gemma2_dir(path, rng, L, C, H, KVH, hd, V, N, dtype, qpas, attn_cap, final_cap, window, layer_types=None,
               tied=True):
    I = 4 * C
    cfg = {"model_type": "gemma2", "hidden_size": C, "intermediate_size": I, "num_hidden_layers": L,
           "num_attention_heads": H, "num_key_value_heads": KVH, "head_dim": hd, "vocab_size": V,
           "max_position_embeddings": N, "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "tie_word_embeddings": tied,
           "hidden_activation": "gelu_pytorch_tanh", "hidden_act": "gelu_pytorch_tanh",
           "query_pre_attn_scalar": qpas, "attn_logit_softcapping": attn_cap,
           "final_logit_softcapping": final_cap, "sliding_window": window, "attention_bias": False}
    if layer_types:
        cfg["layer_types"] = layer_types

    def w(*shape, scale=0.1):
        return rng.normal(0.0, scale, shape)

    # Gemma's norms scale by (1 + w): gains near 0 are norms near 1
    params = [("model.embed_tokens.weight", w(V, C, scale=0.3)), ("model.norm.weight", w(C))]
    if not tied:
        params.append(("lm_head.weight", w(V, C, scale=0.3)))
    for l in range(L):
        p = f"model.layers.{l}."
        params += [(p + n + ".weight", w(C, scale=0.3)) for n in ("input_layernorm", "post_attention_layernorm",
                                                                   "pre_feedforward_layernorm",
                                                                   "post_feedforward_layernorm")]
        params += [(p + "self_attn.q_proj.weight", w(H * hd, C, scale=0.3)),
                   (p + "self_attn.k_proj.weight", w(KVH * hd, C, scale=0.3)),
                   (p + "self_attn.v_proj.weight", w(KVH * hd, C, scale=0.2)),
                   (p + "self_attn.o_proj.weight", w(C, H * hd, scale=0.1)),
                   (p + "mlp.gate_proj.weight", w(I, C, scale=0.15)), (p + "mlp.up_proj.weight", w(I, C, scale=0.15)),
                   (p + "mlp.down_proj.weight", w(C, I, scale=0.08))]
    write_dir(path, cfg, params, dtype)


def llama2c_file(path, rng, version, dim, hidden, L, H, KVH, V, S, shared):
    """A llama2.c checkpoint in run.c's layout (version 0) or export.py's version 1."""
    hs = dim // H
    kv = KVH * hs

    def w(*shape, scale=0.1):
        return rng.normal(0.0, scale, shape)

    emb, att, ffn, norm = w(V, dim, scale=1.0), 1 + w(L, dim), 1 + w(L, dim), 1 + w(dim)
    wq, wk, wv, wo = w(L, dim, dim, scale=0.25), w(L, kv, dim, scale=0.25), w(L, kv, dim, scale=0.2), w(L, dim, dim)
    w1, w2, w3 = w(L, hidden, dim, scale=0.15), w(L, dim, hidden, scale=0.08), w(L, hidden, dim, scale=0.15)
    cls = None if shared else w(V, dim, scale=0.3)
    with open(path, "wb") as f:
        if version == 0:
            f.write(struct.pack("<7i", dim, hidden, L, H, KVH, V if shared else -V, S))
            parts = [emb, att, wq, wk, wv, wo, ffn, w1, w2, w3, norm, w(S, hs // 2), w(S, hs // 2)]
        else:
            head = struct.pack("<Ii7iB", 0x616B3432, 1, dim, hidden, L, H, KVH, V, S, int(shared))
            f.write(head + bytes(256 - len(head)))
            parts = [att, ffn, norm, emb, wq, wk, wv, wo, w1, w2, w3]
        if not shared:
            parts.append(cls)
        for a in parts:
            f.write(np.asarray(a, "<f4").tobytes())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--plateau", required=True)
    ap.add_argument("--probe", required=True)
    ap.add_argument("--groups", required=True)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(7)
        cases = []

        def add(label, path, L, C, V, T, family):
            cases.append((label, path, L, C, V, T, family))

        p = os.path.join(tmp, "llama_mha")
        llama_dir(p, rng, "llama", 2, 64, 4, 4, 300, 32, "F32")
        add("llama GQA 1 untied F32", p, 2, 64, 300, 11, "llama")
        p = os.path.join(tmp, "llama_gqa2")
        llama_dir(p, rng, "llama", 3, 48, 4, 2, 257, 40, "F16", head_dim=24, tied=True, attn_bias=True,
                  theta=500000.0, llama3=(8.0, 1.0, 4.0, 8))
        add("llama GQA 2 head_dim 24 tied biases theta 5e5 llama3 F16", p, 3, 48, 257, 11, "llama")
        p = os.path.join(tmp, "mistral")
        llama_dir(p, rng, "mistral", 2, 64, 8, 2, 300, 64, "BF16", window=12)
        add("mistral GQA 4 sliding_window 12 BF16", p, 2, 64, 300, 12, "mistral")
        p = os.path.join(tmp, "qwen2")
        llama_dir(p, rng, "qwen2", 2, 32, 4, 2, 300, 32, "F32", tied=True, shards=3)
        add("qwen2 biases GQA 2 tied 3 shards F32", p, 2, 32, 300, 11, "qwen2")
        p = os.path.join(tmp, "neox_par")
        neox_dir(p, rng, 2, 64, 4, 300, 32, "F32", 0.25, True)
        add("gpt_neox rotary 0.25 parallel untied F32", p, 2, 64, 300, 11, "gpt_neox")
        p = os.path.join(tmp, "neox_seq")
        neox_dir(p, rng, 3, 48, 3, 257, 32, "BF16", 0.5, False, base=1000.0, shards=2)
        add("gpt_neox rotary 0.5 sequential base 1000 2 shards BF16", p, 3, 48, 257, 11, "gpt_neox")
        p = os.path.join(tmp, "neox_full")
        neox_dir(p, rng, 1, 32, 2, 300, 16, "F16", 1.0, True, tied=True)
        add("gpt_neox rotary 1.0 parallel tied F16", p, 1, 32, 300, 11, "gpt_neox")
        p = os.path.join(tmp, "gpt2_sharded")
        r = subprocess.run([args.plateau, "synth", p, "--layers", "2", "--embd", "32", "--heads", "4", "--ctx", "16",
                            "--vocab", "300", "--shards", "3", "--hf-quirks", "--dtype", "bf16", "--seed", "3"],
                           capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit("synth: " + r.stderr)
        add("gpt2 (plateau synth) 3 shards, HF quirks, BF16", p, 2, 32, 300, 11, "gpt2")
        p = os.path.join(tmp, "gemma2_caps")
        gemma2_dir(p, rng, 3, 48, 4, 2, 16, 300, 32, "F32", 24, 2.0, 5.0, 4)
        add("gemma2 GQA 2 head_dim 16 qpas 24 soft-caps 2/5 window 4 (even layers) tied F32", p, 3, 48, 300, 11,
            "gemma2")
        p = os.path.join(tmp, "gemma2_types")
        gemma2_dir(p, rng, 2, 32, 2, 1, 16, 300, 32, "BF16", 16, None, None, 3,
                   layer_types=["full_attention", "sliding_attention"], tied=False)
        add("gemma2 layer_types (full, sliding) window 3 no soft-caps untied BF16", p, 2, 32, 300, 11, "gemma2")
        p = os.path.join(tmp, "gemma2_synth")
        r = subprocess.run([args.plateau, "synth", p, "--family", "gemma2", "--layers", "2", "--embd", "32", "--heads",
                            "4", "--kv-heads", "2", "--head-dim", "8", "--ctx", "16", "--vocab", "300", "--tied",
                            "--sliding-window", "5", "--seed", "4"], capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit("synth: " + r.stderr)
        add("gemma2 (plateau synth) window 5 tied F32", p, 2, 32, 300, 11, "gemma2")
        p = os.path.join(tmp, "l2c_v1.bin")
        llama2c_file(p, rng, 1, 48, 100, 2, 6, 3, 260, 24, False)
        add("llama2.c version 1 untied GQA 2", p, 2, 48, 260, 11, "llama")
        p = os.path.join(tmp, "l2c_v0.bin")
        llama2c_file(p, rng, 0, 32, 64, 2, 4, 4, 260, 16, True)
        add("llama2.c version 0 tied", p, 2, 32, 260, 11, "llama")
        # transformers needs a window only where a layer slides: sliding_window null with full layers alone
        p = os.path.join(tmp, "gemma2_null_window")
        gemma2_dir(p, np.random.default_rng(11), 2, 32, 2, 1, 16, 300, 32, "F32", 16, 50.0, 30.0, None,
                   layer_types=["full_attention", "full_attention"])
        add("gemma2 sliding_window null, layer_types all full_attention", p, 2, 32, 300, 11, "gemma2")

        for seed, (label, path, L, C, V, T, family) in enumerate(cases):
            print(label)
            info = subprocess.run([args.plateau, "info", path], capture_output=True, text=True)
            if info.returncode != 0 or f"family              {family}\n" not in info.stdout:
                print(info.stdout, info.stderr)
                test_forward.FAILURES.append(label + ": plateau info")
                continue
            # q, k, v and gate, up fused at load for the nn.Linear families of a Hugging Face dir
            fused = family in ("llama", "mistral", "qwen2", "gemma2") and os.path.isdir(path)
            if fused != ("fused [q | k | v]" in info.stdout and "fused [gate | up]" in info.stdout):
                print(info.stdout)
                test_forward.FAILURES.append(label + ": plateau info's fused matrices")
            test_forward.check_model(args, tmp, path, ref_models.load(path), label, L, C, V, T, seed)

        # the mistral window: 13 positions are one more than sliding_window
        out = subprocess.run([args.plateau, "logits", os.path.join(tmp, "mistral"), "--ids", ",".join(["5"] * 13)],
                             capture_output=True, text=True)
        ok = out.returncode == 2 and "13 tokens: the model takes 1..12 positions" in out.stderr
        print(f"  {'ok' if ok else 'FAIL'} 13 tokens on a sliding_window=12 model refused: {out.stderr.strip()}")
        if not ok:
            test_forward.FAILURES.append("sliding window refusal")
    if test_forward.FAILURES:
        print(f"{len(test_forward.FAILURES)} checks failed: {test_forward.FAILURES}")
        sys.exit(1)
    print("all checks passed")


if __name__ == "__main__":
    main()
