/* Fuzz target for the capture-file walker and the classic BPF interpreter (pcap.c).
 *
 * Input: one mode byte, then
 *   mode % 4 == 0, 1: a capture file (pcap or pcapng), replayed into a stream in chunks of
 *                     1 + mode / 4 records; mode 1 also sets a filter (accept UDP only) and a
 *                     fixed-size link type;
 *   mode % 4 == 2:    a BPF program: byte 1 = instruction count n, then n 8-byte instructions,
 *                     then a frame; a program the validator accepts is run over the frame with
 *                     a random wire length;
 *   mode % 4 == 3:    a frame, run through one of a few fixed valid programs (mode / 4 picks)
 *                     that read where the frame says (past its end, through X, scratch
 *                     memory, a division by a register that may be zero).
 *
 * The walker reads a file held in memory whose contents are all hostile: everything it reads
 * must stay inside the buffer (AddressSanitizer), its counts must add up, and the datagrams it
 * hands the kernel go through the kernel's own checks. */
#include "internal.h"

#include <stdio.h>

#define CHECK(cond)                                                                              \
    do                                                                                           \
    {                                                                                            \
        if (!(cond))                                                                             \
        {                                                                                        \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond);         \
            abort();                                                                             \
        }                                                                                        \
    } while (0)

/* "udp": ldh [12]; jeq #0x800 jt 0 jf 3; ldb [23]; jeq #17 jt 0 jf 1; ret #262144; ret #0 */
static const sp2_bpf_insn UDP_ONLY[] = {
    {0x28, 0, 0, 12}, {0x15, 0, 3, 0x800}, {0x30, 0, 0, 23}, {0x15, 0, 1, 17}, {0x06, 0, 0, 262144}, {0x06, 0, 0, 0},
};

/* Programs that read where the frame decides: past its end for most frames. */
static const sp2_bpf_insn READ_AT_LEN[] = {
    {0x80, 0, 0, 0},     /* ld #len */
    {0x07, 0, 0, 0},     /* tax */
    {0x50, 0, 0, 0},     /* ldb [x + 0] */
    {0x48, 0, 0, 0},     /* ldh [x + 0] */
    {0x06, 0, 0, 1},     /* ret #1 */
};
static const sp2_bpf_insn READ_IP[] = {
    {0xb1, 0, 0, 14},    /* ldxb 4 * ([14] & 0xf) */
    {0x40, 0, 0, 14},    /* ld [x + 14] */
    {0x48, 0, 0, 16},    /* ldh [x + 16] */
    {0x02, 0, 0, 3},     /* st M[3] */
    {0x61, 0, 0, 3},     /* ldx M[3] */
    {0x50, 0, 0, 0},     /* ldb [x + 0] */
    {0x3c, 0, 0, 0},     /* div x (x may be 0) */
    {0x94, 0, 0, 7},     /* mod #7 */
    {0x16, 0, 0, 0},     /* ret a */
};
static const struct {
    const sp2_bpf_insn *insns;
    uint32_t n;
} PROGRAMS[] = {
    {READ_AT_LEN, sizeof(READ_AT_LEN) / sizeof(READ_AT_LEN[0])},
    {READ_IP, sizeof(READ_IP) / sizeof(READ_IP[0])},
    {UDP_ONLY, sizeof(UDP_ONLY) / sizeof(UDP_ONLY[0])},
};

static void replay(const uint8_t *data, size_t size, int with_filter, uint64_t chunk)
{
    sp2_pcap_reader *r;
    uint32_t linktype, snaplen;
    int is_ng;
    const char *error = NULL;
    int ret = sp2_pcap_reader_new(data, size, &r, &linktype, &snaplen, &is_ng, &error);
    if (ret != SP2_OK)
    {
        CHECK(ret == SP2_E_INVALID && error != NULL && r == NULL);
        return;
    }
    if (with_filter)
    {
        CHECK(sp2_pcap_reader_set_filter(r, 1, UDP_ONLY, sizeof(UDP_ONLY) / sizeof(UDP_ONLY[0])) == SP2_OK);
        sp2_pcap_reader_add_fixed_link(r, 147, 4);
    }
    sp2_config cfg;
    sp2_config_init(&cfg);
    cfg.ring_heaps = 4;
    cfg.max_heap_size = 1 << 20;
    sp2_stream *s;
    CHECK(sp2_stream_new(&cfg, NULL, &s) == SP2_OK);
    uint64_t records = 0;
    for (int guard = 0; guard < 100000; guard++)
    {
        int ended = 0;
        error = NULL;
        ret = sp2_pcap_reader_run(r, s, chunk, &ended, &error);
        CHECK(ret == SP2_OK || ret == SP2_FULL || ret == SP2_STOPPED);
        sp2_pcap_counts counts;
        sp2_pcap_reader_counts(r, &counts);
        CHECK(counts.records >= records);   /* progress is monotonic */
        records = counts.records;
        CHECK(sp2_pcap_reader_offset(r) <= size);
        for (sp2_heap *h; (h = sp2_ring_pop(s, 0)) != NULL;)
            sp2_heap_free(h);
        if (ended || error || ret == SP2_STOPPED)
            break;
    }
    sp2_pcap_counts counts;
    sp2_pcap_reader_counts(r, &counts);
    uint64_t skipped = 0;
    for (int i = 0; i < SP2_PCAP_SKIP_COUNT; i++)
        skipped += counts.skipped[i];
    CHECK(counts.datagrams + skipped <= counts.records);
    sp2_stats st;
    sp2_stream_stop_received(s);
    sp2_stream_get_stats(s, &st);
    uint64_t seen = st.packets;
    for (int i = SP2_DROP_NONE + 1; i <= SP2_DROP_TOO_LARGE; i++)
        if (i != SP2_DROP_BEYOND_HEAP && i != SP2_DROP_BAD_FLAVOUR)
            seen += st.drops[i];
    CHECK(seen <= counts.datagrams);   /* the stream saw no more datagrams than were handed over */
    for (sp2_heap *h; (h = sp2_ring_pop(s, 0)) != NULL;)
        sp2_heap_free(h);
    sp2_stream_free(s);
    sp2_pcap_reader_free(r);
}

static void bpf(const uint8_t *data, size_t size)
{
    if (size < 1)
        return;
    uint32_t n = data[0];
    data++;
    size--;
    if ((size_t) n * 8 > size)
        n = (uint32_t) (size / 8);
    sp2_bpf_insn *insns = malloc((n ? n : 1) * sizeof(*insns));
    CHECK(insns != NULL);
    for (uint32_t i = 0; i < n; i++)
    {
        const uint8_t *p = data + 8 * (size_t) i;
        insns[i].code = (uint16_t) (p[0] | (p[1] << 8));
        insns[i].jt = p[2];
        insns[i].jf = p[3];
        insns[i].k = (uint32_t) p[4] | ((uint32_t) p[5] << 8) | ((uint32_t) p[6] << 16) | ((uint32_t) p[7] << 24);
    }
    const uint8_t *frame = data + 8 * (size_t) n;
    size_t caplen = size - 8 * (size_t) n;
    /* an exact-size copy, so that ASan sees a read one byte past the frame */
    uint8_t *copy = malloc(caplen ? caplen : 1);
    CHECK(copy != NULL);
    memcpy(copy, frame, caplen);
    if (sp2_bpf_validate(insns, n) == 0)
    {
        uint32_t wire = (uint32_t) caplen + (caplen ? copy[0] : 0);
        (void) sp2_bpf_run(insns, copy, wire, (uint32_t) caplen);
    }
    free(copy);
    free(insns);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    data++;
    size--;
    switch (mode % 4)
    {
    case 0:
    case 1:
    {
        /* the walker is given an exact-size copy: a read past the end is an ASan report */
        uint8_t *copy = malloc(size ? size : 1);
        CHECK(copy != NULL);
        memcpy(copy, data, size);
        replay(copy, size, mode % 4 == 1, 1 + mode / 4);
        free(copy);
        break;
    }
    case 2:
        bpf(data, size);
        break;
    default:
    {
        uint32_t which = (mode / 4) % (sizeof(PROGRAMS) / sizeof(PROGRAMS[0]));
        CHECK(sp2_bpf_validate(PROGRAMS[which].insns, PROGRAMS[which].n) == 0);
        uint8_t *copy = malloc(size ? size : 1);
        CHECK(copy != NULL);
        memcpy(copy, data, size);
        uint32_t wire = (uint32_t) size + (size ? copy[0] : 0);
        (void) sp2_bpf_run(PROGRAMS[which].insns, copy, wire, (uint32_t) size);
        free(copy);
        break;
    }
    }
    return 0;
}
