"""The model the SAE sweep tests run and their reference of it: a 3-layer GPT-2 written by sweeplib, or
(gemma2) a synthetic Gemma 2 with a sliding window shorter than the input, whose residual SAEs read the
block's output as Gemma Scope's do. Returns (model_dir, reference model, hook, resid index of the hook)."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "sweep"))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "core"))
import sweeplib as sl  # noqa: E402
from ref_gpt2 import GPT2  # noqa: E402


def reference_model(d, gemma2, C, V):
    if not gemma2:
        model_dir = sl.make_model(d, layers=3, embd=C, vocab=V)
        return model_dir, GPT2(model_dir), "blocks.1.hook_resid_pre", 1
    import ref_models  # noqa: E402
    model_dir = os.path.join(d, "gemma2")
    r = subprocess.run([sl.BIN, "synth", model_dir, "--family", "gemma2", "--layers", "3", "--embd", str(C), "--heads",
                        "4", "--kv-heads", "2", "--ctx", "32", "--vocab", str(V), "--tied", "--sliding-window", "3"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        sl.fail("synth gemma2: " + r.stderr)
    return model_dir, ref_models.load(model_dir), "blocks.1.hook_resid_post", 2


def gemma_scope(path, sae_dir, hook):
    """SAE_DIR's weights written anew at PATH under the config SAELens's Gemma Scope loader builds
    (get_gemma_2_config_from_hf, the flat pre-6 dict; SAELens 6 saves it with hook_name under `metadata` and
    normalize_activations "none", which sae_numerics reads)."""
    import ref_sae  # noqa: E402
    s = ref_sae.SAE(sae_dir)
    cfg = {"architecture": "jumprelu", "d_in": s.d_in, "d_sae": s.d_sae, "dtype": "float32",
           "model_name": "gemma-2-2b", "hook_name": hook, "hook_head_index": None, "activation_fn": "relu",
           "finetuning_scaling_factor": False, "sae_lens_training_version": None, "prepend_bos": True,
           "dataset_path": "monology/pile-uncopyrighted", "context_size": 1024, "dataset_trust_remote_code": True,
           "apply_b_dec_to_input": False, "normalize_activations": None, "device": "cpu"}
    return ref_sae.write_sae(path, cfg, {"W_enc": s.W_enc, "b_enc": s.b_enc, "W_dec": s.W_dec, "b_dec": s.b_dec,
                                         "threshold": s.threshold})
