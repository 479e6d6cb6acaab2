/* Private declarations shared by the kernel's C files. */
#ifndef SP2_INTERNAL_H
#define SP2_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/kernel.h"
#include "api/alloc.h"
#include "api/readers.h"
#include "api/send.h"
#include "api/chunk.h"
#include "platform.h"

#define SP2_UNUSED(x) ((void) (x))

static inline uint16_t sp2_load_be16(const uint8_t *p) { return (uint16_t) ((p[0] << 8) | p[1]); }
static inline uint32_t sp2_load_be32(const uint8_t *p)
{
    return ((uint32_t) p[0] << 24) | ((uint32_t) p[1] << 16) | ((uint32_t) p[2] << 8) | p[3];
}

/* Item ids and values the kernel acts on (SPEAD's reserved ids). */
enum {
    SP2_ID_NULL = 0,              /* padding: never an item */
    SP2_ID_HEAP_CNT = 1,
    SP2_ID_HEAP_LENGTH = 2,
    SP2_ID_PAYLOAD_OFFSET = 3,
    SP2_ID_PAYLOAD_LENGTH = 4,
    SP2_ID_DESCRIPTOR = 5,        /* its value is a descriptor (a SPEAD packet of its own) */
    SP2_ID_STREAM_CTRL = 6,
    SP2_CTRL_STREAM_START = 0,    /* STREAM_CTRL values */
    SP2_CTRL_STREAM_STOP = 2
};

/* ---- allocators (alloc.c) ---- */
uint8_t *sp2_alloc(sp2_allocator *a, size_t size, void **token);
void sp2_free(sp2_allocator *a, uint8_t *ptr, size_t size, void *token);

/* ---- copying payload (copy.c) ---- */
void sp2_copy_nontemporal(uint8_t *dst, const uint8_t *src, size_t n);
/* Orders the non-temporal stores before a heap is handed to another thread. */
void sp2_copy_fence(void);

/* ---- a heap being assembled (heap.c) ---- */
typedef struct sp2_live_heap {
    int64_t cnt;
    int64_t heap_length;          /* -1 until a packet carries HEAP_LENGTH */
    uint64_t received_length;     /* payload bytes received (no duplicates) */
    uint64_t min_length;          /* highest payload end or item address seen */
    uint8_t *payload;
    uint64_t capacity;            /* bytes allocated at payload */
    void *payload_token;
    uint64_t *pointers;           /* distinct item pointers, in arrival order */
    uint32_t n_pointers;
    uint32_t cap_pointers;
    uint32_t *pointer_index;      /* open-addressing set over pointers (index + 1; 0 = free) */
    uint32_t index_mask;          /* table size - 1, or 0 while no index is kept */
    uint64_t *ranges;             /* out-of-order mode: sorted disjoint [start, end) pairs */
    uint32_t n_ranges;
    uint32_t cap_ranges;
    uint8_t heap_address_bits;
    uint8_t in_use;
    uint8_t start_of_stream;
    uint8_t end_of_stream;
} sp2_live_heap;

/* A decoded packet, pointing into the caller's bytes. */
typedef struct sp2_packet {
    sp2_packet_info info;
    const uint8_t *pointers;      /* info.n_items big-endian item pointers */
    const uint8_t *payload;
    uint32_t n_special;           /* pointers with the ids of the four fields above */
    uint8_t landed;               /* the payload was received straight into its heap (udp.c) */
} sp2_packet;

/* Returns SP2_DROP_NONE, or why the bytes are not a packet (see sp2_decode_packet). */
sp2_drop_reason sp2_decode(const uint8_t *data, size_t size, int exact_size, sp2_packet *out);

/* Private part of a finished heap: the public struct comes first. */
typedef struct sp2_heap_impl {
    sp2_heap pub;
    struct sp2_heap_impl *next;   /* ring link */
    sp2_allocator *allocator;
    void *payload_token;
    uint64_t payload_capacity;
} sp2_heap_impl;

/* ---- the ring of finished heaps (ring.c) ---- */
typedef struct sp2_ring_side {
    int pinned;                   /* the one CPU its thread may run on; -1 several; -2 not seen yet */
    int cpu;                      /* the CPU it last ran on (-1: unknown) */
    int busy;                     /* at work: not asleep in the ring, nor idle between batches */
} sp2_ring_side;

typedef struct sp2_ring {
    sp2_mutex lock;
    sp2_cond data_cond;
    sp2_cond space_cond;          /* a producer waiting in C for room */
    sp2_heap_impl *head;
    sp2_heap_impl *tail;
    size_t count;
    size_t capacity;
    uint64_t bytes;               /* payload bytes of the queued heaps */
    size_t resume_level;          /* wake a paused producer once count drops to this */
    int stopped;
    int space_wanted;
    int waiters;
    int producer_waiting;
    int wake_pending;             /* a waiting consumer is owed a wake-up (see sp2_ring_publish) */
    int held;                     /* producer: batch ends keep that wake-up (sp2_ring_hold) */
    sp2_ring_side producer;
    sp2_ring_side consumer;
    int same_thread;              /* the producer never waits in C: the consumer shares its thread */
    int64_t spin_ns;              /* how long a consumer spins before sleeping (adaptive) */
    int data_fd[2];               /* semaphore pipe: one byte per queued heap */
    int space_fd[2];              /* producer wake-up */
} sp2_ring;

int sp2_ring_init(sp2_ring *ring, size_t capacity);
void sp2_ring_destroy(sp2_ring *ring);
/* Owner thread: queue a finished heap (freed if the ring is stopped).  Returns SP2_PUSH_ROOM,
 * SP2_PUSH_FULL when the ring is at capacity (the producer must pause), or SP2_PUSH_DEFER when it
 * is but the producer shares the consumer's CPU and may finish its batch of input first. */
enum { SP2_PUSH_ROOM = 0, SP2_PUSH_FULL = 1, SP2_PUSH_DEFER = 2 };
int sp2_ring_push(sp2_ring *ring, sp2_heap_impl *heap);
/* Owner thread, ring full: wait up to wait_ns for room, then ask to be woken through the space
 * fd.  Returns 0 if there is room (go on), 1 if the producer must pause; *blocked says whether
 * there was no room at first. */
int sp2_ring_want_space(sp2_ring *ring, int64_t wait_ns, int *blocked);
/* Owner thread, at the end of each batch of input: delivers a wake-up that pushes deferred. */
void sp2_ring_publish(sp2_ring *ring);
/* Owner thread: where producer and consumer share one CPU, the ends of batches keep deferred
 * wake-ups until sp2_ring_release, e.g. over all the batches a reader takes before it sleeps. */
void sp2_ring_hold(sp2_ring *ring);
void sp2_ring_release(sp2_ring *ring);
/* Whether the producer holds the consumer's wake-up (sp2_ring_hold) on the consumer's own CPU:
 * the consumer cannot run before the producer sleeps, so a producer past a full ring need not
 * wait for it at each batch's end, only when the overfill is spent. */
int sp2_ring_held_on_one_cpu(const sp2_ring *ring);
void sp2_ring_close(sp2_ring *ring);   /* end of input: pops drain, then report stopped */

/* ---- the stream (stream.c) ---- */
/* Where the stream's next packets would land if they continue the heap of the last packet in
 * order (sp2_stream_landing). */
typedef struct sp2_landing {
    int64_t cnt;
    int64_t offset;               /* the heap's next payload offset */
    uint8_t *dst;                 /* its payload buffer at that offset */
    uint64_t room;                /* bytes from there to the end of the heap */
    size_t header_size;
    size_t payload_size;
    int next_heap;                /* (no landing) the last heap, a large one, has ended: the next
                                     datagram most likely starts another, whose rest can land */
} sp2_landing;

/* The header and payload sizes of the last packet that was neither a heap's first (which carries
 * the heap's items too) nor its last (short): those of the packets to come. */
typedef struct sp2_land_sizes {
    size_t header_size;
    size_t payload_size;
    int64_t heap_length;          /* of that packet's heap */
} sp2_land_sizes;

void sp2_land_sizes_note(sp2_land_sizes *sizes, const sp2_packet_info *info);
/* Whether a heap is large enough that a reader should read a batch short to land the next heap's
 * payloads (a recvmmsg more a heap), rather than copy the rest of a full batch. */
int sp2_land_large(int64_t heap_length, size_t payload_size);
/* Fills out with the rest of heap cnt (heap_length bytes at base, received in order up to
 * `received`: nothing past it was written).  Returns 0 where no packet size is known yet. */
int sp2_landing_fill(sp2_landing *out, const sp2_land_sizes *sizes, int64_t cnt, uint8_t *base,
                     uint64_t received, int64_t heap_length);

struct sp2_stream {
    sp2_config config;
    sp2_allocator *allocator;
    sp2_live_heap *live;          /* substreams * max_heaps slots */
    uint32_t *heads;              /* per substream: next slot to (re)use, i.e. the oldest */
    uint32_t *last_hit;           /* per substream: slot of the last packet, searched first */
    sp2_ring ring;
    sp2_stats batch;              /* counted by the owner thread, folded per batch */
    uint64_t batch_packets;
    sp2_mutex stats_lock;
    sp2_stats totals;
    uint64_t drops_total;         /* owner thread: a cheap "did anything drop?" for logging */
    int ring_full;                /* a push filled the ring during this batch */
    int ring_full_at_end;         /* ... but the producer may finish the batch first */
    int stopped;
    /* A sink that takes every decoded packet instead of heap assembly (chunk.c): returns
     * SP2_SINK_TAKEN, SP2_SINK_STOP (a stop item) or SP2_SINK_FULL (kept aside: the owner must
     * act before more input; the sink counts its packets itself). */
    int (*sink)(void *ctx, sp2_stream *s, const sp2_packet *p);
    /* the sink's sp2_stream_landing (NULL: none) */
    int (*sink_landing)(void *ctx, sp2_landing *out);
    void *sink_ctx;
    int sink_full;
    /* owner thread: the first drop of each reason and incomplete heap since last taken */
    sp2_drop_note notes[SP2_DROP_COUNT];
    uint8_t noted[SP2_DROP_COUNT];
    sp2_heap_note heap_note;
    int heap_noted;
    /* Landing (sp2_stream_landing): the heap the last packet went to, and the header and payload
     * sizes of the last packet that was not a heap's first. */
    const sp2_live_heap *land_heap;
    int64_t land_cnt;
    sp2_land_sizes land_sizes;
    const void *landing_owner;    /* the reader whose landed payloads are not all fed yet */
};


/* Predicts where the next packets' payloads go, so that a reader can receive them straight into
 * the heap (its bytes from dst to dst + room are not written yet, and stay the heap's while it is
 * live).  Returns 1 and leases the landing to owner until sp2_stream_landing_done, or 0 (no
 * prediction: out-of-order or non-temporal streams, chunk streams, unsized heaps, or another
 * owner's landed payloads are not all fed).  Packets fed with landed payloads are checked
 * against the heap before they count (sp2_stream_add_landed). */
int sp2_stream_landing(sp2_stream *s, const void *owner, sp2_landing *out);
void sp2_stream_landing_done(sp2_stream *s, const void *owner);
/* sp2_stream_add_datagrams, where payloads[i] (if not NULL) holds datagram i's payload, which
 * data[i] lacks: it was received at the place sp2_stream_landing gave. */
int sp2_stream_add_landed(sp2_stream *s, const uint8_t *const *data, const size_t *sizes,
                          const uint8_t *const *payloads, size_t n, size_t *consumed);

enum { SP2_SINK_TAKEN = 0, SP2_SINK_STOP = 1, SP2_SINK_FULL = 2 };

/* heap.c */
void sp2_live_heap_reset(sp2_live_heap *h);
void sp2_live_heap_release(sp2_live_heap *h, sp2_allocator *a);
/* Frees the payload and empties the slot (a heap that is dropped). */
void sp2_live_heap_discard(sp2_live_heap *h, sp2_allocator *a);
/* Returns SP2_DROP_NONE, or why the packet is rejected (the heap is then unchanged). */
sp2_drop_reason sp2_live_heap_add_packet(sp2_stream *s, sp2_live_heap *h, const sp2_packet *p);
int sp2_live_heap_is_complete(const sp2_live_heap *h);
int sp2_live_heap_is_contiguous(const sp2_live_heap *h);
/* Builds the finished heap (taking the payload when complete_or_contiguous) and resets h.
 * Returns NULL when out of memory (h is released then). */
sp2_heap_impl *sp2_live_heap_freeze(sp2_stream *s, sp2_live_heap *h, int as_complete);

#endif
