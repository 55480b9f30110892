#!/usr/bin/env bash
# The README's main command: install what is missing, build, run the post's two experiments (activation
# plateaus: real vs synthetic base; sensitive directions: real_other vs random directions) end to end
# on the best models that can be had here, draw the figures, and print a summary table per model.
#
#   bash jobs/quickstart.sh           # the whole thing: a few minutes on 2 cores
#   bash jobs/quickstart.sh --plan    # which models, prompts and commands it would run; changes nothing
#
# Models, the first of these that can be had:
#   1. $PLATEAU_MODEL (a model dir or llama2.c .bin): jobs/quickstart.ini on it -> results/quickstart.nc
#      (in the raw residual basis if it is an RMSNorm model)
#   2. GPT-2 small: models/gpt2, else downloaded and verified by jobs/fetch-gpt2.sh: jobs/quickstart.ini
#      -> results/quickstart.nc
#   3. the trained TinyStories models, each that jobs/fetch-model.sh can find (models/, ../shared/models)
#      or download (stories260K): jobs/quickstart-stories260K.ini, jobs/quickstart-tinystories-gpt2.ini
#      -> results/quickstart-NAME.nc
#   4. none of those (or no TinyStories prompts for them): a synthetic GPT-2-small-shaped model with
#      random weights (models/synthetic-gpt2-small; its curves say nothing about a trained model, and
#      every figure says [SYNTHETIC MODEL]): jobs/quickstart.ini -> results/quickstart-synthetic.nc
# Prompts (jobs/fetch-data.sh): WebText for 1, 2 and 4, TinyStories for 3; $PLATEAU_DATA for all.
# Figures: results/quickstart*-figures/ (analysis/plot_curves.py); the table (scripts/quickstart_summary.py)
# goes to stdout.
# Environment: PLATEAU_RANKS (MPI ranks; default: the machine's cores; 1 runs without mpirun),
#   PLATEAU_DATA, PLATEAU_SHARED_DIR (instead of ../shared), HF_ENDPOINT (a Hugging Face mirror),
#   PLATEAU_BIN (--plan only: the plateau that `plateau info` runs; a real run builds build/plateau).
# An interrupted quickstart (Ctrl-C) continues each run from its checkpoint (results/*.nc.ckpt) when run again.
# Exit: 0 done; 1 usage; 2 bad input ($PLATEAU_MODEL missing, a file that fails its sha256 check);
#   69 no prompt data can be had here; otherwise the failing step's code (plateau's: docs/trust.md, Exit codes).
set -euo pipefail
cd "$(dirname "$0")/.."
usage() { sed -n '2,/^set -e/{/^set -e/d;s/^# \{0,1\}//;p}' "$0"; }
plan=0
case "${1:-}" in
  "") ;;
  --plan) plan=1 ;;
  -h | --help) usage; exit 0 ;;
  *) echo "quickstart: unknown argument '$1' (--plan, --help)" >&2; exit 1 ;;
esac
(($# <= 1)) || { echo "quickstart: one argument at most (--plan, --help)" >&2; exit 1; }
EX_UNAVAILABLE=69
SECONDS=0
say() { echo "quickstart: $*" >&2; }
# show CMD...: the command as one shell-quoted line.
show() { printf '%q ' "$@" | sed 's/ $//'; }

if ((plan)); then
  plateau=${PLATEAU_BIN:-build/plateau}
  say "plan only (--plan): nothing is installed, built, linked, downloaded or run"
else
  bash scripts/install-deps.sh
  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build build -j"$(nproc)" --target plateau >/dev/null
  plateau=build/plateau
fi
export PLATEAU_BIN=$plateau
check=()
((plan)) && check=(--check)

# have FETCH-SCRIPT ARGS...: whether the fetch script gets (or, under --plan, could get) the thing:
# 0 yes, 1 it cannot be had here (exit 69); any other failure ends the quickstart with its code.
have() {
  local rc=0
  bash "$@" "${check[@]}" || rc=$?
  case $rc in
    0) return 0 ;;
    "$EX_UNAVAILABLE") return 1 ;;
    *) say "$* failed (exit $rc): see the line above"; exit "$rc" ;;
  esac
}

# prompts NAME: whether prompt data can be had: $PLATEAU_DATA (passed to every run), else the data set
# NAME of jobs/fetch-data.sh (webtext or tinystories: the path the configs read).
prompt_set=()
if [ -n "${PLATEAU_DATA:-}" ]; then
  [ -f "$PLATEAU_DATA" ] && [ -r "$PLATEAU_DATA" ] || { say "PLATEAU_DATA=$PLATEAU_DATA is not a readable file"; exit 2; }
  prompt_set=(--set "data.prompts=$PLATEAU_DATA")
fi
prompts() { [ -n "${PLATEAU_DATA:-}" ] || have jobs/fetch-data.sh "$1"; }

# The runs: a label, a config, an output, and `plateau run` options one a line, in parallel arrays.
labels=() configs=() outs=() options=()
add_run() { labels+=("$1"); configs+=("$2"); outs+=("$3"); options+=("${4:-}"); }
no_prompts() {
  say "no prompt data can be had here (not in data/, not in ../shared/data, no download): set PLATEAU_DATA=FILE, or run online"
  exit "$EX_UNAVAILABLE"
}
if [ -n "${PLATEAU_MODEL:-}" ]; then
  [ -e "$PLATEAU_MODEL" ] || { say "PLATEAU_MODEL=$PLATEAU_MODEL: no such file or directory"; exit 2; }
  opts="--set"$'\n'"model.path=$PLATEAU_MODEL"
  if [ -x "$plateau" ]; then
    norm=$("$plateau" info "$PLATEAU_MODEL" | awk '$1 == "norm" { print $2 }')
    if [ "$norm" = rmsnorm ]; then
      say "$PLATEAU_MODEL normalises with RMSNorm: the raw residual basis (the centred one would change its output)"
      opts+=$'\n'"--set"$'\n'"perturb.residual_basis=raw"
    fi
  else
    say "$plateau is not built: the residual basis for $PLATEAU_MODEL is decided when it runs"
  fi
  prompts webtext || no_prompts
  add_run "$PLATEAU_MODEL" jobs/quickstart.ini results/quickstart.nc "$opts"
elif [ -f models/gpt2/model.safetensors ] || have jobs/fetch-gpt2.sh gpt2 models/gpt2; then
  prompts webtext || no_prompts
  add_run gpt2 jobs/quickstart.ini results/quickstart.nc
else
  say "GPT-2 small cannot be had here (offline?): the trained TinyStories models instead"
  for name in stories260K tinystories-gpt2; do
    if have jobs/fetch-model.sh "$name"; then
      add_run "$name" "jobs/quickstart-$name.ini" "results/quickstart-$name.nc"
    fi
  done
  if ((${#labels[@]})) && ! prompts tinystories; then
    say "no TinyStories prompts can be had here: not running ${labels[*]}"
    labels=() configs=() outs=() options=()
  fi
  if ((${#labels[@]} == 0)); then
    say "no trained model can be had here: a synthetic model instead, if there are prompts for it"
    prompts webtext || no_prompts
    say "running on a SYNTHETIC GPT-2-small-shaped model with random weights: its curves say nothing"
    say "about a trained model."
    synth=models/synthetic-gpt2-small
    add_run synthetic jobs/quickstart.ini results/quickstart-synthetic.nc "--set"$'\n'"model.path=$synth"
  fi
fi

ranks=${PLATEAU_RANKS:-$(nproc)}
[[ $ranks =~ ^[1-9][0-9]*$ ]] || { say "PLATEAU_RANKS=$ranks: expected a positive integer"; exit 2; }
launch=()
if ((ranks > 1)); then
  launch=(mpirun --oversubscribe -n "$ranks")
  [ "$(id -u)" -eq 0 ] && launch=(mpirun --allow-run-as-root --oversubscribe -n "$ranks")
fi
if [ "${labels[0]}" = synthetic ] && [ ! -f "$synth/model.safetensors" ]; then
  vocab=()
  shared_vocab=${PLATEAU_SHARED_DIR:-../shared}/gpt2
  [ -r "$shared_vocab/vocab.json" ] && vocab=(--vocab-from "$shared_vocab")
  cmd=("$plateau" synth "$synth" --layers 12 --embd 768 --heads 12 --ctx 1024 "${vocab[@]}" --seed 1)
  if ((plan)); then say "would make the synthetic model: $(show "${cmd[@]}")"; else "${cmd[@]}"; fi
fi

((plan)) || mkdir -p results
for i in "${!labels[@]}"; do
  extra=()
  [ -n "${options[i]}" ] && mapfile -t extra <<<"${options[i]}"
  # A quickstart stopped by Ctrl-C leaves its run's checkpoint (OUT.ckpt), and plateau run refuses to
  # start over one without --resume, which this script's user cannot pass: continue from it (a
  # checkpoint of another config, e.g. other PLATEAU_DATA, is still refused by name).
  resume=()
  if [ -e "${outs[i]}.ckpt" ]; then
    resume=(--resume)
    say "${labels[i]}: ${outs[i]}.ckpt is there (an earlier quickstart was interrupted): the run resumes from it"
  fi
  cmd=("${launch[@]}" "$plateau" run "${configs[i]}" -o "${outs[i]}" "${extra[@]}" "${prompt_set[@]}" "${resume[@]}")
  fig=${outs[i]%.nc}-figures
  plot=(/usr/bin/python3 analysis/plot_curves.py "${outs[i]}" -o "$fig")
  if ((plan)); then
    say "would run (${labels[i]}): $(show "${cmd[@]}")"
    say "would draw: $(show "${plot[@]}")"
    continue
  fi
  say "${labels[i]}: $(show "${cmd[@]}")"
  # One BLAS thread per rank: the ranks share the cores.
  OPENBLAS_NUM_THREADS=1 "${cmd[@]}"
  # plot_curves.py names every figure it writes: its output is shown only when it fails.
  log=$("${plot[@]}" 2>&1) || { echo "$log" >&2; exit 2; }
done
summary=(/usr/bin/python3 scripts/quickstart_summary.py "${outs[@]}")
if ((plan)); then
  say "would summarise: $(show "${summary[@]}")"
  exit 0
fi
echo
"${summary[@]}"
echo "quickstart: done in $((SECONDS / 60))m$((SECONDS % 60))s on $ranks rank(s)."
for i in "${!labels[@]}"; do
  echo "quickstart: ${labels[i]}: ${outs[i]}, figures in ${outs[i]%.nc}-figures/"
done
echo "quickstart: more numbers (onset and sharpness ratios): /usr/bin/python3 analysis/summary.py ${outs[0]}"
