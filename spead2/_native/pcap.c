/* Capture file replay: walks the records of a classic pcap or pcapng file, read in windows (the
 * caller refills the window when a record runs past its end), decodes the link, IPv4 and UDP
 * headers of each frame, applies a filter compiled by libpcap (classic BPF, bpf.c) and feeds the
 * UDP payloads to the kernel in batches.
 *
 * Everything read from the file is bounds-checked: a corrupt or truncated file ends the replay
 * with a reason, after feeding whatever came before. */
#include "internal.h"

#define BATCH 64
#define MAX_CAPLEN_DEFAULT 262144u      /* libpcap's largest snapshot length */
#define MAX_RECORD (64u << 20)          /* larger records or blocks are taken as corruption */

/* ---------------------------------------------------------------------------------------- */
/* Byte access */

static inline uint16_t le16(const uint8_t *p) { return (uint16_t) (p[0] | (p[1] << 8)); }
static inline uint32_t le32(const uint8_t *p)
{
    return (uint32_t) p[0] | ((uint32_t) p[1] << 8) | ((uint32_t) p[2] << 16) | ((uint32_t) p[3] << 24);
}

/* ---------------------------------------------------------------------------------------- */
/* The reader */

enum { FMT_PCAP, FMT_PCAPNG };

typedef struct link_entry {
    uint32_t linktype;
    uint32_t header_size;
} link_entry;

struct sp2_pcap_reader {
    const uint8_t *data;          /* the window: bytes of the file from some offset on */
    size_t size;
    size_t pos;                   /* the next record in the window */
    int at_eof;                   /* the window ends where the file does */
    uint64_t base;                /* offset in the file of the window */
    int need_more;                /* the next record runs past the window */
    int format;
    int swapped;                  /* fields are big-endian (pcap) / the section is (pcapng) */
    uint32_t linktype;            /* pcap: the file's; pcapng: of the first interface */
    uint32_t snaplen;
    uint32_t max_caplen;
    /* pcapng: link types of the interfaces of the current section */
    uint32_t *if_linktypes;
    uint32_t n_ifaces;
    uint32_t cap_ifaces;
    /* link types decoded as "IPv4 after a fixed-size header" */
    link_entry fixed[16];
    uint32_t n_fixed;
    sp2_bpf_insn *filter;
    uint32_t filter_len;
    uint32_t filter_linktype;
    /* the current batch: entries [next, ready) still to be fed */
    const uint8_t *ptrs[BATCH];
    size_t sizes[BATCH];
    size_t next;
    size_t ready;
    int eof;
    const char *error;
    sp2_pcap_counts counts;
};

int sp2_pcap_link_kind(uint32_t linktype)
{
    switch (linktype)
    {
    case 1: return SP2_LINK_ETHERNET;       /* LINKTYPE_ETHERNET */
    case 113: return SP2_LINK_SLL;          /* LINKTYPE_LINUX_SLL */
    case 276: return SP2_LINK_SLL2;         /* LINKTYPE_LINUX_SLL2 */
    case 101:                               /* LINKTYPE_RAW */
    case 228:                               /* LINKTYPE_IPV4 */
    case 12:                                /* DLT_RAW on most BSDs */
    case 14:                                /* DLT_RAW on OpenBSD */
        return SP2_LINK_RAW;
    case 0: return SP2_LINK_NULL;           /* LINKTYPE_NULL: host-endian AF_ */
    case 108: return SP2_LINK_LOOP;         /* LINKTYPE_LOOP: big-endian AF_ */
    default: return SP2_LINK_NONE;
    }
}

static uint32_t rd32(const sp2_pcap_reader *r, const uint8_t *p)
{
    return r->swapped ? sp2_load_be32(p) : le32(p);
}

static uint16_t rd16(const sp2_pcap_reader *r, const uint8_t *p)
{
    return r->swapped ? sp2_load_be16(p) : le16(p);
}

static int add_interface(sp2_pcap_reader *r, uint32_t linktype)
{
    if (r->n_ifaces == r->cap_ifaces)
    {
        uint32_t cap = r->cap_ifaces ? r->cap_ifaces * 2 : 4;
        uint32_t *grown = realloc(r->if_linktypes, cap * sizeof(uint32_t));
        if (!grown)
            return -1;
        r->if_linktypes = grown;
        r->cap_ifaces = cap;
    }
    r->if_linktypes[r->n_ifaces++] = linktype;
    return 0;
}

/* pcapng: the byte order of a section header block at data[0..], or -1. */
static int shb_swapped(const uint8_t *p, size_t avail)
{
    if (avail < 28)
        return -1;
    if (le32(p + 8) == 0x1A2B3C4Du)
        return 0;
    if (sp2_load_be32(p + 8) == 0x1A2B3C4Du)
        return 1;
    return -1;
}

int sp2_pcap_reader_new(const uint8_t *data, size_t size, sp2_pcap_reader **out, uint32_t *linktype,
                        uint32_t *snaplen, int *is_pcapng, const char **error)
{
    return sp2_pcap_reader_open(data, size, 1, out, linktype, snaplen, is_pcapng, error);
}

/* Classic pcap: the file header.  Returns NULL, or what is wrong. */
static const char *open_pcap(sp2_pcap_reader *r, uint32_t magic)
{
    r->format = FMT_PCAP;
    r->swapped = magic == 0xD4C3B2A1u || magic == 0x4D3CB2A1u;
    if (r->size < 24)
        return "truncated pcap file header";
    if (rd16(r, r->data + 4) != 2)
        return "unsupported pcap version (not 2.x)";
    r->snaplen = rd32(r, r->data + 16);
    r->linktype = rd32(r, r->data + 20) & 0x03FFFFFFu;
    r->pos = 24;
    return NULL;
}

/* pcapng: the link type (and snapshot length) of the first interface this walker decodes, else
 * of the first interface, among those described before the first packet (from pos on). */
static void pcapng_first_link(sp2_pcap_reader *r, size_t pos)
{
    r->linktype = 0xFFFFFFFFu;
    r->snaplen = 0;
    while (pos + 12 <= r->size)
    {
        const uint8_t *b = r->data + pos;
        uint32_t type = rd32(r, b);
        uint32_t len = rd32(r, b + 4);
        if (len < 12 || len % 4 != 0 || len > r->size - pos)
            break;
        if (type == 1 && len >= 20)
        {
            uint32_t lt = rd16(r, b + 8);
            if (r->linktype == 0xFFFFFFFFu
                || (sp2_pcap_link_kind(r->linktype) == SP2_LINK_NONE && sp2_pcap_link_kind(lt) != SP2_LINK_NONE))
            {
                r->linktype = lt;
                r->snaplen = rd32(r, b + 12);
            }
        }
        if (type == 2 || type == 3 || type == 6 || type == 0x0A0D0D0Au)
            break;
        pos += len;
    }
}

/* pcapng: the first section header.  Returns NULL, or what is wrong. */
static const char *open_pcapng(sp2_pcap_reader *r)
{
    r->format = FMT_PCAPNG;
    int sw = shb_swapped(r->data, r->size);
    if (sw < 0)
        return "corrupt pcapng section header block";
    r->swapped = sw;
    uint32_t block_len = rd32(r, r->data + 4);
    if (block_len < 28 || block_len % 4 != 0 || block_len > r->size)
        return "corrupt pcapng section header block";
    if (rd16(r, r->data + 12) != 1)
        return "unsupported pcapng version (not 1.x)";
    r->pos = 0;
    pcapng_first_link(r, block_len);
    return NULL;
}

int sp2_pcap_reader_open(const uint8_t *data, size_t size, int at_eof, sp2_pcap_reader **out,
                         uint32_t *linktype, uint32_t *snaplen, int *is_pcapng, const char **error)
{
    *out = NULL;
    *error = NULL;
    if (size < 4)
    {
        *error = "file too short to be a capture";
        return SP2_E_INVALID;
    }
    sp2_pcap_reader *r = calloc(1, sizeof(*r));
    if (!r)
        return SP2_E_NOMEM;
    r->data = data;
    r->size = size;
    r->at_eof = at_eof;
    uint32_t magic = le32(data);
    if (magic == 0xA1B2C3D4u || magic == 0xA1B23C4Du || magic == 0xD4C3B2A1u || magic == 0x4D3CB2A1u)
        *error = open_pcap(r, magic);
    else if (magic == 0x0A0D0D0Au)
        *error = open_pcapng(r);
    else
        *error = "unknown file format (not pcap or pcapng)";
    if (*error)
    {
        free(r);
        return SP2_E_INVALID;
    }
    r->max_caplen = r->snaplen > MAX_CAPLEN_DEFAULT ? r->snaplen : MAX_CAPLEN_DEFAULT;
    if (r->max_caplen > MAX_RECORD)
        r->max_caplen = MAX_RECORD;
    *linktype = r->linktype;
    *snaplen = r->snaplen;
    *is_pcapng = r->format == FMT_PCAPNG;
    *out = r;
    return SP2_OK;
}

void sp2_pcap_reader_free(sp2_pcap_reader *r)
{
    if (!r)
        return;
    free(r->if_linktypes);
    free(r->filter);
    free(r);
}

void sp2_pcap_reader_add_fixed_link(sp2_pcap_reader *r, uint32_t linktype, uint32_t header_size)
{
    if (r->n_fixed < sizeof(r->fixed) / sizeof(r->fixed[0]))
    {
        r->fixed[r->n_fixed].linktype = linktype;
        r->fixed[r->n_fixed].header_size = header_size;
        r->n_fixed++;
    }
}

int sp2_pcap_reader_set_filter(sp2_pcap_reader *r, uint32_t linktype, const sp2_bpf_insn *insns, uint32_t n)
{
    if (sp2_bpf_validate(insns, n) != 0)
        return SP2_E_INVALID;
    sp2_bpf_insn *copy = malloc(n * sizeof(*copy));
    if (!copy)
        return SP2_E_NOMEM;
    memcpy(copy, insns, n * sizeof(*copy));
    free(r->filter);
    r->filter = copy;
    r->filter_len = n;
    r->filter_linktype = linktype;
    return SP2_OK;
}

void sp2_pcap_reader_counts(sp2_pcap_reader *r, sp2_pcap_counts *out)
{
    *out = r->counts;
}

size_t sp2_pcap_reader_window_pos(sp2_pcap_reader *r)
{
    return r->pos;
}

uint64_t sp2_pcap_reader_offset(sp2_pcap_reader *r)
{
    return r->base + r->pos;
}

void sp2_pcap_reader_set_window(sp2_pcap_reader *r, const uint8_t *data, size_t size, int at_eof)
{
    r->base += r->pos;            /* the new window starts where the next record does */
    r->data = data;
    r->size = size;
    r->pos = 0;
    r->at_eof = at_eof;
    r->need_more = 0;
}

static void skip(sp2_pcap_reader *r, int why)
{
    r->counts.skipped[why]++;
}

/* IPv4 + UDP: queues the datagram of a frame whose IPv4 header starts at ip. */
static void decode_ipv4(sp2_pcap_reader *r, const uint8_t *ip, size_t avail, uint32_t wire_avail)
{
    if (avail < 20 || (ip[0] >> 4) != 4)
    {
        skip(r, SP2_PCAP_SKIP_NOT_UDP);
        return;
    }
    size_t ihl = (size_t) (ip[0] & 0x0f) * 4;
    if (ihl < 20)
    {
        skip(r, SP2_PCAP_SKIP_BAD_LENGTH);
        return;
    }
    if (ip[9] != 17)
    {
        skip(r, SP2_PCAP_SKIP_NOT_UDP);
        return;
    }
    if (sp2_load_be16(ip + 6) & 0x3fff)    /* more fragments, or a fragment offset */
    {
        skip(r, SP2_PCAP_SKIP_FRAGMENT);
        return;
    }
    size_t total = sp2_load_be16(ip + 2);
    if (total < ihl + 8 || total > wire_avail)
    {
        skip(r, SP2_PCAP_SKIP_BAD_LENGTH);
        return;
    }
    if (total > avail)
    {
        skip(r, SP2_PCAP_SKIP_TRUNCATED);
        return;
    }
    const uint8_t *udp = ip + ihl;
    size_t ulen = sp2_load_be16(udp + 4);
    if (ulen < 8 || ulen > total - ihl)
    {
        skip(r, SP2_PCAP_SKIP_BAD_LENGTH);
        return;
    }
    r->ptrs[r->ready] = udp + 8;
    r->sizes[r->ready] = ulen - 8;
    r->ready++;
    r->counts.datagrams++;
}

enum { LINK_OK = -1 };

/* Ethernet, with up to two VLAN tags (802.1Q, 802.1ad): where IPv4 starts, or why not. */
static int ethernet_offset(const uint8_t *f, uint32_t caplen, size_t *off)
{
    if (caplen < 14)
        return SP2_PCAP_SKIP_TRUNCATED;
    uint16_t type = sp2_load_be16(f + 12);
    *off = 14;
    for (int tags = 0; tags < 2 && (type == 0x8100 || type == 0x88a8 || type == 0x9100); tags++)
    {
        if (caplen < *off + 4)
            return SP2_PCAP_SKIP_TRUNCATED;
        type = sp2_load_be16(f + *off + 2);
        *off += 4;
    }
    return type == 0x0800 ? LINK_OK : SP2_PCAP_SKIP_NOT_UDP;
}

/* A header of a fixed size and link type only (e.g. SLL's protocol field): where IPv4 starts. */
static int typed_offset(const uint8_t *f, uint32_t caplen, uint32_t size, uint32_t type_at, size_t *off)
{
    if (caplen < size)
        return SP2_PCAP_SKIP_TRUNCATED;
    *off = size;
    return sp2_load_be16(f + type_at) == 0x0800 ? LINK_OK : SP2_PCAP_SKIP_NOT_UDP;
}

/* BSD loopback: AF_INET is 2 everywhere; NULL is in the capturing host's byte order. */
static int loopback_offset(uint32_t linktype, const uint8_t *f, uint32_t caplen, size_t *off)
{
    if (caplen < 4)
        return SP2_PCAP_SKIP_TRUNCATED;
    *off = 4;
    int inet = sp2_load_be32(f) == 2 || (linktype == 0 && le32(f) == 2);
    return inet ? LINK_OK : SP2_PCAP_SKIP_NOT_UDP;
}

static int fixed_offset(const sp2_pcap_reader *r, uint32_t linktype, uint32_t caplen, size_t *off)
{
    for (uint32_t i = 0; i < r->n_fixed; i++)
        if (r->fixed[i].linktype == linktype)
        {
            *off = r->fixed[i].header_size;
            return caplen < *off ? SP2_PCAP_SKIP_TRUNCATED : LINK_OK;
        }
    return SP2_PCAP_SKIP_LINKTYPE;
}

/* Where the IPv4 header of a frame starts (LINK_OK), or why the frame is skipped. */
static int link_offset(const sp2_pcap_reader *r, uint32_t linktype, const uint8_t *f, uint32_t caplen, size_t *off)
{
    switch (sp2_pcap_link_kind(linktype))
    {
    case SP2_LINK_ETHERNET: return ethernet_offset(f, caplen, off);
    case SP2_LINK_SLL: return typed_offset(f, caplen, 16, 14, off);
    case SP2_LINK_SLL2: return typed_offset(f, caplen, 20, 0, off);
    case SP2_LINK_RAW: *off = 0; return LINK_OK;
    case SP2_LINK_NULL:
    case SP2_LINK_LOOP: return loopback_offset(linktype, f, caplen, off);
    default: return fixed_offset(r, linktype, caplen, off);
    }
}

/* One frame: filters it, strips the link header and decodes the rest. */
static void decode_frame(sp2_pcap_reader *r, uint32_t linktype, const uint8_t *f, uint32_t caplen,
                         uint32_t wirelen)
{
    r->counts.records++;
    if (caplen > wirelen)         /* as libpcap: never more than was on the wire */
        caplen = wirelen;
    if (r->filter && linktype != r->filter_linktype)
    {
        skip(r, SP2_PCAP_SKIP_LINKTYPE);
        return;
    }
    if (r->filter && !sp2_bpf_run(r->filter, f, wirelen, caplen))
    {
        skip(r, SP2_PCAP_SKIP_FILTERED);
        return;
    }
    size_t off = 0;
    int why = link_offset(r, linktype, f, caplen, &off);
    if (why == SP2_PCAP_SKIP_TRUNCATED && caplen >= wirelen)
        why = SP2_PCAP_SKIP_NOT_UDP;   /* a whole frame too short for its link header */
    if (why != LINK_OK)
        skip(r, why);
    else
        decode_ipv4(r, f + off, caplen - off, wirelen - (uint32_t) off);
}

/* The next record or block runs past the window: ask for more, or end (with `truncated` as the
 * reason if any bytes are left). */
static int out_of_window(sp2_pcap_reader *r, size_t left, const char *truncated)
{
    if (!r->at_eof)
        r->need_more = 1;
    else
    {
        r->eof = 1;
        if (left > 0)
            r->error = truncated;
    }
    return 0;
}

static int fail(sp2_pcap_reader *r, const char *why)
{
    r->eof = 1;
    r->error = why;
    return 0;
}

/* Classic pcap: the next record.  Returns 1 if one was decoded, 0 at the end (r->eof set). */
static int next_pcap(sp2_pcap_reader *r)
{
    size_t left = r->size - r->pos;
    if (left < 16)
        return out_of_window(r, left, "truncated record header");
    const uint8_t *h = r->data + r->pos;
    uint32_t caplen = rd32(r, h + 8);
    uint32_t wirelen = rd32(r, h + 12);
    if (caplen > r->max_caplen)
        return fail(r, "corrupt record header (capture length larger than the snapshot length)");
    if (caplen > left - 16)
        return out_of_window(r, left, "truncated record");
    r->pos += 16 + (size_t) caplen;
    decode_frame(r, r->linktype, h + 16, caplen, wirelen);
    return 1;
}

/* pcapng: the type and length of the block at the reader's position (a section header gives
 * its own byte order in *swapped).  Returns 1, or 0 if there is none (more needed, or the end). */
static int block_header(sp2_pcap_reader *r, uint32_t *type, uint32_t *len, int *swapped)
{
    size_t left = r->size - r->pos;
    const uint8_t *b = r->data + r->pos;
    if (left < 12)
        return out_of_window(r, left, "truncated block");
    *type = le32(b);
    *swapped = r->swapped;
    if (*type == 0x0A0D0D0Au)
    {
        /* a new section: its own byte order and interfaces */
        if (left < 28 && !r->at_eof)
            return out_of_window(r, left, NULL);
        *swapped = shb_swapped(b, left);
        if (*swapped < 0)
            return fail(r, "corrupt section header block");
    }
    else
        *type = rd32(r, b);
    *len = *swapped ? sp2_load_be32(b + 4) : le32(b + 4);
    if (*len < 12 || *len % 4 != 0 || *len > MAX_RECORD + 64)
        return fail(r, "corrupt block length");
    if (*len > left)
        return out_of_window(r, left, "truncated block");
    return 1;
}

/* pcapng: a packet block (enhanced, simple or the obsolete kind) of body bytes at p. */
static int packet_block(sp2_pcap_reader *r, uint32_t type, const uint8_t *p, size_t body)
{
    if (type == 3)
    {
        /* simple packet: interface 0, captured up to its snaplen */
        if (body < 4)
            return fail(r, "corrupt packet block");
        if (r->n_ifaces == 0)
            return fail(r, "packet block for an undeclared interface");
        uint32_t wirelen = rd32(r, p);
        uint32_t caplen = wirelen < body - 4 ? wirelen : (uint32_t) (body - 4);
        decode_frame(r, r->if_linktypes[0], p + 4, caplen, wirelen);
        return 1;
    }
    if (body < 20)
        return fail(r, "corrupt packet block");
    uint32_t iface = type == 6 ? rd32(r, p) : rd16(r, p);
    uint32_t caplen = rd32(r, p + 12);
    uint32_t wirelen = rd32(r, p + 16);
    if (caplen > body - 20)
        return fail(r, "corrupt packet block");
    if (iface >= r->n_ifaces)
        return fail(r, "packet block for an undeclared interface");
    decode_frame(r, r->if_linktypes[iface], p + 20, caplen, wirelen);
    return 1;
}

/* pcapng: the next block.  Returns 1 if a block was consumed, 0 at the end (r->eof set). */
static int next_pcapng(sp2_pcap_reader *r)
{
    uint32_t type, len;
    int swapped;
    if (!block_header(r, &type, &len, &swapped))
        return 0;
    size_t body = len - 12;       /* between the length fields */
    const uint8_t *p = r->data + r->pos + 8;
    r->pos += len;
    switch (type)
    {
    case 0x0A0D0D0Au:             /* section header */
        r->swapped = swapped;
        r->n_ifaces = 0;
        return 1;
    case 1:                       /* interface description */
        if (body < 8)
            return fail(r, "corrupt packet block");
        if (add_interface(r, rd16(r, p)) != 0)
            return fail(r, "out of memory");
        return 1;
    case 2:                       /* packet (obsolete) */
    case 3:                       /* simple packet */
    case 6:                       /* enhanced packet */
        return packet_block(r, type, p, body);
    default:                      /* statistics, name resolution, ... */
        return 1;
    }
}

/* Feeds the rest of the current batch. */
static int feed(sp2_pcap_reader *r, sp2_stream *s)
{
    if (r->next >= r->ready)
    {
        r->next = r->ready = 0;
        return SP2_OK;
    }
    size_t consumed = 0;
    int status = sp2_stream_add_datagrams(s, r->ptrs + r->next, r->sizes + r->next, r->ready - r->next,
                                          &consumed);
    r->next += consumed;
    if (status == SP2_STOPPED || r->next >= r->ready)
        r->next = r->ready = 0;
    return status;
}

int sp2_pcap_reader_run(sp2_pcap_reader *r, sp2_stream *s, uint64_t max_records, int *ended,
                        const char **error)
{
    int need_more;
    return sp2_pcap_reader_run_window(r, s, max_records, ended, &need_more, error);
}

int sp2_pcap_reader_run_window(sp2_pcap_reader *r, sp2_stream *s, uint64_t max_records, int *ended,
                               int *need_more, const char **error)
{
    *ended = 0;
    *need_more = 0;
    *error = NULL;
    int status = feed(r, s);
    if (status != SP2_OK)
        return status;
    uint64_t done = 0;
    while (!r->eof && !r->need_more && done < max_records)
    {
        int more = r->format == FMT_PCAP ? next_pcap(r) : next_pcapng(r);
        if (more)
            done++;
        if (r->ready == BATCH || ((r->eof || r->need_more) && r->ready > 0))
        {
            status = feed(r, s);
            if (status != SP2_OK)
                return status;
        }
    }
    if (r->ready > r->next)
    {
        status = feed(r, s);
        if (status != SP2_OK)
            return status;
    }
    if (r->eof)
    {
        *ended = 1;
        *error = r->error;
    }
    *need_more = r->need_more;    /* (only now: the batch pointing into the window is fed) */
    return SP2_OK;
}
