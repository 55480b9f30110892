"""plateau.Model.run_with_cache on every family against `plateau logits --all` (the CLI's last-position
logits: the same fp32 code, one row through sgemv there and T rows through sgemm here, so within
1e-5 relative) and against the independent float64 numpy reference tests/core/ref_models.py (every
position's logits and the residual at every hook within 1e-3 relative, as tests/core measures the
forward); a patched run against the reference's patched forward, and the fast path (patch_eval)
against both; tokenize against `plateau tokenize`
where a model has a tokenizer; and errors as one-line PlateauErrors."""
import os
import shutil
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import apilib as al  # noqa: E402
import plateau  # noqa: E402
import ref_models  # noqa: E402


def check_model(name, path, V):
    m = plateau.Model(path)
    ids = np.random.default_rng(len(name)).integers(0, V, size=9).astype(np.int32)
    logits, cache = m.run_with_cache(ids)
    T, L, C = len(ids), m.n_layers, m.d_model
    if logits.shape != (T, V) or logits.dtype != np.float32:
        al.fail("%s: logits %s %s" % (name, logits.shape, logits.dtype))
    hooks = ["blocks.%d.hook_resid_pre" % l for l in range(L)] + ["blocks.%d.hook_resid_post" % (L - 1)]
    if sorted(cache) != sorted(hooks) or any(cache[h].shape != (T, C) or cache[h].dtype != np.float32 for h in hooks):
        al.fail("%s: cache %s" % (name, {k: (v.shape, v.dtype) for k, v in cache.items()}))
    cli = np.array(al.run([al.BIN, "logits", path, "--ids", ",".join(map(str, ids)), "--all"]).split(), np.float64)
    e_cli = al.rel_err(logits[-1], cli)
    ref = ref_models.load(path)
    resid, ref_logits = ref.forward(ids)
    e_logits = al.rel_err(logits, ref_logits)
    e_resid = max(al.rel_err(cache[h], resid[r]) for r, h in enumerate(hooks))
    # blocks.l.hook_resid_post is blocks.(l+1).hook_resid_pre: the same activation under both names
    _, post = m.run_with_cache(ids, hooks=["blocks.0.hook_resid_post"])
    if post["blocks.0.hook_resid_post"].tobytes() != cache["blocks.1.hook_resid_pre"].tobytes():
        al.fail("%s: blocks.0.hook_resid_post differs from blocks.1.hook_resid_pre" % name)
    x = np.random.default_rng(1).normal(0, 1, C).astype(np.float32)
    p_logits, p_cache = m.run_with_cache(ids, hooks=hooks, patch=("blocks.1.hook_resid_pre", 4, x))
    p_resid, p_ref = ref.forward(ids, patch=(1, 4, x.astype(np.float64)))
    e_patch = max(al.rel_err(p_logits, p_ref), max(al.rel_err(p_cache[h], p_resid[r]) for r, h in enumerate(hooks)))
    # the fast path: the same patch among other rows, the last position's logits and a read hook
    X = np.vstack([np.random.default_rng(2).normal(0, 1, (2, C)), x[None, :]]).astype(np.float32)
    f_logits, f_read = m.patch_eval(ids, "blocks.1.hook_resid_pre", 4, X, read_hook=hooks[-1])
    e_fast = max(al.rel_err(f_logits[2], p_logits[-1]), al.rel_err(f_read[2], p_cache[hooks[-1]][-1]))
    e_patch = max(e_patch, al.rel_err(f_logits[0], ref.forward(ids, patch=(1, 4, X[0].astype(np.float64)))[1][-1]))
    if not e_fast <= 1e-5:
        al.fail("%s: the fast path differs from the patched run by %.3g relative" % (name, e_fast))
    if not (e_cli <= 1e-5 and e_logits <= 1e-3 and e_resid <= 1e-3 and e_patch <= 1e-3):
        al.fail("%s: relative errors: CLI %.3g, numpy logits %.3g, residuals %.3g, patched %.3g" %
                (name, e_cli, e_logits, e_resid, e_patch))
    print("ok %-11s %s: CLI logits %.2g, numpy logits %.2g, residuals %.2g, patched run %.2g, fast path %.2g" %
          (name, m.family, e_cli, e_logits, e_resid, e_patch, e_fast))


def check_tokenize(path, text, bos, tokenizer=None):
    m = plateau.Model(path, tokenizer=tokenizer)
    got = m.tokenize(text, bos=bos)
    extra = (["--bos"] if bos else []) + (["--tokenizer", tokenizer] if tokenizer else [])
    want = [int(t) for t in al.run([al.BIN, "tokenize", path, text] + extra).split()]
    if got.dtype != np.int32 or list(got) != want:
        al.fail("tokenize %s %r bos=%s: %s, plateau tokenize says %s" % (path, text, bos, list(got), want))
    print("ok tokenize %s bos=%s%s: %d ids as plateau tokenize" % (os.path.basename(path), bos,
                                                                  " tokenizer=" + tokenizer if tokenizer else "",
                                                                  len(got)))


def check_errors(d, path, no_tokenizer):
    m = plateau.Model(path)
    for call, want in ((lambda: plateau.Model(os.path.join(d, "absent")), "absent"),
                       (lambda: m.run_with_cache([1, 2], hooks=["blocks.7.hook_resid_pre"]), "blocks.7"),
                       (lambda: m.run_with_cache([1, 10 ** 6]), "outside the vocabulary"),
                       (lambda: plateau.Model(no_tokenizer).tokenize("x"), "tokenizer")):
        try:
            call()
        except plateau.PlateauError as e:
            if want not in str(e) or "\n" in str(e):
                al.fail("error %r does not name %r" % (str(e), want))
            print("ok error: %s" % e)
            continue
        al.fail("no error (expected one naming %r)" % want)
    # ids that numpy's int32 cast would change (1.5 -> 1, 2**32 + 5 -> 5): refused, not run on other tokens
    for ids, want in ((np.array([1.5, 2.0]), "integer token ids"), (np.array([2 ** 32 + 5]), "outside int32"),
                      (np.array([True, False]), "integer token ids")):
        try:
            m.run_with_cache(ids)
        except ValueError as e:
            if want not in str(e):
                al.fail("ids %r: error %r does not name %r" % (ids, str(e), want))
            print("ok error: %s" % e)
            continue
        al.fail("ids %r: no error (expected one naming %r)" % (ids, want))


def main():
    d = tempfile.mkdtemp(prefix="plateau-api-")
    try:
        models = al.models(d)
        for name, path, V in models:
            check_model(name, path, V)
        check_errors(d, models[0][1], [p for n, p, _ in models if n == "llama2c"][0])
        vocab_dir = os.path.join(al.SHARED, "gpt2")
        if os.path.exists(os.path.join(vocab_dir, "vocab.json")):
            g = os.path.join(d, "gpt2-vocab")
            al.run([al.BIN, "synth", g, "--layers", "1", "--embd", "16", "--heads", "2", "--ctx", "16",
                    "--vocab-from", vocab_dir])
            check_tokenize(g, "The plateau's edge, at 3.5 units.", False)
        else:
            print("note: %s is absent: GPT-2's tokenizer is not checked" % vocab_dir)
        for name, path, _ in models:
            if name == "stories260K":
                check_tokenize(path, "Once upon a time, a cat sat.", False)
                check_tokenize(path, "Once upon a time, a cat sat.", True)
                # an explicit tokenizer: the same file, copied where the model would not look
                tok = os.path.join(d, "elsewhere.bin")
                shutil.copy(os.path.join(os.path.dirname(path), "tok512.bin"), tok)
                check_tokenize(path, "The dog ran home.", True, tokenizer=tok)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    print("run_with_cache tests passed")


main()
