/* Chunk streams: the packets of a kernel stream go straight into user chunks (see api/chunk.h). */
#include "internal.h"

#if defined(__GNUC__) || defined(__clang__)
#define COUNT_ADD(p, n) __atomic_fetch_add((p), (n), __ATOMIC_RELAXED)
#define COUNT_LOAD(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#else
#define COUNT_ADD(p, n) (*(p) += (n))
#define COUNT_LOAD(p) (*(p))
#endif

enum { MAX_RANGES = 8, ID_STREAM_CTRL = 6, CTRL_STREAM_STOP = 2 };
/* Payloads go into chunks at least this large with streaming stores, whatever the memcpy setting:
 * such a chunk outgrows a core's cache before its consumer (another thread, or a device) reads it,
 * so caching its lines only costs a read of each line before it is written.  Measured here with
 * 1472- and 9000-byte packets: 35-40% faster into 16 MiB chunks, 10% into 512 KiB ones; 64 KiB
 * ones (8 in circulation, which stay cached) 4% slower, so smaller chunks follow the stream's
 * memcpy setting. */
#define STREAM_CHUNK_BYTES (UINT64_C(256) << 10)
enum { END_COMPLETE, END_EVICTED, END_FLUSHED };

typedef void (*place_fn)(sp2_chunk_place_data *, size_t);
typedef void (*place_context_fn)(sp2_chunk_place_data *, size_t, void *);

/* A heap being received into a chunk (or into nothing: dst NULL, its packets are ignored). */
typedef struct chunk_heap {
    int64_t cnt;
    int64_t chunk_id;
    int64_t heap_length;          /* -1 until known */
    uint64_t received;
    uint8_t *dst;                 /* chunk data + heap offset, or NULL */
    size_t room;                  /* bytes from dst to the end of the chunk's data */
    uint8_t *present;             /* the chunk's present array */
    size_t present_size;
    size_t heap_index;
    uint64_t ranges[2 * MAX_RANGES];   /* out-of-order: sorted disjoint [start, end) */
    uint32_t n_ranges;
    uint8_t in_use;
    uint8_t nontemporal;          /* copy with streaming stores */
} chunk_heap;

struct sp2_chunk_stream {
    sp2_chunk_config config;
    uint64_t *items;
    int64_t *item_values;
    uint8_t *extra;               /* scratch for the place function */
    uint64_t *call_stats;         /* batch_stats of one place call */
    uint64_t *stats;              /* what place calls counted, in total */
    sp2_stream *stream;
    sp2_chunk_buf *window;        /* max_chunks slots, circular */
    uint32_t head_slot;
    uint32_t count;
    int64_t head_id;
    sp2_chunk_buf *spares;        /* max_chunks slots, circular: chunks for moving on alone */
    uint32_t spare_slot;
    uint32_t n_spares;
    uint32_t joined;              /* spares that joined the window since sp2_chunk_take_moves */
    int64_t *left;                /* ids of the chunks that left the window since then */
    uint32_t n_left;
    chunk_heap *heaps;            /* max_heaps slots */
    uint32_t next_heap;           /* slot to (re)use next: the oldest */
    uint32_t last_hit;
    uint8_t *parked;              /* a packet waiting for its chunk */
    size_t parked_size;
    size_t parked_capacity;
    int64_t parked_chunk;
    sp2_chunk_counters counters;
    /* landing (chunk_landing): the heap of the last packet placed, the sizes of the last packet
     * that was neither a heap's first nor its last */
    const chunk_heap *land_heap;
    int64_t land_cnt;
    sp2_land_sizes land_sizes;
};

int sp2_chunk_new(const sp2_chunk_config *config, sp2_chunk_stream **out)
{
    *out = NULL;
    if (config->max_chunks == 0 || config->max_heaps == 0 || !config->place
        || config->max_chunks > (UINT32_C(1) << 24) || config->max_heaps > (UINT32_C(1) << 24)
        || config->n_items > (UINT32_C(1) << 20) || config->n_stats > (UINT32_C(1) << 16)
        || config->max_heap_extra > (UINT64_C(1) << 30))
        return SP2_E_INVALID;
    sp2_chunk_stream *k = calloc(1, sizeof(*k));
    if (!k)
        return SP2_E_NOMEM;
    k->config = *config;
    size_t n_items = config->n_items ? config->n_items : 1;
    size_t n_stats = config->n_stats ? config->n_stats : 1;
    k->items = calloc(n_items, sizeof(uint64_t));
    k->item_values = calloc(n_items, sizeof(int64_t));
    k->extra = calloc(config->max_heap_extra ? config->max_heap_extra : 1, 1);
    k->call_stats = calloc(n_stats, sizeof(uint64_t));
    k->stats = calloc(n_stats, sizeof(uint64_t));
    k->window = calloc(config->max_chunks, sizeof(sp2_chunk_buf));
    k->spares = calloc(config->max_chunks, sizeof(sp2_chunk_buf));
    k->left = calloc(2 * (size_t) config->max_chunks, sizeof(int64_t));
    k->heaps = calloc(config->max_heaps, sizeof(chunk_heap));
    if (!k->items || !k->item_values || !k->extra || !k->call_stats || !k->stats || !k->window || !k->spares
        || !k->left || !k->heaps)
    {
        sp2_chunk_free(k);
        return SP2_E_NOMEM;
    }
    if (config->n_items)
        memcpy(k->items, config->items, config->n_items * sizeof(uint64_t));
    k->config.items = k->items;
    *out = k;
    return SP2_OK;
}

void sp2_chunk_free(sp2_chunk_stream *k)
{
    if (!k)
        return;
    free(k->items);
    free(k->item_values);
    free(k->extra);
    free(k->call_stats);
    free(k->stats);
    free(k->window);
    free(k->spares);
    free(k->left);
    free(k->heaps);
    free(k->parked);
    free(k);
}

/* Counts made outside an input call reach the totals with an empty batch. */
static void fold(sp2_chunk_stream *k)
{
    size_t consumed;
    sp2_stream_add_datagrams(k->stream, NULL, NULL, 0, &consumed);
}

/* ---- heaps ---- */

static chunk_heap *find_heap(sp2_chunk_stream *k, int64_t cnt)
{
    chunk_heap *h = &k->heaps[k->last_hit];
    if (h->in_use && h->cnt == cnt)
        return h;
    uint32_t n = k->config.max_heaps;
    for (uint32_t i = 0; i < n; i++)
    {
        h = &k->heaps[i];
        if (!h->in_use)
            continue;
        k->stream->batch.search_dist++;
        if (h->cnt == cnt)
        {
            k->last_hit = i;
            return h;
        }
    }
    return NULL;
}

static void end_heap(sp2_chunk_stream *k, chunk_heap *h, int why)
{
    sp2_stats *b = &k->stream->batch;
    b->heaps++;
    int complete = h->heap_length >= 0 && h->received == (uint64_t) h->heap_length;
    if (complete && h->dst && !k->config.packet_presence_payload_size && h->present_size)
        h->present[h->heap_index] = 1;
    if (!complete && why == END_EVICTED)
        b->incomplete_heaps_evicted++;
    else if (!complete && why == END_FLUSHED)
        b->incomplete_heaps_flushed++;
    h->in_use = 0;
}

/* A free heap slot, evicting the oldest heap if there is none. */
static chunk_heap *new_heap(sp2_chunk_stream *k, int64_t cnt)
{
    uint32_t slot = k->next_heap;
    chunk_heap *h = &k->heaps[slot];
    if (h->in_use)
        end_heap(k, h, END_EVICTED);
    memset(h, 0, offsetof(chunk_heap, ranges));
    h->n_ranges = 0;
    h->cnt = cnt;
    h->chunk_id = -1;
    h->heap_length = -1;
    h->in_use = 1;
    k->next_heap = (slot + 1) % k->config.max_heaps;
    k->last_hit = slot;
    return h;
}

/* Out-of-order mode: records [start, end) (SP2_DROP_NONE), or says why it cannot. */
static sp2_drop_reason add_range(chunk_heap *h, uint64_t start, uint64_t end)
{
    uint32_t n = h->n_ranges, i = 0;
    while (i < n && h->ranges[2 * i + 1] < start)
        i++;
    if (i < n && h->ranges[2 * i] < end && start < h->ranges[2 * i + 1])
        return SP2_DROP_DUPLICATE;
    int join_prev = i < n && h->ranges[2 * i + 1] == start;
    int join_next = (join_prev ? i + 1 : i) < n && h->ranges[2 * (join_prev ? i + 1 : i)] == end;
    if (join_prev && join_next)
    {
        h->ranges[2 * i + 1] = h->ranges[2 * i + 3];
        memmove(&h->ranges[2 * i + 2], &h->ranges[2 * i + 4], (size_t) (n - i - 2) * 2 * sizeof(uint64_t));
        h->n_ranges--;
    }
    else if (join_prev)
        h->ranges[2 * i + 1] = end;
    else if (join_next)
        h->ranges[2 * i] = start;
    else
    {
        if (n == MAX_RANGES)
            return SP2_DROP_TOO_COMPLEX;
        memmove(&h->ranges[2 * i + 2], &h->ranges[2 * i], (size_t) (n - i) * 2 * sizeof(uint64_t));
        h->ranges[2 * i] = start;
        h->ranges[2 * i + 1] = end;
        h->n_ranges++;
    }
    return SP2_DROP_NONE;
}

/* Copies one packet's payload into the heap's place (SP2_DROP_NONE), or says why not. */
static sp2_drop_reason add_packet(sp2_chunk_stream *k, chunk_heap *h, const sp2_packet *p)
{
    uint64_t offset = (uint64_t) p->info.payload_offset, length = (uint64_t) p->info.payload_length;
    if (p->info.heap_length >= 0)
    {
        if (h->heap_length >= 0 && h->heap_length != p->info.heap_length)
            return SP2_DROP_INCONSISTENT_LENGTH;
        h->heap_length = p->info.heap_length;
    }
    if (!h->dst)
    {
        h->received += length;   /* a heap without a place: only followed to its end */
        return SP2_DROP_NONE;
    }
    if (offset > h->room || length > h->room - offset)
        return SP2_DROP_BEYOND_HEAP;
    sp2_drop_reason why = k->config.allow_out_of_order ? add_range(h, offset, offset + length)
                          : offset != h->received                  ? SP2_DROP_OUT_OF_ORDER
                                                                   : SP2_DROP_NONE;
    if (why != SP2_DROP_NONE)
        return why;
    /* (a landed payload is in place already: sink checked) */
    if (h->nontemporal && !p->landed)
        sp2_copy_nontemporal(h->dst + offset, p->payload, length);
    else if (!p->landed)
        memcpy(h->dst + offset, p->payload, length);
    h->received += length;
    size_t pp = k->config.packet_presence_payload_size;
    if (pp)
    {
        size_t index = h->heap_index + offset / pp;
        if (index >= h->heap_index && index < h->present_size)
            h->present[index] = 1;
    }
    return SP2_DROP_NONE;
}

/* ---- placing a heap ---- */

/* Reads the requested immediate items of a packet; returns 1 if it carries a stream stop. */
static int read_items(sp2_chunk_stream *k, const sp2_packet *p)
{
    uint32_t n_wanted = k->config.n_items;
    for (uint32_t j = 0; j < n_wanted; j++)
        k->item_values[j] = -1;
    unsigned bits = p->info.heap_address_bits;
    uint64_t address_mask = (UINT64_C(1) << bits) - 1;
    uint64_t id_mask = (UINT64_C(1) << (63 - bits)) - 1;
    int stop = 0;
    for (uint32_t i = 0; i < p->info.n_items; i++)
    {
        uint64_t pointer = sp2_load_be64(p->pointers + 8 * (size_t) i);
        if (!(pointer >> 63))
            continue;
        uint64_t id = (pointer >> bits) & id_mask;
        int64_t value = (int64_t) (pointer & address_mask);
        stop |= id == ID_STREAM_CTRL && value == CTRL_STREAM_STOP;
        for (uint32_t j = 0; j < n_wanted; j++)
            if (k->items[j] == id && k->item_values[j] == -1)
                k->item_values[j] = value;
    }
    return stop;
}

static void call_place(sp2_chunk_stream *k, const sp2_packet *p, sp2_chunk_place_data *pd)
{
    memset(pd, 0, sizeof(*pd));
    pd->packet = p->pointers - 8;
    pd->packet_size = (size_t) p->info.size;
    pd->items = k->item_values;
    pd->chunk_id = -1;
    pd->batch_stats = k->call_stats;
    pd->extra = k->extra;
    uint32_t n_stats = k->config.n_stats;
    memset(k->call_stats, 0, (n_stats ? n_stats : 1) * sizeof(uint64_t));
    if (k->config.place_has_context)
        ((place_context_fn) k->config.place)(pd, sizeof(*pd), k->config.place_context);
    else
        ((place_fn) k->config.place)(pd, sizeof(*pd));
}

static void keep_call_stats(sp2_chunk_stream *k)
{
    for (uint32_t i = 0; i < k->config.n_stats; i++)
        if (k->call_stats[i])
            COUNT_ADD(&k->stats[i], k->call_stats[i]);
}

/* Points a new heap at its place in chunk `buf`, if the place is inside the chunk. */
static void place_heap(sp2_chunk_stream *k, chunk_heap *h, sp2_chunk_buf *buf, const sp2_chunk_place_data *pd,
                       const sp2_packet *p)
{
    h->chunk_id = pd->chunk_id;
    if (!buf->data && !buf->present)
    {
        COUNT_ADD(&k->counters.no_chunk_heaps, 1);
        return;
    }
    int64_t length = p->info.heap_length;
    int bad = pd->heap_offset > buf->data_size
              || (length >= 0 && (uint64_t) length > buf->data_size - pd->heap_offset)
              || (!k->config.packet_presence_payload_size && buf->present_size && pd->heap_index >= buf->present_size)
              || pd->extra_size > k->config.max_heap_extra
              || (pd->extra_size && (pd->extra_offset > buf->extra_size
                                     || pd->extra_size > buf->extra_size - pd->extra_offset));
    if (bad)
    {
        COUNT_ADD(&k->counters.out_of_range_heaps, 1);
        return;
    }
    if (pd->extra_size)
        memcpy(buf->extra + pd->extra_offset, k->extra, pd->extra_size);
    h->dst = buf->data ? buf->data + pd->heap_offset : NULL;
    h->room = buf->data ? buf->data_size - pd->heap_offset : 0;
    h->present = buf->present;
    h->present_size = buf->present_size;
    h->heap_index = pd->heap_index;
    h->nontemporal = k->stream->config.memcpy_nontemporal || buf->data_size >= STREAM_CHUNK_BYTES;
    if (!h->dst)
        h->dst = k->extra;   /* a zero-sized place: room 0 accepts only empty payloads */
}

/* Keeps a packet aside until its chunk is in the window.  Returns 0, or -1 out of memory. */
static int park(sp2_chunk_stream *k, const sp2_packet *p, int64_t chunk_id)
{
    const uint8_t *data = p->pointers - 8;
    size_t size = (size_t) p->info.size;
    if (data == k->parked)   /* fed again from here, still without its chunk */
    {
        k->parked_size = size;
        k->parked_chunk = chunk_id;
        return 0;
    }
    if (size > k->parked_capacity)
    {
        uint8_t *grown = realloc(k->parked, size);
        if (!grown)
            return -1;
        k->parked = grown;
        k->parked_capacity = size;
    }
    memcpy(k->parked, data, size);
    k->parked_size = size;
    k->parked_chunk = chunk_id;
    return 0;
}

static void flush_heaps(sp2_chunk_stream *k)
{
    for (uint32_t i = 0; i < k->config.max_heaps; i++)
        if (k->heaps[i].in_use)
            end_heap(k, &k->heaps[i], END_FLUSHED);
}

/* ---- the window, moved by the kernel while spares last ---- */

/* Ends the heaps still being assembled into the oldest chunk, and takes that chunk out. */
static void retire_head(sp2_chunk_stream *k, int why)
{
    for (uint32_t i = 0; i < k->config.max_heaps; i++)
    {
        chunk_heap *h = &k->heaps[i];
        if (h->in_use && h->chunk_id == k->head_id)
            end_heap(k, h, why);
    }
    memset(&k->window[k->head_slot], 0, sizeof(sp2_chunk_buf));
    k->head_slot = (k->head_slot + 1) % k->config.max_chunks;
    k->head_id++;
    k->count--;
}

/* Appends the oldest spare to the window (the caller checked there is one, and room). */
static void take_spare(sp2_chunk_stream *k)
{
    sp2_chunk_buf *slot = &k->window[(k->head_slot + k->count) % k->config.max_chunks];
    *slot = k->spares[k->spare_slot];
    slot->chunk_id = k->head_id + (int64_t) k->count;
    k->count++;
    memset(&k->spares[k->spare_slot], 0, sizeof(sp2_chunk_buf));
    k->spare_slot = (k->spare_slot + 1) % k->config.max_chunks;
    k->n_spares--;
    k->joined++;
}

/* Moves the window on to chunk `wanted` (past its tail) as the owner would, if the spares and the
 * record of what left suffice for the whole move.  Returns 1 if it did. */
static int move_alone(sp2_chunk_stream *k, int64_t wanted)
{
    uint32_t max = k->config.max_chunks;
    int64_t head = wanted - (int64_t) max + 1 > k->head_id ? wanted - (int64_t) max + 1 : k->head_id;
    uint32_t pops = head - k->head_id >= (int64_t) k->count ? k->count : (uint32_t) (head - k->head_id);
    int64_t pushes = wanted - (head + (int64_t) (k->count - pops)) + 1;
    if (pushes > (int64_t) k->n_spares || k->n_left + pops > 2 * max)
        return 0;
    for (uint32_t i = 0; i < pops; i++)
    {
        k->left[k->n_left++] = k->head_id;
        retire_head(k, END_EVICTED);
    }
    k->head_id = head;   /* a jump, if the window emptied */
    for (int64_t i = 0; i < pushes; i++)
        take_spare(k);
    return 1;
}

/* The heap of a packet whose heap is not being received: places it (NULL: parked). */
static chunk_heap *start_heap(sp2_chunk_stream *k, const sp2_packet *p, int *status)
{
    sp2_chunk_place_data pd;
    if (read_items(k, p) && k->config.stop_on_stop_item)
    {
        *status = SP2_SINK_STOP;
        return NULL;
    }
    call_place(k, p, &pd);
    sp2_chunk_buf *buf = NULL;
    if (pd.chunk_id >= 0 && pd.chunk_id >= k->head_id + (int64_t) k->count && !move_alone(k, pd.chunk_id))
    {
        if (park(k, p, pd.chunk_id) == 0)
        {
            *status = SP2_SINK_FULL;
            return NULL;
        }
        COUNT_ADD(&k->counters.no_chunk_heaps, 1);
    }
    keep_call_stats(k);
    if (pd.chunk_id < 0)
        COUNT_ADD(&k->counters.rejected_heaps, 1);
    else if (pd.chunk_id < k->head_id)
        COUNT_ADD(&k->counters.too_old_heaps, 1);
    else if (pd.chunk_id < k->head_id + (int64_t) k->count)
        buf = &k->window[(k->head_slot + (uint32_t) (pd.chunk_id - k->head_id)) % k->config.max_chunks];
    chunk_heap *h = new_heap(k, p->info.heap_cnt);
    if (buf)
        place_heap(k, h, buf, &pd, p);
    return h;
}

/* Remembers where the packet went, for chunk_landing. */
static void note_landing(sp2_chunk_stream *k, const chunk_heap *h, const sp2_packet *p)
{
    k->land_heap = h;
    k->land_cnt = h->cnt;
    sp2_land_sizes_note(&k->land_sizes, &p->info);
}

/* sp2_stream_landing for a chunk stream: the rest of the last packet's heap, in its chunk (once that
 * heap has ended, next_heap says whether the next is worth a datagram read alone).  Not
 * where payloads go in with streaming stores (large chunks): the kernel's copy into a chunk that
 * is not in the caches reads each line before writing it, and measured slower than receiving into
 * the reader's buffers and streaming from there (2.81 against 2.37 µs per 9000 B packet). */
static int chunk_landing(void *ctx, sp2_landing *out)
{
    sp2_chunk_stream *k = ctx;
    const chunk_heap *h = k->land_heap;
    if (k->config.allow_out_of_order || !h)
        return 0;
    if (!h->in_use || h->cnt != k->land_cnt)
    {
        out->next_heap = sp2_land_large(k->land_sizes.heap_length, k->land_sizes.payload_size);
        return 0;
    }
    return h->dst && !h->nontemporal && h->dst != k->extra && h->heap_length >= 0 && (uint64_t) h->heap_length <= h->room
           && sp2_landing_fill(out, &k->land_sizes, h->cnt, h->dst, h->received, h->heap_length);
}

static int sink(void *ctx, sp2_stream *s, const sp2_packet *p)
{
    sp2_chunk_stream *k = ctx;
    int status = SP2_SINK_TAKEN;
    chunk_heap *h = find_heap(k, p->info.heap_cnt);
    if (p->landed && (!h || !h->dst || h->dst + p->info.payload_offset != p->payload))
    {
        /* its heap ended since it landed there (evicted by others): its bytes are not to be trusted */
        s->batch.packets++;
        s->batch_packets++;
        s->batch.drops[SP2_DROP_OUT_OF_ORDER]++;
        s->drops_total++;
        return SP2_SINK_TAKEN;
    }
    int first = !h;
    if (first)
    {
        h = start_heap(k, p, &status);
        if (!h && status == SP2_SINK_FULL)
            return status;
    }
    s->batch.packets++;
    s->batch_packets++;
    if (status == SP2_SINK_STOP)
    {
        flush_heaps(k);
        return status;
    }
    sp2_drop_reason why = add_packet(k, h, p);
    if (why != SP2_DROP_NONE)
    {
        s->batch.drops[why]++;
        s->drops_total++;
    }
    else if (h->dst)
    {
        s->batch.payload_bytes += (uint64_t) p->info.payload_length;
        note_landing(k, h, p);
    }
    if (h->heap_length >= 0 && h->received >= (uint64_t) h->heap_length)
    {
        if (first)
            s->batch.single_packet_heaps++;
        end_heap(k, h, END_COMPLETE);
    }
    return status;
}

void sp2_chunk_attach(sp2_chunk_stream *k, sp2_stream *s)
{
    k->stream = s;
    s->sink = sink;
    s->sink_landing = chunk_landing;
    s->sink_ctx = k;
}

/* ---- the window (owner) ---- */

int sp2_chunk_parked(sp2_chunk_stream *k, const uint8_t **data, size_t *size, int64_t *chunk_id)
{
    *data = k->parked;
    *size = k->parked_size;
    *chunk_id = k->parked_chunk;
    return k->parked_size > 0;
}

void sp2_chunk_unpark(sp2_chunk_stream *k)
{
    k->parked_size = 0;
}

int sp2_chunk_set_head(sp2_chunk_stream *k, int64_t head)
{
    if (k->count || head < 0)
        return SP2_E_INVALID;
    k->head_id = head;
    return SP2_OK;
}

int sp2_chunk_pop_head(sp2_chunk_stream *k, int flushed)
{
    if (!k->count)
        return SP2_E_INVALID;
    retire_head(k, flushed ? END_FLUSHED : END_EVICTED);
    fold(k);
    sp2_copy_fence();   /* the chunk goes to another thread */
    return SP2_OK;
}

int sp2_chunk_push_tail(sp2_chunk_stream *k, const sp2_chunk_buf *buf)
{
    if (k->count == k->config.max_chunks)
        return SP2_E_INVALID;
    sp2_chunk_buf *slot = &k->window[(k->head_slot + k->count) % k->config.max_chunks];
    *slot = *buf;
    slot->chunk_id = k->head_id + (int64_t) k->count;
    k->count++;
    return SP2_OK;
}

int sp2_chunk_push_spare(sp2_chunk_stream *k)
{
    if (!k->n_spares || k->count == k->config.max_chunks)
        return SP2_E_INVALID;
    take_spare(k);
    k->joined--;   /* the owner moved it */
    return SP2_OK;
}

void sp2_chunk_drop_spares(sp2_chunk_stream *k)
{
    memset(k->spares, 0, k->config.max_chunks * sizeof(sp2_chunk_buf));
    k->spare_slot = 0;
    k->n_spares = 0;
}

int sp2_chunk_sync(sp2_chunk_stream *k, const sp2_chunk_buf *spares, uint32_t n_spares, int64_t *left,
                   uint32_t *n_left, uint32_t *joined, int64_t *head)
{
    uint32_t max = k->config.max_chunks;
    *n_left = k->n_left;
    if (k->n_left)
    {
        memcpy(left, k->left, k->n_left * sizeof(int64_t));
        sp2_copy_fence();   /* the chunks that left go to another thread */
    }
    *joined = k->joined;
    *head = k->head_id;
    k->n_left = 0;
    k->joined = 0;
    if (n_spares > max - k->n_spares)
        return SP2_E_INVALID;
    for (uint32_t i = 0; i < n_spares; i++)
        k->spares[(k->spare_slot + k->n_spares + i) % max] = spares[i];
    k->n_spares += n_spares;
    return SP2_OK;
}

void sp2_chunk_flush_heaps(sp2_chunk_stream *k)
{
    flush_heaps(k);
    fold(k);
}

void sp2_chunk_get_counters(sp2_chunk_stream *k, sp2_chunk_counters *out, uint64_t *stats, uint32_t n_stats)
{
    out->too_old_heaps = COUNT_LOAD(&k->counters.too_old_heaps);
    out->rejected_heaps = COUNT_LOAD(&k->counters.rejected_heaps);
    out->out_of_range_heaps = COUNT_LOAD(&k->counters.out_of_range_heaps);
    out->no_chunk_heaps = COUNT_LOAD(&k->counters.no_chunk_heaps);
    for (uint32_t i = 0; i < n_stats && i < k->config.n_stats; i++)
        stats[i] = COUNT_LOAD(&k->stats[i]);
}
