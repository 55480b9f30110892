"""Malformed model dirs: each one must make `plateau info` (and `plateau verify`) print exactly one
line "plateau: <file>: ... <problem>" on stderr and exit 2 — never crash, never hang, never load.

Every case starts from a small synthetic model (plateau synth) and rewrites its header or bytes
with the independent Python reader/writer in stio.py."""
import json
import os
import shutil
import struct
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stio  # noqa: E402

work = tempfile.mkdtemp(prefix="plateau-malformed-")
base = os.path.join(work, "base")
stio.synth(base)  # L=2, C=16, H=4, N=8, V=300, F32
ST = "model.safetensors"
# verify parses its manifest before the model file; any well-formed manifest will do here
open(os.path.join(work, "manifest"), "w").write("0" * 64 + "  wte.weight  19200\n")


def fresh(name, base_name="gpt2"):
    d = os.path.join(work, name)
    shutil.copytree(bases[base_name], d)
    return d


def load(d):
    return stio.read(os.path.join(d, ST))


def save(d, header, data, **kw):
    stio.write(os.path.join(d, ST), header, data, **kw)


JSON_NULL = object()  # edit_config's value for a key set to JSON null (None removes the key)


def edit_config(d, **changes):
    path = os.path.join(d, "config.json")
    cfg = json.load(open(path))
    for k, v in changes.items():
        if v is None:
            cfg.pop(k, None)
        else:
            cfg[k] = None if v is JSON_NULL else v
    json.dump(cfg, open(path, "w"))


def append_tensor_data(header, data, name, dtype, shape, nbytes):
    """Point NAME at fresh bytes appended to the data section (so byte sizes stay consistent)."""
    begin = len(data)
    header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [begin, begin + nbytes]}
    return data + bytes(range(256)) * (nbytes // 256) + bytes(nbytes % 256)


# ---- the cases: (name, mutate(dir), file the message must name, substrings it must contain) ----
cases = []


def case(name, file, *expect, base_name="gpt2"):
    def register(fn):
        cases.append((name, fn, file, expect, base_name))
        return fn
    return register


@case("truncated_file", ST, "tensor '", "run past the end of the data section")
def _(d):
    raw = open(os.path.join(d, ST), "rb").read()
    open(os.path.join(d, ST), "wb").write(raw[: len(raw) // 2])


@case("empty_file", ST, "file is 0 bytes, too short for the 8-byte header length")
def _(d):
    open(os.path.join(d, ST), "wb").close()


@case("shorter_than_length_field", ST, "file is 5 bytes")
def _(d):
    open(os.path.join(d, ST), "wb").write(b"\x10\0\0\0\0")


@case("header_length_huge", ST, "header length 1099511627776 runs past the end of the file")
def _(d):
    h, data = load(d)
    save(d, h, data, header_len=1 << 40)


@case("header_length_one_past_eof", ST, "runs past the end of the file")
def _(d):
    path = os.path.join(d, ST)
    size = os.path.getsize(path)
    raw = bytearray(open(path, "rb").read())
    raw[:8] = struct.pack("<Q", size - 8 + 1)
    open(path, "wb").write(raw)


@case("header_length_over_cap", ST, "header length 209715200 exceeds the 104857600-byte limit")
def _(d):
    # a sparse 300 MB file: the length fits the file but not the parser's cap
    path = os.path.join(d, ST)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", 200 << 20))
        f.truncate(300 << 20)


@case("header_length_zero", ST, "header length 0 is too short for a JSON object")
def _(d):
    h, data = load(d)
    save(d, "", data, header_len=0, pad=False)


@case("garbage_json", ST, "header is not valid JSON")
def _(d):
    h, data = load(d)
    save(d, '{"wte.weight": {"dtype": "F32", "shape": [300, 16], ' + "\x07garbage", data)


@case("json_not_object", ST, "header is not a JSON object")
def _(d):
    h, data = load(d)
    save(d, "[1, 2, 3]", data)


@case("offsets_past_end", ST, "tensor 'ln_f.bias': data_offsets", "run past the end of the data section")
def _(d):
    h, data = load(d)
    a, b = h["ln_f.bias"]["data_offsets"]
    h["ln_f.bias"]["data_offsets"] = [len(data) - 32, len(data) + 32]
    save(d, h, data)


@case("offsets_reversed", ST, "tensor 'ln_f.bias'", "end before they begin")
def _(d):
    h, data = load(d)
    a, b = h["ln_f.bias"]["data_offsets"]
    h["ln_f.bias"]["data_offsets"] = [b, a]
    save(d, h, data)


@case("overlapping_tensors", ST, "overlap tensor")
def _(d):
    h, data = load(d)
    a, b = h["ln_f.weight"]["data_offsets"]
    # ln_f.bias (64 bytes) now starts half way into ln_f.weight
    h["ln_f.bias"]["data_offsets"] = [a + 32, a + 96]
    save(d, h, data)


@case("byte_size_disagrees_with_shape", ST, "tensor 'h.0.ln_1.bias': shape [12] of F32 needs 48 bytes",
      "hold 64")
def _(d):
    h, data = load(d)
    h["h.0.ln_1.bias"]["shape"] = [12]
    save(d, h, data)


@case("shape_disagrees_with_config", ST,
      "tensor 'h.1.attn.c_attn.weight': expected shape [16, 48] from config.json (n_embd=16), found [48, 16]")
def _(d):
    h, data = load(d)
    h["h.1.attn.c_attn.weight"]["shape"] = [48, 16]
    save(d, h, data)


@case("vocab_size_disagrees_with_wte", ST,
      "tensor 'wte.weight': expected shape [301, 16] from config.json (vocab_size=301, n_embd=16), found [300, 16]")
def _(d):
    edit_config(d, vocab_size=301)


@case("wpe_longer_than_n_positions", ST, "tensor 'wpe.weight': expected shape [4, 16]", "n_positions=4",
      "found [8, 16]")
def _(d):
    edit_config(d, n_positions=4, n_ctx=4)


@case("missing_tensor", ST, "missing tensor 'h.1.mlp.c_fc.bias'")
def _(d):
    h, data = load(d)
    del h["h.1.mlp.c_fc.bias"]
    save(d, h, data)


@case("unexpected_tensor", ST, "unexpected tensor 'h.0.mlp.c_gate.weight'")
def _(d):
    h, data = load(d)
    data = append_tensor_data(h, data, "h.0.mlp.c_gate.weight", "F32", [16, 16], 1024)
    save(d, h, data)


@case("layer_beyond_config", ST, "tensor 'h.2.ln_1.weight': layer 2 is beyond n_layer=2 from config.json")
def _(d):
    h, data = load(d)
    data = append_tensor_data(h, data, "h.2.ln_1.weight", "F32", [16], 64)
    save(d, h, data)


@case("same_tensor_with_and_without_prefix", ST, "tensor 'wte.weight' appears twice")
def _(d):
    h, data = load(d)
    data = append_tensor_data(h, data, "transformer.wte.weight", "F32", [300, 16], 300 * 16 * 4)
    save(d, h, data)


@case("untied_lm_head", ST, "tensor 'lm_head.weight' differs from 'wte.weight'")
def _(d):
    h, data = load(d)
    data = append_tensor_data(h, data, "lm_head.weight", "F32", [300, 16], 300 * 16 * 4)
    save(d, h, data)


@case("unknown_dtype", ST, "tensor 'h.0.ln_2.weight': unknown dtype 'F42'")
def _(d):
    h, data = load(d)
    h["h.0.ln_2.weight"]["dtype"] = "F42"
    save(d, h, data)


@case("dtype_not_a_string", ST, "tensor 'h.0.ln_2.weight': \"dtype\" is not a string")
def _(d):
    h, data = load(d)
    h["h.0.ln_2.weight"]["dtype"] = 32
    save(d, h, data)


@case("unsupported_weight_dtype_i64", ST, "tensor 'ln_f.bias': dtype I64 is not supported for weights")
def _(d):
    h, data = load(d)
    data = append_tensor_data(h, data, "ln_f.bias", "I64", [16], 128)
    save(d, h, data)


@case("negative_shape", ST, "tensor 'ln_f.weight': shape entry 0 is not a non-negative integer")
def _(d):
    h, data = load(d)
    h["ln_f.weight"]["shape"] = [-16]
    save(d, h, data)


@case("non_integer_shape", ST, "tensor 'ln_f.weight': shape entry 1 is not a non-negative integer")
def _(d):
    h, data = load(d)
    h["ln_f.weight"]["shape"] = [16, 1.5]
    save(d, h, data)


@case("shape_overflow", ST, "tensor 'ln_f.weight': shape's byte size overflows 64 bits")
def _(d):
    h, data = load(d)
    h["ln_f.weight"]["shape"] = [1 << 40, 1 << 40]
    save(d, h, data)


@case("too_many_dims", ST, "tensor 'ln_f.weight': shape has 9 dimensions")
def _(d):
    h, data = load(d)
    h["ln_f.weight"]["shape"] = [1] * 8 + [16]
    save(d, h, data)


@case("offsets_not_a_pair", ST, "tensor 'ln_f.weight': \"data_offsets\" is not a pair of non-negative integers")
def _(d):
    h, data = load(d)
    h["ln_f.weight"]["data_offsets"] = [0]
    save(d, h, data)


@case("entry_not_an_object", ST, "tensor 'ln_f.weight': header entry is not a JSON object")
def _(d):
    h, data = load(d)
    h["ln_f.weight"] = "F32"
    save(d, h, data)


@case("metadata_not_strings", ST, "\"__metadata__\" key 'format' is not a string")
def _(d):
    h, data = load(d)
    h["__metadata__"] = {"format": 1}
    save(d, h, data)


@case("duplicate_name", ST, "header is not valid JSON", "duplicate object key")
def _(d):
    h, data = load(d)
    text = json.dumps(h)
    entry = json.dumps(h["ln_f.bias"])
    save(d, text[:-1] + ', "ln_f.bias": ' + entry + "}", data)


@case("control_character_in_name", ST, "tensor #", "holds control characters")
def _(d):
    h, data = load(d)
    data = append_tensor_data(h, data, "wte.weight\nplateau: all good", "F32", [1], 4)
    save(d, h, data)


@case("missing_model_safetensors", ST, "cannot open: No such file or directory")
def _(d):
    os.unlink(os.path.join(d, ST))


@case("model_safetensors_is_a_directory", ST, "not a regular file")
def _(d):
    os.unlink(os.path.join(d, ST))
    os.mkdir(os.path.join(d, ST))


@case("broken_config_json", "config.json", "not valid JSON")
def _(d):
    open(os.path.join(d, "config.json"), "w").write('{"n_layer": 2, "n_head": ')


@case("config_not_object", "config.json", "not a JSON object")
def _(d):
    open(os.path.join(d, "config.json"), "w").write("[2, 4, 16]")


@case("missing_config_json", "config.json", "cannot open: No such file or directory")
def _(d):
    os.unlink(os.path.join(d, "config.json"))


@case("missing_config_key", "config.json", "key \"n_head\" is missing")
def _(d):
    edit_config(d, n_head=None)


@case("missing_positions_key", "config.json", "key \"n_positions\" (or \"n_ctx\") is missing")
def _(d):
    edit_config(d, n_positions=None, n_ctx=None)


@case("config_key_not_integer", "config.json", "key \"n_layer\" is not an integer")
def _(d):
    edit_config(d, n_layer="2")


@case("config_key_negative", "config.json", "key \"n_embd\" must be positive (found -16)")
def _(d):
    edit_config(d, n_embd=-16)


@case("n_embd_not_divisible_by_n_head", "config.json", "key \"n_embd\" = 16 is not divisible by \"n_head\" = 3")
def _(d):
    edit_config(d, n_head=3)


@case("bad_layer_norm_epsilon", "config.json", "key \"layer_norm_epsilon\" must be a number in (0, 1)")
def _(d):
    edit_config(d, layer_norm_epsilon=-1e-5)


@case("config_key_too_large", "config.json", "key \"n_layer\" = 10000000000 exceeds the supported maximum")
def _(d):
    edit_config(d, n_layer=10**10)


# Cases about the model (names, shapes, dtypes against config.json) rather than the container:
# verify checks tensors against a manifest, not against a config, so only info sees these.
MODEL_LEVEL = {"shape_disagrees_with_config", "vocab_size_disagrees_with_wte", "wpe_longer_than_n_positions",
               "missing_tensor", "unexpected_tensor", "layer_beyond_config", "untied_lm_head",
               "unsupported_weight_dtype_i64"}
@case("other_model_type", "config.json", "model_type \"gpt_neo\" is not supported (gpt2, llama, mistral, qwen2, gpt_neox, gemma2)")
def _(d):
    edit_config(d, model_type="gpt_neo")


@case("other_activation", "config.json", "key \"activation_function\" is relu")
def _(d):
    edit_config(d, activation_function="relu")


@case("n_inner_not_4c", "config.json", "key \"n_inner\" must be null or 4 * n_embd = 64")
def _(d):
    edit_config(d, n_inner=32)


@case("inverse_layer_idx_scaling", "config.json", "key \"scale_attn_by_inverse_layer_idx\" must be false")
def _(d):
    edit_config(d, scale_attn_by_inverse_layer_idx=True)


# ---- other families: Llama / Qwen2 / Mistral / GPT-NeoX HF dirs (single and sharded) and llama2.c files ----
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "core"))
import numpy as np  # noqa: E402
import test_families  # noqa: E402  (the independent llama2.c writer)

bases = {"gpt2": base}
for name, extra in (("llama", ["--family", "llama", "--kv-heads", "2"]),
                    ("sharded", ["--family", "llama", "--kv-heads", "2", "--shards", "2"]),
                    ("neox", ["--family", "gpt_neox", "--embd", "32"]), ("mistral", ["--family", "mistral"]),
                    ("gemma2", ["--family", "gemma2", "--kv-heads", "2", "--head-dim", "8", "--sliding-window", "4"])):
    bases[name] = os.path.join(work, "base-" + name)
    stio.synth(bases[name], *extra)
bases["l2c"] = os.path.join(work, "base-l2c")
os.makedirs(bases["l2c"])
L2C = "model.bin"
test_families.llama2c_file(os.path.join(bases["l2c"], L2C), np.random.default_rng(1), 0, 16, 32, 2, 4, 2, 300, 8, True)
SHARD2 = "model-00002-of-00002.safetensors"
INDEX = "model.safetensors.index.json"


def replace_with_fifo(path):
    if os.path.isdir(path):
        shutil.rmtree(path)
    else:
        os.unlink(path)
    os.mkfifo(path)


def poke_float(d, file, tensor, index, value):
    header, data = stio.read(os.path.join(d, file))
    a = header[tensor]["data_offsets"][0] + 4 * index
    data = data[:a] + struct.pack("<f", value) + data[a + 4:]
    save_as(d, file, header, data)


def save_as(d, file, header, data):
    stio.write(os.path.join(d, file), header, data)


def edit_l2c(d, offset, fmt, *values):
    path = os.path.join(d, L2C)
    raw = bytearray(open(path, "rb").read())
    struct.pack_into(fmt, raw, offset, *values)
    open(path, "wb").write(bytes(raw))


@case("llama_heads_not_dividing_width", "config.json",
      'key "hidden_size" = 16 is not divisible by "num_attention_heads" = 3', base_name="llama")
def _(d):
    edit_config(d, num_attention_heads=3, num_key_value_heads=3)


@case("llama_kv_heads_not_dividing_heads", "config.json",
      '"num_attention_heads" = 4 is not divisible by "num_key_value_heads" = 3', base_name="llama")
def _(d):
    edit_config(d, num_key_value_heads=3)


@case("llama_heads_times_head_dim_huge", "config.json",
      "num_attention_heads x head_dim = 4294967296 exceeds the supported maximum", base_name="llama")
def _(d):
    edit_config(d, num_attention_heads=65536, num_key_value_heads=65536, head_dim=65536)


@case("llama_unknown_rope_scaling", "config.json", 'rope_type "yarn" is not supported (none, default or llama3)',
      base_name="llama")
def _(d):
    edit_config(d, rope_scaling={"rope_type": "yarn", "factor": 4.0})


@case("llama_old_style_linear_scaling", "config.json", 'rope_type "linear" is not supported', base_name="llama")
def _(d):
    edit_config(d, rope_scaling={"type": "linear", "factor": 2.0})


@case("llama3_scaling_without_factor", "config.json", '"factor" is missing or not a positive number',
      base_name="llama")
def _(d):
    edit_config(d, rope_scaling={"rope_type": "llama3", "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                 "original_max_position_embeddings": 8})


@case("llama_hidden_act_gelu", "config.json", 'key "hidden_act" is "gelu"', base_name="llama")
def _(d):
    edit_config(d, hidden_act="gelu")


@case("llama_mlp_bias", "config.json", 'key "mlp_bias" is true: not supported', base_name="llama")
def _(d):
    edit_config(d, mlp_bias=True)


@case("llama_quantized", "config.json", 'key "quantization_config" is set: not supported', base_name="llama")
def _(d):
    edit_config(d, quantization_config={"quant_method": "gptq"})


@case("llama_missing_key", "config.json", 'key "intermediate_size" is missing', base_name="llama")
def _(d):
    edit_config(d, intermediate_size=None)


@case("mistral_attention_bias", "config.json", 'key "attention_bias" is true: Mistral has no attention biases',
      base_name="mistral")
def _(d):
    edit_config(d, attention_bias=True)


@case("llama_kv_heads_disagree_with_k_proj", ST,
      "tensor 'model.layers.0.self_attn.k_proj.weight': expected shape [16, 16] from config.json", base_name="llama")
def _(d):
    edit_config(d, num_key_value_heads=4)


@case("llama_missing_tensor", ST, "missing tensor 'model.layers.1.mlp.up_proj.weight' (llama, config.json: "
      "hidden_size=16, intermediate_size=48)", base_name="llama")
def _(d):
    header, data = load(d)
    del header["model.layers.1.mlp.up_proj.weight"]
    save(d, header, data)


@case("llama_unexpected_tensor", ST, "unexpected tensor 'model.layers.0.mlp.extra.weight' (not a llama tensor",
      base_name="llama")
def _(d):
    header, data = load(d)
    header["model.layers.0.mlp.extra.weight"] = header.pop("model.layers.0.mlp.up_proj.weight")
    save(d, header, data)


@case("llama_untied_without_lm_head", ST, "missing tensor 'lm_head.weight'", base_name="llama")
def _(d):
    header, data = load(d)
    del header["lm_head.weight"]
    save(d, header, data)


@case("llama_tied_but_lm_head_differs", "config.json",
      "tie_word_embeddings is true but lm_head.weight differs from model.embed_tokens.weight", base_name="llama")
def _(d):
    edit_config(d, tie_word_embeddings=True)


@case("llama_nan_weight", ST, "tensor 'model.layers.0.self_attn.q_proj.weight': element 5 is NaN",
      base_name="llama")
def _(d):
    poke_float(d, ST, "model.layers.0.self_attn.q_proj.weight", 5, float("nan"))


@case("llama_infinite_weight", ST, "tensor 'model.norm.weight': element 0 is infinite", base_name="llama")
def _(d):
    poke_float(d, ST, "model.norm.weight", 0, float("inf"))


@case("config_is_fifo", "config.json", "is a FIFO, not a regular file", base_name="llama")
def _(d):
    replace_with_fifo(os.path.join(d, "config.json"))


@case("config_is_directory", "config.json", "is a directory, not a regular file", base_name="llama")
def _(d):
    os.unlink(os.path.join(d, "config.json"))
    os.mkdir(os.path.join(d, "config.json"))


@case("weights_are_fifo", ST, "is a FIFO, not a regular file", base_name="llama")
def _(d):
    replace_with_fifo(os.path.join(d, ST))


@case("missing_shard", SHARD2, "cannot open: No such file or directory", base_name="sharded")
def _(d):
    os.unlink(os.path.join(d, SHARD2))


@case("shard_is_fifo", SHARD2, "is a FIFO, not a regular file", base_name="sharded")
def _(d):
    replace_with_fifo(os.path.join(d, SHARD2))


@case("index_names_tensor_twice", INDEX, "not valid JSON: duplicate object key", base_name="sharded")
def _(d):
    path = os.path.join(d, INDEX)
    text = open(path).read()
    text = text.replace('"weight_map": {', '"weight_map": {\n    "model.norm.weight": "' + SHARD2 + '",', 1)
    open(path, "w").write(text)


@case("index_maps_to_wrong_shard", INDEX, "tensor 'model.norm.weight' is mapped to model-00001-of-00002.safetensors, "
      "which does not hold it", base_name="sharded")
def _(d):
    path = os.path.join(d, INDEX)
    index = json.load(open(path))
    assert index["weight_map"]["model.norm.weight"] == SHARD2
    index["weight_map"]["model.norm.weight"] = "model-00001-of-00002.safetensors"
    json.dump(index, open(path, "w"))


@case("shard_tensor_not_in_index", SHARD2, "tensor 'model.norm.weight' is not mapped to this shard",
      base_name="sharded")
def _(d):
    path = os.path.join(d, INDEX)
    index = json.load(open(path))
    del index["weight_map"]["model.norm.weight"]
    json.dump(index, open(path, "w"))


@case("index_shard_outside_dir", INDEX, 'is not a file name in the model dir', base_name="sharded")
def _(d):
    path = os.path.join(d, INDEX)
    index = json.load(open(path))
    index["weight_map"]["model.norm.weight"] = "../elsewhere.safetensors"
    json.dump(index, open(path, "w"))


@case("neox_odd_rotary_dims", "config.json", 'key "rotary_pct" = 0.375 gives 3 rotary dims of head size 8: not even',
      base_name="neox")
def _(d):
    edit_config(d, rotary_pct=0.375)


@case("neox_gelu_new", "config.json", 'key "hidden_act" is "gelu_new": plateau computes GPT-NeoX\'s exact-erf',
      base_name="neox")
def _(d):
    edit_config(d, hidden_act="gelu_new")


@case("neox_rope_scaling", "config.json", 'key "rope_scaling" is set: not supported for gpt_neox', base_name="neox")
def _(d):
    edit_config(d, rope_scaling={"type": "linear", "factor": 2.0})


@case("neox_missing_embed_out", ST, "missing tensor 'embed_out.weight'", base_name="neox")
def _(d):
    header, data = load(d)
    del header["embed_out.weight"]
    save(d, header, data)


@case("neox_mlp_width_disagrees", ST, "tensor 'gpt_neox.layers.0.mlp.dense_4h_to_h.weight': expected shape [32, 64] from config.json (hidden_size=32, intermediate_size=64), found [32, 128]",
      base_name="neox")
def _(d):
    edit_config(d, intermediate_size=64)


@case("gemma2_hidden_activation_gelu", "config.json", 'key "hidden_activation" is "gelu": plateau computes Gemma 2',
      base_name="gemma2")
def _(d):
    edit_config(d, hidden_activation="gelu")


@case("gemma2_zero_softcap", "config.json", 'key "attn_logit_softcapping" must be a number in (0, 1e+09)',
      base_name="gemma2")
def _(d):
    edit_config(d, attn_logit_softcapping=0.0)


# transformers takes query_pre_attn_scalar**-0.5: null fails there; its default 256 would be a guess (27B: 144)
@case("gemma2_null_query_pre_attn_scalar", "config.json", 'key "query_pre_attn_scalar" is null', base_name="gemma2")
def _(d):
    edit_config(d, query_pre_attn_scalar=JSON_NULL)


@case("gemma2_query_pre_attn_scalar_overflows", "config.json",
      'key "query_pre_attn_scalar" = 1e-300: its -1/2 power overflows float32', base_name="gemma2")
def _(d):
    edit_config(d, query_pre_attn_scalar=1e-300)


# a cap the float32 forward would round to 0 (its "no cap") is refused, not silently dropped
@case("gemma2_softcap_underflows", "config.json",
      'key "final_logit_softcapping" = 1e-300 is too small to hold as a float32 soft-cap', base_name="gemma2")
def _(d):
    edit_config(d, final_logit_softcapping=1e-300)


@case("gemma2_null_sliding_window", "config.json", 'key "sliding_window" is null', base_name="gemma2")
def _(d):
    edit_config(d, sliding_window=JSON_NULL)


# transformers reads a null flag or name as None, not as its default: a null tie_word_embeddings is falsy
# there (an untied head), where Gemma 2's default ties it; a null activation fails to load
@case("gemma2_null_tie_word_embeddings", "config.json",
      'key "tie_word_embeddings" is null: give true or false or leave the key out', base_name="gemma2")
def _(d):
    edit_config(d, tie_word_embeddings=JSON_NULL)


@case("llama_null_hidden_act", "config.json", 'key "hidden_act" is null: give a string', base_name="llama")
def _(d):
    edit_config(d, hidden_act=JSON_NULL)


@case("gemma2_layer_types_too_short", "config.json", 'key "layer_types" is not a list of num_hidden_layers = 2 entries',
      base_name="gemma2")
def _(d):
    edit_config(d, layer_types=["sliding_attention"])


@case("gemma2_layer_types_unknown", "config.json", 'key "layer_types"[1] is not "sliding_attention" or "full_attention"',
      base_name="gemma2")
def _(d):
    edit_config(d, layer_types=["sliding_attention", "chunked_attention"])


@case("gemma2_attention_bias", "config.json", 'key "attention_bias" is true: not supported', base_name="gemma2")
def _(d):
    edit_config(d, attention_bias=True)


@case("gemma2_bidirectional", "config.json", 'key "use_bidirectional_attention" is set: not supported',
      base_name="gemma2")
def _(d):
    edit_config(d, use_bidirectional_attention=True)


@case("gemma2_missing_post_feedforward_norm", ST, "missing tensor 'model.layers.1.post_feedforward_layernorm.weight'",
      base_name="gemma2")
def _(d):
    header, data = load(d)
    del header["model.layers.1.post_feedforward_layernorm.weight"]
    save(d, header, data)


# transformers' Gemma2Config ties by default: without the key, a separate lm_head.weight must equal the embedding
@case("gemma2_default_tied_lm_head_differs", "config.json",
      "tie_word_embeddings is true but lm_head.weight differs from model.embed_tokens.weight", base_name="gemma2")
def _(d):
    edit_config(d, tie_word_embeddings=None)


@case("llama2c_truncated", L2C, "the file has", "truncated", base_name="l2c")
def _(d):
    path = os.path.join(d, L2C)
    raw = open(path, "rb").read()
    open(path, "wb").write(raw[:-100])


@case("llama2c_header_lies_about_vocab", L2C, "vocab_size=301, seq_len=8) needs", "truncated", base_name="l2c")
def _(d):
    edit_l2c(d, 20, "<i", 301)


@case("llama2c_trailing_bytes", L2C, "trailing bytes", base_name="l2c")
def _(d):
    with open(os.path.join(d, L2C), "ab") as f:
        f.write(bytes(4))


@case("llama2c_heads_not_dividing_dim", L2C, "header: dim = 16 is not divisible by n_heads = 3", base_name="l2c")
def _(d):
    edit_l2c(d, 12, "<i", 3)


@case("llama2c_kv_heads_not_dividing_heads", L2C, "header: n_heads = 4 is not divisible by n_kv_heads = 3",
      base_name="l2c")
def _(d):
    edit_l2c(d, 16, "<i", 3)


@case("llama2c_zero_layers", L2C, "n_layers = 0 is outside", base_name="l2c")
def _(d):
    edit_l2c(d, 8, "<i", 0)


@case("llama2c_int8_version_2", L2C, "version 2 (int8 quantised) checkpoints are not supported", base_name="l2c")
def _(d):
    edit_l2c(d, 0, "<Ii", 0x616B3432, 2)


@case("llama2c_unknown_version", L2C, "checkpoint version 7 is not supported", base_name="l2c")
def _(d):
    edit_l2c(d, 0, "<Ii", 0x616B3432, 7)


@case("llama2c_too_short", L2C, "10 bytes is too short for a llama2.c checkpoint header", base_name="l2c")
def _(d):
    open(os.path.join(d, L2C), "wb").write(bytes(10))


@case("llama2c_nan_weight", L2C, "tensor 'layers.1.wq': element 3 is NaN", base_name="l2c")
def _(d):
    # v0 layout: header 28 bytes, embedding 300x16, rms_att 2x16, wq layer 0 (256), wq layer 1
    edit_l2c(d, 28 + 4 * (300 * 16 + 2 * 16 + 256 + 3), "<f", float("nan"))


@case("llama2c_fifo", L2C, "not a model (a Hugging Face dir with config.json, or a llama2.c checkpoint file)", base_name="l2c")
def _(d):
    replace_with_fifo(os.path.join(d, L2C))


failures = 0
checked = 0
for name, mutate, file, expect, base_name in cases:
    d = fresh(name, base_name)
    mutate(d)
    target = os.path.join(d, L2C) if base_name == "l2c" else d
    for cmd in (["info", target], ["verify", d, "--manifest", os.path.join(work, "manifest")]):
        if cmd[0] == "verify" and (file == "config.json" or name in MODEL_LEVEL or base_name != "gpt2"):
            continue  # verify reads only a GPT-2 model.safetensors (and the manifest)
        p = stio.run(cmd)
        lines = p.stderr.splitlines()
        problems = []
        if p.returncode != 2:
            problems.append(f"exit code {p.returncode}, expected 2")
        if len(lines) != 1:
            problems.append(f"{len(lines)} stderr lines, expected 1")
        msg = lines[0] if lines else ""
        want_prefix = f"plateau: {os.path.join(d, file)}: "
        if not msg.startswith(want_prefix):
            problems.append(f"message does not start with {want_prefix!r}")
        for s in expect:
            if s not in msg:
                problems.append(f"message lacks {s!r}")
        checked += 1
        if problems:
            failures += 1
            print(f"FAIL {name} ({cmd[0]}): " + "; ".join(problems) + f"\n     stderr: {p.stderr.strip()!r}")
        else:
            print(f"ok   {name} ({cmd[0]}): {msg}")

print(f"{checked - failures}/{checked} checks passed over {len(cases)} malformed model dirs")
shutil.rmtree(work)
sys.exit(1 if failures else 0)
