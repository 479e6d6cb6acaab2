/* The SPEAD encoder: one heap into packets, sans-I/O.
 *
 * Layout (the reference's, byte for byte): every packet carries HEAP_CNT, HEAP_LENGTH,
 * PAYLOAD_OFFSET and PAYLOAD_LENGTH as immediates, then the heap's item pointers in the order
 * the items were added, as many as fit (all of them in every packet with repeat_pointers), then
 * payload up to the packet size.  The payload is the addressed values back to back.  Every
 * packet that carries pointers must carry payload too, so a heap whose payload is too short for
 * that is padded with zero bytes, addressed by a NULL item. */
#include "send_internal.h"

#define IMMEDIATE_BIT (UINT64_C(1) << 63)
#define HEAP_CNT_ID 1
#define HEAP_LENGTH_ID 2
#define PAYLOAD_OFFSET_ID 3
#define PAYLOAD_LENGTH_ID 4
#define SPEAD_MAGIC 0x53
#define SPEAD_VERSION 4
/* The smallest packet: header, the standard pointers, one more pointer and 8 bytes of payload. */
#define MIN_PACKET_SIZE (SP2_HEADER_SIZE + (SP2_STANDARD_POINTERS + 1) * SP2_POINTER_SIZE + 8)
/* The header counts item pointers in 16 bits. */
#define MAX_PACKET_POINTERS 65535

static void store_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--)
    {
        p[i] = (uint8_t) v;
        v >>= 8;
    }
}

static uint64_t low_mask(unsigned bits)
{
    return bits >= 64 ? ~UINT64_C(0) : (UINT64_C(1) << bits) - 1;
}

/* Checks ids and immediates against the flavour; sums the addressed lengths. */
static int measure_items(const sp2_send_heap *heap, uint64_t *payload)
{
    unsigned hab = heap->heap_address_bits;
    uint64_t id_limit = low_mask(63 - hab);
    uint64_t address_limit = low_mask(hab);
    uint64_t total = 0;
    for (uint32_t i = 0; i < heap->n_items; i++)
    {
        const sp2_send_item *item = &heap->items[i];
        if (item->id > id_limit)
            return SP2_SEND_ID_TOO_LARGE;
        if (item->is_immediate)
        {
            if (item->immediate > address_limit)
                return SP2_SEND_IMMEDIATE_TOO_LARGE;
        }
        else
        {
            if (item->length > address_limit || total + item->length > address_limit)
                return SP2_SEND_HEAP_TOO_LARGE;
            total += item->length;
        }
    }
    *payload = total;
    return SP2_SEND_OK;
}

/* Payload bytes needed so that each packet carrying pointers has some payload.  Like the
 * reference, room is always left for the padding's NULL item: the pointers are taken to need
 * n / max + 1 packets, and with repeat_pointers n must be below the per-packet maximum. */
static uint64_t payload_needed(const sp2_packet_iter *it)
{
    if (it->heap->repeat_pointers)
        return 1;
    uint64_t packets = it->heap->n_items / it->max_pointers + 1;
    uint64_t full_packet_payload = it->packet_size - SP2_HEADER_SIZE
                                   - (uint64_t) (SP2_STANDARD_POINTERS + it->max_pointers) * SP2_POINTER_SIZE;
    return full_packet_payload * (packets - 1) + 1;
}

int sp2_packet_iter_init(sp2_packet_iter *it, const sp2_send_heap *heap, uint64_t cnt,
                         uint64_t max_packet_size)
{
    memset(it, 0, sizeof(*it));
    it->heap = heap;
    unsigned hab = heap->heap_address_bits;
    uint64_t packet_size = max_packet_size & ~(uint64_t) 7;
    if (packet_size < MIN_PACKET_SIZE)
        return SP2_SEND_PACKET_TOO_SMALL;
    if (packet_size > UINT32_MAX)
        packet_size = UINT32_MAX & ~(uint64_t) 7;
    uint64_t max_pointers = packet_size / SP2_POINTER_SIZE - 2 - SP2_STANDARD_POINTERS;
    if (max_pointers > MAX_PACKET_POINTERS - SP2_STANDARD_POINTERS)
        max_pointers = MAX_PACKET_POINTERS - SP2_STANDARD_POINTERS;
    uint64_t payload = 0;
    int status = measure_items(heap, &payload);
    if (status != SP2_SEND_OK)
        return status;
    it->packet_size = (uint32_t) packet_size;
    it->max_pointers = (uint32_t) max_pointers;
    if (heap->repeat_pointers && heap->n_items >= it->max_pointers)
        return SP2_SEND_REPEAT_TOO_SMALL;
    it->n_pointers = heap->n_items;
    uint64_t needed = payload_needed(it);
    if (payload < needed)
    {
        it->n_pointers++;                        /* the NULL item addressing the padding */
        it->padding = needed - payload;
    }
    it->payload_length = payload + it->padding;
    if (it->payload_length > low_mask(hab))
        return SP2_SEND_HEAP_TOO_LARGE;
    it->cnt = cnt & low_mask(hab);
    return SP2_SEND_OK;
}

int sp2_packet_iter_done(const sp2_packet_iter *it)
{
    return it->started && it->payload_offset == it->payload_length;
}

static uint64_t item_pointer(const sp2_packet_iter *it, uint32_t index, uint64_t *address)
{
    unsigned hab = it->heap->heap_address_bits;
    if (index == it->heap->n_items)              /* NULL item: the padding */
        return *address;
    const sp2_send_item *item = &it->heap->items[index];
    if (item->is_immediate)
        return IMMEDIATE_BIT | (item->id << hab) | item->immediate;
    uint64_t pointer = (item->id << hab) | *address;
    *address += item->length;
    return pointer;
}

/* How many item pointers the next packet carries. */
static uint32_t pointers_in_next(const sp2_packet_iter *it)
{
    if (it->heap->repeat_pointers)
        return it->n_pointers;
    uint32_t left = it->n_pointers - it->next_pointer;
    return left < it->max_pointers ? left : it->max_pointers;
}

/* Header and count item pointers into out; returns the bytes written. */
static size_t write_pointers(sp2_packet_iter *it, uint8_t *out, uint32_t count, uint64_t payload_here)
{
    unsigned hab = it->heap->heap_address_bits;
    int repeat = it->heap->repeat_pointers;
    uint32_t first = repeat ? 0 : it->next_pointer;
    uint64_t address = repeat ? 0 : it->next_address;
    uint64_t header = ((uint64_t) SPEAD_MAGIC << 56) | ((uint64_t) SPEAD_VERSION << 48)
                      | ((uint64_t) ((64 - hab) / 8) << 40) | ((uint64_t) (hab / 8) << 32)
                      | (SP2_STANDARD_POINTERS + count);
    store_be64(out, header);
    uint8_t *p = out + SP2_HEADER_SIZE;
    store_be64(p, IMMEDIATE_BIT | ((uint64_t) HEAP_CNT_ID << hab) | it->cnt);
    store_be64(p + 8, IMMEDIATE_BIT | ((uint64_t) HEAP_LENGTH_ID << hab) | it->payload_length);
    store_be64(p + 16, IMMEDIATE_BIT | ((uint64_t) PAYLOAD_OFFSET_ID << hab) | it->payload_offset);
    store_be64(p + 24, IMMEDIATE_BIT | ((uint64_t) PAYLOAD_LENGTH_ID << hab) | payload_here);
    p += SP2_STANDARD_POINTERS * SP2_POINTER_SIZE;
    for (uint32_t i = 0; i < count; i++, p += SP2_POINTER_SIZE)
        store_be64(p, item_pointer(it, first + i, &address));
    if (!repeat)
    {
        it->next_pointer = first + count;
        it->next_address = address;
    }
    return (size_t) (p - out);
}

/* Where the next piece of payload comes from: an item's bytes, or NULL for padding. */
static const uint8_t *next_piece(sp2_packet_iter *it, uint64_t want, uint64_t *len)
{
    const sp2_send_heap *heap = it->heap;
    while (it->item < heap->n_items
           && (heap->items[it->item].is_immediate || it->item_offset == heap->items[it->item].length))
    {
        it->item++;
        it->item_offset = 0;
    }
    if (it->item == heap->n_items)
    {
        *len = want;
        return NULL;
    }
    const sp2_send_item *item = &heap->items[it->item];
    uint64_t left = item->length - it->item_offset;
    *len = left < want ? left : want;
    const uint8_t *data = item->data + it->item_offset;
    it->item_offset += *len;
    return data;
}

size_t sp2_packet_iter_next(sp2_packet_iter *it, uint8_t *scratch, struct iovec *iov, int max_iov,
                            int *n_iov)
{
    *n_iov = 0;
    if (sp2_packet_iter_done(it))
        return 0;
    it->started = 1;
    uint32_t pointers_here = pointers_in_next(it);
    uint64_t room = it->packet_size - SP2_HEADER_SIZE
                    - (uint64_t) (SP2_STANDARD_POINTERS + pointers_here) * SP2_POINTER_SIZE;
    uint64_t payload_here = it->payload_length - it->payload_offset;
    if (payload_here > room)
        payload_here = room;
    size_t used = write_pointers(it, scratch, pointers_here, payload_here);
    iov[0].iov_base = scratch;
    iov[0].iov_len = used;
    int n = 1;
    int copying = 1;                             /* the last piece is in scratch, at its end */
    for (uint64_t left = payload_here; left > 0;)
    {
        uint64_t len;
        const uint8_t *data = next_piece(it, left, &len);
        /* One piece is always kept back for copied bytes, so a copy never runs out. */
        if (data != NULL && len >= SP2_GATHER_MIN && n < max_iov - 1)
        {
            iov[n].iov_base = (void *) data;
            iov[n].iov_len = len;
            n++;
            copying = 0;
        }
        else
        {
            if (data != NULL)
                memcpy(scratch + used, data, len);
            else
                memset(scratch + used, 0, len);
            if (copying)
                iov[n - 1].iov_len += len;
            else
            {
                iov[n].iov_base = scratch + used;
                iov[n].iov_len = len;
                n++;
                copying = 1;
            }
            used += len;
        }
        left -= len;
    }
    it->payload_offset += payload_here;
    *n_iov = n;
    return (size_t) (SP2_HEADER_SIZE + (SP2_STANDARD_POINTERS + pointers_here) * SP2_POINTER_SIZE
                     + payload_here);
}

size_t sp2_packet_iter_next_copy(sp2_packet_iter *it, uint8_t *out)
{
    struct iovec iov[1];
    int n;
    return sp2_packet_iter_next(it, out, iov, 1, &n);
}
