/* plateau verify: every tensor's sha256 against a manifest.
 *
 * The manifest has one line per tensor, "SHA256  NAME  NBYTES", where the hash is over the tensor's
 * float32 little-endian bytes in HF layout and NBYTES = 4 * numel (the format of
 * ../shared/gpt2/gpt2-small.tensors.sha256). F16/BF16 (and integer/bool buffers) are converted to
 * F32 first, so one manifest describes the fp32 model whatever dtype the file stores. Names match
 * modulo a leading "transformer.". */
#ifndef PLATEAU_VERIFY_H
#define PLATEAU_VERIFY_H

#include <stddef.h>
#include <stdio.h>

/* A manifest is read whole, at most this size (a GPT-2 manifest is 15 KB: room for a model of 100k
 * tensors), and a line may have at most PL_MANIFEST_MAX_LINE characters; a FIFO or a device is refused. */
#define PL_MANIFEST_MAX_BYTES ((size_t)16 << 20)
#define PL_MANIFEST_MAX_LINE 2000

typedef struct {
    int n_manifest;   /* entries in the manifest */
    int n_match;
    int n_mismatch;   /* hash or size differs */
    int n_missing;    /* in the manifest, not in the file (weights) */
    int n_absent_buffers; /* causal-mask buffers in the manifest, not in the file: not an error */
    int n_extra;      /* in the file, not in the manifest */
} pl_verify_result;

/* Check MODEL_DIR/model.safetensors against MANIFEST_PATH, printing one line per problem on OUT
 * ("mismatch NAME", "size NAME: ...", "missing NAME", "not in manifest NAME"). Returns PL_ERR only
 * when a file cannot be read or parsed; the verdict is in *res. */
int pl_verify(const char *model_dir, const char *manifest_path, FILE *out, pl_verify_result *res);

/* Parse the manifest TEXT[LEN] (not NUL-terminated) and discard it: PL_OK or the error a file with
 * these bytes gets (the fuzz target's entry). */
int pl_verify_check_manifest(const char *text, size_t len);

#endif
