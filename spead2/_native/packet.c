/* Decoding one SPEAD packet header (SPEAD-64-XX, any heap address width the flavour allows). */
#include "internal.h"

/* The immediate values of the packet-header items (HEAP_CNT .. PAYLOAD_LENGTH; -1 where absent)
 * among the item pointers.  Kept in scalars, not an array indexed by id: the array's stores and
 * loads of different widths stalled store forwarding, which cost most of a packet's decode. */
typedef struct header_fields {
    int64_t heap_cnt, heap_length, payload_offset, payload_length;
    uint32_t n_special;           /* pointers with those ids */
} header_fields;

static void read_fields(const uint8_t *pointers, uint32_t n_items, unsigned address_bits, header_fields *f)
{
    uint64_t address_mask = (UINT64_C(1) << address_bits) - 1;
    uint64_t id_mask = (UINT64_C(1) << (63 - address_bits)) - 1;
    int64_t heap_cnt = -1, heap_length = -1, payload_offset = -1, payload_length = -1;
    uint32_t n_special = 0;
    for (uint32_t i = 0; i < n_items; i++)
    {
        uint64_t pointer = sp2_load_be64(pointers + 8 * (size_t) i);
        uint64_t id = (pointer >> address_bits) & id_mask;
        if (id < SP2_ID_HEAP_CNT || id > SP2_ID_PAYLOAD_LENGTH)
            continue;
        n_special++;
        if (!(pointer >> 63))
            continue;
        int64_t value = (int64_t) (pointer & address_mask);
        if (id == SP2_ID_HEAP_CNT)
            heap_cnt = value;
        else if (id == SP2_ID_HEAP_LENGTH)
            heap_length = value;
        else if (id == SP2_ID_PAYLOAD_OFFSET)
            payload_offset = value;
        else
            payload_length = value;
    }
    f->heap_cnt = heap_cnt;
    f->heap_length = heap_length;
    f->payload_offset = payload_offset;
    f->payload_length = payload_length;
    f->n_special = n_special;
}

sp2_drop_reason sp2_decode(const uint8_t *data, size_t size, int exact_size, sp2_packet *out)
{
    out->info.size = 0;
    out->info.n_items = 0;
    out->info.header_address_bits = 0;
    out->info.header_pointer_bits = 0;
    if (size < 8)
        return SP2_DROP_TOO_SHORT;
    uint64_t header = sp2_load_be64(data);
    if ((header >> 56) != 0x53)
        return SP2_DROP_BAD_MAGIC;
    if (((header >> 48) & 0xff) != 4)
        return SP2_DROP_BAD_VERSION;
    unsigned id_bytes = (unsigned) ((header >> 40) & 0xff);
    unsigned address_bytes = (unsigned) ((header >> 32) & 0xff);
    out->info.header_address_bits = (uint16_t) (address_bytes * 8);
    out->info.header_pointer_bits = (uint16_t) ((id_bytes + address_bytes) * 8);
    if (id_bytes + address_bytes != 8 || address_bytes == 0 || address_bytes == 8)
        return SP2_DROP_BAD_FLAVOUR;
    uint32_t n_items = (uint32_t) (header & 0xffff);
    size_t header_size = 8 + 8 * (size_t) n_items;
    /* On a short buffer, info.size says how much the packet needs at least: a byte stream
     * reader can reject a packet larger than it accepts before waiting for all of it. */
    out->info.n_items = n_items;
    out->info.size = header_size;
    if (size < header_size)
        return SP2_DROP_TOO_SHORT;

    unsigned address_bits = address_bytes * 8;
    header_fields f;
    const uint8_t *pointers = data + 8;
    read_fields(pointers, n_items, address_bits, &f);
    int64_t heap_cnt = f.heap_cnt, heap_length = f.heap_length;
    int64_t payload_offset = f.payload_offset, payload_length = f.payload_length;
    uint32_t n_special = f.n_special;
    if (heap_cnt < 0 || payload_offset < 0 || payload_length < 0)
        return SP2_DROP_MISSING_FIELD;
    /* payload_length < 2^56, so this cannot overflow */
    uint64_t total = (uint64_t) header_size + (uint64_t) payload_length;
    out->info.size = total;
    if (exact_size ? total != size : total > size)
        return exact_size ? SP2_DROP_SIZE_MISMATCH : SP2_DROP_TOO_SHORT;
    if (heap_length >= 0 && payload_offset + payload_length > heap_length)
        return SP2_DROP_BEYOND_HEAP;

    out->info.heap_cnt = heap_cnt;
    out->info.heap_length = heap_length;
    out->info.payload_offset = payload_offset;
    out->info.payload_length = payload_length;
    out->info.heap_address_bits = (uint8_t) address_bits;
    out->pointers = pointers;
    out->payload = data + header_size;
    out->n_special = n_special;
    out->landed = 0;
    return SP2_DROP_NONE;
}

int sp2_decode_packet(const uint8_t *data, size_t size, int exact_size, sp2_packet_info *out)
{
    sp2_packet packet;
    sp2_drop_reason ret = sp2_decode(data, size, exact_size, &packet);
    if (ret == SP2_DROP_NONE)
        *out = packet.info;
    else
    {
        memset(out, 0, sizeof(*out));
        out->size = packet.info.size;
        out->n_items = packet.info.n_items;
        out->header_address_bits = packet.info.header_address_bits;
        out->header_pointer_bits = packet.info.header_pointer_bits;
    }
    return ret;
}
