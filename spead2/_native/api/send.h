/* Public API of the SPEAD send kernel: heaps in, packets out.
 *
 * Like kernel.h, this header is also the cffi cdef and holds no preprocessor directives.
 *
 * A heap is described once (sp2_send_heap: item ids, immediates, pointers and lengths into the
 * caller's buffers, which must stay valid until the heap is sent).  A packet iterator walks one
 * heap with one heap cnt and packet size; it is the project's only SPEAD encoder.  The sender
 * queues groups of heaps, interleaves their packets (group modes), paces them (rate limiter) and
 * hands them to a transport (UDP sendmmsg with GSO, TCP writev, or memory).  Everything here is
 * called from one thread at a time (the event loop that owns the stream).
 */

typedef struct sp2_send_item {
    uint64_t id;                  /* item id, without the immediate bit */
    const uint8_t *data;          /* addressed value (length bytes) */
    uint64_t length;
    uint64_t immediate;           /* the value of an immediate item */
    int is_immediate;
} sp2_send_item;

typedef struct sp2_send_heap {
    const sp2_send_item *items;
    uint32_t n_items;
    uint8_t heap_address_bits;
    uint8_t repeat_pointers;
} sp2_send_heap;

/* Why a heap cannot be packetized (returned by sp2_packet_iter_init). */
typedef enum sp2_send_error {
    SP2_SEND_OK = 0,
    SP2_SEND_PACKET_TOO_SMALL = 1,    /* no room for the header, 5 item pointers and payload */
    SP2_SEND_REPEAT_TOO_SMALL = 2,    /* repeat_pointers: the pointers do not fit in one packet */
    SP2_SEND_HEAP_TOO_LARGE = 3,      /* the payload needs more address bits than the flavour has */
    SP2_SEND_ID_TOO_LARGE = 4,        /* an item id needs more bits than the flavour has */
    SP2_SEND_IMMEDIATE_TOO_LARGE = 5  /* an immediate value does not fit in the address field */
} sp2_send_error;

/* One heap being cut into packets. */
typedef struct sp2_packet_iter {
    const sp2_send_heap *heap;
    uint64_t cnt;
    uint32_t packet_size;         /* the maximum packet size, rounded down to 8 bytes */
    uint32_t max_pointers;        /* item pointers per packet, besides the four standard ones */
    uint32_t n_pointers;          /* the heap's item pointers, with the padding's NULL item */
    uint64_t payload_length;      /* including padding */
    uint64_t padding;             /* zero bytes at the end of the payload (NULL item) */
    uint32_t next_pointer;
    uint64_t next_address;        /* payload address of the next addressed pointer */
    uint64_t payload_offset;      /* payload bytes already emitted */
    uint32_t item;                /* item whose value is being emitted */
    uint64_t item_offset;
    int started;
} sp2_packet_iter;

int sp2_packet_iter_init(sp2_packet_iter *it, const sp2_send_heap *heap, uint64_t cnt,
                         uint64_t max_packet_size);
int sp2_packet_iter_done(const sp2_packet_iter *it);
/* Writes the next packet to out (it->packet_size bytes); returns its size, or 0 when done. */
size_t sp2_packet_iter_next_copy(sp2_packet_iter *it, uint8_t *out);

/* A heap of a group, with where and how fast to send it. */
typedef struct sp2_send_ref {
    sp2_packet_iter it;
    uint32_t substream;
    double rate;                  /* bytes per second, 0 for as fast as possible */
} sp2_send_ref;

typedef enum sp2_group_mode { SP2_GROUP_ROUND_ROBIN = 0, SP2_GROUP_SERIAL = 1 } sp2_group_mode;

/* Heaps queued together: one completion for all of them. */
typedef struct sp2_send_group {
    sp2_send_ref *refs;
    uint32_t n_refs;
    int mode;
    uint64_t token;               /* the caller's handle */
    uint64_t bytes;               /* bytes sent so far */
    int error;                    /* errno of the first failure, 0 if none */
    uint32_t current;             /* next ref to take a packet from */
    uint32_t unfinished;          /* refs with packets still to generate */
    uint32_t in_flight;           /* packets generated but not yet transmitted */
    struct sp2_send_group *next;
} sp2_send_group;

/* One heap queued on its own (send_heap): its group and ref in one allocation, reusable. */
typedef struct sp2_send_slot {
    sp2_send_group group;
    sp2_send_ref ref;
} sp2_send_slot;

typedef enum sp2_transport {
    SP2_TRANSPORT_UDP = 0,
    SP2_TRANSPORT_TCP = 1,
    SP2_TRANSPORT_MEMORY = 2
} sp2_transport;

typedef enum sp2_run_status {
    SP2_RUN_IDLE = 0,             /* nothing queued */
    SP2_RUN_MORE = 1,             /* the packet budget ran out: call again soon */
    SP2_RUN_SLEEP = 2,            /* the rate limiter waits until *wake_ns */
    SP2_RUN_BLOCKED = 3           /* the socket is full: call again when it is writable */
} sp2_run_status;

typedef struct sp2_sender sp2_sender;

/* rate in bytes per second (0: unlimited); burst_size in bytes. */
sp2_sender *sp2_sender_new(int transport, int fd, uint32_t n_substreams, uint64_t max_packet_size,
                           double rate, uint64_t burst_size, double burst_rate_ratio);
void sp2_sender_free(sp2_sender *s);
/* UDP: the destination of a substream, a numeric IPv4 or IPv6 address. */
int sp2_sender_set_endpoint(sp2_sender *s, uint32_t substream, const char *address, uint16_t port,
                            uint32_t scope_id);
/* UDP: try generic segmentation offload (Linux); returns 1 if the socket took it. */
int sp2_sender_enable_gso(sp2_sender *s);
int sp2_sender_gso_active(const sp2_sender *s);
/* Queues a group whose refs were initialised with sp2_packet_iter_init. */
void sp2_sender_push(sp2_sender *s, sp2_send_group *group);
/* Prepares slot for one heap (cut with the stream's packet size) and queues it; returns an
 * sp2_send_error, and queues nothing unless it is SP2_SEND_OK. */
int sp2_sender_push_one(sp2_sender *s, sp2_send_slot *slot, const sp2_send_heap *heap, uint64_t cnt,
                        uint32_t substream, double rate, uint64_t token);
int sp2_sender_run(sp2_sender *s, uint32_t max_packets, int64_t *wake_ns);
/* Finished groups, in the order they were pushed; NULL when there are none. */
sp2_send_group *sp2_sender_pop_done(sp2_sender *s);
/* Nonzero once a connection-level error has broken the stream (the errno). */
int sp2_sender_broken(const sp2_sender *s);

/* Memory transport: the packets sent so far, back to back, with each one's size and substream. */
const uint8_t *sp2_sender_memory(const sp2_sender *s, size_t *size);
size_t sp2_sender_memory_packets(const sp2_sender *s, const uint32_t **sizes,
                                 const uint32_t **substreams);
void sp2_sender_memory_clear(sp2_sender *s);

int64_t sp2_send_now_ns(void);
/* Pacing precision: a wait shorter than spin_ns is spent spinning in sp2_sender_run, and a longer
 * one is reported (SP2_RUN_SLEEP) spin_ns early, so that a late wake-up still ends on time. */
void sp2_sender_set_spin(sp2_sender *s, int64_t spin_ns);
/* Sleeps (GIL released, timer slack cut to 1 us where Linux allows) until deadline_ns. */
void sp2_sleep_until(int64_t deadline_ns);
/* A timer fd for sub-millisecond deadlines (Linux timerfd); -1 where there is none. */
int sp2_timer_fd_new(void);
int sp2_timer_fd_arm(int fd, int64_t deadline_ns);
void sp2_timer_fd_ack(int fd);
