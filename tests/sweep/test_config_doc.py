"""docs/config.md is what the config's key table makes of it (`plateau help --config-md`), so the config
reference cannot drift from the parser; and every key the resolver prints is documented there and in the
man page's CONFIG section. Regenerate with: build/plateau help --config-md > docs/config.md
Usage: test_config_doc.py WORKDIR"""
import difflib
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
import sweeplib as sl  # noqa: E402

d = sl.workdir(sys.argv)


def plateau(args):
    return subprocess.run([sl.BIN] + args, capture_output=True, text=True, env=sl.run_env(), timeout=60)


r = plateau(["help", "--config-md"])
if r.returncode != 0 or r.stderr:
    sl.fail("plateau help --config-md: exit %d %s" % (r.returncode, r.stderr))
committed_path = os.path.join(sl.SRC, "docs", "config.md")
committed = open(committed_path, encoding="utf-8").read()
if committed != r.stdout:
    diff = "".join(difflib.unified_diff(committed.splitlines(True), r.stdout.splitlines(True), "docs/config.md",
                                        "plateau help --config-md", n=1))
    sl.fail("docs/config.md differs from the key table (regenerate: build/plateau help --config-md > "
            "docs/config.md):\n" + diff[:4000])
print("ok   docs/config.md is plateau help --config-md")

# every key of the resolved text (the parser's table as printed) has a row under its section
ini = os.path.join(d, "c.ini")
with open(ini, "w") as f:
    f.write("[model]\npath = m\n[data]\nprompts = p.txt\n")
text = plateau(["config", ini]).stdout
keys, section = [], None
for line in text.splitlines():
    m = re.fullmatch(r"\[(\w+)\]", line)
    if m:
        section = m.group(1)
    m = re.match(r"(\w+) = ", line)
    if m:
        keys.append((section, m.group(1)))
if len(keys) < 40:
    sl.fail("plateau config printed %d keys" % len(keys))
doc_sections = re.split(r"^## \[(\w+)\]$", committed, flags=re.M)
rows = {doc_sections[i]: re.findall(r"^\| `(\w+)` \|", doc_sections[i + 1], re.M) for i in range(1, len(doc_sections), 2)}
documented = [(s, k) for s in rows for k in rows[s]]
if documented != keys:
    sl.fail("docs/config.md rows %s are not the resolved keys %s" % (documented, keys))
print("ok   docs/config.md has a row for each of the %d keys, in the resolved text's order" % len(keys))

man = plateau(["help", "--man"]).stdout
config = man[man.index(".SH CONFIG"):man.index(".SH EXIT STATUS")]
man_keys, section = [], None
for line in config.splitlines():
    m = re.fullmatch(r'\.SS "\[(\w+)\]"', line)
    if m:
        section = m.group(1)
    m = re.fullmatch(r"\.B (\w+)", line)
    if m:
        man_keys.append((section, m.group(1)))
if man_keys != keys:
    sl.fail("the man page's CONFIG keys %s are not the resolved keys %s" % (man_keys, keys))
print("ok   the man page's CONFIG section has every key")
