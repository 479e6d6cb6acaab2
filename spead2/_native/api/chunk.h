/* Chunk streams (chunk.c): each heap's payload goes straight into a user's chunk, at the place
 * a user's C function (the place function) chooses at the heap's first packet.  No heap object
 * is made.  cffi cdef: no preprocessor directives.
 *
 * A chunk stream is attached to a kernel stream (sp2_stream), whose input functions, readers,
 * batching and core statistics it shares: every decoded packet of that stream goes to the chunk
 * stream instead of heap assembly.  The window of chunks is driven by the owner (Python): when
 * a heap belongs to a chunk past the window, the packet is kept aside and the input returns
 * SP2_FULL; the owner then moves the window (sp2_chunk_pop_head / sp2_chunk_push_tail) and feeds
 * the kept packet again (sp2_chunk_parked).  The owner may also hand down spare chunks in
 * advance (sp2_chunk_add_spare): while spares last, the kernel moves the window itself, without
 * keeping the packet aside, and the owner learns afterwards what moved (sp2_chunk_take_moves).
 * All functions run on the owner thread, except sp2_chunk_get_counters (any thread). */

/* What the place function is given and fills in (the reference's chunk_place_data layout). */
typedef struct sp2_chunk_place_data {
    const uint8_t *packet;        /* the heap's first packet */
    size_t packet_size;
    const int64_t *items;         /* values of the requested immediate items (-1: absent) */
    int64_t chunk_id;             /* out: -1 (the value on entry) drops the heap */
    size_t heap_index;            /* out: index into the chunk's present array */
    size_t heap_offset;           /* out: byte offset of the heap's payload in the chunk's data */
    uint64_t *batch_stats;        /* the stream's statistics, indexed as its StreamConfig's */
    uint8_t *extra;               /* scratch of max_heap_extra bytes */
    size_t extra_offset;          /* out: where extra_size bytes of it go in the chunk's extra */
    size_t extra_size;
} sp2_chunk_place_data;

/* One chunk's memory, as the kernel writes it (NULL data: no chunk for this id). */
typedef struct sp2_chunk_buf {
    int64_t chunk_id;
    uint8_t *data;
    size_t data_size;
    uint8_t *present;
    size_t present_size;
    uint8_t *extra;
    size_t extra_size;
} sp2_chunk_buf;

typedef struct sp2_chunk_config {
    const uint64_t *items;        /* item ids passed to the place function (copied) */
    uint32_t n_items;
    uint32_t max_chunks;          /* >= 1 */
    uint32_t max_heaps;           /* heaps assembled at once, >= 1 */
    void *place;                  /* void (*)(sp2_chunk_place_data *, size_t[, void *]) */
    void *place_context;
    int place_has_context;
    size_t max_heap_extra;
    size_t packet_presence_payload_size;   /* 0: presence per heap */
    uint32_t n_stats;             /* length of batch_stats (the stream's statistics) */
    uint8_t allow_out_of_order;
    uint8_t stop_on_stop_item;
} sp2_chunk_config;

/* Counters of the chunk stream (beyond the kernel stream's). */
typedef struct sp2_chunk_counters {
    uint64_t too_old_heaps;       /* placed in a chunk older than the window */
    uint64_t rejected_heaps;      /* the place function gave a negative chunk id */
    uint64_t out_of_range_heaps;  /* the place function gave a place outside the chunk */
    uint64_t no_chunk_heaps;      /* placed in a chunk the owner could not supply */
} sp2_chunk_counters;

typedef struct sp2_chunk_stream sp2_chunk_stream;

int sp2_chunk_new(const sp2_chunk_config *config, sp2_chunk_stream **out);
void sp2_chunk_free(sp2_chunk_stream *chunk);
/* From now on the packets of `stream` go to `chunk` (which must outlive that use). */
void sp2_chunk_attach(sp2_chunk_stream *chunk, sp2_stream *stream);
/* The kept packet waiting for chunk *chunk_id (returns 0 if none is kept). */
int sp2_chunk_parked(sp2_chunk_stream *chunk, const uint8_t **data, size_t *size, int64_t *chunk_id);
void sp2_chunk_unpark(sp2_chunk_stream *chunk);
/* An empty window may start anywhere (ids >= 0). */
int sp2_chunk_set_head(sp2_chunk_stream *chunk, int64_t head);
/* Takes the oldest chunk out of the window: its heaps still being assembled end as incomplete
 * (evicted: flushed = 0; flushed: flushed = 1).  Returns 0, or SP2_E_INVALID on an empty window. */
int sp2_chunk_pop_head(sp2_chunk_stream *chunk, int flushed);
/* Appends chunk head + count to the window (buf->data NULL: none is available). */
int sp2_chunk_push_tail(sp2_chunk_stream *chunk, const sp2_chunk_buf *buf);
/* Appends the oldest spare to the window, as sp2_chunk_push_tail would (SP2_E_INVALID: no spare,
 * or a full window). */
int sp2_chunk_push_spare(sp2_chunk_stream *chunk);
/* Forgets the spares not taken (the owner still holds their memory). */
void sp2_chunk_drop_spares(sp2_chunk_stream *chunk);
/* What the kernel moved by itself since the last call: the ids of the chunks that left the window,
 * oldest first (*n_left of them; `left` has room for 2 * max_chunks), how many spares joined it
 * (they joined before those left: the window is a queue), and the window's head now.  Then queues
 * `n_spares` more spare chunks for the window to take when it moves on by itself (at most
 * max_chunks in all: SP2_E_INVALID, none queued, beyond that). */
int sp2_chunk_sync(sp2_chunk_stream *chunk, const sp2_chunk_buf *spares, uint32_t n_spares, int64_t *left,
                   uint32_t *n_left, uint32_t *joined, int64_t *head);
/* Ends every heap being assembled (flushed), e.g. at a stop. */
void sp2_chunk_flush_heaps(sp2_chunk_stream *chunk);
void sp2_chunk_get_counters(sp2_chunk_stream *chunk, sp2_chunk_counters *out, uint64_t *stats,
                            uint32_t n_stats);
