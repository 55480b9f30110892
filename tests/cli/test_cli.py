"""The CLI explains itself. The options each command accepts are read from the parser's own tables
(the `cli_spec` of every src/cli/*.c, which cli_prepare checks every command line against), not
copied here; then:
- `plateau CMD --help`, `-h` and `plateau help CMD`: exit 0, the same text, every option of the table
  (its name, alias and value) and the exit codes;
- every option taking a value behaves the same as `--opt=V` and `--opt V`; a flag given a value, an
  unknown option, a missing value, `--set foo`, a malformed number: exit 1 and one line on stderr;
- `--` before a tokenize TEXT that starts with '-';
- `plateau help`, `plateau`, `plateau nope`, `-V`/`--version` (the git commit baked at build time);
- the man page: build/plateau.1 is `plateau help --man`, groff renders it without a warning and it
  holds every command and option; `cmake --install` puts it in share/man/man1.
Usage: test_cli.py WORKDIR BUILD_DIR CMAKE"""
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "sweep"))
import sweeplib as sl  # noqa: E402

BIN, SRC = sl.BIN, sl.SRC
d = sl.workdir(sys.argv)
build_dir, cmake = sys.argv[2], sys.argv[3]
checks = 0


def run(args, **kw):
    # run_env: under ASan no leak report of Open MPI's own allocations (`run` calls MPI_Init)
    return subprocess.run([BIN] + args, capture_output=True, text=True, errors="replace", env=sl.run_env(), **kw)


def check(ok, msg):
    global checks
    checks += 1
    if not ok:
        sl.fail(msg)


def c_string(s):
    return None if s == "NULL" else bytes(s[1:-1], "utf-8").decode("unicode_escape")


# --- the parser's tables, from the source -------------------------------------------------------
specs = {}
for path in sorted(os.listdir(os.path.join(SRC, "src", "cli"))):
    text = open(os.path.join(SRC, "src", "cli", path), encoding="utf-8").read()
    for m in re.finditer(r"const cli_spec (CLI_\w+) = \{\s*\"([a-z-]+)\",(.*?)\};\n", text, re.S):
        opts = re.findall(r"\{(\"-[^\"]*\"),\s*(NULL|\"[^\"]*\"),\s*(NULL|\"[^\"]*\"),", m.group(3))
        specs[m.group(2)] = [tuple(c_string(x) for x in o) for o in opts]
main_c = open(os.path.join(SRC, "src", "cli", "main.c"), encoding="utf-8").read()
table = re.findall(r"\{\"([a-z-]+)\", cmd_\w+, &CLI_\w+\}", main_c)
check(len(table) >= 10 and sorted(table) == sorted(specs), f"command table {table} vs specs {sorted(specs)}")
print(f"ok   {len(specs)} commands, {sum(len(v) for v in specs.values())} options in the parser's tables")

# --- --help of every command --------------------------------------------------------------------
for cmd, opts in specs.items():
    r = run([cmd, "--help"])
    check(r.returncode == 0 and r.stderr == "", f"{cmd} --help: exit {r.returncode}, {r.stderr!r}")
    check(r.stdout.startswith(f"usage: plateau {cmd} "), f"{cmd} --help: no usage line: {r.stdout[:80]!r}")
    for alt in ([cmd, "-h"], ["help", cmd]):
        r2 = run(alt)
        check(r2.returncode == 0 and r2.stdout == r.stdout, f"{' '.join(alt)} differs from {cmd} --help")
    listed = r.stdout.split("\noptions:\n", 1)[1]
    for name, alias, metavar in opts:
        line = [l for l in listed.splitlines() if re.search(r"(^|[ ,])" + re.escape(name) + r"( |,|$)", l)]
        check(line, f"{cmd} --help does not list {name}")
        if alias:
            check(alias + ", " + name in line[0], f"{cmd} --help: {name} without its alias {alias}")
        if metavar:
            check(name + " " + metavar in line[0], f"{cmd} --help: {name} without its value {metavar}")
    check("-h, --help" in listed, f"{cmd} --help: no -h, --help line")
    for code in ("0", "1", "2"):
        check(re.search(r"^\s+" + code + r"\s+\S", r.stdout.split("exit status:")[1], re.M),
              f"{cmd} --help: exit code {code} missing")
    if cmd == "run":
        check(re.search(r"^\s+3\s+fault", r.stdout, re.M) and re.search(r"^\s+75\s+", r.stdout, re.M),
              "run --help: exit codes 3 and 75 missing")
print("ok   --help, -h and `help CMD` of every command list every option of its table and the exit codes")

# synth's --family line is the registry's rows (src/model/registry.c), in order, the first the default
reg = open(os.path.join(SRC, "src", "model", "registry.c"), encoding="utf-8").read()
rows = re.findall(r'^\s*\{"(\w+)", "\w+", &pl_\w+_code,', reg.split("families[] = {", 1)[1].split("};", 1)[0], re.M)
line = [l for l in run(["synth", "--help"]).stdout.splitlines() if "--family F" in l]
want = "%s (default), %s or %s" % (rows[0], ", ".join(rows[1:-1]), rows[-1])
check(len(rows) >= 3 and line and line[0].split("--family F", 1)[1].strip() == want,
      f"synth --help: --family {line} vs the registry's rows {rows}")
print(f"ok   synth --help lists the registry's {len(rows)} families")

# --- --opt=V is --opt V; usage errors are one line, exit 1 ----------------------------------------
for cmd, opts in specs.items():
    for name, alias, metavar in opts:
        if metavar and name.startswith("--"):
            a, b = run([cmd, name + "=1", "--help-not"]), run([cmd, name, "1", "--help-not"])
            check((a.returncode, a.stdout, a.stderr) == (b.returncode, b.stdout, b.stderr),
                  f"{cmd} {name}=1 differs from {name} 1: {a.stderr!r} vs {b.stderr!r}")
            check(a.returncode == 1 and "--help-not" in a.stderr, f"{cmd} {name}=1: {a.stderr!r}")
            r = run([cmd, name])
            check(r.returncode == 1 and r.stderr.count("\n") == 1 and "needs a value" in r.stderr,
                  f"{cmd} {name} without value: exit {r.returncode}: {r.stderr!r}")
        if not metavar and name.startswith("--"):
            r = run([cmd, name + "=yes"])
            check(r.returncode == 1 and r.stderr.count("\n") == 1 and "takes no value" in r.stderr,
                  f"{cmd} {name}=yes: exit {r.returncode}: {r.stderr!r}")
    r = run([cmd, "--bogus"])
    check(r.returncode == 1 and r.stderr.count("\n") == 1 and "unknown option '--bogus'" in r.stderr,
          f"{cmd} --bogus: exit {r.returncode}: {r.stderr!r}")
print("ok   --opt=V = --opt V for every option taking a value; unknown options, missing values, values of flags: "
      "exit 1, one line")

# real work through the = forms
model = sl.make_model(d)
a = run(["logits", model, "--ids=1,2,3", "--top=3"])
b = run(["logits", model, "--ids", "1,2,3", "--top", "3"])
check(a.returncode == 0 and a.stdout == b.stdout and len(a.stdout.splitlines()) == 3, f"logits --ids=: {a.stderr}")
data = sl.make_bin(d, 8 * 100, 300)
ini = sl.write_ini(os.path.join(d, "c.ini"), sl.base_config(model, data, os.path.join(d, "out.nc")))
subprocess.run([sys.executable, os.path.join(SRC, "tests", "tokenizer", "make_tiny_vocab.py"), model], check=True)
a = run(["tokenize", model, "--", "-5 degrees"])
b = subprocess.run([BIN, "tokenize", model, "-"], input="-5 degrees", capture_output=True, text=True)
check(a.returncode == 0 and a.stdout == b.stdout and a.stdout.strip(), f"tokenize -- '-5 degrees': {a.stderr!r}")
r = run(["tokenize", model, "-5 degrees"])
check(r.returncode == 1 and "unknown option" in r.stderr, f"tokenize '-5 degrees' without --: {r.stderr!r}")
r = run(["config", ini, "--set=data.n_prompts=5", "--get=data.n_prompts", "--output=" + d + "/x.nc"])
check(r.returncode == 0 and r.stdout == "5\n", f"config --set=: {r.returncode} {r.stdout!r} {r.stderr!r}")
r = run(["config", ini, "-o", d + "/y.nc", "--get", "output.path"])
check(r.returncode == 0 and r.stdout == d + "/y.nc\n", f"config -o: {r.stdout!r} {r.stderr!r}")
for args, what in ((["run", ini, "--set", "foo"], "expected section.key=value"),
                   (["run", ini, "--set=foo=1"], "expected section.key=value"),
                   (["logits", model, "--ids", "1", "--top", "x"], "--top: 'x' is not an integer"),
                   (["logits", model, "--ids", "1,x"], "--ids"),
                   (["generate", model, "--text", "a", "-n", "-3"], "-n: '-3'"),
                   (["run", ini, "--ranks", "2"], "--ranks is for --dry-run"),
                   (["run", ini, "--dry-run", "--ranks", "0"], "--ranks: '0'"),
                   (["run", ini, "--ranks-per-node", "2"], "--ranks-per-node is for --dry-run"),
                   (["run", ini, "--dry-run", "--ranks-per-node", "0"], "--ranks-per-node: '0'"),
                   (["info"], "expected exactly one MODEL"),
                   (["merge", d + "/m.nc"], "at least one input"),
                   (["synth", d + "/s", "--layers", "x"], "--layers: 'x'")):
    r = run(args)
    check(r.returncode == 1 and r.stderr.count("\n") == 1 and what in r.stderr,
          f"{' '.join(args)}: exit {r.returncode}: {r.stderr!r}")
r = run(["run", ini, "--set", "nosuch.key=1"])  # well-formed, but no such key: the config's error (2)
check(r.returncode == 2 and "nosuch" in r.stderr, f"--set nosuch.key=1: exit {r.returncode}: {r.stderr!r}")
print("ok   the = forms do the work; malformed --set, numbers and arguments: exit 1, one line; unknown keys: 2")

# --- plateau, help, -V ----------------------------------------------------------------------------
r = run(["help"])
check(r.returncode == 0 and all(re.search(r"^  " + re.escape(c) + " ", r.stdout, re.M) for c in specs),
      f"plateau help: {r.returncode} {r.stdout!r}")
check(run(["--help"]).stdout == r.stdout, "plateau --help differs from plateau help")
for args in ([], ["nope"], ["help", "nope"], ["help", "run", "extra"]):
    r2 = run(args)
    check(r2.returncode == 1, f"plateau {' '.join(args)}: exit {r2.returncode}")
is_git = subprocess.run(["git", "-C", SRC, "rev-parse", "--git-dir"], capture_output=True).returncode == 0
for flag in ("-V", "--version"):
    r = run([flag])
    m = re.fullmatch(r"plateau (\d+\.\d+\.\d+) \(git (\S+)\)\n", r.stdout)
    check(r.returncode == 0 and m, f"{flag}: {r.stdout!r}")
    if not is_git:
        check(m.group(2) == "unknown", f"{flag}: not a git checkout, but git {m.group(2)}")
        continue
    # `git describe` at build time: [TAG-N-g]HASH[-dirty]; HASH must be a commit of this checkout
    # (the build may be older than the newest commit)
    h = re.fullmatch(r"(?:.*-g)?([0-9a-f]{7,40})(?:-dirty)?", m.group(2))
    check(h and subprocess.run(["git", "-C", SRC, "cat-file", "-e", h.group(1) + "^{commit}"]).returncode == 0,
          f"{flag}: git {m.group(2)} is not a commit of {SRC}")
print("ok   plateau help lists every command; -V and --version name the version and git commit")

# --- the man page ---------------------------------------------------------------------------------
man = run(["help", "--man"]).stdout
built = open(os.path.join(build_dir, "plateau.1"), encoding="utf-8").read()
check(man == built, "build/plateau.1 is not plateau help --man")
groff = shutil.which("groff")
if groff:
    g = subprocess.run([groff, "-man", "-Tutf8", "-ww", "-z"], input=man, capture_output=True, text=True)
    check(g.returncode == 0 and g.stderr == "", f"groff warns: {g.stderr}")
    g = subprocess.run([groff, "-man", "-Tascii", "-P", "-cbou"], input=man, capture_output=True, text=True,
                       env=dict(os.environ, MANWIDTH="200"))
    page = g.stdout
    for cmd, opts in specs.items():
        check("plateau " + cmd in page, f"man page: no command {cmd}")
        for name, _, _ in opts:
            check(name in page, f"man page: {cmd} {name} missing")
    print("ok   the man page renders with groff without warnings and holds every command and option")
else:
    print("note groff not installed: the man page was not rendered (scripts/install-deps.sh installs groff-base)")
prefix = os.path.join(d, "prefix")
r = subprocess.run([cmake, "--install", build_dir, "--prefix", prefix], capture_output=True, text=True)
check(r.returncode == 0, f"cmake --install: {r.stderr}")
check(open(os.path.join(prefix, "share", "man", "man1", "plateau.1"), encoding="utf-8").read() == man,
      "installed man page differs")
check(os.access(os.path.join(prefix, "bin", "plateau"), os.X_OK), "plateau not installed")
print("ok   cmake --install puts bin/plateau and share/man/man1/plateau.1")
print(f"cli tests passed ({checks} checks)")
