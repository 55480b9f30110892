/* The BPE merge loop every tokenizer kind uses, and the (left, right) -> merge table.
 *
 * A word is a doubly linked list of symbol ids. Every adjacent pair that merges is a heap entry
 * ordered by (priority, position): the best pair first, leftmost among equals. That is encoder.py's
 * bpe() (lowest merge rank), HF tokenizers' Word::merge_all (lowest rank, then position) and
 * llama2.c's run.c encode() (highest score, leftmost: priority = -score), in O(n log n) instead of
 * their rescans. The kinds differ in when a pair that a merge creates may compete (TOK_BPE_ROUNDS vs
 * TOK_BPE_IMMEDIATE, see tok_internal.h) and in how a stale entry is recognised.
 */
#include <stdlib.h>
#include <string.h>

#include "plateau/error.h"
#include "tok_internal.h"

typedef struct {
    double priority;
    int pos, left, right, merged;
} candidate;

int tok_bpe_reserve(tok_bpe_scratch *s, size_t n)
{
    if (n <= s->cap)
        return PL_OK;
    size_t cap = s->cap ? s->cap : 64;
    while (cap < n)
        cap *= 2;
    tok_bpe_free(s);
    s->id = pl_malloc(cap * sizeof(int), "BPE symbols");
    s->next = pl_malloc(cap * sizeof(int), "BPE symbols");
    s->prev = pl_malloc(cap * sizeof(int), "BPE symbols");
    /* at most n-1 initial entries + 2 per merge (n-1 merges) */
    s->heap = pl_malloc(3 * cap * sizeof(candidate), "BPE heap");
    s->pending = pl_malloc(2 * cap * sizeof(candidate), "BPE heap");
    if (!s->id || !s->next || !s->prev || !s->heap || !s->pending) {
        tok_bpe_free(s);
        return PL_ERR;
    }
    s->cap = cap;
    return PL_OK;
}

void tok_bpe_free(tok_bpe_scratch *s)
{
    free(s->id);
    free(s->next);
    free(s->prev);
    free(s->heap);
    free(s->pending);
    memset(s, 0, sizeof *s);
}

static int before(const candidate *a, const candidate *b)
{
    return a->priority < b->priority || (a->priority == b->priority && a->pos < b->pos);
}

static void heap_push(candidate *heap, size_t *n, candidate c)
{
    size_t i = (*n)++;
    while (i > 0 && before(&c, &heap[(i - 1) / 2])) {
        heap[i] = heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    heap[i] = c;
}

static candidate heap_pop(candidate *heap, size_t *n)
{
    candidate top = heap[0], last = heap[--*n];
    size_t i = 0;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= *n)
            break;
        if (child + 1 < *n && before(&heap[child + 1], &heap[child]))
            child++;
        if (!before(&heap[child], &last))
            break;
        heap[i] = heap[child];
        i = child;
    }
    if (*n)
        heap[i] = last;
    return top;
}

static int candidate_at(const tok_bpe_scratch *s, int pos, tok_pair_fn pair, const void *ctx, candidate *c)
{
    int right = s->next[pos];
    double priority;
    int merged;
    if (!pair(ctx, s->id[pos], s->id[right], &priority, &merged))
        return 0;
    *c = (candidate){priority, pos, s->id[pos], s->id[right], merged};
    return 1;
}

/* Is C still the pair at its position? */
static int still_valid(const tok_bpe_scratch *s, const candidate *c, tok_pair_fn pair, const void *ctx, int mode)
{
    int right = s->next[c->pos];
    if (s->id[c->pos] < 0 || right < 0)
        return 0;
    if (mode == TOK_BPE_ROUNDS)
        return s->id[c->pos] == c->left && s->id[right] == c->right;
    /* Rust's check: the pair now there merges into the same id (it may be another pair that does). */
    double priority;
    int merged;
    return pair(ctx, s->id[c->pos], s->id[right], &priority, &merged) && merged == c->merged;
}

size_t tok_bpe_merge(tok_bpe_scratch *s, int *ids, size_t n, tok_pair_fn pair, const void *ctx, int mode)
{
    if (n < 2)
        return n;
    for (size_t i = 0; i < n; i++) {
        s->id[i] = ids[i];
        s->next[i] = i + 1 < n ? (int)i + 1 : -1;
        s->prev[i] = (int)i - 1;
    }
    candidate *heap = s->heap, *pending = s->pending;
    size_t n_heap = 0, n_pending = 0;
    candidate c;
    for (size_t i = 0; i + 1 < n; i++)
        if (candidate_at(s, (int)i, pair, ctx, &c))
            heap_push(heap, &n_heap, c);
    double round = 0;
    int in_round = 0;
    for (;;) {
        /* encoder.py looks at the pairs a round created only once the round is over */
        if (n_pending && (!n_heap || !in_round || heap[0].priority != round)) {
            for (size_t i = 0; i < n_pending; i++)
                heap_push(heap, &n_heap, pending[i]);
            n_pending = 0;
        }
        if (!n_heap)
            break;
        c = heap_pop(heap, &n_heap);
        if (!still_valid(s, &c, pair, ctx, mode))
            continue;
        round = c.priority;
        in_round = 1;
        int right = s->next[c.pos];
        s->id[c.pos] = c.merged;
        s->id[right] = -1;
        s->next[c.pos] = s->next[right];
        if (s->next[right] >= 0)
            s->prev[s->next[right]] = c.pos;
        candidate fresh;
        if (s->prev[c.pos] >= 0 && candidate_at(s, s->prev[c.pos], pair, ctx, &fresh)) {
            if (mode == TOK_BPE_ROUNDS)
                pending[n_pending++] = fresh;
            else
                heap_push(heap, &n_heap, fresh);
        }
        if (s->next[c.pos] >= 0 && candidate_at(s, c.pos, pair, ctx, &fresh)) {
            if (mode == TOK_BPE_ROUNDS)
                pending[n_pending++] = fresh;
            else
                heap_push(heap, &n_heap, fresh);
        }
    }
    size_t n_out = 0;
    for (int i = 0; i >= 0; i = s->next[i])
        ids[n_out++] = s->id[i];
    return n_out;
}

/* ---- the pair table ---- */

typedef struct {
    uint64_t key; /* left << 32 | right; EMPTY when free */
    int rank, merged;
} pair_slot;
#define EMPTY UINT64_MAX

int tok_pairs_init(tok_pairs *p, size_t n_merges)
{
    size_t size = 16;
    while (size < 2 * n_merges)
        size *= 2;
    p->mask = size - 1;
    p->n = 0;
    pair_slot *slots = pl_malloc(size * sizeof(pair_slot), "merge table");
    p->slots = slots;
    if (!slots)
        return PL_ERR;
    for (size_t i = 0; i < size; i++)
        slots[i].key = EMPTY;
    return PL_OK;
}

static size_t slot_of(const tok_pairs *p, uint64_t key)
{
    const pair_slot *slots = p->slots;
    size_t slot = (size_t)((key * 0x9E3779B97F4A7C15ULL) >> 20) & p->mask;
    while (slots[slot].key != EMPTY && slots[slot].key != key)
        slot = (slot + 1) & p->mask;
    return slot;
}

void tok_pairs_add(tok_pairs *p, int left, int right, int merged)
{
    uint64_t key = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
    pair_slot *slot = &((pair_slot *)p->slots)[slot_of(p, key)];
    slot->key = key;
    slot->rank = p->n++;
    slot->merged = merged;
}

int tok_pairs_lookup(const void *pairs, int left, int right, double *rank, int *merged)
{
    const tok_pairs *p = pairs;
    if (left < 0 || right < 0)
        return 0;
    const pair_slot *slot = &((const pair_slot *)p->slots)[slot_of(p, (uint64_t)(uint32_t)left << 32 | (uint32_t)right)];
    if (slot->key == EMPTY)
        return 0;
    *rank = slot->rank;
    *merged = slot->merged;
    return 1;
}

void tok_pairs_free(tok_pairs *p)
{
    free(p->slots);
    p->slots = NULL;
}
