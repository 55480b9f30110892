#!/usr/bin/env bash
# The README's main command: install what is missing, build, and run jobs/quickstart.ini end to end
# (both experiments, ~100 prompts), then draw the figures and print the summary table.
#
#   bash jobs/quickstart.sh
#
# Model: $PLATEAU_MODEL if set, else models/gpt2, else GPT-2 small is downloaded and verified
# (jobs/fetch-gpt2.sh). When it cannot be had (offline), plateau says so and runs on a synthetic
# GPT-2-small-shaped model instead; the output is then results/quickstart-synthetic.nc and its
# attributes say synthetic_model = "true". Prompts: jobs/fetch-data.sh.
# Ranks: $PLATEAU_RANKS (default: the machine's cores) under mpirun; 1 runs without mpirun.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target plateau >/dev/null
plateau=build/plateau

model=${PLATEAU_MODEL:-models/gpt2}
out=results/quickstart.nc
if [ ! -f "$model/model.safetensors" ]; then
  if [ -z "${PLATEAU_MODEL:-}" ] && bash jobs/fetch-gpt2.sh gpt2 models/gpt2; then
    :
  else
    [ -n "${PLATEAU_MODEL:-}" ] && echo "quickstart: PLATEAU_MODEL=$PLATEAU_MODEL has no model.safetensors" >&2
    echo "quickstart: GPT-2 small cannot be had here (offline?). Running on a SYNTHETIC GPT-2-small-shaped" >&2
    echo "quickstart: model with random weights: its curves say nothing about GPT-2." >&2
    model=models/synthetic-gpt2-small
    if [ ! -f "$model/model.safetensors" ]; then
      vocab=()
      [ -r ../shared/gpt2/vocab.json ] && vocab=(--vocab-from ../shared/gpt2)
      "$plateau" synth "$model" --layers 12 --embd 768 --heads 12 --ctx 1024 "${vocab[@]}" --seed 1
    fi
    out=results/quickstart-synthetic.nc
  fi
fi
bash jobs/fetch-data.sh

mkdir -p results
ranks=${PLATEAU_RANKS:-$(nproc)}
threads=1
run=("$plateau" run jobs/quickstart.ini --set "model.path=$model" -o "$out")
if [ "$ranks" -gt 1 ]; then
  root=()
  [ "$(id -u)" -eq 0 ] && root=(--allow-run-as-root)
  OPENBLAS_NUM_THREADS=$threads mpirun "${root[@]}" --oversubscribe -n "$ranks" "${run[@]}"
else
  "${run[@]}"
fi
/usr/bin/python3 analysis/plot_curves.py "$out" -o "${out%.nc}-figures"
/usr/bin/python3 analysis/summary.py "$out"
echo "quickstart: results in $out, figures in ${out%.nc}-figures/" >&2
