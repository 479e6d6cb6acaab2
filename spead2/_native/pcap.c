/* Capture file replay: walks the records of a classic pcap or pcapng file, read in windows (the
 * caller refills the window when a record runs past its end), decodes the link, IPv4 and UDP headers of each frame, applies a filter
 * compiled by libpcap (classic BPF) and feeds the UDP payloads to the kernel in batches.
 *
 * Everything read from the file is bounds-checked: a corrupt or truncated file ends the replay
 * with a reason, after feeding whatever came before. */
#include "internal.h"

#define BATCH 64
#define MAX_CAPLEN_DEFAULT 262144u      /* libpcap's largest snapshot length */
#define MAX_RECORD (64u << 20)          /* larger records or blocks are taken as corruption */

/* ---------------------------------------------------------------------------------------- */
/* Byte access */

static inline uint16_t be16(const uint8_t *p) { return (uint16_t) ((p[0] << 8) | p[1]); }
static inline uint32_t be32(const uint8_t *p)
{
    return ((uint32_t) p[0] << 24) | ((uint32_t) p[1] << 16) | ((uint32_t) p[2] << 8) | p[3];
}
static inline uint16_t le16(const uint8_t *p) { return (uint16_t) (p[0] | (p[1] << 8)); }
static inline uint32_t le32(const uint8_t *p)
{
    return (uint32_t) p[0] | ((uint32_t) p[1] << 8) | ((uint32_t) p[2] << 16) | ((uint32_t) p[3] << 24);
}

/* ---------------------------------------------------------------------------------------- */
/* Classic BPF (the subset libpcap emits for offline filtering) */

enum {
    BPF_LD = 0x00, BPF_LDX = 0x01, BPF_ST = 0x02, BPF_STX = 0x03,
    BPF_ALU = 0x04, BPF_JMP = 0x05, BPF_RET = 0x06, BPF_MISC = 0x07,
    BPF_W = 0x00, BPF_H = 0x08, BPF_B = 0x10,
    BPF_IMM = 0x00, BPF_ABS = 0x20, BPF_IND = 0x40, BPF_MEM = 0x60, BPF_LEN = 0x80, BPF_MSH = 0xa0,
    BPF_ADD = 0x00, BPF_SUB = 0x10, BPF_MUL = 0x20, BPF_DIV = 0x30, BPF_OR = 0x40, BPF_AND = 0x50,
    BPF_LSH = 0x60, BPF_RSH = 0x70, BPF_NEG = 0x80, BPF_MOD = 0x90, BPF_XOR = 0xa0,
    BPF_JA = 0x00, BPF_JEQ = 0x10, BPF_JGT = 0x20, BPF_JGE = 0x30, BPF_JSET = 0x40,
    BPF_K = 0x00, BPF_X = 0x08, BPF_A = 0x10,
    BPF_TAX = 0x00, BPF_TXA = 0x80,
    BPF_MEMWORDS = 16
};

#define BPF_CLASS(c) ((c) & 0x07)
#define BPF_SIZE(c) ((c) & 0x18)
#define BPF_MODE(c) ((c) & 0xe0)
#define BPF_OP(c) ((c) & 0xf0)
#define BPF_SRC(c) ((c) & 0x08)
#define BPF_RVAL(c) ((c) & 0x18)
#define BPF_MISCOP(c) ((c) & 0xf8)

int sp2_bpf_validate(const sp2_bpf_insn *insns, uint32_t n)
{
    if (n == 0 || n > 65536)
        return -1;
    for (uint32_t pc = 0; pc < n; pc++)
    {
        const sp2_bpf_insn *p = &insns[pc];
        uint16_t c = p->code;
        switch (BPF_CLASS(c))
        {
        case BPF_LD:
        case BPF_LDX:
            switch (BPF_MODE(c))
            {
            case BPF_IMM:
            case BPF_LEN:
                break;
            case BPF_ABS:
            case BPF_IND:
            case BPF_MSH:
                if (BPF_CLASS(c) == BPF_LDX && BPF_MODE(c) != BPF_MSH)
                    return -1;
                if (BPF_MODE(c) == BPF_MSH && (BPF_CLASS(c) != BPF_LDX || BPF_SIZE(c) != BPF_B))
                    return -1;
                if (BPF_SIZE(c) != BPF_W && BPF_SIZE(c) != BPF_H && BPF_SIZE(c) != BPF_B)
                    return -1;
                break;
            case BPF_MEM:
                if (p->k >= BPF_MEMWORDS)
                    return -1;
                break;
            default:
                return -1;
            }
            break;
        case BPF_ST:
        case BPF_STX:
            if (p->k >= BPF_MEMWORDS)
                return -1;
            break;
        case BPF_ALU:
            switch (BPF_OP(c))
            {
            case BPF_ADD: case BPF_SUB: case BPF_MUL: case BPF_OR: case BPF_AND:
            case BPF_LSH: case BPF_RSH: case BPF_NEG: case BPF_XOR:
                break;
            case BPF_DIV:
            case BPF_MOD:
                if (BPF_SRC(c) == BPF_K && p->k == 0)
                    return -1;
                break;
            default:
                return -1;
            }
            break;
        case BPF_JMP:
            if (BPF_OP(c) == BPF_JA)
            {
                if (p->k >= n - pc - 1)
                    return -1;
            }
            else
            {
                switch (BPF_OP(c))
                {
                case BPF_JEQ: case BPF_JGT: case BPF_JGE: case BPF_JSET:
                    break;
                default:
                    return -1;
                }
                if ((uint32_t) p->jt >= n - pc - 1 || (uint32_t) p->jf >= n - pc - 1)
                    return -1;
            }
            break;
        case BPF_RET:
            break;
        case BPF_MISC:
            if (BPF_MISCOP(c) != BPF_TAX && BPF_MISCOP(c) != BPF_TXA)
                return -1;
            break;
        default:
            return -1;
        }
    }
    return BPF_CLASS(insns[n - 1].code) == BPF_RET ? 0 : -1;
}

uint32_t sp2_bpf_run(const sp2_bpf_insn *insns, const uint8_t *frame, uint32_t wirelen, uint32_t caplen)
{
    uint32_t a = 0, x = 0, mem[BPF_MEMWORDS] = {0};
    const sp2_bpf_insn *pc = insns;
    for (;; pc++)
    {
        uint16_t c = pc->code;
        uint32_t k = pc->k;
        uint32_t off;
        switch (BPF_CLASS(c))
        {
        case BPF_RET:
            return BPF_RVAL(c) == BPF_A ? a : k;
        case BPF_LD:
            switch (BPF_MODE(c))
            {
            case BPF_IMM: a = k; break;
            case BPF_LEN: a = wirelen; break;
            case BPF_MEM: a = mem[k]; break;
            default:     /* ABS / IND */
                off = k;
                if (BPF_MODE(c) == BPF_IND)
                {
                    if (x > UINT32_MAX - k)
                        return 0;
                    off = k + x;
                }
                switch (BPF_SIZE(c))
                {
                case BPF_W:
                    if (off > caplen || caplen - off < 4)
                        return 0;
                    a = be32(frame + off);
                    break;
                case BPF_H:
                    if (off > caplen || caplen - off < 2)
                        return 0;
                    a = be16(frame + off);
                    break;
                default:
                    if (off >= caplen)
                        return 0;
                    a = frame[off];
                    break;
                }
            }
            break;
        case BPF_LDX:
            switch (BPF_MODE(c))
            {
            case BPF_IMM: x = k; break;
            case BPF_LEN: x = wirelen; break;
            case BPF_MEM: x = mem[k]; break;
            default:     /* MSH: 4 * (frame[k] & 0xf) */
                if (k >= caplen)
                    return 0;
                x = (uint32_t) (frame[k] & 0xf) << 2;
                break;
            }
            break;
        case BPF_ST: mem[k] = a; break;
        case BPF_STX: mem[k] = x; break;
        case BPF_ALU:
        {
            uint32_t v = BPF_SRC(c) == BPF_X ? x : k;
            switch (BPF_OP(c))
            {
            case BPF_ADD: a += v; break;
            case BPF_SUB: a -= v; break;
            case BPF_MUL: a *= v; break;
            case BPF_DIV: if (v == 0) return 0; a /= v; break;
            case BPF_MOD: if (v == 0) return 0; a %= v; break;
            case BPF_OR: a |= v; break;
            case BPF_AND: a &= v; break;
            case BPF_XOR: a ^= v; break;
            case BPF_LSH: a = v < 32 ? a << v : 0; break;
            case BPF_RSH: a = v < 32 ? a >> v : 0; break;
            default: a = (uint32_t) -a; break;    /* NEG */
            }
            break;
        }
        case BPF_JMP:
        {
            if (BPF_OP(c) == BPF_JA)
            {
                pc += k;
                break;
            }
            uint32_t v = BPF_SRC(c) == BPF_X ? x : k;
            int cond;
            switch (BPF_OP(c))
            {
            case BPF_JEQ: cond = a == v; break;
            case BPF_JGT: cond = a > v; break;
            case BPF_JGE: cond = a >= v; break;
            default: cond = (a & v) != 0; break;  /* JSET */
            }
            pc += cond ? pc->jt : pc->jf;
            break;
        }
        default:          /* MISC */
            if (BPF_MISCOP(c) == BPF_TAX)
                x = a;
            else
                a = x;
            break;
        }
    }
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
    return r->swapped ? be32(p) : le32(p);
}

static uint16_t rd16(const sp2_pcap_reader *r, const uint8_t *p)
{
    return r->swapped ? be16(p) : le16(p);
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
    if (be32(p + 8) == 0x1A2B3C4Du)
        return 1;
    return -1;
}

int sp2_pcap_reader_new(const uint8_t *data, size_t size, sp2_pcap_reader **out, uint32_t *linktype,
                        uint32_t *snaplen, int *is_pcapng, const char **error)
{
    return sp2_pcap_reader_open(data, size, 1, out, linktype, snaplen, is_pcapng, error);
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
    {
        r->format = FMT_PCAP;
        r->swapped = magic == 0xD4C3B2A1u || magic == 0x4D3CB2A1u;
        if (size < 24)
        {
            *error = "truncated pcap file header";
            goto invalid;
        }
        if (rd16(r, data + 4) != 2)
        {
            *error = "unsupported pcap version (not 2.x)";
            goto invalid;
        }
        r->snaplen = rd32(r, data + 16);
        r->linktype = rd32(r, data + 20) & 0x03FFFFFFu;
        r->pos = 24;
    }
    else if (magic == 0x0A0D0D0Au)
    {
        r->format = FMT_PCAPNG;
        int sw = shb_swapped(data, size);
        if (sw < 0)
        {
            *error = "corrupt pcapng section header block";
            goto invalid;
        }
        r->swapped = sw;
        uint32_t block_len = rd32(r, data + 4);
        if (block_len < 28 || block_len % 4 != 0 || block_len > size)
        {
            *error = "corrupt pcapng section header block";
            goto invalid;
        }
        if (rd16(r, data + 12) != 1)
        {
            *error = "unsupported pcapng version (not 1.x)";
            goto invalid;
        }
        r->pos = 0;
        r->linktype = 0xFFFFFFFFu;
        r->snaplen = 0;
        /* The link type of the first interface this walker decodes (else of the first
         * interface), among those described before the first packet. */
        size_t pos = block_len;
        while (pos + 12 <= size)
        {
            uint32_t type = rd32(r, data + pos);
            uint32_t len = rd32(r, data + pos + 4);
            if (len < 12 || len % 4 != 0 || len > size - pos)
                break;
            if (type == 1 && len >= 20)
            {
                uint32_t lt = rd16(r, data + pos + 8);
                if (r->linktype == 0xFFFFFFFFu
                    || (sp2_pcap_link_kind(r->linktype) == SP2_LINK_NONE && sp2_pcap_link_kind(lt) != SP2_LINK_NONE))
                {
                    r->linktype = lt;
                    r->snaplen = rd32(r, data + pos + 12);
                }
            }
            if (type == 2 || type == 3 || type == 6 || type == 0x0A0D0D0Au)
                break;
            pos += len;
        }
    }
    else
    {
        *error = "unknown file format (not pcap or pcapng)";
        goto invalid;
    }
    r->max_caplen = r->snaplen > MAX_CAPLEN_DEFAULT ? r->snaplen : MAX_CAPLEN_DEFAULT;
    if (r->max_caplen > MAX_RECORD)
        r->max_caplen = MAX_RECORD;
    *linktype = r->linktype;
    *snaplen = r->snaplen;
    *is_pcapng = r->format == FMT_PCAPNG;
    *out = r;
    return SP2_OK;

invalid:
    free(r);
    return SP2_E_INVALID;
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
    if (be16(ip + 6) & 0x3fff)    /* more fragments, or a fragment offset */
    {
        skip(r, SP2_PCAP_SKIP_FRAGMENT);
        return;
    }
    size_t total = be16(ip + 2);
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
    size_t ulen = be16(udp + 4);
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

/* One frame: strips the link header and decodes the rest. */
static void decode_frame(sp2_pcap_reader *r, uint32_t linktype, const uint8_t *f, uint32_t caplen,
                         uint32_t wirelen)
{
    r->counts.records++;
    if (caplen > wirelen)         /* as libpcap: never more than was on the wire */
        caplen = wirelen;
    if (r->filter)
    {
        if (linktype != r->filter_linktype)
        {
            skip(r, SP2_PCAP_SKIP_LINKTYPE);
            return;
        }
        if (!sp2_bpf_run(r->filter, f, wirelen, caplen))
        {
            skip(r, SP2_PCAP_SKIP_FILTERED);
            return;
        }
    }
    size_t off;
    switch (sp2_pcap_link_kind(linktype))
    {
    case SP2_LINK_ETHERNET:
    {
        if (caplen < 14)
            goto truncated;
        uint16_t type = be16(f + 12);
        off = 14;
        /* up to two VLAN tags (802.1Q, 802.1ad) */
        for (int tags = 0; tags < 2 && (type == 0x8100 || type == 0x88a8 || type == 0x9100); tags++)
        {
            if (caplen < off + 4)
                goto truncated;
            type = be16(f + off + 2);
            off += 4;
        }
        if (type != 0x0800)
            goto not_udp;
        break;
    }
    case SP2_LINK_SLL:
        if (caplen < 16)
            goto truncated;
        if (be16(f + 14) != 0x0800)
            goto not_udp;
        off = 16;
        break;
    case SP2_LINK_SLL2:
        if (caplen < 20)
            goto truncated;
        if (be16(f) != 0x0800)
            goto not_udp;
        off = 20;
        break;
    case SP2_LINK_RAW:
        off = 0;
        break;
    case SP2_LINK_NULL:
    case SP2_LINK_LOOP:
    {
        if (caplen < 4)
            goto truncated;
        /* AF_INET is 2 everywhere; NULL is in the capturing host's byte order */
        uint32_t family = be32(f);
        if (family != 2 && !(linktype == 0 && le32(f) == 2))
            goto not_udp;
        off = 4;
        break;
    }
    default:
    {
        uint32_t i;
        for (i = 0; i < r->n_fixed; i++)
            if (r->fixed[i].linktype == linktype)
                break;
        if (i == r->n_fixed)
        {
            skip(r, SP2_PCAP_SKIP_LINKTYPE);
            return;
        }
        off = r->fixed[i].header_size;
        if (caplen < off)
            goto truncated;
        break;
    }
    }
    decode_ipv4(r, f + off, caplen - off, wirelen - (uint32_t) off);
    return;

truncated:
    if (caplen < wirelen)
        skip(r, SP2_PCAP_SKIP_TRUNCATED);
    else
        skip(r, SP2_PCAP_SKIP_NOT_UDP);
    return;
not_udp:
    skip(r, SP2_PCAP_SKIP_NOT_UDP);
}

/* Classic pcap: the next record.  Returns 1 if one was decoded, 0 at the end (r->eof set). */
static int next_pcap(sp2_pcap_reader *r)
{
    size_t left = r->size - r->pos;
    if (left < 16)
    {
        if (!r->at_eof)
            r->need_more = 1;
        else
        {
            r->eof = 1;
            if (left > 0)
                r->error = "truncated record header";
        }
        return 0;
    }
    const uint8_t *h = r->data + r->pos;
    uint32_t caplen = rd32(r, h + 8);
    uint32_t wirelen = rd32(r, h + 12);
    if (caplen > r->max_caplen)
    {
        r->eof = 1;
        r->error = "corrupt record header (capture length larger than the snapshot length)";
        return 0;
    }
    if (caplen > left - 16)
    {
        if (!r->at_eof)
            r->need_more = 1;
        else
        {
            r->eof = 1;
            r->error = "truncated record";
        }
        return 0;
    }
    r->pos += 16 + (size_t) caplen;
    decode_frame(r, r->linktype, h + 16, caplen, wirelen);
    return 1;
}

/* pcapng: the next block.  Returns 1 if a block was consumed, 0 at the end (r->eof set). */
static int next_pcapng(sp2_pcap_reader *r)
{
    size_t left = r->size - r->pos;
    const uint8_t *b = r->data + r->pos;
    if (left < 12)
    {
        if (!r->at_eof)
            r->need_more = 1;
        else
        {
            r->eof = 1;
            if (left > 0)
                r->error = "truncated block";
        }
        return 0;
    }
    uint32_t type = le32(b);
    int swapped = r->swapped;
    if (type == 0x0A0D0D0Au)
    {
        /* a new section: its own byte order and interfaces */
        if (left < 28 && !r->at_eof)
        {
            r->need_more = 1;
            return 0;
        }
        int sw = shb_swapped(b, left);
        if (sw < 0)
        {
            r->eof = 1;
            r->error = "corrupt section header block";
            return 0;
        }
        swapped = sw;
    }
    else
        type = rd32(r, b);
    uint32_t len = swapped ? be32(b + 4) : le32(b + 4);
    if (len < 12 || len % 4 != 0 || len > MAX_RECORD + 64)
    {
        r->eof = 1;
        r->error = "corrupt block length";
        return 0;
    }
    if (len > left)
    {
        if (!r->at_eof)
            r->need_more = 1;
        else
        {
            r->eof = 1;
            r->error = "truncated block";
        }
        return 0;
    }
    size_t body = len - 12;       /* between the length fields */
    const uint8_t *p = b + 8;
    r->pos += len;
    if (type == 0x0A0D0D0Au)
    {
        r->swapped = swapped;
        r->n_ifaces = 0;
    }
    switch (type)
    {
    case 1:                       /* interface description */
        if (body < 8)
            goto corrupt;
        if (add_interface(r, rd16(r, p)) != 0)
        {
            r->eof = 1;
            r->error = "out of memory";
            return 0;
        }
        break;
    case 6:                       /* enhanced packet */
    case 2:                       /* packet (obsolete) */
    {
        if (body < 20)
            goto corrupt;
        uint32_t iface = type == 6 ? rd32(r, p) : rd16(r, p);
        uint32_t caplen = rd32(r, p + 12);
        uint32_t wirelen = rd32(r, p + 16);
        if (caplen > body - 20)
            goto corrupt;
        if (iface >= r->n_ifaces)
        {
            r->eof = 1;
            r->error = "packet block for an undeclared interface";
            return 0;
        }
        decode_frame(r, r->if_linktypes[iface], p + 20, caplen, wirelen);
        break;
    }
    case 3:                       /* simple packet: interface 0, captured up to its snaplen */
    {
        if (body < 4)
            goto corrupt;
        if (r->n_ifaces == 0)
        {
            r->eof = 1;
            r->error = "packet block for an undeclared interface";
            return 0;
        }
        uint32_t wirelen = rd32(r, p);
        uint32_t caplen = wirelen < body - 4 ? wirelen : (uint32_t) (body - 4);
        decode_frame(r, r->if_linktypes[0], p + 4, caplen, wirelen);
        break;
    }
    default:                      /* section header, statistics, name resolution, ... */
        break;
    }
    return 1;

corrupt:
    r->eof = 1;
    r->error = "corrupt packet block";
    return 0;
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
