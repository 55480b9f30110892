"""One fp32 copy of the weights per node (issue 19): under MPI the converted (BF16/F16) and fused
weights live in an MPI-3 shared-memory window the node's first rank fills. The window must not change
a bit: every variable of the output is bitwise identical between a singleton run (no mpirun), one
rank, two ranks sharing the window and two ranks with private copies ([run] shared_weights = false),
for a BF16 Llama (q, k, v and gate, up fused at load, tied, grouped-query), an F16 GPT-2 (converted,
not fused) and an F32 Llama (mmapped; only the fused matrices are in the window).

--dry-run --ranks 4's memory figures (mapped files, converted and fused weights, per node with the
weights once or per rank) against a hand computation from the model's shapes.

A model whose converted weights exceed this machine's physical memory is refused before any window
is allocated, naming the config line and the model, and every rank exits 2 (a sparse BF16 file: no
disk is used and nothing is read). A model series: one model's window at a time. A window Open MPI
cannot allocate: the failing rank's line first, naming the size, and every rank exits 3."""
import json
import os
import shutil
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import sweeplib as sl  # noqa: E402

sl.need_mpirun()
d = sl.workdir(sys.argv)
data = sl.make_bin(d, 4000, 300)


def synth(name, *args):
    path = os.path.join(d, name)
    r = subprocess.run([sl.BIN, "synth", path, "--layers", "2", "--ctx", "32", "--vocab", "300"] + list(args),
                       capture_output=True, text=True)
    if r.returncode != 0:
        sl.fail("plateau synth %s: %s" % (name, r.stderr))
    return path


models = {
    "llama_bf16": synth("llama_bf16", "--family", "llama", "--embd", "64", "--heads", "4", "--kv-heads", "2",
                        "--dtype", "bf16", "--tied", "--attention-bias"),
    "gpt2_f16": synth("gpt2_f16", "--embd", "32", "--heads", "4", "--dtype", "f16"),
    "llama_f32": synth("llama_f32", "--family", "llama", "--embd", "48", "--heads", "4", "--kv-heads", "1"),
}

for name, model in models.items():
    ref = os.path.join(d, name + ".nc")
    cfg = sl.base_config(model, data, ref, data__n_prompts=6, perturb__n_directions=2, perturb__steps=5,
                         perturb__cov_prompts=40, readout__metrics="kl, l2")
    ini = sl.write_ini(os.path.join(d, name + ".ini"), cfg)
    r = sl.run([ini, "--quiet"])
    if r.returncode != 0:
        sl.fail("%s, singleton: %s" % (name, r.stderr))
    for n, shared in ((1, "true"), (2, "true"), (2, "false")):
        out = os.path.join(d, "%s-%d-%s.nc" % (name, n, shared))
        r = sl.run([ini, "-o", out, "--set", "run.shared_weights=" + shared], mpi=n)
        if r.returncode != 0:
            sl.fail("%s, %d ranks, shared_weights = %s: exit %d: %s" % (name, n, shared, r.returncode, r.stderr))
        window = "one copy per node (shared window)" in r.stderr
        if window != (n > 1 and shared == "true"):
            sl.fail("%s, %d ranks, shared_weights = %s: window note %s: %s" % (name, n, shared, window, r.stderr))
        bad = sl.same_bits(ref, out)
        if bad:
            sl.fail("%s: %d ranks (shared_weights = %s) differ from the singleton run in %s" % (name, n, shared, bad))
        print("ok %s: %d rank(s), shared_weights = %s: bitwise identical to the singleton run" % (name, n, shared))



# --dry-run's memory: the weights from the files (by hand below), each rank's own, the node's sum.
def piece(n):
    """An arena piece of N floats: 64-byte aligned."""
    return (4 * n + 63) // 64 * 64


def hand_converted(L, C, H, KVH, I, V, converted, bias):
    """The converted and fused bytes of a synth Llama (hd = C / H, untied lm_head absent: --tied)."""
    hd = C // H
    qkv = (H + 2 * KVH) * hd
    fused = L * (piece(qkv * C) + piece(2 * I * C))
    if not converted:  # F32: only the fused matrices are made
        return fused
    per_layer = 2 * piece(C) + piece(H * hd * C) + piece(C * I) + (piece(qkv) + piece(C) if bias else 0)
    return fused + L * per_layer + piece(V * C) + piece(C)


def dry(name, *sets, layout=("--ranks", "4")):
    r = subprocess.run([sl.BIN, "run", os.path.join(d, name + ".ini"), "--dry-run"] + list(layout)
                       + [x for s in sets for x in ("--set", s)], capture_output=True, text=True, env=sl.run_env())
    if r.returncode != 0:
        sl.fail("%s --dry-run: %s" % (name, r.stderr))
    return {line.split("=")[0].strip(): float(line.split("=")[1].split(";")[0])
            for line in r.stdout.split("[dry_run]")[1].splitlines() if line.startswith(("memory_", "nodes"))}


for name, want in (("llama_bf16", hand_converted(2, 64, 4, 2, 176, 300, True, True)),
                   ("llama_f32", hand_converted(2, 48, 4, 1, 128, 300, False, False))):
    for shared, copies in (("true", 1), ("false", 4)):
        m = dry(name, "run.shared_weights=" + shared)
        mapped = os.path.getsize(os.path.join(models[name], "model.safetensors"))
        node = mapped + copies * want + 4 * m["memory_per_rank_bytes"] + m["memory_rank0_bytes"] \
            - m["memory_per_rank_bytes"]
        if (m["memory_weights_mapped_bytes"] != mapped or m["memory_weights_converted_bytes"] != want
                or abs(m["memory_per_node_bytes"] - node) > 4 or not m["memory_per_rank_bytes"] > 0):
            sl.fail("%s --dry-run --ranks 4 (shared_weights = %s): %s; by hand: mapped %d, converted %d, node %d"
                    % (name, shared, m, mapped, want, node))
        print("ok %s --dry-run --ranks 4, shared_weights = %s: mapped %d, converted %d, per node %d bytes (by hand)"
              % (name, shared, mapped, want, node))
        # a multi-node job: 10 ranks, 4 a node -> 3 nodes; rank 0's node (the fullest) holds 4 of them
        m10 = dry(name, "run.shared_weights=" + shared, layout=("--ranks", "10", "--ranks-per-node", "4"))
        node = mapped + copies * want + 4 * m10["memory_per_rank_bytes"] + m10["memory_rank0_bytes"] \
            - m10["memory_per_rank_bytes"]
        if m10["nodes"] != 3 or abs(m10["memory_per_node_bytes"] - node) > 4:
            sl.fail("%s --dry-run --ranks 10 --ranks-per-node 4 (shared_weights = %s): %s; by hand: 3 nodes, "
                    "node %d" % (name, shared, m10, node))
        print("ok %s --dry-run --ranks 10 --ranks-per-node 4, shared_weights = %s: 3 nodes, per node %d bytes"
              % (name, shared, node))

# The window's directory (Open MPI's osc_sm_backing_directory, /dev/shm by default): its free bytes in the dry
# run, against statvfs; one too small for the converted weights (a 64 KB tmpfs, where mounting is allowed,
# below the test model's 438 KB) said in the dry run, as a container's 64 MB /dev/shm would otherwise be said
# only when the run fails.
def window_line(name, env_dir=None):
    env = sl.run_env()
    if env_dir:
        env["OMPI_MCA_osc_sm_backing_directory"] = env_dir
    r = subprocess.run([sl.BIN, "run", os.path.join(d, name + ".ini"), "--dry-run", "--ranks", "2"],
                       capture_output=True, text=True, env=env)
    lines = [x for x in r.stdout.splitlines() if x.startswith("window_dir_free_bytes")]
    if r.returncode != 0 or len(lines) != 1:
        sl.fail("%s --dry-run --ranks 2 (window dir %s): exit %d, window lines %s: %s"
                % (name, env_dir, r.returncode, lines, r.stderr))
    return float(lines[0].split("=")[1].split(";")[0]), lines[0]


if os.path.isdir("/dev/shm"):
    st = os.statvfs("/dev/shm")
    got, line = window_line("llama_bf16")
    if "/dev/shm" not in line or "LESS" in line or abs(got - st.f_bavail * st.f_frsize) > (64 << 20):
        sl.fail("window dir in the dry run: %s; statvfs: %d free" % (line, st.f_bavail * st.f_frsize))
    print("ok the dry run gives /dev/shm's free bytes: " + line)
small = os.path.join(d, "small-shm")
os.makedirs(small)
if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", small], capture_output=True).returncode == 0:
    try:
        got, line = window_line("llama_bf16", small)
    finally:
        subprocess.run(["umount", small])
    if got > (64 << 10) or "LESS than the converted weights" not in line or "shared_weights = false" not in line:
        sl.fail("a 64 KB window dir in the dry run: " + line)
    print("ok a window dir too small is said by the dry run: " + line)
else:
    print("skip the small window dir: cannot mount a tmpfs here (not root?)")

# A model too large for the node: refused by name on every rank, before the window exists.
phys = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
V, L, I = 1 << 22, 1, 8
C = ((phys // 4) // V // 64 + 2) * 64  # embed [V, C] in fp32 exceeds physical memory
big = os.path.join(d, "big")
os.makedirs(big)
with open(os.path.join(big, "config.json"), "w") as f:
    json.dump({"model_type": "llama", "hidden_size": C, "intermediate_size": I, "num_hidden_layers": L,
               "num_attention_heads": 1, "num_key_value_heads": 1, "vocab_size": V, "max_position_embeddings": 32,
               "tie_word_embeddings": True, "head_dim": 2}, f)
shapes = [("model.embed_tokens.weight", [V, C]), ("model.norm.weight", [C])]
for name, shape in (("input_layernorm.weight", [C]), ("self_attn.q_proj.weight", [2, C]),
                    ("self_attn.k_proj.weight", [2, C]), ("self_attn.v_proj.weight", [2, C]),
                    ("self_attn.o_proj.weight", [C, 2]), ("post_attention_layernorm.weight", [C]),
                    ("mlp.gate_proj.weight", [I, C]), ("mlp.up_proj.weight", [I, C]),
                    ("mlp.down_proj.weight", [C, I])):
    shapes.append(("model.layers.0." + name, shape))
header, offset = {}, 0
for name, shape in shapes:
    n = 2
    for s in shape:
        n *= s
    header[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [offset, offset + n]}
    offset += n
text = json.dumps(header).encode()
text += b" " * (-len(text) % 8)
with open(os.path.join(big, "model.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(text)) + text)
    f.truncate(8 + len(text) + offset)  # sparse: no disk used
cfg = sl.base_config(big, data, os.path.join(d, "big.nc"), data__n_prompts=2, perturb__cov_prompts=4)
ini = sl.write_ini(os.path.join(d, "big.ini"), cfg)
r = sl.run([ini, "--quiet"], mpi=2)
lines = [line for line in r.stderr.splitlines() if line.startswith("plateau")]
if (r.returncode != 2 or len(lines) != 1 or "[model] path = " + big not in lines[0]
        or "more than this machine's" not in lines[0] or "shared window" not in lines[0]):
    sl.fail("a model larger than the node's memory on 2 ranks: exit %d: %s" % (r.returncode, r.stderr))
print("ok too large for the node's window: exit 2 on every rank, one line: " + lines[0])
# A NaN met while the node's first rank converts into the window (BF16 0x7fc0, element 7 of a fused
# up_proj): the same one line as a singleton run's, config line and model path first, exit 2 everywhere.
nan_model = os.path.join(d, "llama_bf16_nan")
shutil.copytree(models["llama_bf16"], nan_model)
with open(os.path.join(nan_model, "model.safetensors"), "r+b") as f:
    (n,) = struct.unpack("<Q", f.read(8))
    begin = json.loads(f.read(n))["model.layers.1.mlp.up_proj.weight"]["data_offsets"][0]
    f.seek(8 + n + begin + 2 * 7)
    f.write(struct.pack("<H", 0x7FC0))
cfg = sl.base_config(nan_model, data, os.path.join(d, "nan.nc"), data__n_prompts=2, perturb__cov_prompts=4)
ini = sl.write_ini(os.path.join(d, "nan.ini"), cfg)
said = []
for n in (0, 2):
    r = sl.run([ini, "--quiet"], mpi=n)
    said.append([line for line in r.stderr.splitlines() if line.startswith("plateau")])
    if (r.returncode != 2 or len(said[-1]) != 1 or "[model] path = " + nan_model not in said[-1][0]
            or "tensor 'model.layers.1.mlp.up_proj.weight': element 7 is NaN" not in said[-1][0]):
        sl.fail("a NaN in a BF16 weight, %d ranks: exit %d: %s" % (n, r.returncode, r.stderr))
if said[0] != said[1]:
    sl.fail("a NaN in a BF16 weight: 2 ranks say %s, a singleton %s" % (said[1], said[0]))
print("ok a NaN met filling the window: exit 2, the singleton's line: " + said[1][0])

# A model series on 2 ranks: one model's window at a time. Each model's window is freed when its sweep
# ends (they were kept to the end of the run, the node holding every model's converted weights). Seen
# from outside: the shared-memory segments each rank maps while the series runs (Open MPI's osc/sm
# backing files, one per window, named osc_sm.*: their inodes), sampled every 20 ms.
def osc_segments(pid):
    try:
        with open("/proc/%d/maps" % pid) as f:
            return {line.split()[4] for line in f if "/osc_sm." in line and ".so" not in line}  # inodes
    except OSError:
        return set()


if "Open MPI" in subprocess.run([shutil.which("mpirun"), "--version"], capture_output=True, text=True).stdout:
    series = [synth("series%d" % k, "--family", "llama", "--embd", "64", "--heads", "4", "--kv-heads", "2",
                    "--dtype", "bf16", "--seed", str(k)) for k in range(3)]
    cfg = sl.base_config(", ".join(series), data, os.path.join(d, "series.nc"), data__n_prompts=6,
                         perturb__n_directions=2, perturb__steps=5, perturb__cov_prompts=40)
    ini = sl.write_ini(os.path.join(d, "series.ini"), cfg)
    p = subprocess.Popen([shutil.which("mpirun"), "-n", "2", sl.BIN, "run", ini, "--quiet"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=sl.run_env())
    most, seen = 0, set()
    while p.poll() is None:
        for pid in subprocess.run(["pgrep", "-P", str(p.pid)], capture_output=True, text=True).stdout.split():
            segs = osc_segments(int(pid))
            seen |= segs
            most = max(most, len(segs))
        time.sleep(0.02)
    err = p.communicate()[1]
    if p.returncode != 0 or len(seen) < 2 or most != 1:
        sl.fail("a series of 3 BF16 models on 2 ranks: exit %d, %d windows seen, at most %d mapped at once by a "
                "rank (want 1): %s" % (p.returncode, len(seen), most, err))
    print("ok a series of 3 BF16 models: %d windows seen, one mapped at a time" % len(seen))

# A window the MPI library cannot allocate: Open MPI's osc/sm fails the node's first rank alone (here its
# backing directory does not exist) and leaves the other in the collective. The failing rank's line comes
# first and names the window's size; the heartbeats then end the job, every rank, exit 3.
if "Open MPI" in subprocess.run([shutil.which("mpirun"), "--version"], capture_output=True, text=True).stdout:
    want = hand_converted(2, 64, 4, 2, 176, 300, True, True)
    r = sl.run([os.path.join(d, "llama_bf16.ini"), "--quiet", "-o", os.path.join(d, "nowindow.nc"),
                "--set", "run.worker_timeout=1"], mpi=2, timeout=120,
               env={"OMPI_MCA_osc_sm_backing_directory": os.path.join(d, "no-such-dir")})
    lines = [line for line in r.stderr.splitlines() if line.startswith("plateau")]
    if (r.returncode != 3 or not lines or not lines[0].startswith(
            "plateau: rank 0: cannot allocate the node's shared weight window of %d bytes" % want)
            or os.path.exists(os.path.join(d, "nowindow.nc"))):
        sl.fail("a window Open MPI cannot allocate on 2 ranks: exit %d: %s" % (r.returncode, r.stderr))
    print("ok a window the MPI library cannot allocate: exit 3, first: " + lines[0])
print("shared weight tests passed")
