#!/usr/bin/env python3
"""Generate analysis/plateau_analysis/_schema.py from plateau's result schema (the C table in
src/io/schema.c, with the experiment's metrics and scores in their code order), so the Python reader's
names and the metric order that keys its bootstrap streams cannot drift from the C side.

usage: scripts/gen_result_schema.py [PLATEAU_BIN]   (default build/plateau; writes the file)
       scripts/gen_result_schema.py PLATEAU_BIN --check   (exit 1 when the committed file differs)
       scripts/gen_result_schema.py PLATEAU_BIN --markdown   (the tables of docs/result-format.md)
The test cli_result_schema checks the committed file and the tables of docs/result-format.md."""
import json
import os
import pprint
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "analysis", "plateau_analysis", "_schema.py")

HEADER = '''"""The plateau result file's schema, GENERATED from the C table (src/io/schema.c) by
scripts/gen_result_schema.py from `plateau help --schema-json`: do not edit, regenerate
(`scripts/gen_result_schema.py build/plateau`). The test cli_result_schema fails when this file and
the binary's schema differ, e.g. when the C metric enum's order changes (it keys the bootstrap
streams of plateau_analysis.stats).

SCHEMA["metrics"], SCHEMA["scores"]: in the experiment's code order (PL_METRIC_*, PL_SCORE_*).
SCHEMA["variables"]: one row per variable or family of variables (scope metric: name = metric +
suffix; metric_score: metric_score + suffix; score: score + suffix), with type, dims, units,
long_name template, when present and how `plateau merge` treats it.
SCHEMA["global_attributes"]: name, kind (text, int, bool = 0/1 int, float64) and merge rule.
SCHEMA["config_keys"]: every [section] key of the global attribute `config` (src/sweep/config.c's
table), with identity = whether it is part of a run's identity (the checkpoint's config hash; the files
of a merge share every such key but the swept one).
"""
'''


def render(schema_json):
    schema = json.loads(schema_json)
    body = pprint.pformat(schema, width=110, sort_dicts=False)
    return HEADER + "\nSCHEMA = " + body + "\n"


def _cell(text):
    return (text or "").replace("|", "\\|").replace("{", "`{").replace("}", "}`") if text else ""


def markdown(schema_json):
    """The schema as the Markdown tables of docs/result-format.md."""
    schema = json.loads(schema_json)
    out = ["Metrics, in their code order: " + ", ".join("`%s`" % m for m in schema["metrics"]) + ".",
           "Scores, in their code order: " + ", ".join("`%s`%s" % (s["name"], "" if s["alpha_valued"] else " (not in α)")
                                                      for s in schema["scores"]) + ".", "",
           "| dimension | counts | present |", "|---|---|---|"]
    out += ["| `%s` | %s | %s |" % (d["name"], _cell(d["description"]), d["present"] or "always")
            for d in schema["dimensions"]]
    stems = {"fixed": "", "metric": "{m}", "metric_score": "{m}_{s}", "score": "{s}", "state": "", "merged": ""}
    out += ["", "| variable | type | dimensions | units | long_name | present | merge |", "|---|---|---|---|---|---|---|"]
    for v in schema["variables"]:
        name = stems[v["scope"]] + v["name"]
        out.append("| `%s` | %s | %s | %s | %s | %s | %s |" % (
            name, v["type"], v["dims"], _cell(v["units"]), _cell(v["long_name"]), v["present"] or "always",
            v["merge"].replace("_", " ") + ("; attributes: " + v["attributes"] if v["attributes"] else "")))
    out += ["", "| global attribute | kind | what | merge | global after a merge |", "|---|---|---|---|---|"]
    for g in schema["global_attributes"]:
        out.append("| `%s` | %s | %s | %s | %s |" % (g["name"], g["kind"], _cell(g["description"]),
                                                  g["merge"].replace("_", " "), g["global_when_merged"]))
    return "\n".join(out) + "\n"


def main(argv):
    binary = argv[1] if len(argv) > 1 else "build/plateau"
    r = subprocess.run([binary, "help", "--schema-json"], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("%s help --schema-json: exit %d: %s" % (binary, r.returncode, r.stderr.strip()))
    if "--markdown" in argv[2:]:
        sys.stdout.write(markdown(r.stdout))
        return
    text = render(r.stdout)
    if "--check" in argv[2:]:
        with open(OUT, encoding="utf-8") as f:
            if f.read() != text:
                sys.exit("%s differs from `%s help --schema-json`: regenerate it with scripts/gen_result_schema.py %s"
                         % (os.path.normpath(OUT), binary, binary))
        return
    with open(OUT, "w", encoding="utf-8") as f:
        f.write(text)


if __name__ == "__main__":
    main(sys.argv)
