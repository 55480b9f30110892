"""plateau.Model.curves on every family against `plateau run` of the same settings: prompt 0, bases =
real, directions = file:dirs.npy (one curve per row), every metric that needs no SAE.
  * base = the result file's `activation` of the prompt (raw basis): bit for bit equal to the file's
    raw curves (the rows are evaluated in the sweep's grouping, at its [run] threads = 1);
  * base = "real" (the activation of this run, which the sweep computes in another batch shape):
    within 1e-5 relative per curve (as tests/sweep measures fast against --naive);
  * on some families: the centered basis with centred directions (LayerNorm families; within 1e-5: the
    file's activation is centred already), and absolute steps read at a position after the
    perturbed one and at another hook (bit for bit), ce_loss's token the data's after the prompt.
Curves are measured against the tokens the result file records, so the data's sampling is the sweep's
business, not this test's."""
import os
import shutil
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import apilib as al  # noqa: E402
import plateau  # noqa: E402

METRICS = ("kl", "jsd", "l2", "cosine", "js_dist", "ce_loss")
# A sweep's batch holds 1024 // steps units, prompt-major: with D = 4 directions and 256 steps a batch
# is one prompt's units, in one fast-path call of one clean run, as curves() groups them.
D, STEPS = 4, 256
# The other settings on a few families each (a sweep takes a second or two on a busy machine):
VARIANTS_ON = {"absolute": ("gpt2", "llama2c", "qwen2"), "centered": ("gpt2", "gpt_neox")}


def write_ini(path, sections):
    with open(path, "w") as f:
        for sec, kv in sections.items():
            f.write("[%s]\n" % sec + "".join("%s = %s\n" % kv_ for kv_ in kv.items()) + "\n")


def sweep(d, name, model, V, dirs, perturb, readout):
    data = os.path.join(d, name + "-data.bin")
    np.random.default_rng(11).integers(0, V, size=4000).astype("<u2").tofile(data)
    np.save(os.path.join(d, name + "-dirs.npy"), dirs)
    out = os.path.join(d, name + ".nc")
    p = {"bases": "real", "directions": "file:" + os.path.join(d, name + "-dirs.npy"), "n_directions": len(dirs),
         "steps": STEPS, "alpha_max": 1.5, "cov_prompts": 40}
    p.update(perturb)
    cfg = {"model": {"path": model}, "data": {"prompts": data, "n_prompts": 2, "n_ctx": 8, "bos": "false"},
           "perturb": p, "readout": dict({"metrics": ", ".join(METRICS)}, **readout),
           "output": {"path": out, "activations": "true", "bootstrap": 0}, "run": {"threads": 1}}
    ini = os.path.join(d, name + ".ini")
    write_ini(ini, cfg)
    env = dict(os.environ)
    env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") + ":detect_leaks=0").lstrip(":")
    al.run([al.BIN, "run", ini, "--quiet"], env=env)
    import netCDF4
    with netCDF4.Dataset(out) as ds:
        ds.set_auto_mask(False)
        r = {k: np.array(ds[k][...]) for k in ("tokens", "next_token", "activation", "alpha") + METRICS}
    return r


def compare(name, label, got, res, bitwise):
    worst = 0.0
    for m in METRICS:
        want = res[m][0, 0, 0]  # [base, direction, prompt, sample, alpha] -> [sample, alpha]
        g = got[m]
        if g.shape != want.shape:
            al.fail("%s %s: %s shape %s, the file's %s" % (name, label, m, g.shape, want.shape))
        if bitwise:
            if g.tobytes() != want.tobytes():
                al.fail("%s %s: %s differs from plateau run's bits (max |diff| %.3g)" %
                        (name, label, m, np.nanmax(np.abs(g - want))))
            continue
        if np.isnan(g).tolist() != np.isnan(want).tolist():
            al.fail("%s %s: %s NaN where the file has none, or the reverse" % (name, label, m))
        floor = 1e-6 if m in ("kl", "jsd") else 1e-9
        scale = np.maximum(np.nanmax(np.abs(want), axis=-1, keepdims=True), floor)
        err = float(np.nanmax(np.abs(g - want) / scale))
        if not err <= 1e-5:
            al.fail("%s %s: %s relative error %.3g against plateau run" % (name, label, m, err))
        worst = max(worst, err)
    print("ok %-11s %-34s %s" % (name, label, "bit for bit" if bitwise else "max relative error %.2g" % worst))


def check_family(d, name, path, V):
    m = plateau.Model(path)
    hook, pos = "blocks.1.hook_resid_pre", 5
    dirs = np.random.default_rng(2).normal(0, 1, (D, m.d_model)).astype(np.float32)
    for label, perturb, readout, kw, bitwise_explicit in (
            ("fixed_norm", {"step_mode": "fixed_norm"}, {}, {}, True),
            ("absolute, read at 7 of blocks.1.post", {"step_mode": "absolute", "alpha_max": 4.0},
             {"position": 7, "read_hook": "blocks.1.hook_resid_post"},
             {"read_position": 7, "read_hook": "blocks.1.hook_resid_post"}, True),
            ("centered, to_target", {"step_mode": "to_target", "residual_basis": "centered",
                                     "center_direction": "true"}, {}, {"residual_basis": "centered",
                                                                      "center_direction": True}, False)):
        if label != "fixed_norm" and name not in VARIANTS_ON.get(label.split(",")[0], ()):
            continue
        p = dict({"hook": hook, "position": pos}, **perturb)
        res = sweep(d, name, path, V, dirs, p, readout)
        ids, alphas = res["tokens"][0], res["alpha"]
        if alphas[0] != 0.0 or len(alphas) != STEPS:
            al.fail("%s: the file's alpha grid %s" % (name, alphas))
        args = dict(step_mode=perturb["step_mode"], metrics=METRICS, **kw)
        if kw.get("read_position", pos) == len(ids) - 1:  # ce_loss's token: the data's one after the prompt
            args["next_token"] = int(res["next_token"][0])
        got = m.curves(ids, hook, pos, res["activation"][0], dirs, alphas, **args)
        compare(name, label + ", file's base", got, res, bitwise_explicit)
        got = m.curves(ids, hook, pos, "real", dirs, alphas, **args)
        compare(name, label + ", real base", got, res, False)


def check_errors(path):
    m = plateau.Model(path)
    ids, dirs = np.arange(6, dtype=np.int32), np.ones((2, m.d_model), np.float32)
    for kw, want in ((dict(alphas=[0.5, 1.0]), "alphas[0]"), (dict(metrics=("kl", "sae_l0")), "SAE"),
                     (dict(metrics=("kl", "")), "item 2 of the comma-separated list is empty"),
                     (dict(read_position=2), "before the perturbed position"),
                     (dict(residual_basis="centred"), "raw or centered"), (dict(step_mode="fixed"), "fixed_norm")):
        args = dict(alphas=[0.0, 1.0])
        args.update(kw)
        try:
            m.curves(ids, "blocks.1.hook_resid_pre", 4, "real", dirs, **args)
        except plateau.PlateauError as e:
            if want not in str(e):
                al.fail("error %r does not name %r" % (str(e), want))
            print("ok error: %s" % e)
            continue
        al.fail("curves(%s): no error" % kw)
    # ce_loss read at the prompt's last token has no next token unless given: refused, not a curve of NaN
    try:
        m.curves(ids, "blocks.1.hook_resid_pre", 5, "real", dirs, [0.0, 1.0], metrics=("kl", "ce_loss"))
        al.fail("curves(ce_loss at the last token, no next_token): no error")
    except plateau.PlateauError as e:
        if "ce_loss needs the token after the read position" not in str(e):
            al.fail("ce_loss without next_token: %r" % str(e))
        print("ok error: %s" % e)
    got = m.curves(ids, "blocks.1.hook_resid_pre", 5, "real", dirs, [0.0, 1.0], metrics=("ce_loss",), next_token=3)
    if not np.isfinite(got["ce_loss"]).all():
        al.fail("ce_loss with next_token given: %s" % got["ce_loss"])


def main():
    plateau.set_threads(1)  # the config's [run] threads: the sweep's bits are those of one thread
    d = tempfile.mkdtemp(prefix="plateau-curves-")
    try:
        for name, path, V in al.models(d):
            check_family(d, name, path, V)
        check_errors(os.path.join(d, "gpt2"))
    finally:
        shutil.rmtree(d, ignore_errors=True)
    print("curves tests passed")


main()
