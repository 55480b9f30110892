"""Small synthetic tokenizer.json files in the styles plateau reads but ../shared has no real file of,
each trained here by a plain BPE trainer on the given texts (so they need no download):

  llama3           Sequence[Split(Llama 3's regex, Isolated), ByteLevel(use_regex=false)], ignore_merges,
                   Sequence[ByteLevel, TemplateProcessing(<|begin_of_text|> $A)] post-processor
  qwen2            NFC + Split(Qwen2's regex: single digits) + ByteLevel(use_regex=false), no BOS
  smollm           Sequence[Digits(individual_digits), ByteLevel(use_regex=true)]
  metaspace-first  Metaspace(prepend_scheme=first, split=false), merges across words, byte_fallback,
                   fuse_unk, Replace/ByteFallback/Fuse/Strip decoder, <s> by TemplateProcessing,
                   an added token with lstrip/rstrip
  metaspace-split  Metaspace(prepend_scheme=always, split=true), Metaspace decoder
  gemma            Gemma's (transformers' GemmaConverter): Replace(" " -> "▁") normalizer with no prefix,
                   Split(" ", MergedWithPrevious) (a no-op once spaces are ▁), BPE across words with
                   byte_fallback and fuse_unk, <unk> id 3, <bos> by TemplateProcessing, runs of ▁ as
                   tokens, <start_of_turn>/<end_of_turn> special, Replace/ByteFallback/Fuse decoder

usage: make_hf_synthetic.py OUT_DIR TRAIN.jsonl...  (writes OUT_DIR/<name>/tokenizer.json)"""
import collections
import json
import os
import re
import sys

from byte_alphabet import bytes_to_unicode

out_dir, *train_files = sys.argv[1:]
texts = []
for path in train_files:
    with open(path, encoding="utf-8") as f:
        # jansson (plateau's JSON reader) cannot hold a NUL in an object key: no NUL in any token
        texts += [json.loads(line)["text"].replace("\0", "") for line in f if line.strip()]
texts.append("The quick brown fox jumps over the lazy dog. " * 3 + "Once upon a time there was a little girl.")

LLAMA3 = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
QWEN2 = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
B2U = bytes_to_unicode()


def train(words, base, n_merges):
    """Plain BPE: repeatedly merge the most frequent adjacent pair (ties: the smallest pair)."""
    vocab = list(dict.fromkeys(base))
    seqs = collections.Counter(tuple(w) for w in words if w)
    merges = []
    for _ in range(n_merges):
        pairs = collections.Counter()
        for seq, count in seqs.items():
            for a, b in zip(seq, seq[1:]):
                pairs[a, b] += count
        if not pairs:
            break
        (a, b), count = min(pairs.items(), key=lambda kv: (-kv[1], kv[0]))
        if count < 2:
            break
        merges.append((a, b))
        if a + b not in vocab:
            vocab.append(a + b)
        new = collections.Counter()
        for seq, c in seqs.items():
            out, i = [], 0
            while i < len(seq):
                if i + 1 < len(seq) and seq[i] == a and seq[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(seq[i])
                    i += 1
            new[tuple(out)] += c
        seqs = new
    return vocab, merges


def added(content, id_, special=True, **flags):
    token = {"id": id_, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
             "normalized": not special, "special": special}
    token.update(flags)
    return token


def write(name, tokenizer, config=None):
    os.makedirs(os.path.join(out_dir, name), exist_ok=True)
    with open(os.path.join(out_dir, name, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tokenizer, f, ensure_ascii=False, indent=1)
    if config is not None:
        with open(os.path.join(out_dir, name, "tokenizer_config.json"), "w", encoding="utf-8") as f:
            json.dump(config, f, indent=1)


def byte_level(name, pattern, pre, normalizer, specials, post, ignore_merges, pairs_as_lists):
    words = []
    for t in texts:
        for w in re.findall(r" ?\w+| ?[^\w\s]+|\s+", t):
            words.append([B2U[b] for b in w.encode("utf-8")])
    vocab, merges = train(words, [B2U[b] for b in range(256)], 300)
    ids = {tok: i for i, tok in enumerate(vocab)}
    added_tokens = [added(s, len(ids) + i) for i, s in enumerate(specials)]
    template = {"type": "TemplateProcessing",
                "single": [{"SpecialToken": {"id": specials[0], "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                "pair": [{"SpecialToken": {"id": specials[0], "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                         {"SpecialToken": {"id": specials[0], "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
                "special_tokens": {specials[0]: {"id": specials[0], "ids": [len(ids)], "tokens": [specials[0]]}}}
    bl = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    write(name, {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added_tokens,
        "normalizer": normalizer,
        "pre_tokenizer": pre,
        "post_processor": {"type": "Sequence", "processors": [dict(bl, trim_offsets=False), template]} if post else bl,
        "decoder": bl,
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": ignore_merges,
                  "vocab": ids, "merges": [list(m) for m in merges] if pairs_as_lists else [" ".join(m) for m in merges]},
    })


def split_then_bytelevel(pattern):
    return {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]}


byte_level("llama3", LLAMA3, split_then_bytelevel(LLAMA3), None,
           ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>"], True, True, True)
byte_level("qwen2", QWEN2, split_then_bytelevel(QWEN2), {"type": "NFC"}, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
           False, False, True)
byte_level("smollm", None, {"type": "Sequence", "pretokenizers": [
    {"type": "Digits", "individual_digits": True},
    {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}]}, None,
           ["<|endoftext|>", "<|im_start|>", "<|im_end|>"], False, False, False)


def metaspace(name, scheme, split, across_words):
    words = []
    for t in texts:
        t = t.replace(" ", "\u2581")
        if across_words:
            words.append(list("\u2581" + t))
        else:
            words += [list("\u2581" + w) for w in t.split("\u2581") if w]
    base = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    chars = sorted({c for w in words for c in w})
    vocab, merges = train(words, base + chars, 300)
    ids = {tok: i for i, tok in enumerate(vocab)}
    specials = [added("<unk>", 0), added("<s>", 1), added("</s>", 2),
                added("<tool>", len(ids), special=False, lstrip=True, rstrip=True, normalized=False)]
    pre = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": scheme, "split": split}
    if split:
        decoder = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": scheme, "split": True}
    else:
        decoder = {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "}, {"type": "ByteFallback"},
            {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}
    write(name, {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": specials, "normalizer": None,
        "pre_tokenizer": pre,
        "post_processor": {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                           "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
                           "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
        "decoder": decoder,
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True,
                  "vocab": ids, "merges": [" ".join(m) for m in merges]},
    })


metaspace("metaspace-first", "first", False, True)
metaspace("metaspace-split", "always", True, False)


def gemma():
    words = [list(t.replace(" ", "\u2581")) for t in texts]
    base = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"] + [f"<0x{b:02X}>" for b in range(256)]
    chars = sorted({c for w in words for c in w})
    vocab, merges = train(words, base + chars, 300)
    ids = {tok: i for i, tok in enumerate(vocab)}
    specials = [added(t, i) for i, t in enumerate(base[:5])]
    specials += [added("<start_of_turn>", len(ids)), added("<end_of_turn>", len(ids) + 1)]
    write("gemma", {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": specials,
        "normalizer": {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"},
        "pre_tokenizer": {"type": "Split", "pattern": {"String": " "}, "behavior": "MergedWithPrevious",
                          "invert": False},
        "post_processor": {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": "<bos>", "type_id": 0}},
                                      {"Sequence": {"id": "A", "type_id": 0}}],
                           "pair": [{"SpecialToken": {"id": "<bos>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                                    {"SpecialToken": {"id": "<bos>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
                           "special_tokens": {"<bos>": {"id": "<bos>", "ids": [2], "tokens": ["<bos>"]}}},
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "}, {"type": "ByteFallback"},
            {"type": "Fuse"}]},
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
                  "vocab": ids, "merges": [" ".join(m) for m in merges]},
    })


gemma()
