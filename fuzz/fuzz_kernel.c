/* Fuzz target for the C receive kernel (libFuzzer entry point, plus a standalone driver).
 *
 * One input drives one stream.  Layout (everything past the end of the input reads as zero):
 *
 *   8 config bytes
 *     [0] flags: bit0 allow_out_of_order, bit1 allow_unsized_heaps, bit2 stop_on_stop_item,
 *         bit3 contiguous_only, bit4 keep_payload_ranges, bit5 memcpy_nontemporal,
 *         bits 6-7 allocator (0 malloc, 1 mmap, 2 pool, 3 the stream's own default)
 *     [1] max_heaps = 1 + b % 16          [2] substreams = 1 + b % 8
 *     [3] ring_heaps = 1 + b % 8          [4] max_heap_pointers = b & 0x80 ? default : 1 + b % 64
 *     [5] max_heap_ranges = 1 + b % 16    [6] max_heap_size = b >= 250 ? 1 GiB : 1 << (b % 25)
 *     [7] bug_compat = b & 15; pool buffer size = 1 << (6 + (b >> 4) % 12)
 *   then operations, each: opcode byte, 16-bit little-endian length L, L bytes of data
 *     op % 8 == 0: one datagram (the data)
 *               1: a batch of datagrams: the data holds [16-bit LE length][bytes]...
 *               2: bytes of a TCP-like stream (appended to what is pending; max_packet 0)
 *               3: the same with max_packet = 16 + first data byte * 64
 *               4: pop up to (first data byte % 8) heaps
 *               5: end of input (sp2_stream_stop_received)
 *               6: user stop (sp2_ring_stop)
 *               7: poll helpers: data fd, space fd and ack, stats, ring size
 *
 * Every heap popped is checked against the invariants a consumer relies on (items inside the
 * payload, ranges sorted and within the heap, counts consistent with the config) and every
 * payload byte an item points at is read, so that AddressSanitizer sees any stray pointer.  At
 * the end the statistics must account for every packet: decoded packets plus decode drops equal
 * the packets that went in.
 *
 * Built with -DSP2_FUZZ_MAIN it has a main() instead: it replays the files and directories it is
 * given and, with -t SECONDS or -n RUNS, mutates them at random (no coverage guidance): that is
 * what runs where clang/libFuzzer is not installed, under gcc's sanitizers or valgrind. */
#include "internal.h"

#include <stdio.h>

static void on_failure(void);

#define CHECK(cond)                                                                              \
    do                                                                                           \
    {                                                                                            \
        if (!(cond))                                                                             \
        {                                                                                        \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond);         \
            on_failure();                                                                        \
            abort();                                                                             \
        }                                                                                        \
    } while (0)

enum { MAX_PENDING = 1 << 20 };

typedef struct reader {
    const uint8_t *data;
    size_t size;
    size_t pos;
} reader;

static uint8_t get_u8(reader *r)
{
    return r->pos < r->size ? r->data[r->pos++] : 0;
}

static size_t get_u16(reader *r)
{
    size_t lo = get_u8(r);
    return lo | ((size_t) get_u8(r) << 8);
}

/* Up to n bytes; *got says how many there were. */
static const uint8_t *get_bytes(reader *r, size_t n, size_t *got)
{
    size_t left = r->size - r->pos;
    if (n > left)
        n = left;
    const uint8_t *p = r->data + r->pos;
    r->pos += n;
    *got = n;
    return p;
}

typedef struct fuzz_state {
    sp2_config cfg;
    sp2_stream *s;
    uint8_t *pending;             /* bytes of the TCP-like stream not consumed yet */
    size_t n_pending;
    size_t cap_pending;
    uint64_t packets_in;          /* packets the kernel decoded (by our own framing) */
    uint64_t decode_drops[SP2_DROP_COUNT];   /* by reason: what did not decode */
    uint64_t heaps_popped;
    volatile uint8_t sink;
} fuzz_state;

static void check_heap(fuzz_state *f, const sp2_heap *h)
{
    const sp2_config *c = &f->cfg;
    unsigned hab = h->heap_address_bits;
    CHECK(hab >= 8 && hab <= 56 && hab % 8 == 0);
    CHECK(h->cnt >= 0 && (uint64_t) h->cnt < (UINT64_C(1) << hab));
    CHECK(h->bug_compat == c->bug_compat);
    CHECK(h->heap_length >= -1);
    if (h->heap_length >= 0)
    {
        CHECK(h->received_length <= (uint64_t) h->heap_length);
        CHECK((uint64_t) h->heap_length <= c->max_heap_size);
    }
    CHECK(h->received_length <= c->max_heap_size);
    CHECK((uint64_t) h->n_items + h->n_descriptors <= c->max_heap_pointers);
    /* a heap holding the stop is delivered only when flushed at the stop (as the reference) */
    CHECK(!(h->end_of_stream && c->stop_on_stop_item && h->complete && h->heap_length >= 0));
    if (c->contiguous_only)
        CHECK(h->complete);
    for (uint32_t i = 0; i < h->n_items; i++)
    {
        const sp2_item *it = &h->items[i];
        CHECK(it->id > 4);
        if (it->is_immediate)
        {
            CHECK(it->id != 5);
            CHECK(it->length == hab / 8);
            CHECK(it->value < (UINT64_C(1) << hab));
        }
        else
        {
            CHECK(h->complete);
            CHECK(h->payload != NULL);
            CHECK(it->length > 0);
            CHECK(it->value < h->payload_size && it->length <= h->payload_size - it->value);
            uint8_t acc = 0;
            for (uint64_t b = 0; b < it->length; b++)
                acc ^= h->payload[it->value + b];
            f->sink ^= acc;
        }
    }
    for (uint32_t i = 0; i < h->n_descriptors; i++)
    {
        const sp2_item *it = &h->descriptors[i];
        CHECK(h->complete);
        CHECK(it->id == 5 && !it->is_immediate);
        CHECK(h->payload != NULL && it->length > 0);
        CHECK(it->value < h->payload_size && it->length <= h->payload_size - it->value);
        f->sink ^= h->payload[it->value] ^ h->payload[it->value + it->length - 1];
    }
    if (h->complete)
    {
        CHECK(h->n_ranges == 0);
        if (h->heap_length >= 0)
            CHECK(h->received_length == (uint64_t) h->heap_length);
        if (h->payload)
        {
            CHECK(h->payload_size == h->received_length);
            if (h->payload_size)
                f->sink ^= h->payload[0] ^ h->payload[h->payload_size - 1];
        }
        else
            CHECK(h->received_length == 0 && h->n_descriptors == 0);
    }
    else
    {
        CHECK(h->payload == NULL && h->n_descriptors == 0);
        if (!c->keep_payload_ranges)
            CHECK(h->n_ranges == 0);
        else
        {
            uint64_t total = 0, prev_end = 0;
            for (uint32_t i = 0; i < h->n_ranges; i++)
            {
                uint64_t start = h->ranges[2 * i], end = h->ranges[2 * i + 1];
                CHECK(start < end);
                CHECK(i == 0 || start > prev_end);   /* disjoint and not touching */
                if (h->heap_length >= 0)
                    CHECK(end <= (uint64_t) h->heap_length);
                total += end - start;
                prev_end = end;
            }
            CHECK(total == h->received_length);
        }
    }
}

static void pop_heaps(fuzz_state *f, unsigned limit)
{
    for (unsigned i = 0; i < limit; i++)
    {
        sp2_heap *h = sp2_ring_pop(f->s, 0);
        if (!h)
            return;
        check_heap(f, h);
        f->heaps_popped++;
        sp2_heap_free(h);
    }
}

static void after_add(fuzz_state *f, int status)
{
    CHECK(status == SP2_OK || status == SP2_FULL || status == SP2_STOPPED || status == SP2_BAD_PACKET
          || status == SP2_PARTIAL);
    if (status == SP2_STOPPED)
        CHECK(sp2_stream_is_stopped(f->s));
    if (status == SP2_FULL)
    {
        /* what a reader's consumer does: take heaps until the producer may go on */
        pop_heaps(f, 8);
        sp2_ring_space_ack(f->s);
    }
}

static void count_datagram(fuzz_state *f, const uint8_t *data, size_t size)
{
    sp2_packet_info info;
    int why = sp2_decode_packet(data, size, 1, &info);
    if (why == SP2_DROP_NONE)
    {
        CHECK(info.size == size);
        CHECK(info.payload_length >= 0 && info.payload_offset >= 0 && info.heap_cnt >= 0);
        f->packets_in++;
    }
    else
    {
        CHECK(why > SP2_DROP_NONE && why <= SP2_DROP_TOO_LARGE);
        f->decode_drops[why]++;
    }
}

static void op_datagram(fuzz_state *f, const uint8_t *data, size_t size)
{
    int stopped = sp2_stream_is_stopped(f->s);
    int status = sp2_stream_add_datagram(f->s, data, size);
    if (stopped)
        CHECK(status == SP2_STOPPED);
    else
        count_datagram(f, data, size);
    after_add(f, status);
}

static void op_datagrams(fuzz_state *f, const uint8_t *data, size_t size)
{
    enum { MAX_BATCH = 64 };
    const uint8_t *ptrs[MAX_BATCH];
    size_t sizes[MAX_BATCH];
    size_t n = 0;
    reader r = {data, size, 0};
    while (n < MAX_BATCH && r.pos < r.size)
    {
        size_t want = get_u16(&r);
        ptrs[n] = get_bytes(&r, want, &sizes[n]);
        n++;
    }
    size_t consumed = 0;
    int stopped = sp2_stream_is_stopped(f->s);
    int status = sp2_stream_add_datagrams(f->s, ptrs, sizes, n, &consumed);
    CHECK(consumed <= n);
    if (stopped)
        CHECK(status == SP2_STOPPED && consumed == 0);
    if (status == SP2_OK)
        CHECK(consumed == n);
    for (size_t i = 0; i < consumed; i++)
        count_datagram(f, ptrs[i], sizes[i]);
    after_add(f, status);
}

static void op_bytes(fuzz_state *f, const uint8_t *data, size_t size, size_t max_packet)
{
    if (f->n_pending + size > MAX_PENDING)
        f->n_pending = 0;   /* a reader that gave up on a packet larger than it buffers */
    if (f->n_pending + size > f->cap_pending || !f->pending)
    {
        size_t cap = f->cap_pending ? f->cap_pending : 4096;
        while (cap < f->n_pending + size)
            cap *= 2;
        f->pending = realloc(f->pending, cap);
        CHECK(f->pending != NULL);
        f->cap_pending = cap;
    }
    memcpy(f->pending + f->n_pending, data, size);
    f->n_pending += size;
    size_t consumed = 0;
    int stopped = sp2_stream_is_stopped(f->s);
    int status = sp2_stream_add_bytes(f->s, f->pending, f->n_pending, max_packet, &consumed);
    CHECK(consumed <= f->n_pending);
    if (stopped)
        CHECK(status == SP2_STOPPED && consumed == 0);
    if (status == SP2_OK)
        CHECK(consumed == f->n_pending);
    /* frame what was consumed ourselves: each frame is one decoded packet */
    size_t pos = 0;
    while (pos < consumed)
    {
        sp2_packet_info info;
        CHECK(sp2_decode_packet(f->pending + pos, consumed - pos, 0, &info) == SP2_DROP_NONE);
        CHECK(info.size <= consumed - pos);
        CHECK(max_packet == 0 || info.size <= max_packet);
        pos += (size_t) info.size;
        f->packets_in++;
    }
    CHECK(pos == consumed);
    if (status == SP2_BAD_PACKET)
    {
        /* the kernel's reason: the decoder's, or too large for max_packet */
        sp2_packet_info info;
        int why = sp2_decode_packet(f->pending + consumed, f->n_pending - consumed, 0, &info);
        CHECK(why != SP2_DROP_NONE || (max_packet && info.size > max_packet));
        /* a partial packet is rejected only once it cannot fit: all of max_packet is there, or
         * its header already announces more */
        CHECK(why != SP2_DROP_TOO_SHORT
              || (max_packet && (f->n_pending - consumed >= max_packet || info.size > max_packet)));
        f->decode_drops[why != SP2_DROP_NONE && why != SP2_DROP_TOO_SHORT ? why : SP2_DROP_TOO_LARGE]++;
        f->n_pending = 0;   /* the connection is closed: the rest is discarded */
    }
    else
    {
        memmove(f->pending, f->pending + consumed, f->n_pending - consumed);
        f->n_pending -= consumed;
    }
    after_add(f, status);
}

static sp2_allocator *make_allocator(const uint8_t *cfg_bytes)
{
    size_t pool_size = (size_t) 1 << (6 + (cfg_bytes[7] >> 4) % 12);
    switch (cfg_bytes[0] >> 6)
    {
    case 0:
        return sp2_allocator_malloc_new();
    case 1:
        return sp2_allocator_mmap_new(0, cfg_bytes[7] & 1);
    case 2:
        return sp2_pool_new(pool_size / 2, pool_size, 2, cfg_bytes[7] & 1, 0, 0, NULL);
    default:
        return NULL;   /* the stream makes its own */
    }
}

static void run_one(const uint8_t *data, size_t size)
{
    reader r = {data, size, 0};
    uint8_t cb[8];
    for (int i = 0; i < 8; i++)
        cb[i] = get_u8(&r);

    fuzz_state f;
    memset(&f, 0, sizeof(f));
    sp2_config_init(&f.cfg);
    sp2_config *c = &f.cfg;
    c->allow_out_of_order = cb[0] & 1;
    c->allow_unsized_heaps = (cb[0] >> 1) & 1;
    c->stop_on_stop_item = (cb[0] >> 2) & 1;
    c->contiguous_only = (cb[0] >> 3) & 1;
    c->keep_payload_ranges = (cb[0] >> 4) & 1;
    c->memcpy_nontemporal = (cb[0] >> 5) & 1;
    c->max_heaps = 1 + cb[1] % 16;
    c->substreams = 1 + cb[2] % 8;
    c->ring_heaps = 1 + cb[3] % 8;
    if (!(cb[4] & 0x80))
        c->max_heap_pointers = 1 + cb[4] % 64;
    c->max_heap_ranges = 1 + cb[5] % 16;
    /* Mostly small limits: under ASan every byte of a freed allocation is poisoned, so 1 GiB
     * heaps cost seconds each; the large-claim paths are the same code at any limit. */
    c->max_heap_size = cb[6] >= 250 ? UINT64_C(1) << 30 : UINT64_C(1) << (cb[6] % 25);
    c->bug_compat = cb[7] & 15;
    c->full_wait_ns = 0;

    sp2_allocator *alloc = make_allocator(cb);
    int ret = sp2_stream_new(c, alloc, &f.s);
    if (alloc)
        sp2_allocator_release(alloc);   /* the stream holds its own reference */
    CHECK(ret == SP2_OK);

    while (r.pos < r.size)
    {
        uint8_t op = get_u8(&r);
        size_t len = get_u16(&r), got;
        const uint8_t *payload = get_bytes(&r, len, &got);
        switch (op % 8)
        {
        case 0:
            op_datagram(&f, payload, got);
            break;
        case 1:
            op_datagrams(&f, payload, got);
            break;
        case 2:
            op_bytes(&f, payload, got, 0);
            break;
        case 3:
            op_bytes(&f, payload, got, 16 + (size_t) (got ? payload[0] : 0) * 64);
            break;
        case 4:
            pop_heaps(&f, got ? payload[0] % 8 : 1);
            break;
        case 5:
            sp2_stream_stop_received(f.s);
            CHECK(sp2_stream_is_stopped(f.s));
            break;
        case 6:
            sp2_ring_stop(f.s);
            break;
        default:
        {
            sp2_stats st;
            sp2_stream_get_stats(f.s, &st);
            CHECK(sp2_ring_size(f.s) <= sp2_ring_capacity(f.s));
            if (got && (payload[0] & 1))
            {
                CHECK(sp2_ring_data_fd(f.s) >= 0);
                CHECK(sp2_ring_space_fd(f.s) >= 0);
                sp2_ring_space_ack(f.s);
            }
            break;
        }
        }
    }

    /* the end: the input ends, every heap is taken, and the books must balance */
    sp2_stream_stop_received(f.s);
    pop_heaps(&f, ~0u);
    CHECK(sp2_ring_pop(f.s, 0) == NULL && sp2_ring_drained(f.s));
    CHECK(sp2_ring_pop(f.s, 1000) == NULL);   /* stopped: returns at once, never waits */
    sp2_stats st;
    sp2_stream_get_stats(f.s, &st);
    /* Every packet that went in is either counted in `packets` or dropped for a decoding
     * reason.  Two decoding reasons are also heap-assembly reasons: BEYOND_HEAP (a packet without
     * HEAP_LENGTH that reaches past the length its heap's other packets gave) and BAD_FLAVOUR (a
     * packet whose flavour differs from its heap's first packet). */
    uint64_t all_drops = 0, assembly_drops = 0;
    CHECK(st.drops[SP2_DROP_NONE] == 0);
    for (int i = SP2_DROP_NONE + 1; i < SP2_DROP_COUNT; i++)
    {
        all_drops += st.drops[i];
        int both = i == SP2_DROP_BEYOND_HEAP || i == SP2_DROP_BAD_FLAVOUR;
        if (i <= SP2_DROP_TOO_LARGE && !both)
            CHECK(st.drops[i] == f.decode_drops[i]);
        else if (both)
        {
            CHECK(st.drops[i] >= f.decode_drops[i]);
            assembly_drops += st.drops[i] - f.decode_drops[i];
        }
        else
        {
            CHECK(f.decode_drops[i] == 0);
            assembly_drops += st.drops[i];
        }
    }
    CHECK(st.packets == f.packets_in);
    CHECK(assembly_drops <= st.packets);
    CHECK(f.heaps_popped <= st.heaps);
    CHECK(st.incomplete_heaps_evicted + st.incomplete_heaps_flushed <= st.heaps);
    CHECK(st.single_packet_heaps <= st.packets);
    CHECK(sp2_stream_drops_total(f.s) == all_drops);
    sp2_stream_free(f.s);
    free(f.pending);
}

#ifndef SP2_FUZZ_MAIN
static void on_failure(void)
{
    /* libFuzzer saves the input itself (the abort is caught as a crash) */
}
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    run_one(data, size);
    return 0;
}

#ifdef SP2_FUZZ_MAIN
/* ---- standalone driver: replay, then blind mutation ---- */
#include <dirent.h>
#include <sys/stat.h>
#include <time.h>

typedef struct blob {
    uint8_t *data;
    size_t size;
} blob;

static blob *inputs;
static size_t n_inputs, cap_inputs;
static const uint8_t *current;
static size_t current_size;
static const char *crash_dir;

/* Saves the input that failed (an invariant, or a sanitizer report) as crash_dir/crash-<hash>. */
static void on_failure(void)
{
    if (!crash_dir || !current)
        return;
    uint64_t h = UINT64_C(1469598103934665603);
    for (size_t i = 0; i < current_size; i++)
        h = (h ^ current[i]) * UINT64_C(1099511628211);
    char path[4096];
    snprintf(path, sizeof(path), "%s/crash-%016llx", crash_dir, (unsigned long long) h);
    FILE *fp = fopen(path, "wb");
    if (fp)
    {
        fwrite(current, 1, current_size, fp);
        fclose(fp);
        fprintf(stderr, "saved the failing input as %s\n", path);
    }
}

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_UNDEFINED__) || defined(SP2_SANITIZER_HOOKS)
#include <sanitizer/common_interface_defs.h>
#define HAVE_DEATH_CALLBACK 1
#endif

static void run_input(const uint8_t *data, size_t size)
{
    current = data;
    current_size = size;
    run_one(data, size);
    current = NULL;
}

static void load_file(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
    {
        perror(path);
        exit(2);
    }
    fseek(fp, 0, SEEK_END);
    long size = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    uint8_t *buf = malloc(size > 0 ? (size_t) size : 1);
    if (!buf || fread(buf, 1, (size_t) size, fp) != (size_t) size)
    {
        fprintf(stderr, "%s: read failed\n", path);
        exit(2);
    }
    fclose(fp);
    if (n_inputs == cap_inputs)
    {
        cap_inputs = cap_inputs ? cap_inputs * 2 : 64;
        inputs = realloc(inputs, cap_inputs * sizeof(blob));
        if (!inputs)
            exit(2);
    }
    inputs[n_inputs].data = buf;
    inputs[n_inputs].size = (size_t) size;
    n_inputs++;
}

static void load_path(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
    {
        perror(path);
        exit(2);
    }
    if (!S_ISDIR(st.st_mode))
    {
        load_file(path);
        return;
    }
    DIR *dir = opendir(path);
    if (!dir)
    {
        perror(path);
        exit(2);
    }
    struct dirent *e;
    while ((e = readdir(dir)) != NULL)
    {
        if (e->d_name[0] == '.')
            continue;
        char child[4096];
        snprintf(child, sizeof(child), "%s/%s", path, e->d_name);
        load_path(child);
    }
    closedir(dir);
}

static uint64_t rng_state = 0x9E3779B97F4A7C15u;

static uint64_t rnd(void)
{
    /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * UINT64_C(2685821657736338717);
}

static size_t rnd_below(size_t n)
{
    return n ? (size_t) (rnd() % n) : 0;
}

/* Values that sit on the edges of SPEAD fields, written big-endian at a random place. */
static const uint64_t interesting[] = {
    0, 1, 2, 7, 8, 0xff, 0x100, 0xffff, 0x10000, 0x7fffffff, 0xffffffff, UINT64_C(1) << 40,
    (UINT64_C(1) << 40) - 1, (UINT64_C(1) << 48) - 1, (UINT64_C(1) << 56) - 1, UINT64_MAX,
    UINT64_C(0x8000000000000000), UINT64_C(0x5304000300000000), UINT64_C(0x5304000500000000),
    UINT64_C(0x8000010000000000), UINT64_C(0x8000020000000000), UINT64_C(0x8000030000000000),
    UINT64_C(0x8000040000000000), UINT64_C(0x8000060000000002), UINT64_C(0x0000050000000000),
};

static size_t mutate(uint8_t *buf, size_t size, size_t cap)
{
    int rounds = 1 + (int) rnd_below(8);
    for (int k = 0; k < rounds; k++)
    {
        switch (rnd_below(8))
        {
        case 0:   /* flip a bit */
            if (size)
                buf[rnd_below(size)] ^= (uint8_t) (1u << rnd_below(8));
            break;
        case 1:   /* set a byte */
            if (size)
                buf[rnd_below(size)] = (uint8_t) rnd();
            break;
        case 2:   /* an interesting 64-bit value, big-endian */
            if (size >= 8)
            {
                uint64_t v = interesting[rnd_below(sizeof(interesting) / sizeof(interesting[0]))];
                if (rnd() & 1)
                    v += rnd_below(3) - 1;
                size_t at = rnd_below(size - 7);
                for (int i = 0; i < 8; i++)
                    buf[at + i] = (uint8_t) (v >> (56 - 8 * i));
            }
            break;
        case 3:   /* delete a chunk */
            if (size > 1)
            {
                size_t at = rnd_below(size), n = 1 + rnd_below(size - at < 64 ? size - at : 64);
                memmove(buf + at, buf + at + n, size - at - n);
                size -= n;
            }
            break;
        case 4:   /* duplicate a chunk */
            if (size)
            {
                size_t at = rnd_below(size), n = 1 + rnd_below(size - at < 256 ? size - at : 256);
                if (size + n <= cap)
                {
                    size_t to = rnd_below(size + 1);
                    uint8_t tmp[256];
                    memcpy(tmp, buf + at, n);
                    memmove(buf + to + n, buf + to, size - to);
                    memcpy(buf + to, tmp, n);
                    size += n;
                }
            }
            break;
        case 5:   /* splice in a piece of another input */
        {
            const blob *o = &inputs[rnd_below(n_inputs)];
            if (o->size && size)
            {
                size_t from = rnd_below(o->size), n = 1 + rnd_below(o->size - from);
                size_t at = rnd_below(size);
                if (n > cap - at)
                    n = cap - at;
                memcpy(buf + at, o->data + from, n);
                if (at + n > size)
                    size = at + n;
            }
            break;
        }
        case 6:   /* a config byte */
            if (size >= 8)
                buf[rnd_below(8)] = (uint8_t) rnd();
            break;
        default:   /* truncate */
            if (size)
                size = rnd_below(size) + 1;
            break;
        }
    }
    return size;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    double seconds = 0;
    unsigned long long runs = 0;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++)
    {
        if (!strcmp(argv[i], "-t") && i + 1 < argc)
            seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "-n") && i + 1 < argc)
            runs = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "-s") && i + 1 < argc)
            rng_state = strtoull(argv[++i], NULL, 10) * 2 + 1;
        else if (!strcmp(argv[i], "-o") && i + 1 < argc)
            crash_dir = argv[++i];
        else
        {
            fprintf(stderr, "usage: %s [-t seconds] [-n runs] [-s seed] [-o crash_dir] inputs...\n", argv[0]);
            return 2;
        }
    }
    for (; i < argc; i++)
        load_path(argv[i]);
#ifdef HAVE_DEATH_CALLBACK
    __sanitizer_set_death_callback(on_failure);
#endif
    for (size_t k = 0; k < n_inputs; k++)
        run_input(inputs[k].data, inputs[k].size);
    printf("replayed %zu inputs\n", n_inputs);
    if ((seconds <= 0 && runs == 0) || n_inputs == 0)
        return 0;

    enum { CAP = 1 << 16 };
    uint8_t *buf = malloc(CAP);
    double start = now_s(), deadline = seconds > 0 ? start + seconds : 0;
    unsigned long long done = 0;
    while ((runs == 0 || done < runs) && (deadline == 0 || (done % 64 != 0 || now_s() < deadline)))
    {
        const blob *b = &inputs[rnd_below(n_inputs)];
        size_t size = b->size < CAP ? b->size : CAP;
        memcpy(buf, b->data, size);
        size = mutate(buf, size, CAP);
        run_input(buf, size);
        done++;
    }
    double took = now_s() - start;
    printf("ran %llu mutated inputs in %.1f s (%.0f/s)\n", done, took, done / (took > 0 ? took : 1));
    free(buf);
    return 0;
}
#endif
