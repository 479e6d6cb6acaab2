/* Heap payload allocators (cffi cdef: no preprocessor directives; see kernel.h).
 *
 * Allocators are reference counted: a stream and every heap it produced hold a reference, so
 * an allocator outlives the Python object that created it for as long as memory is out. */

sp2_allocator *sp2_allocator_malloc_new(void);
/* prefer_huge: try MAP_HUGETLB first and fall back to normal pages. */
sp2_allocator *sp2_allocator_mmap_new(int flags, int prefer_huge);
/* Buffers of `upper` bytes serve requests in [lower, upper]; others go to `base` (NULL: malloc).
 * With background refill, a thread tops the pool up to `initial` whenever fewer than `low_water`
 * buffers are free.  Returns NULL on failure (errno set). */
sp2_allocator *sp2_pool_new(size_t lower, size_t upper, size_t max_free, size_t initial,
                            size_t low_water, int background_refill, sp2_allocator *base);
void sp2_allocator_retain(sp2_allocator *allocator);
void sp2_allocator_release(sp2_allocator *allocator);

void sp2_pool_set_warn_on_empty(sp2_allocator *pool, int warn);
int sp2_pool_get_warn_on_empty(sp2_allocator *pool);
/* Times the pool was found empty by an allocation (while warn_on_empty was set). */
uint64_t sp2_pool_empty_events(sp2_allocator *pool);
size_t sp2_pool_free_count(sp2_allocator *pool);

/* Direct use, for tests: returns NULL on failure.  Free with the size that was asked for. */
uint8_t *sp2_allocator_alloc(sp2_allocator *allocator, size_t size, void **token);
void sp2_allocator_free(sp2_allocator *allocator, uint8_t *ptr, size_t size, void *token);
