/* Heap payload allocators: malloc, mmap and a pool with optional background refill.
 *
 * Allocation happens on the packet path (the first packet of every heap), which is why these
 * live in C rather than behind a Python callback. */
#include "internal.h"

#include <errno.h>
#ifndef _WIN32
#include <sys/mman.h>
#endif

enum { KIND_MALLOC, KIND_MMAP, KIND_POOL };

typedef struct pool_buffer {
    uint8_t *ptr;
    void *token;
} pool_buffer;

/* The malloc allocator keeps a few freed buffers for reuse by a request of the same size, up to
 * this many bytes.  Without it, glibc returns each freed heap to the kernel and faults fresh
 * zeroed pages in for the next one, which costs more than copying the payload.  The slots cover
 * every heap a stream may have in flight (live, in a ring overfilled on one CPU): with 16, a
 * pinned decode of 64 KiB heaps faulted 7500 pages per 4096 heaps (40 ms against 36). */
enum { RECYCLE_SLOTS = 128 };
static const size_t RECYCLE_BYTES = (size_t) 64 << 20;

typedef struct recycled {
    uint8_t *ptr;
    size_t size;
} recycled;

struct sp2_allocator {
    int kind;
    volatile long refs;
    /* malloc: recycled buffers (most recent last) */
    sp2_mutex recycle_lock;
    recycled recycle[RECYCLE_SLOTS];
    size_t n_recycled;
    size_t recycled_bytes;
    /* mmap */
    int mmap_flags;
    int prefer_huge;
    /* pool */
    sp2_allocator *base;
    size_t lower, upper, max_free, initial, low_water;
    sp2_mutex lock;
    sp2_cond refill_cond;
    pool_buffer *free_buffers;    /* a stack of max_free entries */
    size_t n_free;
    int warn_on_empty;
    uint64_t empty_events;
    int background;
    int shutdown;
    sp2_thread refill_thread;
};

static sp2_allocator *allocator_new(int kind)
{
    sp2_allocator *a = calloc(1, sizeof(*a));
    if (a)
    {
        a->kind = kind;
        a->refs = 1;
    }
    return a;
}

sp2_allocator *sp2_allocator_malloc_new(void)
{
    sp2_allocator *a = allocator_new(KIND_MALLOC);
    if (a && sp2_mutex_init(&a->recycle_lock) != 0)
    {
        free(a);
        return NULL;
    }
    return a;
}

static uint8_t *malloc_alloc(sp2_allocator *a, size_t size)
{
    sp2_mutex_lock(&a->recycle_lock);
    for (size_t i = a->n_recycled; i-- > 0;)
    {
        if (a->recycle[i].size == size)
        {
            uint8_t *ptr = a->recycle[i].ptr;
            a->recycle[i] = a->recycle[--a->n_recycled];
            a->recycled_bytes -= size;
            sp2_mutex_unlock(&a->recycle_lock);
            return ptr;
        }
    }
    sp2_mutex_unlock(&a->recycle_lock);
    return malloc(size ? size : 1);
}

static void malloc_free(sp2_allocator *a, uint8_t *ptr, size_t size)
{
    if (size < 4096 || size > RECYCLE_BYTES / 4)
    {
        free(ptr);
        return;
    }
    uint8_t *evicted[RECYCLE_SLOTS];
    size_t n_evicted = 0;
    sp2_mutex_lock(&a->recycle_lock);
    /* make room by dropping the oldest (freed after unlocking) */
    while (a->n_recycled == RECYCLE_SLOTS || a->recycled_bytes + size > RECYCLE_BYTES)
    {
        evicted[n_evicted++] = a->recycle[0].ptr;
        a->recycled_bytes -= a->recycle[0].size;
        a->n_recycled--;
        memmove(&a->recycle[0], &a->recycle[1], a->n_recycled * sizeof(recycled));
    }
    a->recycle[a->n_recycled].ptr = ptr;
    a->recycle[a->n_recycled].size = size;
    a->n_recycled++;
    a->recycled_bytes += size;
    sp2_mutex_unlock(&a->recycle_lock);
    for (size_t i = 0; i < n_evicted; i++)
        free(evicted[i]);
}

sp2_allocator *sp2_allocator_mmap_new(int flags, int prefer_huge)
{
    sp2_allocator *a = allocator_new(KIND_MMAP);
    if (a)
    {
        a->mmap_flags = flags;
        a->prefer_huge = prefer_huge;
    }
    return a;
}

static uint8_t *mmap_alloc(sp2_allocator *a, size_t size, void **token)
{
#ifdef _WIN32
    *token = NULL;
    SP2_UNUSED(a);
    return malloc(size ? size : 1);
#else
    size_t length = size ? size : 1;
    void *p = MAP_FAILED;
#ifdef MAP_HUGETLB
    if (a->prefer_huge)
    {
        size_t huge = (size_t) 2 << 20;
        size_t rounded = (length + huge - 1) & ~(huge - 1);
        p = mmap(NULL, rounded, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | a->mmap_flags, -1, 0);
        if (p != MAP_FAILED)
            length = rounded;
    }
#endif
    if (p == MAP_FAILED)
        p = mmap(NULL, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | a->mmap_flags, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    *token = (void *) (uintptr_t) length;
    return p;
#endif
}

static void mmap_free(uint8_t *ptr, void *token)
{
#ifdef _WIN32
    SP2_UNUSED(token);
    free(ptr);
#else
    munmap(ptr, (size_t) (uintptr_t) token);
#endif
}

static void *refill_main(void *arg);

sp2_allocator *sp2_pool_new(size_t lower, size_t upper, size_t max_free, size_t initial,
                            size_t low_water, int background_refill, sp2_allocator *base)
{
    /* Like the reference, no consistency checks: lower > upper simply serves nothing from the
     * pool, and initial > max_free holds `initial` buffers until they are first handed out. */
    size_t slots = max_free > initial ? max_free : initial;
    sp2_allocator *a = allocator_new(KIND_POOL);
    if (!a)
        return NULL;
    a->lower = lower;
    a->upper = upper;
    a->max_free = max_free;
    a->initial = initial;
    a->low_water = low_water;
    a->warn_on_empty = 1;
    a->free_buffers = calloc(slots ? slots : 1, sizeof(pool_buffer));
    a->base = base ? base : sp2_allocator_malloc_new();
    if (base)
        sp2_allocator_retain(base);
    if (!a->free_buffers || !a->base || sp2_mutex_init(&a->lock) != 0 || sp2_cond_init(&a->refill_cond) != 0)
    {
        free(a->free_buffers);
        if (a->base)
            sp2_allocator_release(a->base);
        free(a);
        errno = ENOMEM;
        return NULL;
    }
    for (size_t i = 0; i < initial; i++)
    {
        void *token = NULL;
        uint8_t *ptr = sp2_alloc(a->base, upper, &token);
        if (!ptr)
        {
            a->refs = 1;
            sp2_allocator_release(a);
            errno = ENOMEM;
            return NULL;
        }
        a->free_buffers[a->n_free].ptr = ptr;
        a->free_buffers[a->n_free].token = token;
        a->n_free++;
    }
#ifndef _WIN32
    if (background_refill && low_water > 0)
    {
        if (pthread_create(&a->refill_thread, NULL, refill_main, a) == 0)
            a->background = 1;
    }
#else
    SP2_UNUSED(background_refill);
#endif
    return a;
}

#ifndef _WIN32
/* Tops the pool up to `initial` whenever it falls below `low_water`. */
static void *refill_main(void *arg)
{
    sp2_allocator *a = arg;
    sp2_mutex_lock(&a->lock);
    for (;;)
    {
        while (!a->shutdown && a->n_free >= a->low_water)
            sp2_cond_wait(&a->refill_cond, &a->lock);
        if (a->shutdown)
            break;
        while (!a->shutdown && a->n_free < a->initial)
        {
            sp2_mutex_unlock(&a->lock);
            void *token = NULL;
            uint8_t *ptr = sp2_alloc(a->base, a->upper, &token);
            sp2_mutex_lock(&a->lock);
            if (!ptr)
                break;
            if (a->n_free < a->max_free)
            {
                a->free_buffers[a->n_free].ptr = ptr;
                a->free_buffers[a->n_free].token = token;
                a->n_free++;
            }
            else
            {
                sp2_mutex_unlock(&a->lock);
                sp2_free(a->base, ptr, a->upper, token);
                sp2_mutex_lock(&a->lock);
            }
        }
        /* Wait for the next drop below low water rather than spinning on a failing base. */
        if (a->n_free < a->low_water && !a->shutdown)
            sp2_cond_timedwait_ns(&a->refill_cond, &a->lock, 100000000);
    }
    sp2_mutex_unlock(&a->lock);
    return NULL;
}
#else
static void *refill_main(void *arg)
{
    return arg;
}
#endif

static void pool_destroy(sp2_allocator *a)
{
#ifndef _WIN32
    if (a->background)
    {
        sp2_mutex_lock(&a->lock);
        a->shutdown = 1;
        sp2_cond_broadcast(&a->refill_cond);
        sp2_mutex_unlock(&a->lock);
        pthread_join(a->refill_thread, NULL);
    }
#endif
    for (size_t i = 0; i < a->n_free; i++)
        sp2_free(a->base, a->free_buffers[i].ptr, a->upper, a->free_buffers[i].token);
    free(a->free_buffers);
    sp2_cond_destroy(&a->refill_cond);
    sp2_mutex_destroy(&a->lock);
    sp2_allocator_release(a->base);
}

void sp2_allocator_retain(sp2_allocator *a)
{
    sp2_atomic_add(&a->refs, 1);
}

void sp2_allocator_release(sp2_allocator *a)
{
    if (!a || sp2_atomic_add(&a->refs, -1) != 0)
        return;
    if (a->kind == KIND_POOL)
        pool_destroy(a);
    else if (a->kind == KIND_MALLOC)
    {
        for (size_t i = 0; i < a->n_recycled; i++)
            free(a->recycle[i].ptr);
        sp2_mutex_destroy(&a->recycle_lock);
    }
    free(a);
}

static int pool_serves(const sp2_allocator *a, size_t size)
{
    return size >= a->lower && size <= a->upper;
}

uint8_t *sp2_alloc(sp2_allocator *a, size_t size, void **token)
{
    *token = NULL;
    switch (a->kind)
    {
    case KIND_MMAP:
        return mmap_alloc(a, size, token);
    case KIND_POOL:
        if (!pool_serves(a, size))
            return sp2_alloc(a->base, size, token);
        sp2_mutex_lock(&a->lock);
        if (a->n_free > 0)
        {
            a->n_free--;
            uint8_t *ptr = a->free_buffers[a->n_free].ptr;
            *token = a->free_buffers[a->n_free].token;
            if (a->background && a->n_free < a->low_water)
                sp2_cond_signal(&a->refill_cond);
            sp2_mutex_unlock(&a->lock);
            return ptr;
        }
        if (a->warn_on_empty)
            a->empty_events++;
        if (a->background)
            sp2_cond_signal(&a->refill_cond);
        sp2_mutex_unlock(&a->lock);
        return sp2_alloc(a->base, a->upper, token);
    default:
        return malloc_alloc(a, size);
    }
}

void sp2_free(sp2_allocator *a, uint8_t *ptr, size_t size, void *token)
{
    if (!ptr)
        return;
    switch (a->kind)
    {
    case KIND_MMAP:
        mmap_free(ptr, token);
        return;
    case KIND_POOL:
        if (!pool_serves(a, size))
        {
            sp2_free(a->base, ptr, size, token);
            return;
        }
        sp2_mutex_lock(&a->lock);
        if (a->n_free < a->max_free)
        {
            a->free_buffers[a->n_free].ptr = ptr;
            a->free_buffers[a->n_free].token = token;
            a->n_free++;
            sp2_mutex_unlock(&a->lock);
            return;
        }
        sp2_mutex_unlock(&a->lock);
        sp2_free(a->base, ptr, a->upper, token);
        return;
    default:
        malloc_free(a, ptr, size);
    }
}

uint8_t *sp2_allocator_alloc(sp2_allocator *a, size_t size, void **token)
{
    return sp2_alloc(a, size, token);
}

void sp2_allocator_free(sp2_allocator *a, uint8_t *ptr, size_t size, void *token)
{
    sp2_free(a, ptr, size, token);
}

void sp2_pool_set_warn_on_empty(sp2_allocator *a, int warn)
{
    sp2_mutex_lock(&a->lock);
    a->warn_on_empty = warn;
    sp2_mutex_unlock(&a->lock);
}

int sp2_pool_get_warn_on_empty(sp2_allocator *a)
{
    return a->warn_on_empty;
}

uint64_t sp2_pool_empty_events(sp2_allocator *a)
{
    sp2_mutex_lock(&a->lock);
    uint64_t n = a->empty_events;
    sp2_mutex_unlock(&a->lock);
    return n;
}

size_t sp2_pool_free_count(sp2_allocator *a)
{
    sp2_mutex_lock(&a->lock);
    size_t n = a->n_free;
    sp2_mutex_unlock(&a->lock);
    return n;
}
