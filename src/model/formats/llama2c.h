/* llama2.c checkpoint headers (formats/llama2c.c); the fuzz target parses them directly. */
#ifndef PLATEAU_LLAMA2C_H
#define PLATEAU_LLAMA2C_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int version;
    int dim, hidden, n_layers, n_heads, n_kv_heads, vocab, seq_len;
    int shared;            /* classifier tied to the token embedding */
    uint64_t header_bytes; /* where the floats begin */
    uint64_t floats;       /* how many floats the header promises */
} llama2c_header;

/* Parse and check the header of a SIZE-byte file (BYTES holds at least its first min(SIZE, 256)
 * bytes): every field in range, the shapes consistent, and SIZE exactly what the header promises. */
int pl_llama2c_parse_header(const char *path, const uint8_t *bytes, size_t size, llama2c_header *h);

#endif
