# The synthetic models scripts/bench.sh and scripts/bench_sweep.sh measure (sourced, not run): random
# weights in the exact shapes of real checkpoints, so the same FLOPs and the same memory traffic.
#   gpt2     GPT-2 small: 12 layers, width 768, 12 heads, MLP 3072, vocabulary 50,257 (F32, ~0.5 GB)
#   smollm   SmolLM-135M: Llama family, 30 layers, width 576, 9/3 heads, MLP 1536, vocabulary 49,152,
#            tied (F32, ~0.5 GB)
#   llama1b  Llama-3.2-1B: 16 layers, width 2048, 32/8 heads (head_dim 64), MLP 8192, vocabulary
#            128,256, tied; BF16 as it ships (2.5 GB file, 4.6 GiB in fp32 per node)
#   gemma2b  Gemma-2-2B: 26 layers, width 2304, 8/4 heads of head_dim 256, MLP 9216, vocabulary
#            256,000, tied, soft-caps, sliding window 4096; BF16 (5.2 GB file, 10.5 GB in fp32 per node)
# Shapes to run: $PLATEAU_BENCH_SHAPES (space-separated; default "gpt2 smollm"; "all": the four).
BENCH_ALL_SHAPES="gpt2 smollm llama1b gemma2b"

bench_shapes() { # the shapes to run, validated
  local s=${PLATEAU_BENCH_SHAPES:-gpt2 smollm}
  [ "$s" = all ] && s=$BENCH_ALL_SHAPES
  for x in $s; do
    case " $BENCH_ALL_SHAPES " in *" $x "*) ;; *)
      echo "PLATEAU_BENCH_SHAPES: unknown shape '$x' (known: $BENCH_ALL_SHAPES, all)" >&2; return 2 ;;
    esac
  done
  echo "$s"
}

bench_shape_title() {
  case $1 in
    gpt2) echo "GPT-2-small-shaped synthetic model" ;;
    smollm) echo "SmolLM-135M-shaped synthetic Llama model (grouped-query attention 9/3 heads, RoPE, SwiGLU, RMSNorm, tied 49,152-token unembedding)" ;;
    llama1b) echo "Llama-3.2-1B-shaped synthetic BF16 model (32/8 heads, MLP 8192, tied 128,256-token unembedding)" ;;
    gemma2b) echo "Gemma-2-2B-shaped synthetic BF16 model (8/4 heads of 256, GeGLU 9216, soft-caps, tied 256,000-token unembedding)" ;;
  esac
}

# bench_model PLATEAU WORKDIR SHAPE: the model's dir under WORKDIR, written by plateau synth if missing.
bench_model() {
  local plateau=$1 dir=$2/$3-synth
  local -a args
  case $3 in
    gpt2) args=(--layers 12 --embd 768 --heads 12 --ctx 1024 --vocab 50257) ;;
    smollm) args=(--family llama --layers 30 --embd 576 --heads 9 --kv-heads 3 --mlp 1536 --vocab 49152 --ctx 2048 --tied) ;;
    llama1b) args=(--family llama --layers 16 --embd 2048 --heads 32 --kv-heads 8 --mlp 8192 --vocab 128256
                   --ctx 2048 --tied --dtype bf16) ;;
    gemma2b) args=(--family gemma2 --layers 26 --embd 2304 --heads 8 --kv-heads 4 --head-dim 256 --mlp 9216
                   --vocab 256000 --ctx 8192 --tied --dtype bf16) ;;
  esac
  # the dirs of earlier runs of the script kept their names (gpt2-small-synth, smollm-135m-synth)
  case $3 in gpt2) dir=$2/gpt2-small-synth ;; smollm) dir=$2/smollm-135m-synth ;; esac
  if [ ! -f "$dir/config.json" ] || ! ls "$dir"/*.safetensors >/dev/null 2>&1; then
    "$plateau" synth "$dir" "${args[@]}" --force >/dev/null
  fi
  echo "$dir"
}

bench_vocab() { # the vocabulary size of SHAPE (random prompts below it)
  case $1 in gpt2) echo 50257 ;; smollm) echo 49152 ;; llama1b) echo 128256 ;; gemma2b) echo 256000 ;; esac
}
