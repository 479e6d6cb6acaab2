/* Public API of the SPEAD receive kernel: packets in, heaps out.
 *
 * This header is also the cffi cdef, so it holds no preprocessor directives: C files include
 * it through internal.h, which includes <stddef.h> and <stdint.h> first.
 *
 * Threading: the sp2_stream_add_* / sp2_stream_stop_received functions are called from one
 * thread at a time (the event loop that owns the stream).  The sp2_ring_* functions, the
 * statistics snapshot and sp2_heap_free may be called from any thread.
 */

typedef enum sp2_status {
    SP2_OK = 0,
    SP2_FULL = 1,        /* the ring is at capacity: pause input until the space fd fires */
    SP2_STOPPED = 2,     /* the stream has stopped: no more input is accepted */
    SP2_BAD_PACKET = 3,  /* a buffer holds a packet that cannot be decoded: the buffer ends there */
    SP2_PARTIAL = 4,     /* a byte stream ends inside a packet: feed more bytes */
    SP2_EMPTY = 5,       /* ring pop: nothing available (yet) */
    SP2_E_NOMEM = -1,
    SP2_E_INVALID = -2,
    SP2_E_OS = -3        /* errno holds the reason */
} sp2_status;

/* Why a packet was dropped: the one encoding of a drop, returned by packet decoding and by heap
 * assembly alike (SP2_DROP_NONE: the packet was taken) and indexing sp2_stats.drops.  Packets
 * dropped for a reason up to SP2_DROP_TOO_LARGE failed to decode and are not counted in the
 * "packets" statistic, except for two that heap assembly finds: BEYOND_HEAP (a packet without
 * HEAP_LENGTH past its heap's length) and BAD_FLAVOUR (a packet of another flavour than its
 * heap's first).  The rest decoded, and heap assembly rejected or ignored them. */
typedef enum sp2_drop_reason {
    SP2_DROP_NONE = 0,
    SP2_DROP_TOO_SHORT = 1,          /* fewer than 8 bytes, or fewer than its item pointers */
    SP2_DROP_BAD_MAGIC = 2,
    SP2_DROP_BAD_VERSION = 3,
    SP2_DROP_BAD_FLAVOUR = 4,        /* item pointer is not 64 bits, or address width 0 / 8 */
    SP2_DROP_MISSING_FIELD = 5,      /* no immediate HEAP_CNT, PAYLOAD_OFFSET or PAYLOAD_LENGTH */
    SP2_DROP_SIZE_MISMATCH = 6,      /* datagram shorter or longer than its header implies */
    SP2_DROP_BEYOND_HEAP = 7,        /* payload offset + length > HEAP_LENGTH */
    SP2_DROP_TOO_LARGE = 8,          /* larger than the reader's max_size */
    SP2_DROP_HEAP_TOO_LARGE = 9,     /* claims more than max_heap_size */
    SP2_DROP_UNSIZED = 10,           /* no HEAP_LENGTH while allow_unsized_heaps is off */
    SP2_DROP_INCONSISTENT_LENGTH = 11, /* HEAP_LENGTH differs from the heap's earlier packets */
    SP2_DROP_OUT_OF_ORDER = 12,      /* in-order mode: not at the expected payload offset */
    SP2_DROP_DUPLICATE = 13,         /* out-of-order mode: payload already received */
    SP2_DROP_TOO_COMPLEX = 14,       /* heap exceeds the item-pointer or payload-range limits */
    SP2_DROP_NO_MEMORY = 15,         /* the allocator failed */
    SP2_DROP_COUNT = 16              /* the size of sp2_stats.drops */
} sp2_drop_reason;

/* Core statistics.  The first nine fields are in the order of spead2.recv.stream_stat_indices. */
typedef struct sp2_stats {
    uint64_t heaps;
    uint64_t incomplete_heaps_evicted;
    uint64_t incomplete_heaps_flushed;
    uint64_t packets;
    uint64_t batches;
    uint64_t max_batch;
    uint64_t single_packet_heaps;
    uint64_t search_dist;
    uint64_t worker_blocked;
    uint64_t drops[SP2_DROP_COUNT]; /* by sp2_drop_reason (drops[SP2_DROP_NONE] stays 0) */
    uint64_t payload_bytes;       /* payload bytes accepted into heaps (duplicates excluded) */
} sp2_stats;

typedef struct sp2_allocator sp2_allocator;
typedef struct sp2_stream sp2_stream;

typedef struct sp2_config {
    uint32_t max_heaps;           /* live heaps per substream, >= 1 */
    uint32_t substreams;          /* >= 1 */
    uint32_t ring_heaps;          /* ring capacity, >= 1 */
    uint32_t max_heap_pointers;   /* item pointers kept per heap */
    uint32_t max_heap_ranges;     /* disjoint payload ranges tracked per heap (out-of-order) */
    uint64_t max_heap_size;       /* largest heap payload a sender may claim */
    uint64_t full_wait_ns;        /* how long input waits in C for a full ring to drain before
                                     pausing (0 when the consumer shares the producer's thread) */
    uint32_t bug_compat;          /* copied into every heap's flavour */
    uint8_t memcpy_nontemporal;
    uint8_t stop_on_stop_item;
    uint8_t allow_unsized_heaps;
    uint8_t allow_out_of_order;
    uint8_t contiguous_only;
    uint8_t keep_payload_ranges;
    uint8_t plain_descriptors;    /* DESCRIPTOR_ID items are items like any other, immediates too
                                     (the descriptor decoder's stream); normally they are listed
                                     apart, and immediate ones dropped */
} sp2_config;

/* One raw item of a finished heap. */
typedef struct sp2_item {
    uint64_t id;
    uint64_t value;               /* immediate: the value; otherwise: offset into the payload */
    uint64_t length;              /* bytes: heap_address_bits / 8 for immediates */
    uint8_t is_immediate;
} sp2_item;

/* A finished heap, complete (a Heap) or not (an IncompleteHeap).  Owned by the caller of
 * sp2_ring_pop until passed to sp2_heap_free. */
typedef struct sp2_heap {
    int64_t cnt;
    int64_t heap_length;          /* -1 if no packet carried HEAP_LENGTH */
    uint64_t received_length;
    uint8_t *payload;             /* NULL for incomplete heaps and empty payloads */
    uint64_t payload_size;
    sp2_item *items;              /* what Heap.get_items returns, in that order */
    uint32_t n_items;
    sp2_item *descriptors;        /* DESCRIPTOR_ID items (complete heaps only) */
    uint32_t n_descriptors;
    uint64_t *ranges;             /* received payload ranges as [start, end) pairs */
    uint32_t n_ranges;
    uint32_t bug_compat;
    uint8_t heap_address_bits;
    uint8_t complete;
    uint8_t start_of_stream;
    uint8_t end_of_stream;
} sp2_heap;

const char *sp2_build_id(void);
void sp2_config_init(sp2_config *config);

/* --- stream lifecycle (owner thread) --- */
int sp2_stream_new(const sp2_config *config, sp2_allocator *allocator, sp2_stream **out);
void sp2_stream_free(sp2_stream *stream);

/* --- input (owner thread).  Each call is one batch for the statistics. --- */
/* One datagram.  Returns SP2_OK, SP2_FULL (processed, but the ring is now full) or SP2_STOPPED. */
int sp2_stream_add_datagram(sp2_stream *stream, const uint8_t *data, size_t size);
/* Several datagrams; stops early when the ring fills or the stream stops.  *consumed counts
 * the datagrams processed. */
int sp2_stream_add_datagrams(sp2_stream *stream, const uint8_t *const *data, const size_t *sizes,
                             size_t n, size_t *consumed);
/* Packets back to back (a buffer, or the bytes of a TCP stream).  *consumed counts the bytes of
 * the whole packets processed.  Returns SP2_OK (all consumed), SP2_FULL, SP2_STOPPED,
 * SP2_PARTIAL (the rest is the start of a packet) or SP2_BAD_PACKET (the rest cannot be decoded).
 * max_packet (0 = no limit) rejects larger packets as bad. */
int sp2_stream_add_bytes(sp2_stream *stream, const uint8_t *data, size_t size, size_t max_packet,
                         size_t *consumed);
/* A byte stream ended inside a packet (size bytes of it at data): counts it too short, with the
 * sizes its header gives for the log. */
void sp2_stream_drop_partial(sp2_stream *stream, const uint8_t *data, size_t size);
/* The input has ended (or a reader failed): flush the live heaps and stop the ring. */
void sp2_stream_stop_received(sp2_stream *stream);
/* Finishes the live heaps now, as the stop does, and goes on (the descriptor decoder's stream:
 * there a packet that is a whole heap replaces the heap being assembled). */
void sp2_stream_flush(sp2_stream *stream);
int sp2_stream_is_stopped(sp2_stream *stream);
/* Drop count of one reason outside packet decoding (e.g. an oversized datagram). */
void sp2_stream_count_drop(sp2_stream *stream, int reason, uint64_t n);
/* Owner thread: packets dropped so far, all reasons (to notice drops cheaply). */
uint64_t sp2_stream_drops_total(sp2_stream *stream);

/* --- any thread --- */
void sp2_stream_get_stats(sp2_stream *stream, sp2_stats *out);
/* Stops accepting heaps (user stop): heaps already queued can still be popped. */
void sp2_ring_stop(sp2_stream *stream);
/* The next heap, or NULL if none came within the timeout (< 0: wait for a heap or the stop;
 * 0: do not wait).  After NULL, sp2_ring_drained tells a stop from a timeout. */
sp2_heap *sp2_ring_pop(sp2_stream *stream, int64_t timeout_ns);
int sp2_ring_drained(sp2_stream *stream);
/* Consumers asleep in sp2_ring_pop right now (for tests and diagnostics). */
int sp2_ring_waiters(sp2_stream *stream);
size_t sp2_ring_size(sp2_stream *stream);
size_t sp2_ring_capacity(sp2_stream *stream);
/* Read end of a pipe holding one byte per queued heap (created on first use; -1 on error). */
int sp2_ring_data_fd(sp2_stream *stream);
/* Becomes readable when a paused producer may continue; sp2_ring_space_ack drains it. */
int sp2_ring_space_fd(sp2_stream *stream);
void sp2_ring_space_ack(sp2_stream *stream);
void sp2_heap_free(sp2_heap *heap);

/* Packet header decoding, exposed for tests and the fuzzer.  Returns SP2_DROP_NONE and fills
 * the fields, or the sp2_drop_reason when the bytes are not a valid packet.  With exact_size the
 * packet must fill `size` exactly (a datagram); otherwise it may be shorter.  When the bytes are
 * too short, `size` (and `n_items` once the header is there) still say how much the packet needs
 * at least, as far as the bytes tell. */
typedef struct sp2_packet_info {
    int64_t heap_cnt;
    int64_t heap_length;
    int64_t payload_offset;
    int64_t payload_length;
    uint64_t size;                /* header + pointers + payload */
    uint32_t n_items;
    uint8_t heap_address_bits;
    uint16_t header_address_bits; /* the flavour as the header states it (even an invalid one; */
    uint16_t header_pointer_bits; /* 0 when the bytes hold no header), for messages */
} sp2_packet_info;
int sp2_decode_packet(const uint8_t *data, size_t size, int exact_size, sp2_packet_info *out);

/* The first packet dropped for a reason since the note was last taken, for the log: the
 * reference words some reasons more finely than the counters (and names sizes). */
typedef struct sp2_drop_note {
    sp2_packet_info info;         /* what its header said, as sp2_decode_packet fills it */
    uint64_t bytes;               /* bytes it came in (0: counted by a reader, not the kernel) */
    uint8_t decoded;              /* it decoded, and heap assembly rejected it */
} sp2_drop_note;
/* Owner thread: copies the note of `reason` to out and clears it; returns 0 if there is none. */
int sp2_stream_take_drop_note(sp2_stream *stream, int reason, sp2_drop_note *out);

/* The first incomplete heap dropped (contiguous_only) since the note was last taken. */
typedef struct sp2_heap_note {
    int64_t cnt;
    uint64_t received_length;
    int64_t heap_length;
} sp2_heap_note;
/* Owner thread: as sp2_stream_take_drop_note. */
int sp2_stream_take_heap_note(sp2_stream *stream, sp2_heap_note *out);
