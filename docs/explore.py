"""Explore one prompt with plateau's Python API, then write the config of the cluster run.

    PYTHONPATH=python /usr/bin/python3 docs/explore.py models/gpt2 --text "The cat sat on the mat because" \
        --out explore
    build/plateau run explore/explore.ini        # or mpirun -n 8 ..., or through slurm/

What it does, in the order a notebook would:
  1. open the model and tokenize the prompt (plateau.Model, Model.tokenize);
  2. a forward with every residual hook cached (Model.run_with_cache): the model's next-token guess and
     the residual's norm at each hook, the perturbed position's activation among them;
  3. directions of its own, stored as a file: the direction towards a second prompt's activation at the
     same hook and position (as real_other builds it), and random ones of the activation's scale;
  4. their curves (Model.curves): KL of the next-token distribution as the activation moves along each
     direction by alpha |x| (step_mode fixed_norm), the alpha where KL first passes a threshold;
  5. the INI config that sweeps the same hook, position, steps and the same direction file over many
     prompts (with cov_random beside it as the baseline), ready for `plateau run`.
The curves Model.curves prints are the ones `plateau run` computes for this prompt with that config's
settings (the same functions; bit for bit for a prompt of the run, given its activation).
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import plateau  # noqa: E402


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model", help="an HF model dir or a llama2.c .bin")
    ap.add_argument("--text", default="The cat sat on the mat because it was", help="the prompt explored")
    ap.add_argument("--other", default="Once upon a time there was a little dog who",
                    help="the prompt whose activation gives the real_other-like direction")
    ap.add_argument("--hook", default="blocks.1.hook_resid_pre")
    ap.add_argument("--position", type=int, default=-1, help="perturbed position (negative: from the end)")
    ap.add_argument("--random", type=int, default=3, help="random directions beside the real one")
    ap.add_argument("--steps", type=int, default=21)
    ap.add_argument("--alpha-max", type=float, default=1.0)
    ap.add_argument("--threshold", type=float, default=0.01, help="KL (nats) that ends the plateau")
    ap.add_argument("--data", default="data/webtext.valid.jsonl", help="the cluster run's prompts")
    ap.add_argument("--out", default="explore", help="dir for directions.npy and explore.ini")
    return ap.parse_args()


def explore(args):
    m = plateau.Model(args.model)
    print(m)
    ids = m.tokenize(args.text)
    other = m.tokenize(args.other)
    print("prompt: %d tokens %s" % (len(ids), list(ids)))

    logits, cache = m.run_with_cache(ids)
    print("next token (argmax at the last position): %d" % int(np.argmax(logits[-1])))
    for hook, resid in cache.items():
        print("  %-26s |x| at the last position %8.3f" % (hook, np.linalg.norm(resid[-1])))

    x = cache[args.hook][args.position]
    _, other_cache = m.run_with_cache(other, hooks=[args.hook])
    towards = other_cache[args.hook][min(len(other), len(ids)) - 1] - x  # real_other: target - base
    rng = np.random.default_rng(0)
    dirs = np.vstack([towards[None, :], rng.normal(0.0, 1.0, (args.random, m.d_model))]).astype(np.float32)
    labels = ["towards --other"] + ["random %d" % i for i in range(args.random)]

    alphas = np.linspace(0.0, args.alpha_max, args.steps)
    curves = m.curves(ids, args.hook, args.position, "real", dirs, alphas, step_mode="fixed_norm",
                      metrics=("kl", "l2"))
    print("KL along each direction (fixed_norm: alpha = 1 moves the activation by |x|):")
    print("  %-16s %s" % ("alpha", " ".join("%7.2f" % a for a in alphas[:: max(1, args.steps // 8)])))
    for label, kl in zip(labels, curves["kl"]):
        past = np.nonzero(kl > args.threshold)[0]
        edge = "alpha %.3g" % alphas[past[0]] if len(past) else "beyond alpha_max"
        print("  %-16s %s   KL > %g at %s" % (label, " ".join("%7.4f" % v for v in kl[:: max(1, args.steps // 8)]),
                                             args.threshold, edge))
    return m, dirs


def write_config(args, m, dirs):
    os.makedirs(args.out, exist_ok=True)
    dir_file = os.path.abspath(os.path.join(args.out, "directions.npy"))
    np.save(dir_file, dirs)
    ini = os.path.join(args.out, "explore.ini")
    with open(ini, "w") as f:
        f.write("""; Written by docs/explore.py: the sweep of what it explored on one prompt, over many prompts.
; Directions: the rows of %(dirs)s (file:, one curve per row and prompt), cov_random as the baseline.
;   build/plateau run %(ini)s
[model]
path = %(model)s

[data]
prompts = %(data)s
n_prompts = 1000
n_ctx = %(n_ctx)d
sampling = random_window
seed = 0

[perturb]
hook = %(hook)s
position = %(position)d
bases = real, synthetic
directions = file:%(dirs)s, cov_random
n_directions = %(n_dirs)d
steps = %(steps)d
alpha_max = %(alpha_max)g
step_mode = fixed_norm
cov_prompts = 1000

[readout]
metrics = kl, l2

[output]
path = results/explore.nc
""" % dict(dirs=dir_file, ini=ini, model=os.path.abspath(args.model), data=args.data, n_ctx=10, hook=args.hook,
           position=args.position, n_dirs=len(dirs), steps=args.steps, alpha_max=args.alpha_max))
    print("wrote %s and %s" % (dir_file, ini))


def main():
    args = parse_args()
    m, dirs = explore(args)
    write_config(args, m, dirs)


main()
