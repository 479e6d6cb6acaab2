/* Assembling one heap from its packets, and freezing it into a finished sp2_heap. */
#include "internal.h"

enum { LINEAR_POINTERS = 16 };

static int is_special_id(uint64_t id)
{
    return id >= 1 && id <= 4;   /* HEAP_CNT, HEAP_LENGTH, PAYLOAD_OFFSET, PAYLOAD_LENGTH */
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

static int range_insert(sp2_live_heap *h, uint64_t start, uint64_t end)
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
        return 0;
    }
    if (h->n_ranges == h->cap_ranges)
    {
        uint32_t cap = h->cap_ranges ? h->cap_ranges * 2 : 4;
        uint64_t *r = realloc(h->ranges, (size_t) cap * 2 * sizeof(uint64_t));
        if (!r)
            return -1;
        h->ranges = r;
        h->cap_ranges = cap;
    }
    memmove(&h->ranges[2 * (i + 1)], &h->ranges[2 * i], (size_t) (h->n_ranges - i) * 2 * sizeof(uint64_t));
    h->ranges[2 * i] = start;
    h->ranges[2 * i + 1] = end;
    h->n_ranges++;
    return 0;
}

/* ---- payload memory ---- */

/* Ensures the payload can hold `end` bytes; returns 0, or -1 out of memory. */
static int reserve_payload(sp2_stream *s, sp2_live_heap *h, uint64_t end)
{
    if (end <= h->capacity)
        return 0;
    uint64_t cap;
    if (h->heap_length >= 0)
        cap = (uint64_t) h->heap_length;
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

int sp2_live_heap_add_packet(sp2_stream *s, sp2_live_heap *h, const sp2_packet *p)
{
    const sp2_config *c = &s->config;
    const sp2_packet_info *pi = &p->info;
    uint64_t start = (uint64_t) pi->payload_offset;
    uint64_t length = (uint64_t) pi->payload_length;
    uint64_t end = start + length;

    /* The heap's item pointers are read with its first packet's flavour: a packet of another
     * flavour would put ids where addresses are read (and special ids among the items). */
    if (pi->heap_address_bits != h->heap_address_bits)
        return 1 + SP2_DROP_BAD_FLAVOUR;
    if (pi->heap_length >= 0)
    {
        if (h->heap_length >= 0 && h->heap_length != pi->heap_length)
            return 1 + SP2_DROP_INCONSISTENT_LENGTH;
        if ((uint64_t) pi->heap_length > c->max_heap_size)
            return 1 + SP2_DROP_HEAP_TOO_LARGE;
        if (h->heap_length < 0 && data_end(h, c) > (uint64_t) pi->heap_length)
            return 1 + SP2_DROP_INCONSISTENT_LENGTH;
    }
    else
    {
        if (!c->allow_unsized_heaps)
            return 1 + SP2_DROP_UNSIZED;
        if (h->heap_length >= 0 && end > (uint64_t) h->heap_length)
            return 1 + SP2_DROP_BEYOND_HEAP;
        if (end > c->max_heap_size)
            return 1 + SP2_DROP_HEAP_TOO_LARGE;
    }
    if (!c->allow_out_of_order)
    {
        if (start != h->received_length)
            return 1 + (start < h->received_length ? SP2_DROP_DUPLICATE : SP2_DROP_OUT_OF_ORDER);
    }
    else if (length > 0)
    {
        if (range_overlaps(h, start, end))
            return 1 + SP2_DROP_DUPLICATE;
        if (h->n_ranges >= c->max_heap_ranges && range_is_new(h, start, end))
            return 1 + SP2_DROP_TOO_COMPLEX;
    }

    /* Item pointers: count the new ones first, so that a rejected packet changes nothing. */
    unsigned hab = pi->heap_address_bits;
    uint64_t id_mask = (UINT64_C(1) << (63 - hab)) - 1;
    uint32_t n_items = pi->n_items;
    int has_items = n_items > p->n_special;
    if (has_items)
    {
        uint64_t limit = c->max_heap_pointers;
        if ((uint64_t) h->n_pointers + n_items > limit)
        {
            uint64_t fresh = 0;
            for (uint32_t i = 0; i < n_items; i++)
            {
                uint64_t ptr = sp2_load_be64(p->pointers + 8 * (size_t) i);
                if (!is_special_id((ptr >> hab) & id_mask) && !pointer_known(h, ptr))
                    fresh++;
            }
            if (h->n_pointers + fresh > limit)
                return 1 + SP2_DROP_TOO_COMPLEX;
        }
        if (reserve_pointers(h, n_items) != 0)
            return 1 + SP2_DROP_NO_MEMORY;
    }
    if (pi->heap_length >= 0 && h->heap_length < 0)
        h->heap_length = pi->heap_length;
    if (length > 0)
    {
        if (reserve_payload(s, h, end) != 0)
            return 1 + SP2_DROP_NO_MEMORY;
        if (c->memcpy_nontemporal)
            sp2_copy_nontemporal(h->payload + start, p->payload, (size_t) length);
        else
            memcpy(h->payload + start, p->payload, (size_t) length);
        if (c->allow_out_of_order && range_insert(h, start, end) != 0)
            return 1 + SP2_DROP_NO_MEMORY;
    }
    h->received_length += length;
    s->batch.payload_bytes += length;
    if (end > h->min_length)
        h->min_length = end;

    if (has_items)
    {
        uint64_t address_mask = (UINT64_C(1) << hab) - 1;
        for (uint32_t i = 0; i < n_items; i++)
        {
            uint64_t ptr = sp2_load_be64(p->pointers + 8 * (size_t) i);
            uint64_t id = (ptr >> hab) & id_mask;
            if (is_special_id(id) || pointer_known(h, ptr))
                continue;
            uint64_t value = ptr & address_mask;
            if (ptr >> 63)
            {
                if (id == 6 && value == 0)   /* STREAM_CTRL: CTRL_STREAM_START */
                    h->start_of_stream = 1;
                else if (id == 6 && value == 2)   /* CTRL_STREAM_STOP */
                    h->end_of_stream = 1;
            }
            else if (value > h->min_length)
                h->min_length = value;
            h->pointers[h->n_pointers] = ptr;
            if (h->index_mask)
                index_insert(h, h->n_pointers);
            h->n_pointers++;
        }
    }
    return 0;
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

sp2_heap_impl *sp2_live_heap_freeze(sp2_stream *s, sp2_live_heap *h, int as_complete)
{
    unsigned hab = h->heap_address_bits;
    uint64_t id_mask = (UINT64_C(1) << (63 - hab)) - 1;
    uint64_t address_mask = (UINT64_C(1) << hab) - 1;
    uint32_t n = h->n_pointers;

    /* Items are ordered by (immediate flag, address or value), ties in arrival order: addressed
     * items by offset, which is what gives each its length (up to the next address). */
    sort_entry stack_entries[64];
    sort_entry *entries = n <= 64 ? stack_entries : malloc((size_t) n * sizeof(sort_entry));
    if (!entries)
        goto nomem;
    for (uint32_t i = 0; i < n; i++)
    {
        entries[i].key = h->pointers[i] & ~(id_mask << hab);
        entries[i].order = i;
    }
    sort_entries(entries, n);

    uint64_t payload_size = h->heap_length >= 0 ? (uint64_t) h->heap_length : h->received_length;
    uint32_t n_ranges = 0;
    if (!as_complete && s->config.keep_payload_ranges)
        n_ranges = s->config.allow_out_of_order ? h->n_ranges : (h->received_length > 0 ? 1 : 0);

    size_t bytes = sizeof(sp2_heap_impl) + (size_t) n * sizeof(sp2_item) + (size_t) n_ranges * 2 * sizeof(uint64_t);
    sp2_heap_impl *impl = malloc(bytes);
    if (!impl)
    {
        if (entries != stack_entries)
            free(entries);
        goto nomem;
    }
    memset(impl, 0, sizeof(*impl));
    sp2_item *items = (sp2_item *) (impl + 1);
    uint64_t *ranges = (uint64_t *) (items + n);
    uint32_t n_items = 0, n_descriptors = 0;

    /* Descriptors are collected from the top of the array down, then moved after the items. */
    sp2_item *desc_top = items + n;
    for (uint32_t k = 0; k < n; k++)
    {
        uint64_t ptr = h->pointers[entries[k].order];
        uint64_t id = (ptr >> hab) & id_mask;
        uint64_t value = ptr & address_mask;
        if (ptr >> 63)
        {
            if (id == 0 || id == 5)
                continue;
            sp2_item *it = &items[n_items++];
            it->id = id;
            it->value = value;
            it->length = hab / 8;
            it->is_immediate = 1;
            continue;
        }
        if (!as_complete)
            continue;
        uint64_t end = payload_size;
        for (uint32_t j = k + 1; j < n; j++)
        {
            uint64_t next = h->pointers[entries[j].order];
            if (next >> 63)
                break;
            end = next & address_mask;
            break;
        }
        if (end <= value || id == 0)
            continue;
        sp2_item *it = id == 5 ? --desc_top : &items[n_items++];
        if (id == 5)
            n_descriptors++;
        it->id = id;
        it->value = value;
        it->length = end - value;
        it->is_immediate = 0;
    }
    /* the descriptors were stored in reverse at the top: put them in order after the items */
    for (uint32_t i = 0; i < n_descriptors / 2; i++)
    {
        sp2_item tmp = desc_top[i];
        desc_top[i] = desc_top[n_descriptors - 1 - i];
        desc_top[n_descriptors - 1 - i] = tmp;
    }
    sp2_item *descriptors = items + n_items;
    memmove(descriptors, desc_top, (size_t) n_descriptors * sizeof(sp2_item));
    if (entries != stack_entries)
        free(entries);

    sp2_heap *pub = &impl->pub;
    pub->cnt = h->cnt;
    pub->heap_length = h->heap_length;
    pub->received_length = h->received_length;
    pub->items = items;
    pub->n_items = n_items;
    pub->descriptors = descriptors;
    pub->n_descriptors = n_descriptors;
    pub->ranges = ranges;
    pub->n_ranges = n_ranges;
    if (n_ranges)
    {
        if (s->config.allow_out_of_order)
            memcpy(ranges, h->ranges, (size_t) n_ranges * 2 * sizeof(uint64_t));
        else
        {
            ranges[0] = 0;
            ranges[1] = h->received_length;
        }
    }
    pub->heap_address_bits = (uint8_t) hab;
    pub->bug_compat = s->config.bug_compat;
    pub->complete = (uint8_t) as_complete;
    pub->start_of_stream = h->start_of_stream;
    pub->end_of_stream = h->end_of_stream;
    if (as_complete && h->payload)
    {
        if (s->config.memcpy_nontemporal)
            sp2_copy_fence();
        pub->payload = h->payload;
        pub->payload_size = payload_size;
        impl->payload_token = h->payload_token;
        impl->payload_capacity = h->capacity;
        impl->allocator = s->allocator;
        sp2_allocator_retain(s->allocator);
        h->payload = NULL;
    }
    drop_payload(h, s->allocator);
    sp2_live_heap_reset(h);
    return impl;

nomem:
    drop_payload(h, s->allocator);
    sp2_live_heap_reset(h);
    return NULL;
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
