"""docs_commands: every command in README.md, docs/*.md and slurm/README.md stays true (issue 16, item 6).

What is checked, for every doc:
- every fenced block names its language, so no shell block escapes the checks below;
- every command of a ```sh block (continuation lines joined, heredoc bodies left out) and every inline
  `plateau ...` span: the subcommand exists in `plateau help`, and every option it uses is listed by
  `plateau help CMD` (the parser's own table); options of analysis/*.py and scripts/*.py scripts are
  checked against their --help, of bash scripts against the script's text;
- every repository path a doc names (jobs/, scripts/, slurm/, analysis/, src/, include/, tests/, bench/,
  cmake/, docs/; globs expanded) exists, and every relative link and its #anchor resolves;
- every job config a doc names runs `plateau run JOB --dry-run` (model and prompts replaced by a tiny
  synthetic model and a generated prompt file: the dry run checks every other key), and so does every
  `plateau run` command that is not run for real, with its own options;
- the cheap commands run for real, as written, in a sandbox checkout (a copy of jobs/, links to the
  rest, build/plateau linked to the binary under test, ../shared beside it when it exists): the smoke
  model and sweep, the synthetic SAE and its sweep, `plateau config`, summary.py on the smoke result,
  the help of the Slurm scripts and the quickstart; a documented "prints X" is compared; the
  python snippets of docs/result-format.md run on the smoke result.
Every shell command is either run (RUN) or named with the reason it is not (NOT_RUN): a new command in a
doc that is in neither list fails the test until it is classified. The python example of docs/analysis.md
is run by analysis_smoke, its .pth setup by analysis_open_result.
"""
import glob
import os
import random
import re
import shlex
import shutil
import subprocess
import sys
import time

SRC = os.path.realpath(os.environ.get("PLATEAU_SRC_DIR", os.path.join(os.path.dirname(__file__), "..", "..")))
BIN = os.path.realpath(os.environ.get("PLATEAU_BIN", os.path.join(SRC, "build", "plateau")))
SHARED = os.environ.get("PLATEAU_SHARED_DIR", os.path.join(SRC, "..", "shared"))
PYTHON = "/usr/bin/python3"
WORK = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(SRC, "build", "docs_commands"))
ROOT = os.path.join(WORK, "root")  # the sandbox checkout the commands run in
REPO_DIRS = ("jobs", "scripts", "slurm", "analysis", "src", "include", "tests", "bench", "cmake", "docs")
# Files a doc may link to that a branch not yet merged generates: reported, not failed, until they exist.
# Empty: every link is checked (docs/config.md, generated from the config key table, is in the tree).
FROM_OTHER_BRANCHES = set()

# Commands run for real in the sandbox (regex on the command as written).
RUN = [
    r"^bash jobs/fetch-data\.sh$",
    r"^build/plateau synth(-sae)? ",
    r"^build/plateau run jobs/smoke\.ini -o results/smoke\.nc$",
    r"^build/plateau run jobs/sae-directions\.ini .*--set model\.path=build/smoke-model\b",
    r"^build/plateau (config|help)\b",
    r"^/usr/bin/python3 analysis/summary\.py results/smoke\.nc\b",
    r"^site=\$\(/usr/bin/python3 -m site --user-site\)",
    r"^bash (slurm/[\w-]+\.sbatch|jobs/quickstart\.sh) --help$",
]
# Commands not run, and why (first match wins); what can be checked of them (paths, options, a dry run)
# still is.
NOT_RUN = [
    (r"\b(sbatch|srun|scontrol|scancel|salloc)\b|^files=", "needs Slurm (cluster_slurm runs the scripts on a private Slurm)"),
    (r"^bash scripts/install-deps\.sh|^cmake |^bash scripts/test\.sh", "installs packages or builds (this test runs on the build)"),
    (r"^bash jobs/quickstart\.sh", "the whole quickstart: minutes (jobs_quickstart tests its --plan)"),
    (r"fetch-gpt2\.sh|^pip install|^python3 - <<|huggingface-cli", "needs the network"),
    (r"^bash jobs/fetch-model\.sh", "prepares the quickstart's trained-model runs, which take minutes (jobs_fetch tests the fetch scripts)"),
    (r"^build/plateau run jobs/smoke\.ini$", "the smoke sweep README.md runs, to the default output path (dry-run here)"),
    (r"^mpirun\b", "needs models/gpt2 (GPT-2 small) and 8 ranks: a long run (dry-run here)"),
    (r"^build/plateau run jobs/", "a full job on GPT-2 small or a trained model: a long run (dry-run here)"),
    (r"^build/plateau verify\b", "needs models/gpt2"),
    (r"^build/plateau merge results/plateau-hooks\.nc", "needs the hooks array's twelve results (cluster_merge tests merge)"),
    (r"^build/plateau merge results/series\.nc", "needs the per-checkpoint jobs' results (sweep_series tests merge along model)"),
    (r"analysis/\w+\.py results/(plateau-hooks|quickstart)", "reads a cluster or quickstart result"),
    (r"^/usr/bin/python3 analysis/plot_curves\.py results/smoke\.nc", "draws every figure: ~15 s a run (analysis_smoke runs it on the smoke result)"),
    (r"^/usr/bin/python3 scripts/quickstart_summary\.py", "reads the quickstart's results (jobs_quickstart_summary tests the script)"),
    (r"^bash scripts/(bench|fuzz)\.sh", "a benchmark or fuzzing run: minutes"),
    (r"^PYTHONPATH=python /usr/bin/python3 docs/explore\.py models/gpt2\b|^build/plateau run explore/",
     "needs models/gpt2 (api_explore runs docs/explore.py and its config on a synthetic model)"),
    (r"^cc prog\.c", "compiles a user's program (api_install builds tests/api/forward_example.c this way)"),
]

failures = []


def fail(where, msg):
    failures.append(f"{where}: {msg}")


def docs():
    paths = ["README.md"] + sorted(os.path.relpath(p, SRC) for p in glob.glob(os.path.join(SRC, "docs", "*.md")))
    return paths + ["slurm/README.md"]


# ------------------------------------------------------------------------------------------ reading docs

def without_comments(text):
    """HTML comments (the lead's placeholders) removed, line numbers kept."""
    return re.sub(r"<!--.*?-->", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)


def fences(text):
    """(language, first line number, body) of every fenced block."""
    out, lang, start, body = [], None, 0, []
    for n, line in enumerate(text.split("\n"), 1):
        if line.startswith("```"):
            if lang is None:
                lang, start, body = line[3:].strip(), n + 1, []
            else:
                out.append((lang, start, body))
                lang = None
        elif lang is not None:
            body.append(line)
    return out


def shell_commands(start, body):
    """(line number, command) of a sh block: continuations joined, heredoc bodies and comments dropped."""
    cmds, cur, cur_n, heredoc = [], "", 0, None
    for n, line in enumerate(body, start):
        if heredoc:
            heredoc = None if line.strip() == heredoc else heredoc
            continue
        if not cur and (not line.strip() or line.lstrip().startswith("#")):
            continue
        cur, cur_n = (cur + " " + line.strip()) if cur else line.strip(), cur_n or n
        if cur.endswith("\\"):
            cur = cur[:-1].rstrip()
            continue
        m = re.search(r"<<-?'?(\w+)'?", cur)
        heredoc = m.group(1) if m else None
        cmds.append((cur_n, strip_comment(cur)))
        cur, cur_n = "", 0
    return cmds


def strip_comment(cmd):
    """The command without its trailing # comment (a # inside quotes or a word stays)."""
    quote = None
    for i, ch in enumerate(cmd):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or cmd[i - 1] in " \t"):
            return cmd[:i].rstrip()
    return cmd


def code_spans(text):
    """Inline code spans outside fenced blocks, with their line numbers."""
    out, in_fence = [], False
    for n, line in enumerate(text.split("\n"), 1):
        if line.startswith("```"):
            in_fence = not in_fence
            continue
        if not in_fence:
            out += [(n, s) for s in re.findall(r"`([^`]+)`", line)]
    return out


# ------------------------------------------------------------------------------------------ plateau's options

def options_of(help_text):
    """Options listed in a help text: the option words of each line that starts with one ("  -o, --output
    OUT.nc   the result file"), up to the description."""
    out = set()
    for line in help_text.split("\n"):
        if line.lstrip().startswith("-"):
            head = re.split(r"\s{2,}", line.strip())[0]
            out |= set(re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", head))
    return out


def words_of(text):
    """Every -x and --long word of a script's text."""
    return set(re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", text))


def plateau_tables():
    """The commands of `plateau help` and each one's options from `plateau help CMD`."""
    top = subprocess.run([BIN, "help"], capture_output=True, text=True)
    cmds = re.findall(r"^  ([a-z][\w-]*)\s{2,}", top.stdout, re.M)
    if top.returncode != 0 or not cmds:
        sys.exit(f"FAIL: plateau help: exit {top.returncode}, commands {cmds}")
    table = {}
    for c in cmds:
        h = subprocess.run([BIN, "help", c], capture_output=True, text=True)
        if h.returncode != 0:
            fail("plateau help " + c, f"exit {h.returncode}")
        table[c] = options_of(h.stdout)
    # plateau help's own options, as its usage lines name them (--man, --config-md, --schema-json)
    table["help"] = set(re.findall(r"plateau help (--[\w-]+)", top.stdout.split("\ncommands:")[0]))
    # the global options, each checked by running it
    table[""] = set()
    for opt in ("-V", "--version", "-h", "--help"):
        if subprocess.run([BIN, opt], capture_output=True).returncode == 0:
            table[""].add(opt)
    return table


def check_plateau_words(where, words, table):
    """WORDS: what follows `plateau` (tokens of a command, or the words of an inline span)."""
    if not words:
        return
    sub, rest = words[0], words[1:]
    if sub.startswith("-"):
        sub, rest = "", words
    elif not re.fullmatch(r"[a-z][\w-]*", sub):
        return  # a placeholder such as CMD
    if sub not in table:
        fail(where, f"plateau has no command '{sub}' (plateau help lists {', '.join(sorted(k for k in table if k))})")
        return
    if sub == "help" and rest and re.fullmatch(r"[a-z][\w-]*", rest[0]) and rest[0] not in table:
        fail(where, f"plateau help {rest[0]}: no such command")
    for w in rest:
        for opt in re.findall(r"(?<![\w.=/-])(--?[A-Za-z][\w-]*)", w):
            if opt not in table[sub]:
                fail(where, f"plateau {sub}: no option {opt} (plateau help {sub} lists {', '.join(sorted(table[sub]))})")


# ------------------------------------------------------------------------------------------ scripts' options

HELP_CACHE = {}


def script_options(kind, path):
    """Options a script accepts: python scripts from their --help, bash scripts from their text."""
    key = (kind, path)
    if key not in HELP_CACHE:
        full = os.path.join(SRC, path)
        if not os.path.isfile(full):
            HELP_CACHE[key] = None
        elif kind == "python":
            h = subprocess.run([PYTHON, full, "--help"], capture_output=True, text=True, cwd=SRC,
                               env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1", MPLBACKEND="Agg"))
            HELP_CACHE[key] = options_of(h.stdout) if h.returncode == 0 else set()
        else:
            HELP_CACHE[key] = words_of("\n".join(l for l in open(full, encoding="utf-8") if not l.lstrip().startswith("#")))
    return HELP_CACHE[key]


def segments(cmd):
    """The simple commands of a command line: split at && || ; | ( ) and into quoted command strings."""
    lex = shlex.shlex(cmd, posix=True, punctuation_chars=True)
    lex.whitespace_split = True
    try:
        toks = list(lex)
    except ValueError as e:
        return [], str(e)
    segs, cur = [], []
    for t in toks:
        if t and set(t) <= set("&|;()<>"):
            segs.append(cur) if cur else None
            cur = []
        else:
            cur.append(t)
    segs.append(cur) if cur else None
    for s in list(segs):  # sbatch --wrap "build/plateau merge ...": the quoted command too
        for t in s:
            if " " in t and re.search(r"(^|/)plateau ", t):
                segs += segments(t)[0]
    return segs, None


def check_command(where, cmd, table):
    segs, err = segments(cmd)
    if err:
        fail(where, f"cannot split the command ({err}): {cmd}")
    for s in segs:
        for i, t in enumerate(s):
            if t == "plateau" or t.endswith("/plateau"):
                check_plateau_words(where, s[i + 1:], table)
                break
            kind = "python" if t.endswith("python3") else "bash" if t == "bash" else None
            if kind and i + 1 < len(s) and re.search(r"\.(py|sh|sbatch)$", s[i + 1]) and "/" in s[i + 1]:
                accepted = script_options(kind, s[i + 1])
                if accepted is None:
                    fail(where, f"{s[i + 1]}: no such script")
                    break
                for opt in [w.split("=")[0] for w in s[i + 2:] if re.match(r"--?[A-Za-z]", w)]:
                    if opt not in accepted:
                        fail(where, f"{s[i + 1]}: no option {opt}")
                break


# ------------------------------------------------------------------------------------------ paths and links

def slug(heading):
    """GitHub's anchor of a heading."""
    h = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return h.replace(" ", "-")


def anchors(path):
    """The anchors of a doc's headings (outside fenced blocks)."""
    in_fence, out = False, set()
    for line in open(path, encoding="utf-8").read().split("\n"):
        if line.startswith("```"):
            in_fence = not in_fence
        elif not in_fence and re.match(r"#{1,6} ", line):
            out.add(slug(line.lstrip("#")))
    return out


def check_paths(doc, text):
    """Repository paths named anywhere in the doc, and its relative links."""
    jobs = set()
    pat = r"(?<![\w./$-])((?:%s)/[\w./*+-]*[\w*])" % "|".join(REPO_DIRS)
    for n, line in enumerate(text.split("\n"), 1):
        for p in re.findall(pat, line):
            hits = glob.glob(os.path.join(SRC, p))
            if not hits and p not in FROM_OTHER_BRANCHES:
                fail(f"{doc}:{n}", f"{p}: no such file or directory in the repository")
            jobs |= {os.path.relpath(h, SRC) for h in hits if re.fullmatch(r"jobs/[\w-]+\.ini", os.path.relpath(h, SRC))}
        for target in re.findall(r"\]\(([^)\s]+)\)", line):
            if re.match(r"[a-z]+:", target):
                continue
            file, _, anchor = target.partition("#")
            full = os.path.normpath(os.path.join(SRC, os.path.dirname(doc), file)) if file else os.path.join(SRC, doc)
            rel = os.path.relpath(full, SRC)
            if rel in FROM_OTHER_BRANCHES and not os.path.exists(full):
                continue
            if not os.path.exists(full):
                fail(f"{doc}:{n}", f"link {target}: no such file")
            elif anchor and full.endswith(".md") and anchor not in anchors(full):
                fail(f"{doc}:{n}", f"link {target}: no heading with that anchor in {rel}")
    return jobs


# ------------------------------------------------------------------------------------------ the sandbox

def sandbox():
    """A checkout to run in: jobs/ copied (its scripts write beside themselves), the rest linked."""
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(os.path.join(ROOT, "build"))
    os.makedirs(os.path.join(ROOT, "results"))
    shutil.copytree(os.path.join(SRC, "jobs"), os.path.join(ROOT, "jobs"))
    for d in ("analysis", "scripts", "slurm"):
        os.symlink(os.path.join(SRC, d), os.path.join(ROOT, d))
    os.symlink(BIN, os.path.join(ROOT, "build", "plateau"))
    if os.path.isdir(SHARED):
        os.symlink(os.path.realpath(SHARED), os.path.join(WORK, "shared"))
    # prompts for the dry runs (and for the smoke run when ../shared cannot give WebText): plain words
    os.makedirs(os.path.join(ROOT, "data"))
    rng = random.Random(0)
    words = ["the", "cat", "sat", "on", "a", "mat", "and", "then", "it", "ran", "far", "away", "from", "home", "today"]
    with open(os.path.join(ROOT, "data", "dry.jsonl"), "w") as f:
        for _ in range(2600):
            f.write('{"text": "%s"}\n' % " ".join(rng.choice(words) for _ in range(40)))


def env():
    e = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", MPLBACKEND="Agg", PYTHONUSERBASE=os.path.join(WORK, "userbase"),
             PLATEAU_SHARED_DIR=os.path.join(WORK, "shared"))
    e["ASAN_OPTIONS"] = (e.get("ASAN_OPTIONS", "") + ":detect_leaks=0").lstrip(":")  # Open MPI's own allocations
    e.pop("PYTHONPATH", None)
    return e


def sh(cmd, timeout=120):
    t0 = time.time()
    p = subprocess.run(["bash", "-c", cmd], cwd=ROOT, env=env(), capture_output=True, text=True, timeout=timeout)
    if os.environ.get("DOCS_TIMING"):
        print(f"  {time.time() - t0:5.1f} s  {cmd[:100]}")
    return p


def order(cmd):
    """Producers before consumers: prompts, models, SAEs, sweeps, then the rest."""
    for k, p in enumerate([r"fetch-data", r"plateau synth ", r"plateau synth-sae ", r"plateau run "]):
        if re.search(p, cmd):
            return k
    return 9


def run_for_real(commands):
    have_shared = os.path.isdir(os.path.join(WORK, "shared"))
    if not (have_shared and os.path.isfile(os.path.join(WORK, "shared", "data", "webtext.valid.jsonl"))):
        print("docs_commands: no ../shared/data: the smoke sweep reads generated prompts, not WebText")
        shutil.copy(os.path.join(ROOT, "data", "dry.jsonl"), os.path.join(ROOT, "data", "webtext.valid.jsonl"))
    done = set()
    for where, cmd in sorted(commands, key=lambda wc: order(wc[1])):
        if cmd in done:
            continue
        done.add(cmd)
        if "../shared" in cmd and not have_shared:
            print(f"docs_commands: SKIP (needs ../shared) {where}: {cmd}")
            continue
        if cmd == "bash jobs/fetch-data.sh" and not os.path.exists(os.path.join(WORK, "shared", "data", "webtext.valid.jsonl")):
            print(f"docs_commands: SKIP (needs ../shared/data or the network) {where}: {cmd}")
            continue
        p = sh(cmd)
        if p.returncode != 0:
            fail(where, f"exit {p.returncode}: {cmd}\n    {p.stderr.strip()[-600:]}")
        else:
            print(f"docs_commands: ran {where}: {cmd}")


def dry_runs(jobs, run_cmds):
    """--dry-run of every named job and of every plateau run command not run, on a tiny 12-block model."""
    for c in ("build/plateau synth build/docs-tiny12 --layers 12 --embd 32 --heads 4 --ctx 128 --vocab 512",
              "build/plateau synth-sae build/docs-tiny12-sae --model build/docs-tiny12 --hook blocks.1.hook_resid_pre --d-sae 64"):
        p = sh(c)
        if p.returncode != 0:
            sys.exit(f"FAIL: {c}: {p.stderr}")
    over = " --set model.paths= --set model.tokenizer= --set model.path=build/docs-tiny12 --set data.prompts=data/dry.jsonl"
    cmds = [(f"job {j}", f"build/plateau run {j} --dry-run") for j in sorted(jobs)]
    for where, cmd in run_cmds:
        i = cmd.index("build/plateau run ")
        cmds.append((where, cmd[i:] + " --dry-run"))
    before, seen = sorted(os.listdir(os.path.join(ROOT, "results"))), set()
    for where, cmd in cmds:
        if cmd in seen:
            continue
        seen.add(cmd)
        m = re.search(r"jobs/[\w-]+\.ini", cmd)
        if not m:  # a config a script writes (docs/explore.py's: api_explore runs it)
            print(f"docs_commands: no dry run ({where}: its config is not in jobs/): {cmd}")
            continue
        job = m.group(0)
        has_sae = re.search(r"^\[sae\]\s*\npath\s*=", open(os.path.join(SRC, job)).read(), re.M)
        c = cmd + over + (" --set sae.path=build/docs-tiny12-sae" if has_sae else "")
        p = sh(c)
        if p.returncode != 0 or "[dry_run]" not in p.stdout:
            fail(where, f"--dry-run exit {p.returncode}: {c}\n    {p.stderr.strip()[-600:]}")
    if sorted(os.listdir(os.path.join(ROOT, "results"))) != before:
        fail("dry runs", "a --dry-run wrote into results/")
    print(f"docs_commands: {len(seen)} dry runs")


def documented_outputs(all_text):
    """`build/plateau config ...` prints `X`: the command is run and prints X."""
    for cmd, want in re.findall(r"`(build/plateau config [^`]+)`\s+prints\s+`([^`]+)`", all_text.replace("\n", " ")):
        p = sh(cmd)
        if p.stdout.strip() != want:
            fail("documented output", f"{cmd} printed {p.stdout.strip()!r}, the docs say {want!r}")


def python_snippets(text):
    """docs/result-format.md's python blocks, on the smoke result."""
    code = "\n".join("\n".join(body) for lang, _, body in fences(text) if lang == "python")
    code = code.replace("results/plateau.nc", "results/smoke.nc")
    if not os.path.exists(os.path.join(ROOT, "results", "smoke.nc")):
        fail("docs/result-format.md", "no results/smoke.nc to run the python snippets on")
        return
    p = subprocess.run([PYTHON, "-c", code], cwd=ROOT, env=env(), capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        fail("docs/result-format.md", f"python snippets: {p.stderr.strip()[-600:]}")


# ------------------------------------------------------------------------------------------ main

def classify(where, cmd):
    if any(re.search(p, cmd) for p in RUN):
        return "run", None
    for p, why in NOT_RUN:
        if re.search(p, cmd):
            return "not run", why
    fail(where, f"a command neither run nor marked (add it to RUN or NOT_RUN in {__file__}): {cmd}")
    return "unknown", None


def main():
    table = plateau_tables()
    sandbox()
    to_run, run_dry, jobs, all_text, n_cmds = [], [], set(), "", 0
    for doc in docs():
        text = without_comments(open(os.path.join(SRC, doc), encoding="utf-8").read())
        all_text += text + "\n"
        jobs |= check_paths(doc, text)
        for lang, start, body in fences(text):
            if not lang:
                fail(f"{doc}:{start - 1}", "a fenced block without a language (sh, text, python, ini, ...)")
            if lang not in ("sh", "bash"):
                continue
            for n, cmd in shell_commands(start, body):
                where = f"{doc}:{n}"
                n_cmds += 1
                check_command(where, cmd, table)
                how, why = classify(where, cmd)
                if how == "run":
                    to_run.append((where, cmd))
                elif how == "not run":
                    print(f"docs_commands: not run ({why}) {where}: {cmd}")
                    if re.search(r"(^|\s)build/plateau run ", cmd):
                        run_dry.append((where, cmd))
        for n, span in code_spans(text):
            m = re.match(r"(?:build/)?plateau(?:\s+(.*))?$", span)
            if m:
                check_plateau_words(f"{doc}:{n}", (m.group(1) or "").split(), table)
    print(f"docs_commands: {n_cmds} shell commands, {len(to_run)} to run, {len(jobs)} job configs")
    run_for_real(to_run)
    dry_runs(jobs, run_dry)
    documented_outputs(all_text)
    python_snippets(open(os.path.join(SRC, "docs", "result-format.md"), encoding="utf-8").read())
    missing = [p for p in FROM_OTHER_BRANCHES if not os.path.exists(os.path.join(SRC, p))]
    if missing:
        print(f"docs_commands: NOTE not in this tree yet (generated on another branch): {', '.join(missing)}")
    if failures:
        print("\n".join("FAIL: " + f for f in failures))
        sys.exit(1)
    shutil.rmtree(WORK, ignore_errors=True)
    print("docs_commands: OK")


if __name__ == "__main__":
    main()
