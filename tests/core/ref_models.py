"""An independent numpy reference (float64) for every model family plateau reads, used by the tests.

It shares no code with plateau. It reads model files on its own: Hugging Face dirs (config.json and
model.safetensors, or a sharded model.safetensors.index.json; F32/F16/BF16) and llama2.c checkpoints
(.bin, version 0 and 1). The math follows the published implementations:
  * gpt2      HF GPT2LMHeadModel (ref_gpt2.GPT2)
  * llama, mistral, qwen2   HF LlamaForCausalLM / MistralForCausalLM / Qwen2ForCausalLM: RMSNorm,
              rotate-half RoPE (HF's _compute_default_rope_parameters, or _compute_llama3_parameters
              for rope_scaling llama3), grouped-query attention, SwiGLU, q/k/v(/o) biases
  * gpt_neox  HF GPTNeoXForCausalLM: LayerNorm, partial rotate-half RoPE over int(head_size *
              rotary_pct) dims, fused query_key_value laid out [head, (q, k, v), head_size], exact
              GELU, parallel or sequential residual, embed_out
  * gemma2    HF Gemma2ForCausalLM (modeling_gemma2.py): embedding x sqrt(hidden_size), RMSNorm x (1 + w),
              input/post-attention and pre/post-feed-forward norms, GeGLU (tanh GELU), GQA with head_dim,
              scores x query_pre_attn_scalar^-0.5, soft-capped c tanh(s / c) before the mask, a
              sliding window (key j of query i when i - j < sliding_window) on the layers layer_types
              names sliding_attention (default: the even layers), final logits soft-capped, tied
  * llama2.c  run.c's forward: RMSNorm eps 1e-5, RoPE on interleaved pairs (2i, 2i+1) with
              freq 1/10000^(2i/head_size), GQA, SwiGLU, tied or separate classifier
forward(tokens, patch=None) -> (resid, logits): resid[r] is the [T, C] residual at resid index r
(r = l: blocks.l.hook_resid_pre; r = L: the last block's output), logits[T, V].
run_with_hooks(tokens, patch=None) -> ({hook: [T, W]}, logits): every TransformerLens hook point
(ref_gpt2.TLHooks) with TL's semantics: attn.hook_z is z of every query head concatenated [H*hd],
hook_attn_out after Gemma 2's post-attention norm, hook_mlp_out after its post-feed-forward norm, no
hook_resid_mid with a parallel residual, ln_final.hook_normalized before the final norm's weight.
Run with Debian's python3 (/usr/bin/python3), which has numpy.
"""
import json
import math
import os
import struct

import numpy as np

from ref_gpt2 import GPT2, TLHooks, normalized, read_safetensors  # noqa: F401  (GPT2 re-exported for load())

_erf = np.vectorize(math.erf)


def read_hf_tensors(model_dir):
    """All tensors of a model dir as float64 arrays: model.safetensors, or every shard of the index."""
    single = os.path.join(model_dir, "model.safetensors")
    if os.path.exists(single):
        tensors, _ = read_safetensors(single)
        return {k: v for k, (_, v) in tensors.items()}
    with open(os.path.join(model_dir, "model.safetensors.index.json")) as f:
        index = json.load(f)
    out = {}
    for shard in sorted(set(index["weight_map"].values())):
        tensors, _ = read_safetensors(os.path.join(model_dir, shard))
        for k, (_, v) in tensors.items():
            assert index["weight_map"][k] == shard
            out[k] = v
    return out


def rms_norm(x, w, eps):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w


def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def silu(x):
    return x / (1.0 + np.exp(-x))


def gelu_erf(x):
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def rope_half(x, inv_freq, positions):
    """HF rotate_half on the first 2*len(inv_freq) dims of x[T, n_heads, hd]."""
    rot = 2 * len(inv_freq)
    ang = np.outer(positions, inv_freq)            # [T, rot/2]
    cos = np.concatenate([np.cos(ang)] * 2, -1)[:, None, :]
    sin = np.concatenate([np.sin(ang)] * 2, -1)[:, None, :]
    xr, xp = x[..., :rot], x[..., rot:]
    x1, x2 = xr[..., : rot // 2], xr[..., rot // 2:]
    rotated = np.concatenate([-x2, x1], -1)
    return np.concatenate([xr * cos + rotated * sin, xp], -1)


def rope_interleaved(x, inv_freq, positions):
    """llama2.c run.c: pairs (2i, 2i+1) of x[T, n_heads, hd] rotated by pos * inv_freq[i]."""
    ang = np.outer(positions, inv_freq)[:, None, :]
    out = x.copy()
    x0, x1 = x[..., 0::2], x[..., 1::2]
    out[..., 0::2] = x0 * np.cos(ang) - x1 * np.sin(ang)
    out[..., 1::2] = x0 * np.sin(ang) + x1 * np.cos(ang)
    return out


def attention(q, k, v, scale=None, softcap=None, window=None):
    """Causal attention. q[T, H, hd], k and v [T, KVH, hd]; query head h reads kv head h // (H // KVH).
    Scores q.k * scale (default 1/sqrt(hd)), then softcap * tanh(s / softcap) when given, then the
    mask: causal, and with a window only keys j of query i with i - j < window."""
    T, H, hd = q.shape
    group = H // k.shape[1]
    out = np.zeros((T, H * hd))
    i, j = np.indices((T, T))
    mask = j <= i
    if window:
        mask &= i - j < window
    for h in range(H):
        kh, vh = k[:, h // group], v[:, h // group]
        att = q[:, h] @ kh.T * (scale if scale else 1.0 / math.sqrt(hd))
        if softcap:
            att = softcap * np.tanh(att / softcap)
        att = np.where(mask, att, -np.inf)
        att = np.exp(att - att.max(-1, keepdims=True))
        att /= att.sum(-1, keepdims=True)
        out[:, h * hd:(h + 1) * hd] = att @ vh
    return out


class Decoder(TLHooks):
    """The shared skeleton: subclasses set the weights and define block(x, l, positions) and
    final_eps / final_layer_norm (the final norm, for ln_final.hook_normalized)."""

    def _lin(self, x, name):
        """An nn.Linear of HF's tensors NAME.weight [out, in] and, when present, NAME.bias."""
        y = x @ self.w[name + ".weight"].T
        return y + self.w[name + ".bias"] if name + ".bias" in self.w else y

    def forward(self, tokens, patch=None):
        T = len(tokens)
        positions = np.arange(T, dtype=np.float64)
        x = self.embed[tokens]
        resid = []
        for l in range(self.L + 1):
            if patch is not None and patch[0] == l:
                x = x.copy()
                x[patch[1]] = patch[2]
            resid.append(x.copy())
            if l == self.L:
                break
            x = self.hook(l, "hook_resid_post", self.block(self.hook(l, "hook_resid_pre", x), l, positions))
        self.hook(self.L, "ln_final.hook_normalized", normalized(x, self.final_eps(), self.final_layer_norm))
        return resid, self.final_norm(x) @ self.unembed.T

    final_layer_norm = False

    def final_eps(self):
        return self.eps


class Llama(Decoder):
    """HF Llama / Mistral / Qwen2 from a model dir."""

    def __init__(self, model_dir):
        with open(os.path.join(model_dir, "config.json")) as f:
            cfg = json.load(f)
        w = read_hf_tensors(model_dir)
        self.w = w
        self.L = cfg["num_hidden_layers"]
        self.C = cfg["hidden_size"]
        self.H = cfg["num_attention_heads"]
        self.KVH = cfg.get("num_key_value_heads") or self.H
        self.hd = cfg.get("head_dim") or self.C // self.H
        self.eps = cfg.get("rms_norm_eps", 1e-6)
        theta = cfg.get("rope_theta", 10000.0)
        inv = 1.0 / theta ** (np.arange(0, self.hd, 2, dtype=np.float64) / self.hd)
        rs = cfg.get("rope_scaling")
        if rs and (rs.get("rope_type") or rs.get("type")) == "llama3":
            factor, lo, hi = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
            old = rs["original_max_position_embeddings"]
            wavelen = 2 * math.pi / inv
            scaled = np.where(wavelen > old / lo, inv / factor, inv)
            smooth = (old / wavelen - lo) / (hi - lo)
            smoothed = (1 - smooth) * scaled / factor + smooth * scaled
            medium = ~(wavelen < old / hi) & ~(wavelen > old / lo)
            inv = np.where(medium, smoothed, scaled)
        self.inv_freq = inv
        self.embed = w["model.embed_tokens.weight"]
        self.unembed = w["model.embed_tokens.weight"] if cfg.get("tie_word_embeddings") else w["lm_head.weight"]

    def final_norm(self, x):
        return rms_norm(x, self.w["model.norm.weight"], self.eps)

    def block(self, x, l, positions):
        p = f"model.layers.{l}."
        T = x.shape[0]
        h = rms_norm(x, self.w[p + "input_layernorm.weight"], self.eps)
        q = self._lin(h, p + "self_attn.q_proj").reshape(T, self.H, self.hd)
        k = self._lin(h, p + "self_attn.k_proj").reshape(T, self.KVH, self.hd)
        v = self._lin(h, p + "self_attn.v_proj").reshape(T, self.KVH, self.hd)
        q, k = rope_half(q, self.inv_freq, positions), rope_half(k, self.inv_freq, positions)
        z = self.hook(l, "attn.hook_z", attention(q, k, v))
        x = self.hook(l, "hook_resid_mid", x + self.hook(l, "hook_attn_out", self._lin(z, p + "self_attn.o_proj")))
        h = rms_norm(x, self.w[p + "post_attention_layernorm.weight"], self.eps)
        m = silu(self._lin(h, p + "mlp.gate_proj")) * self._lin(h, p + "mlp.up_proj")
        return x + self.hook(l, "hook_mlp_out", self._lin(m, p + "mlp.down_proj"))


class NeoX(Decoder):
    """HF GPT-NeoX from a model dir."""

    def __init__(self, model_dir):
        with open(os.path.join(model_dir, "config.json")) as f:
            cfg = json.load(f)
        w = read_hf_tensors(model_dir)
        self.w = w
        self.L = cfg["num_hidden_layers"]
        self.C = cfg["hidden_size"]
        self.H = cfg["num_attention_heads"]
        self.hd = self.C // self.H
        self.eps = cfg.get("layer_norm_eps", 1e-5)
        self.parallel = cfg.get("use_parallel_residual", True)
        rot = int(self.hd * cfg.get("rotary_pct", 0.25))
        base = cfg.get("rope_theta", cfg.get("rotary_emb_base", 10000.0))
        self.inv_freq = 1.0 / base ** (np.arange(0, rot, 2, dtype=np.float64) / rot)
        self.embed = w["gpt_neox.embed_in.weight"]
        self.unembed = self.embed if cfg.get("tie_word_embeddings") else w["embed_out.weight"]

    final_layer_norm = True

    def _ln(self, x, name):
        return layer_norm(x, self.w[name + ".weight"], self.w[name + ".bias"], self.eps)

    def final_norm(self, x):
        return self._ln(x, "gpt_neox.final_layer_norm")

    def block(self, x, l, positions):
        p = f"gpt_neox.layers.{l}."
        T = x.shape[0]
        qkv = self._lin(self._ln(x, p + "input_layernorm"), p + "attention.query_key_value")
        qkv = qkv.reshape(T, self.H, 3, self.hd)
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
        q, k = rope_half(q, self.inv_freq, positions), rope_half(k, self.inv_freq, positions)
        z = self.hook(l, "attn.hook_z", attention(q, k, v))
        a = self.hook(l, "hook_attn_out", self._lin(z, p + "attention.dense"))

        def mlp(y):
            m = self._lin(gelu_erf(self._lin(y, p + "mlp.dense_h_to_4h")), p + "mlp.dense_4h_to_h")
            return self.hook(l, "hook_mlp_out", m)

        if self.parallel:  # TL: resid_pre + attn_out + mlp_out, and no hook_resid_mid
            return x + a + mlp(self._ln(x, p + "post_attention_layernorm"))
        x = self.hook(l, "hook_resid_mid", x + a)
        return x + mlp(self._ln(x, p + "post_attention_layernorm"))


def gelu_tanh(x):
    """PyTorch's gelu(approximate="tanh") (HF's gelu_pytorch_tanh)."""
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


class Gemma2(Decoder):
    """HF Gemma 2 from a model dir, with transformers' defaults for absent keys."""

    def __init__(self, model_dir):
        with open(os.path.join(model_dir, "config.json")) as f:
            cfg = json.load(f)
        w = read_hf_tensors(model_dir)
        self.w = w
        self.L = cfg["num_hidden_layers"]
        self.C = cfg["hidden_size"]
        self.H = cfg["num_attention_heads"]
        self.KVH = cfg["num_key_value_heads"]
        self.hd = cfg["head_dim"]
        self.eps = cfg.get("rms_norm_eps", 1e-6)
        theta = cfg.get("rope_theta", (cfg.get("rope_parameters") or {}).get("rope_theta", 10000.0))
        self.inv_freq = 1.0 / theta ** (np.arange(0, self.hd, 2, dtype=np.float64) / self.hd)
        self.scale = cfg.get("query_pre_attn_scalar", 256) ** -0.5
        self.attn_cap = cfg.get("attn_logit_softcapping", 50.0)
        self.final_cap = cfg.get("final_logit_softcapping", 30.0)
        window = cfg.get("sliding_window", 4096)
        types = cfg.get("layer_types") or ["sliding_attention" if (i + 1) % 2 else "full_attention"
                                           for i in range(self.L)]
        self.windows = [window if t == "sliding_attention" else None for t in types]
        raw = w["model.embed_tokens.weight"]
        self.embed = raw * math.sqrt(self.C)  # resid index 0 is the scaled embedding
        self.unembed = raw if cfg.get("tie_word_embeddings", True) else w["lm_head.weight"]

    def _norm(self, x, name):
        return rms_norm(x, 1.0 + self.w[name + ".weight"], self.eps)

    def final_norm(self, x):
        return self._norm(x, "model.norm")

    def forward(self, tokens, patch=None):
        resid, logits = super().forward(tokens, patch)
        if self.final_cap:
            logits = self.final_cap * np.tanh(logits / self.final_cap)
        return resid, logits

    def block(self, x, l, positions):
        p = f"model.layers.{l}."
        T = x.shape[0]
        h = self._norm(x, p + "input_layernorm")
        q = self._lin(h, p + "self_attn.q_proj").reshape(T, self.H, self.hd)
        k = self._lin(h, p + "self_attn.k_proj").reshape(T, self.KVH, self.hd)
        v = self._lin(h, p + "self_attn.v_proj").reshape(T, self.KVH, self.hd)
        q, k = rope_half(q, self.inv_freq, positions), rope_half(k, self.inv_freq, positions)
        z = self.hook(l, "attn.hook_z", attention(q, k, v, self.scale, self.attn_cap, self.windows[l]))
        a = self._lin(z, p + "self_attn.o_proj")
        # TL applies ln1_post / ln2_post before hook_attn_out / hook_mlp_out (transformer_block.py)
        x = self.hook(l, "hook_resid_mid", x + self.hook(l, "hook_attn_out", self._norm(a, p + "post_attention_layernorm")))
        h = self._norm(x, p + "pre_feedforward_layernorm")
        m = self._lin(gelu_tanh(self._lin(h, p + "mlp.gate_proj")) * self._lin(h, p + "mlp.up_proj"), p + "mlp.down_proj")
        return x + self.hook(l, "hook_mlp_out", self._norm(m, p + "post_feedforward_layernorm"))


class Llama2c(Decoder):
    """A llama2.c checkpoint, read as run.c's memory_map_weights (v0) or export.py's version 1."""

    def __init__(self, path):
        raw = open(path, "rb").read()
        magic, version = struct.unpack("<Ii", raw[:8])
        if magic == 0x616B3432:
            assert version == 1
            dim, hidden, L, H, KVH, V, S = struct.unpack("<7i", raw[8:36])
            shared = raw[36] == 1
            off = 256
        else:
            version = 0
            dim, hidden, L, H, KVH, V, S = struct.unpack("<7i", raw[:28])
            shared = V > 0
            V = abs(V)
            off = 28
        floats = np.frombuffer(raw, dtype="<f4", offset=off).astype(np.float64)
        hs = dim // H
        kv = KVH * hs
        pos = [0]

        def take(*shape):
            n = int(np.prod(shape))
            a = floats[pos[0]:pos[0] + n].reshape(shape)
            pos[0] += n
            return a

        w = {}
        if version == 0:
            w["emb"] = take(V, dim)
            w["att_norm"], w["wq"], w["wk"] = take(L, dim), take(L, dim, dim), take(L, kv, dim)
            w["wv"], w["wo"], w["ffn_norm"] = take(L, kv, dim), take(L, dim, dim), take(L, dim)
            w["w1"], w["w2"], w["w3"] = take(L, hidden, dim), take(L, dim, hidden), take(L, hidden, dim)
            w["norm"] = take(dim)
            take(S, hs // 2)
            take(S, hs // 2)
        else:
            w["att_norm"], w["ffn_norm"], w["norm"] = take(L, dim), take(L, dim), take(dim)
            w["emb"] = take(V, dim)
            w["wq"], w["wk"], w["wv"], w["wo"] = take(L, dim, dim), take(L, kv, dim), take(L, kv, dim), take(L, dim, dim)
            w["w1"], w["w2"], w["w3"] = take(L, hidden, dim), take(L, dim, hidden), take(L, hidden, dim)
        w["cls"] = w["emb"] if shared else take(V, dim)
        assert pos[0] == len(floats), "file size disagrees with the header"
        self.w, self.L, self.H, self.KVH, self.hd, self.C = w, L, H, KVH, hs, dim
        self.inv_freq = 1.0 / 10000.0 ** (np.arange(0, hs, 2, dtype=np.float64) / hs)
        self.embed, self.unembed = w["emb"], w["cls"]

    def final_norm(self, x):
        return rms_norm(x, self.w["norm"], 1e-5)

    def final_eps(self):
        return 1e-5

    def block(self, x, l, positions):
        w, T = self.w, x.shape[0]
        h = rms_norm(x, w["att_norm"][l], 1e-5)
        q = (h @ w["wq"][l].T).reshape(T, self.H, self.hd)
        k = (h @ w["wk"][l].T).reshape(T, self.KVH, self.hd)
        v = (h @ w["wv"][l].T).reshape(T, self.KVH, self.hd)
        q, k = rope_interleaved(q, self.inv_freq, positions), rope_interleaved(k, self.inv_freq, positions)
        z = self.hook(l, "attn.hook_z", attention(q, k, v))
        x = self.hook(l, "hook_resid_mid", x + self.hook(l, "hook_attn_out", z @ w["wo"][l].T))
        h = rms_norm(x, w["ffn_norm"][l], 1e-5)
        return x + self.hook(l, "hook_mlp_out", (silu(h @ w["w1"][l].T) * (h @ w["w3"][l].T)) @ w["w2"][l].T)


class GPT2Sharded(GPT2):
    """ref_gpt2.GPT2 on a sharded dir (the tensors of every shard)."""

    def __init__(self, model_dir):
        with open(os.path.join(model_dir, "config.json")) as f:
            cfg = json.load(f)
        self.L, self.H, self.C = cfg["n_layer"], cfg["n_head"], cfg["n_embd"]
        self.eps = cfg.get("layer_norm_epsilon", 1e-5)
        self.w = {k[len("transformer."):] if k.startswith("transformer.") else k: v
                  for k, v in read_hf_tensors(model_dir).items()}
        self.V = self.w["wte.weight"].shape[0]


def load(path):
    """The reference model for a model path, by its format and config.json's model_type."""
    if os.path.isfile(path):
        return Llama2c(path)
    with open(os.path.join(path, "config.json")) as f:
        kind = json.load(f).get("model_type", "gpt2")
    if kind == "gpt2":
        return GPT2(path) if os.path.exists(os.path.join(path, "model.safetensors")) else GPT2Sharded(path)
    if kind in ("llama", "mistral", "qwen2"):
        return Llama(path)
    if kind == "gpt_neox":
        return NeoX(path)
    if kind == "gemma2":
        return Gemma2(path)
    raise ValueError(f"{path}: model_type {kind}")
