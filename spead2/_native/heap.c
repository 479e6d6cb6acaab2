/* Assembling one heap from its packets, and freezing it into a finished sp2_heap. */
#include "internal.h"

enum { LINEAR_POINTERS = 16 };

/* The packet-header items (HEAP_CNT, HEAP_LENGTH, PAYLOAD_OFFSET, PAYLOAD_LENGTH). */
static int is_special_id(uint64_t id)
{
    return id >= SP2_ID_HEAP_CNT && id <= SP2_ID_PAYLOAD_LENGTH;
}

/* Resets a slot for reuse; keeps the pointer, index and range arrays allocated. */
void sp2_live_heap_reset(sp2_live_heap *h)
{
    h->cnt = -1;
    h->heap_length = -1;
    h->received_length = 0;
    h->min_length = 0;
    h->payload = NULL;
    h->capacity = 0;
    h->payload_token = NULL;
    h->n_pointers = 0;
    if (h->index_mask)
        memset(h->pointer_index, 0, ((size_t) h->index_mask + 1) * sizeof(uint32_t));
    h->n_ranges = 0;
    h->heap_address_bits = 0;
    h->in_use = 0;
    h->start_of_stream = 0;
    h->end_of_stream = 0;
}

/* Frees everything, including the reusable arrays. */
void sp2_live_heap_release(sp2_live_heap *h, sp2_allocator *a)
{
    if (h->payload)
        sp2_free(a, h->payload, h->capacity, h->payload_token);
    free(h->pointers);
    free(h->pointer_index);
    free(h->ranges);
    memset(h, 0, sizeof(*h));
    sp2_live_heap_reset(h);
}

static void drop_payload(sp2_live_heap *h, sp2_allocator *a)
{
    if (h->payload)
    {
        sp2_copy_fence();   /* a pool may hand the buffer to another thread: no stores in flight */
        sp2_free(a, h->payload, h->capacity, h->payload_token);
    }
    h->payload = NULL;
    h->capacity = 0;
    h->payload_token = NULL;
}

void sp2_live_heap_discard(sp2_live_heap *h, sp2_allocator *a)
{
    drop_payload(h, a);
    sp2_live_heap_reset(h);
}

/* ---- the set of distinct item pointers ---- */

static uint32_t hash_pointer(uint64_t p, uint32_t mask)
{
    return (uint32_t) ((p * UINT64_C(0x9E3779B97F4A7C15)) >> 32) & mask;
}

static int pointer_known(const sp2_live_heap *h, uint64_t p)
{
    if (!h->index_mask)
    {
        for (uint32_t i = 0; i < h->n_pointers; i++)
            if (h->pointers[i] == p)
                return 1;
        return 0;
    }
    for (uint32_t slot = hash_pointer(p, h->index_mask);; slot = (slot + 1) & h->index_mask)
    {
        uint32_t entry = h->pointer_index[slot];
        if (entry == 0)
            return 0;
        if (h->pointers[entry - 1] == p)
            return 1;
    }
}

static void index_insert(sp2_live_heap *h, uint32_t idx)
{
    uint32_t slot = hash_pointer(h->pointers[idx], h->index_mask);
    while (h->pointer_index[slot] != 0)
        slot = (slot + 1) & h->index_mask;
    h->pointer_index[slot] = idx + 1;
}

/* Makes room for `extra` more pointers (and their index).  Returns 0, or -1 out of memory. */
static int reserve_pointers(sp2_live_heap *h, uint32_t extra)
{
    uint64_t need = (uint64_t) h->n_pointers + extra;
    if (need > h->cap_pointers)
    {
        uint64_t cap = h->cap_pointers ? h->cap_pointers : 8;
        while (cap < need)
            cap *= 2;
        uint64_t *p = realloc(h->pointers, cap * sizeof(uint64_t));
        if (!p)
            return -1;
        h->pointers = p;
        h->cap_pointers = (uint32_t) cap;
    }
    if (need > LINEAR_POINTERS && need * 2 > (uint64_t) h->index_mask + 1)
    {
        uint64_t size = 64;
        while (size < need * 2)
            size *= 2;
        uint32_t *index = calloc(size, sizeof(uint32_t));
        if (!index)
            return -1;
        free(h->pointer_index);
        h->pointer_index = index;
        h->index_mask = (uint32_t) (size - 1);
        for (uint32_t i = 0; i < h->n_pointers; i++)
            index_insert(h, i);
    }
    return 0;
}

/* ---- payload ranges (out-of-order mode) ---- */

/* Index of the first range whose end is >= start. */
static uint32_t range_search(const sp2_live_heap *h, uint64_t start)
{
    uint32_t lo = 0, hi = h->n_ranges;
    while (lo < hi)
    {
        uint32_t mid = lo + (hi - lo) / 2;
        if (h->ranges[2 * mid + 1] < start)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int range_overlaps(const sp2_live_heap *h, uint64_t start, uint64_t end)
{
    uint32_t i = range_search(h, start + 1);
    return i < h->n_ranges && h->ranges[2 * i] < end;
}

/* Would inserting [start, end) add a range rather than extend one? */
static int range_is_new(const sp2_live_heap *h, uint64_t start, uint64_t end)
{
    uint32_t i = range_search(h, start);
    return !(i < h->n_ranges && h->ranges[2 * i] <= end);
}

/* Makes room for one more range.  Returns 0, or -1 out of memory. */
static int reserve_range(sp2_live_heap *h)
{
    if (h->n_ranges < h->cap_ranges)
        return 0;
    uint32_t cap = h->cap_ranges ? h->cap_ranges * 2 : 4;
    uint64_t *r = realloc(h->ranges, (size_t) cap * 2 * sizeof(uint64_t));
    if (!r)
        return -1;
    h->ranges = r;
    h->cap_ranges = cap;
    return 0;
}

/* Adds [start, end), merging with the ranges it touches (reserve_range made room). */
static void range_insert(sp2_live_heap *h, uint64_t start, uint64_t end)
{
    uint32_t i = range_search(h, start);
    if (i < h->n_ranges && h->ranges[2 * i] <= end)
    {
        /* touches range i (which ends at or after start): extend it, maybe into range i + 1 */
        if (start < h->ranges[2 * i])
            h->ranges[2 * i] = start;
        if (end > h->ranges[2 * i + 1])
        {
            h->ranges[2 * i + 1] = end;
            if (i + 1 < h->n_ranges && h->ranges[2 * (i + 1)] == end)
            {
                h->ranges[2 * i + 1] = h->ranges[2 * (i + 1) + 1];
                memmove(&h->ranges[2 * (i + 1)], &h->ranges[2 * (i + 2)],
                        (size_t) (h->n_ranges - i - 2) * 2 * sizeof(uint64_t));
                h->n_ranges--;
            }
        }
        return;
    }
    memmove(&h->ranges[2 * (i + 1)], &h->ranges[2 * i], (size_t) (h->n_ranges - i) * 2 * sizeof(uint64_t));
    h->ranges[2 * i] = start;
    h->ranges[2 * i + 1] = end;
    h->n_ranges++;
}

/* ---- payload memory ---- */

/* Ensures the payload can hold `end` bytes of a heap of heap_length (-1: unknown) bytes,
 * keeping what it holds; returns 0, or -1 out of memory. */
static int reserve_payload(sp2_stream *s, sp2_live_heap *h, int64_t heap_length, uint64_t end)
{
    if (end <= h->capacity)
        return 0;
    uint64_t cap;
    if (heap_length >= 0)
        cap = (uint64_t) heap_length;
    else
    {
        /* unsized heap: grow geometrically, up to the per-heap limit */
        cap = h->capacity * 2;
        if (cap < 4096)
            cap = 4096;
        if (cap < end)
            cap = end;
        if (cap > s->config.max_heap_size)
            cap = s->config.max_heap_size;
    }
    if ((uint64_t) (size_t) cap != cap)
        return -1;
    void *token = NULL;
    uint8_t *p = sp2_alloc(s->allocator, (size_t) cap, &token);
    if (!p)
        return -1;
    if (h->payload)
    {
        /* Copy only what packets wrote: never read memory no packet has touched. */
        if (s->config.allow_out_of_order)
        {
            for (uint32_t i = 0; i < h->n_ranges; i++)
                memcpy(p + h->ranges[2 * i], h->payload + h->ranges[2 * i],
                       (size_t) (h->ranges[2 * i + 1] - h->ranges[2 * i]));
        }
        else
            memcpy(p, h->payload, (size_t) h->received_length);
        sp2_copy_fence();
        sp2_free(s->allocator, h->payload, h->capacity, h->payload_token);
    }
    h->payload = p;
    h->capacity = cap;
    h->payload_token = token;
    return 0;
}

/* ---- adding a packet ---- */

/* End of the payload received so far. */
static uint64_t data_end(const sp2_live_heap *h, const sp2_config *c)
{
    if (!c->allow_out_of_order)
        return h->received_length;
    return h->n_ranges ? h->ranges[2 * (h->n_ranges - 1) + 1] : 0;
}

/* Does the packet's flavour, length and place fit the heap? */
static sp2_drop_reason check_placement(const sp2_config *c, const sp2_live_heap *h, const sp2_packet_info *pi)
{
    uint64_t start = (uint64_t) pi->payload_offset;
    uint64_t end = start + (uint64_t) pi->payload_length;
    /* The heap's item pointers are read with its first packet's flavour: a packet of another
     * flavour would put ids where addresses are read (and special ids among the items). */
    if (pi->heap_address_bits != h->heap_address_bits)
        return SP2_DROP_BAD_FLAVOUR;
    if (pi->heap_length >= 0)
    {
        if (h->heap_length >= 0 && h->heap_length != pi->heap_length)
            return SP2_DROP_INCONSISTENT_LENGTH;
        if ((uint64_t) pi->heap_length > c->max_heap_size)
            return SP2_DROP_HEAP_TOO_LARGE;
        if (h->heap_length < 0 && data_end(h, c) > (uint64_t) pi->heap_length)
            return SP2_DROP_INCONSISTENT_LENGTH;
    }
    else
    {
        /* (a packet without HEAP_LENGTH while allow_unsized_heaps is off never gets here) */
        if (h->heap_length >= 0 && end > (uint64_t) h->heap_length)
            return SP2_DROP_BEYOND_HEAP;
        if (end > c->max_heap_size)
            return SP2_DROP_HEAP_TOO_LARGE;
    }
    if (!c->allow_out_of_order)
    {
        if (start != h->received_length)
            return start < h->received_length ? SP2_DROP_DUPLICATE : SP2_DROP_OUT_OF_ORDER;
    }
    else if (pi->payload_length > 0)
    {
        if (range_overlaps(h, start, end))
            return SP2_DROP_DUPLICATE;
        if (h->n_ranges >= c->max_heap_ranges && range_is_new(h, start, end))
            return SP2_DROP_TOO_COMPLEX;
    }
    return SP2_DROP_NONE;
}

/* Would the packet's new item pointers take the heap past max_heap_pointers? */
static sp2_drop_reason check_pointers(const sp2_config *c, const sp2_live_heap *h, const sp2_packet *p)
{
    uint32_t n_items = p->info.n_items;
    uint64_t limit = c->max_heap_pointers;
    if (n_items <= p->n_special || (uint64_t) h->n_pointers + n_items <= limit)
        return SP2_DROP_NONE;
    unsigned hab = p->info.heap_address_bits;
    uint64_t id_mask = (UINT64_C(1) << (63 - hab)) - 1;
    uint64_t fresh = 0;
    for (uint32_t i = 0; i < n_items; i++)
    {
        uint64_t ptr = sp2_load_be64(p->pointers + 8 * (size_t) i);
        if (!is_special_id((ptr >> hab) & id_mask) && !pointer_known(h, ptr))
            fresh++;
    }
    return h->n_pointers + fresh > limit ? SP2_DROP_TOO_COMPLEX : SP2_DROP_NONE;
}

/* Allocates all the packet needs (pointer slots, payload, a range), so that taking it cannot
 * fail; what it allocates only grows capacity, which a rejected packet may leave behind. */
static sp2_drop_reason reserve_packet(sp2_stream *s, sp2_live_heap *h, const sp2_packet *p)
{
    const sp2_packet_info *pi = &p->info;
    if (pi->n_items > p->n_special && reserve_pointers(h, pi->n_items) != 0)
        return SP2_DROP_NO_MEMORY;
    if (pi->payload_length == 0)
        return SP2_DROP_NONE;
    int64_t heap_length = h->heap_length >= 0 ? h->heap_length : pi->heap_length;
    if (reserve_payload(s, h, heap_length, (uint64_t) (pi->payload_offset + pi->payload_length)) != 0)
        return SP2_DROP_NO_MEMORY;
    if (s->config.allow_out_of_order && reserve_range(h) != 0)
        return SP2_DROP_NO_MEMORY;
    return SP2_DROP_NONE;
}

static void take_payload(sp2_stream *s, sp2_live_heap *h, const sp2_packet *p)
{
    uint64_t start = (uint64_t) p->info.payload_offset;
    uint64_t length = (uint64_t) p->info.payload_length;
    if (length > 0)
    {
        /* (a landed payload is already in place: sp2_live_heap_add_packet checked) */
        if (s->config.memcpy_nontemporal && !p->landed)
            sp2_copy_nontemporal(h->payload + start, p->payload, (size_t) length);
        else if (!p->landed)
            memcpy(h->payload + start, p->payload, (size_t) length);
        if (s->config.allow_out_of_order)
            range_insert(h, start, start + length);
    }
    h->received_length += length;
    s->batch.payload_bytes += length;
    if (start + length > h->min_length)
        h->min_length = start + length;
}

/* Adds the packet's item pointers that the heap does not hold yet (reserve_pointers made room). */
static void take_pointers(sp2_live_heap *h, const sp2_packet *p)
{
    unsigned hab = p->info.heap_address_bits;
    uint64_t id_mask = (UINT64_C(1) << (63 - hab)) - 1;
    uint64_t address_mask = (UINT64_C(1) << hab) - 1;
    for (uint32_t i = 0; i < p->info.n_items && p->info.n_items > p->n_special; i++)
    {
        uint64_t ptr = sp2_load_be64(p->pointers + 8 * (size_t) i);
        uint64_t id = (ptr >> hab) & id_mask;
        if (is_special_id(id) || pointer_known(h, ptr))
            continue;
        uint64_t value = ptr & address_mask;
        if (!(ptr >> 63))
        {
            if (value > h->min_length)
                h->min_length = value;
        }
        else if (id == SP2_ID_STREAM_CTRL && value == SP2_CTRL_STREAM_START)
            h->start_of_stream = 1;
        else if (id == SP2_ID_STREAM_CTRL && value == SP2_CTRL_STREAM_STOP)
            h->end_of_stream = 1;
        h->pointers[h->n_pointers] = ptr;
        if (h->index_mask)
            index_insert(h, h->n_pointers);
        h->n_pointers++;
    }
}

sp2_drop_reason sp2_live_heap_add_packet(sp2_stream *s, sp2_live_heap *h, const sp2_packet *p)
{
    /* Every check and allocation comes first, so that a rejected packet changes nothing. */
    sp2_drop_reason why = check_placement(&s->config, h, &p->info);
    if (why == SP2_DROP_NONE)
        why = check_pointers(&s->config, h, p);
    if (why == SP2_DROP_NONE)
        why = reserve_packet(s, h, p);
    if (why != SP2_DROP_NONE)
        return why;
    /* A landed payload counts only where it landed: in this heap's buffer, at its offset (else
     * the heap it landed in was evicted in the meantime and its bytes are not to be trusted). */
    if (p->landed && p->info.payload_length > 0 && p->payload != h->payload + p->info.payload_offset)
        return SP2_DROP_OUT_OF_ORDER;
    if (p->info.heap_length >= 0)
        h->heap_length = p->info.heap_length;
    take_payload(s, h, p);
    take_pointers(h, p);
    return SP2_DROP_NONE;
}

int sp2_live_heap_is_contiguous(const sp2_live_heap *h)
{
    return h->received_length == h->min_length
           && (h->heap_length < 0 || h->received_length == (uint64_t) h->heap_length);
}

int sp2_live_heap_is_complete(const sp2_live_heap *h)
{
    return h->heap_length >= 0 && sp2_live_heap_is_contiguous(h);
}

/* ---- freezing ---- */

typedef struct sort_entry {
    uint64_t key;
    uint32_t order;
} sort_entry;

static int entry_less(const sort_entry *a, const sort_entry *b)
{
    return a->key < b->key || (a->key == b->key && a->order < b->order);
}

static int entry_cmp(const void *a, const void *b)
{
    const sort_entry *x = a, *y = b;
    return entry_less(x, y) ? -1 : entry_less(y, x) ? 1 : 0;
}

static void sort_entries(sort_entry *e, uint32_t n)
{
    if (n > 32)
    {
        qsort(e, n, sizeof(*e), entry_cmp);
        return;
    }
    for (uint32_t i = 1; i < n; i++)
    {
        sort_entry x = e[i];
        uint32_t j = i;
        for (; j > 0 && entry_less(&x, &e[j - 1]); j--)
            e[j] = e[j - 1];
        e[j] = x;
    }
}

/* The heap's item pointers in the order Heap.get_items gives them: by (immediate flag, address
 * or value), ties in arrival order; addressed items by offset, which gives each its length (up to
 * the next address).  NULL when out of memory; else free with free_sorted. */
static sort_entry *sort_pointers(const sp2_live_heap *h, sort_entry *stack, uint32_t stack_size)
{
    uint32_t n = h->n_pointers;
    uint64_t id_mask = (UINT64_C(1) << (63 - h->heap_address_bits)) - 1;
    sort_entry *entries = n <= stack_size ? stack : malloc((size_t) n * sizeof(sort_entry));
    if (!entries)
        return NULL;
    for (uint32_t i = 0; i < n; i++)
    {
        entries[i].key = h->pointers[i] & ~(id_mask << h->heap_address_bits);
        entries[i].order = i;
    }
    sort_entries(entries, n);
    return entries;
}

static void free_sorted(sort_entry *entries, sort_entry *stack)
{
    if (entries != stack)
        free(entries);
}

/* The item the k-th sorted pointer stands for; 0 if it stands for none: padding (NULL_ID), an
 * immediate DESCRIPTOR_ID (unless plain_descriptors), an addressed item of an incomplete heap, or
 * an empty one. */
static int item_at(const sp2_live_heap *h, const sort_entry *e, uint32_t k, uint64_t payload_size,
                   int with_addressed, int plain_descriptors, sp2_item *out)
{
    unsigned hab = h->heap_address_bits;
    uint64_t address_mask = (UINT64_C(1) << hab) - 1;
    uint64_t ptr = h->pointers[e[k].order];
    out->id = (ptr >> hab) & ((UINT64_C(1) << (63 - hab)) - 1);
    out->value = ptr & address_mask;
    out->is_immediate = (uint8_t) (ptr >> 63);
    if (out->id == SP2_ID_NULL)
        return 0;
    if (out->is_immediate)
    {
        out->length = hab / 8;
        return out->id != SP2_ID_DESCRIPTOR || plain_descriptors;
    }
    if (!with_addressed)
        return 0;
    uint64_t end = payload_size;
    if (k + 1 < h->n_pointers && !(h->pointers[e[k + 1].order] >> 63))
        end = h->pointers[e[k + 1].order] & address_mask;
    out->length = end > out->value ? end - out->value : 0;
    return out->length > 0;
}

/* Fills items with the heap's items, then its descriptors after them (none with plain). */
static void list_items(const sp2_live_heap *h, const sort_entry *e, uint64_t payload_size, int as_complete,
                       int plain, sp2_item *items, uint32_t *n_items, uint32_t *n_descriptors)
{
    uint32_t n = 0, d = 0;
    sp2_item it;
    for (uint32_t k = 0; k < h->n_pointers; k++)
        if (item_at(h, e, k, payload_size, as_complete, plain, &it) && (plain || it.id != SP2_ID_DESCRIPTOR))
            items[n++] = it;
    for (uint32_t k = 0; k < h->n_pointers && !plain; k++)
        if (item_at(h, e, k, payload_size, as_complete, plain, &it) && it.id == SP2_ID_DESCRIPTOR)
            items[n + d++] = it;
    *n_items = n;
    *n_descriptors = d;
}

/* Received payload ranges an incomplete heap keeps (keep_payload_ranges), written to out if
 * not NULL; returns how many. */
static uint32_t kept_ranges(const sp2_stream *s, const sp2_live_heap *h, int as_complete, uint64_t *out)
{
    if (as_complete || !s->config.keep_payload_ranges)
        return 0;
    if (s->config.allow_out_of_order)
    {
        if (out && h->n_ranges)
            memcpy(out, h->ranges, (size_t) h->n_ranges * 2 * sizeof(uint64_t));
        return h->n_ranges;
    }
    if (h->received_length == 0)
        return 0;
    if (out)
    {
        out[0] = 0;
        out[1] = h->received_length;
    }
    return 1;
}

/* Moves a complete heap's payload (and a reference to its allocator) into the finished heap. */
static void hand_over_payload(sp2_stream *s, sp2_live_heap *h, sp2_heap_impl *impl, uint64_t payload_size)
{
    if (s->config.memcpy_nontemporal)
        sp2_copy_fence();
    impl->pub.payload = h->payload;
    impl->pub.payload_size = payload_size;
    impl->payload_token = h->payload_token;
    impl->payload_capacity = h->capacity;
    impl->allocator = s->allocator;
    sp2_allocator_retain(s->allocator);
    h->payload = NULL;
}

sp2_heap_impl *sp2_live_heap_freeze(sp2_stream *s, sp2_live_heap *h, int as_complete)
{
    uint32_t n = h->n_pointers;
    uint64_t payload_size = h->heap_length >= 0 ? (uint64_t) h->heap_length : h->received_length;
    uint32_t n_ranges = kept_ranges(s, h, as_complete, NULL);
    sort_entry stack[64];
    sort_entry *entries = sort_pointers(h, stack, 64);
    size_t bytes = sizeof(sp2_heap_impl) + (size_t) n * sizeof(sp2_item) + (size_t) n_ranges * 2 * sizeof(uint64_t);
    sp2_heap_impl *impl = entries ? calloc(1, bytes) : NULL;
    if (impl)
    {
        sp2_heap *pub = &impl->pub;
        pub->items = (sp2_item *) (impl + 1);
        list_items(h, entries, payload_size, as_complete, s->config.plain_descriptors, pub->items, &pub->n_items,
                   &pub->n_descriptors);
        pub->descriptors = pub->items + pub->n_items;
        pub->ranges = (uint64_t *) (pub->items + n);
        pub->n_ranges = kept_ranges(s, h, as_complete, pub->ranges);
        pub->cnt = h->cnt;
        pub->heap_length = h->heap_length;
        pub->received_length = h->received_length;
        pub->heap_address_bits = h->heap_address_bits;
        pub->bug_compat = s->config.bug_compat;
        pub->complete = (uint8_t) as_complete;
        pub->start_of_stream = h->start_of_stream;
        pub->end_of_stream = h->end_of_stream;
        if (as_complete && h->payload)
            hand_over_payload(s, h, impl, payload_size);
    }
    if (entries)
        free_sorted(entries, stack);
    drop_payload(h, s->allocator);
    sp2_live_heap_reset(h);
    return impl;
}

void sp2_heap_free(sp2_heap *heap)
{
    if (!heap)
        return;
    sp2_heap_impl *impl = (sp2_heap_impl *) heap;
    if (impl->allocator)
    {
        sp2_free(impl->allocator, heap->payload, impl->payload_capacity, impl->payload_token);
        sp2_allocator_release(impl->allocator);
    }
    free(impl);
}
