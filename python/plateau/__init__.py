"""plateau from Python: a model's forward, hooks and perturbation curves through libplateau.

ctypes and numpy only (nothing compiled here). The library is found, in this order, at
$PLATEAU_LIB (the file itself), where `cmake --install` put it beside this package, and in a build
tree's build/ beside python/ (so PYTHONPATH=python works from a checkout after `cmake --build build`).

    m = plateau.Model("models/gpt2")
    ids = m.tokenize("The cat sat on the", bos=False)           # int32 (T,)
    logits, cache = m.run_with_cache(ids, hooks=["blocks.1.hook_resid_pre"])
    # logits (T, V) float32; cache["blocks.1.hook_resid_pre"] (T, C) float32
    curves = m.curves(ids, "blocks.1.hook_resid_pre", -1, "real", dirs, np.linspace(0, 1, 11))
    # {"kl": (len(dirs), 11) float32}: what `plateau run` computes for the same prompt, base, direction
    # file (file:dirs.npy, n_directions = len(dirs)) and settings

Result files of `plateau run` are read with plateau_analysis.open_result (analysis/).
"""
import ctypes
import os

import numpy as np

__all__ = ["Model", "PlateauError", "library", "api_version", "version", "set_threads"]

API_VERSION = 1  # the PL_API_VERSION this package was written against (include/plateau/plateau.h)


class PlateauError(RuntimeError):
    """A failed libplateau call: the library's one-line message."""


def _candidates():
    env = os.environ.get("PLATEAU_LIB")
    if env:
        return [env]
    here = os.path.dirname(os.path.abspath(__file__))
    out = []
    try:
        from . import _installed  # written by cmake --install
        out.append(os.path.normpath(os.path.join(here, _installed.LIBDIR, _installed.SONAME)))
    except ImportError:
        pass
    out.append(os.path.normpath(os.path.join(here, "..", "..", "build", "libplateau.so")))
    return out


def _load():
    tried = []
    for path in _candidates():
        if os.path.exists(path):
            return ctypes.CDLL(path), path
        tried.append(path)
    raise PlateauError("libplateau not found (tried %s); build it (cmake --build build) or set PLATEAU_LIB"
                       % ", ".join(tried))


_lib, library = _load()

_c_int_p = ctypes.POINTER(ctypes.c_int)
_c_float_p = ctypes.POINTER(ctypes.c_float)
_c_double_p = ctypes.POINTER(ctypes.c_double)
_SIGNATURES = {
    "pl_api_version": (ctypes.c_int, []),
    "pl_library_version": (ctypes.c_char_p, []),
    "pl_last_error": (ctypes.c_char_p, []),
    "pl_free": (None, [ctypes.c_void_p]),
    "pl_set_threads": (ctypes.c_int, [ctypes.c_int]),
    "pl_lm_open": (ctypes.c_int, [ctypes.POINTER(ctypes.c_void_p), ctypes.c_char_p]),
    "pl_lm_close": (None, [ctypes.c_void_p]),
    "pl_lm_open_tokenizer": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_char_p]),
    "pl_lm_size": (ctypes.c_long, [ctypes.c_void_p, ctypes.c_int]),
    "pl_lm_family": (ctypes.c_char_p, [ctypes.c_void_p]),
    "pl_lm_format": (ctypes.c_char_p, [ctypes.c_void_p]),
    "pl_lm_hook": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_char_p, _c_int_p]),
    "pl_tokenize": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int,
                                   ctypes.POINTER(_c_int_p), ctypes.POINTER(ctypes.c_size_t)]),
    "pl_lm_run": (ctypes.c_int, [ctypes.c_void_p, _c_int_p, ctypes.c_int, ctypes.POINTER(ctypes.c_void_p)]),
    "pl_lm_run_patched": (ctypes.c_int, [ctypes.c_void_p, _c_int_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int,
                                         _c_float_p, ctypes.POINTER(ctypes.c_void_p)]),
    "pl_cache_free": (None, [ctypes.c_void_p]),
    "pl_cache_length": (ctypes.c_int, [ctypes.c_void_p]),
    "pl_cache_resid": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_char_p, _c_float_p]),
    "pl_cache_logits": (ctypes.c_int, [ctypes.c_void_p, _c_float_p]),
    "pl_cache_patch_eval": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, _c_float_p, ctypes.c_int,
                                           _c_float_p, ctypes.c_char_p, _c_float_p]),
    "pl_curves": (ctypes.c_int, [ctypes.c_void_p, _c_int_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int, _c_float_p,
                                 _c_float_p, ctypes.c_int, _c_double_p, ctypes.c_int,
                                 ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, _c_float_p]),
    "pl_curves_metric_count": (ctypes.c_int, [ctypes.POINTER(ctypes.c_char_p), ctypes.c_int]),
}
for _name, (_res, _args) in _SIGNATURES.items():
    _f = getattr(_lib, _name)
    _f.restype, _f.argtypes = _res, _args

if _lib.pl_api_version() // 100 != API_VERSION // 100 or _lib.pl_api_version() < API_VERSION:
    raise PlateauError("%s has API version %d; this package needs %d" % (library, _lib.pl_api_version(), API_VERSION))

# pl_lm_size's WHAT (PL_SIZE_* of plateau.h)
_SIZES = ("n_layers", "d_model", "d_vocab", "n_ctx", "n_heads", "n_kv_heads", "d_head", "d_mlp", "layernorm",
          "synthetic")


def api_version():
    return _lib.pl_api_version()


def version():
    return _lib.pl_library_version().decode()


def set_threads(n):
    """OpenBLAS threads of this process ([run] threads of a sweep: its bits depend on it; 1 there by default)."""
    _check(_lib.pl_set_threads(int(n)))


def _check(rc):
    if rc != 0:
        raise PlateauError(_lib.pl_last_error().decode("utf-8", "replace"))


def _floats(a, shape, what):
    a = np.ascontiguousarray(a, dtype=np.float32)
    if a.shape != shape:
        raise ValueError("%s: shape %s, expected %s" % (what, a.shape, shape))
    return a


def _fptr(a):
    return a.ctypes.data_as(_c_float_p)


class _Cache:
    """A clean (or patched) run inside the library; freed with the object."""

    def __init__(self, model, ids, patch=None):
        self._model = model  # the run must not outlive its model
        h = ctypes.c_void_p()
        if patch is None:
            _check(_lib.pl_lm_run(model._h, ids.ctypes.data_as(_c_int_p), len(ids), ctypes.byref(h)))
        else:
            hook, pos, x = patch
            x = _floats(x, (model.d_model,), "patch vector")
            _check(_lib.pl_lm_run_patched(model._h, ids.ctypes.data_as(_c_int_p), len(ids), hook.encode(), int(pos),
                                          _fptr(x), ctypes.byref(h)))
        self._h, self._free = h, _lib.pl_cache_free

    def __del__(self):
        if getattr(self, "_h", None):
            self._free(self._h)
            self._h = None


class Model:
    """A model plateau reads (HF dir of gpt2 / llama / mistral / qwen2 / gpt_neox, or a llama2.c .bin).

    Sizes: n_layers, d_model, d_vocab, n_ctx, n_heads, n_kv_heads, d_head, d_mlp; family and format."""

    def __init__(self, path, tokenizer=None):
        """TOKENIZER: a tokenizer.json, llama2.c tokenizer.bin or dir instead of the one beside the model."""
        h = ctypes.c_void_p()
        _check(_lib.pl_lm_open(ctypes.byref(h), os.fsencode(path)))
        self._h, self._close = h, _lib.pl_lm_close  # _close: still there when the module is torn down
        if tokenizer is not None:
            _check(_lib.pl_lm_open_tokenizer(h, os.fsencode(tokenizer)))
        self.path = str(path)
        for i, name in enumerate(_SIZES):
            setattr(self, name, int(_lib.pl_lm_size(h, i)))
        self.layernorm = bool(self.layernorm)
        self.synthetic = bool(self.synthetic)
        self.family = _lib.pl_lm_family(h).decode()
        self.format = _lib.pl_lm_format(h).decode()

    def close(self):
        if getattr(self, "_h", None):
            self._close(self._h)
            self._h = None

    def __del__(self):
        self.close()

    def __repr__(self):
        return "plateau.Model(%r: %s, %d layers, d_model %d, vocab %d)" % (self.path, self.family, self.n_layers,
                                                                          self.d_model, self.d_vocab)

    def hook_names(self):
        """Every residual hook, TransformerLens's names: blocks.N.hook_resid_pre, then the last block's post."""
        return ["blocks.%d.hook_resid_pre" % l for l in range(self.n_layers)] + [
            "blocks.%d.hook_resid_post" % (self.n_layers - 1)]

    def _ids(self, ids):
        # numpy's cast would truncate 1.5 to 1 and wrap 2**32 + 5 to 5: a token id is an integer as given
        raw = np.asarray(ids)
        if raw.size and raw.dtype.kind not in "iu":
            raise ValueError("ids: expected integer token ids, got dtype %s" % raw.dtype)
        lim = np.iinfo(np.int32)
        if raw.size and (raw.min() < lim.min or raw.max() > lim.max):
            raise ValueError("ids: token id %d is outside int32" % (raw.max() if raw.max() > lim.max else raw.min()))
        ids = np.ascontiguousarray(raw, dtype=np.int32)
        if ids.ndim != 1 or len(ids) == 0:
            raise ValueError("ids: expected a non-empty 1-D array of token ids, got shape %s" % (ids.shape,))
        return ids

    def tokenize(self, text, bos=False):
        """Token ids (int32) of TEXT without special tokens; BOS first when bos=True (as [data] bos = true)."""
        data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
        ptr, n = _c_int_p(), ctypes.c_size_t()
        _check(_lib.pl_tokenize(self._h, data, len(data), int(bool(bos)), ctypes.byref(ptr), ctypes.byref(n)))
        try:
            return np.ctypeslib.as_array(ptr, shape=(n.value,)).astype(np.int32) if n.value else np.zeros(0, np.int32)
        finally:
            _lib.pl_free(ptr)

    def run_with_cache(self, ids, hooks=None, patch=None):
        """(logits (T, V) float32, {hook: (T, C) float32}) of a forward of IDS. HOOKS: names
        (blocks.N.hook_resid_pre / _post), default every residual hook. PATCH (hook, position, vector):
        the residual there replaced by vector before it flows on."""
        ids = self._ids(ids)
        hooks = self.hook_names() if hooks is None else list(hooks)
        c = _Cache(self, ids, patch)
        T = len(ids)
        logits = np.empty((T, self.d_vocab), np.float32)
        _check(_lib.pl_cache_logits(c._h, _fptr(logits)))
        cache = {}
        for hook in hooks:
            a = np.empty((T, self.d_model), np.float32)
            _check(_lib.pl_cache_resid(c._h, hook.encode(), _fptr(a)))
            cache[hook] = a
        return logits, cache

    def patch_eval(self, ids, hook, position, X, read_hook=None):
        """The fast path: the run of IDS with the residual at (hook, position) replaced by each row of
        X (M, d_model) in turn; only positions from `position` on are recomputed. Returns logits
        (M, d_vocab) at the last position, and with READ_HOOK also the residual there, (M, d_model)."""
        ids = self._ids(ids)
        X = np.ascontiguousarray(X, dtype=np.float32)
        if X.ndim == 1:
            X = X[None, :]
        if X.ndim != 2 or X.shape[1] != self.d_model:
            raise ValueError("X: shape %s, expected (M, %d)" % (X.shape, self.d_model))
        c = _Cache(self, ids)
        logits = np.empty((X.shape[0], self.d_vocab), np.float32)
        read = np.empty((X.shape[0], self.d_model), np.float32) if read_hook else None
        _check(_lib.pl_cache_patch_eval(c._h, hook.encode(), int(position), _fptr(X), X.shape[0], _fptr(logits),
                                        read_hook.encode() if read_hook else None,
                                        _fptr(read) if read_hook else None))
        return (logits, read) if read_hook else logits

    def curves(self, ids, hook, position, base, directions, alphas, step_mode="fixed_norm", metrics=("kl",),
               **settings):
        """{metric: (len(directions), len(alphas)) float32}: the curves `plateau run` computes for this
        prompt with [perturb] hook, position, step_mode, directions = file:F (F holding DIRECTIONS as
        rows, n_directions = len(directions)) and [readout] metrics. A sweep's alphas are
        linspace(0, alpha_max, steps); alphas[0] must be 0 (the unperturbed base every step is
        compared with).

        base: "real" -- the prompt's own activation at (hook, position), as a sweep's bases = real;
              or a vector (d_model,) in the raw residual basis, e.g. a result file's `activation` of
              the prompt (then the numbers are the sweep's bit for bit at the same thread count).
        settings: the other keys, as the config names them: center_direction (bool), residual_basis
              ("raw" | "centered"), read_hook, read_position ("perturbed" or int), next_token (int)."""
        ids = self._ids(ids)
        dirs = np.ascontiguousarray(directions, dtype=np.float32)
        if dirs.ndim == 1:
            dirs = dirs[None, :]
        if dirs.ndim != 2 or dirs.shape[1] != self.d_model:
            raise ValueError("directions: shape %s, expected (D, %d)" % (dirs.shape, self.d_model))
        alphas = np.ascontiguousarray(alphas, dtype=np.float64).ravel()
        if isinstance(base, str):
            if base != "real":
                raise ValueError("base: 'real' or a vector of %d floats, not %r" % (self.d_model, base))
            base_ptr = None
        else:
            base = _floats(base, (self.d_model,), "base")
            base_ptr = _fptr(base)
        if isinstance(metrics, str):
            metrics = [m.strip() for m in metrics.split(",")]
        items = ["step_mode=%s" % step_mode, "metrics=%s" % ", ".join(metrics)]
        for key, value in settings.items():
            if isinstance(value, bool):
                value = "true" if value else "false"
            items.append("%s=%s" % (key, value))
        argv = (ctypes.c_char_p * len(items))(*[s.encode() for s in items])
        n_metrics = _lib.pl_curves_metric_count(argv, len(items))
        if n_metrics < 0:
            _check(-1)
        if n_metrics != len(metrics):
            raise ValueError("metrics: %r name %d metrics" % (metrics, n_metrics))
        D, S = dirs.shape[0], len(alphas)
        out = np.empty((len(metrics), D, S), np.float32)
        _check(_lib.pl_curves(self._h, ids.ctypes.data_as(_c_int_p), len(ids), hook.encode(), int(position),
                              base_ptr, _fptr(dirs), D, alphas.ctypes.data_as(_c_double_p), S, argv, len(items),
                              _fptr(out)))
        return {m: out[i] for i, m in enumerate(metrics)}
