/* The copy floor of an in-memory decode: the time a plain loop takes only to copy the payloads of
 * a buffer of packets into heap buffers, with the prefetching the buffer reader does (a line
 * prefetch 2 KiB ahead for packets up to 4 KiB, one touch per page 16 KiB ahead for larger ones).
 * No decoder that copies can take less per packet; README.md compares it with buffer_decode.py.
 *
 *     cc -O2 -o /tmp/copy_floor bench/copy_floor.c
 *     taskset -c 1 /tmp/copy_floor PACKET_BYTES [HEAP_BUFFERS [HEAP_BYTES]]
 *
 * HEAP_BUFFERS (default 6) is how many heap buffers the copies cycle through: a stream has its
 * live heap, the heaps in its ring and the one its consumer holds.  HEAP_BYTES defaults to 1 MiB;
 * each packet is taken to carry a 64-byte header before its payload. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { TOTAL_BYTES = 256 << 20, HEADER = 64 };
/* as the buffer reader's (stream.c: PREFETCH_AHEAD, PREFETCH_MAX_PACKET, PAGE_KICK_AHEAD) */
enum { LINE_AHEAD = 2048, LINE_MAX_PACKET = 4096, PAGE_AHEAD = 16384, PAGE = 4096 };

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double) t.tv_sec + (double) t.tv_nsec * 1e-9;
}

static void prefetch_ahead(const uint8_t *src, size_t pos, size_t packet, size_t *kicked)
{
#if defined(__GNUC__) || defined(__clang__)
    if (packet <= LINE_MAX_PACKET)
    {
        for (size_t ahead = LINE_AHEAD; ahead < LINE_AHEAD + packet; ahead += 64)
            if (pos + ahead < TOTAL_BYTES)
                __builtin_prefetch(src + pos + ahead, 0, 2);
        return;
    }
    for (*kicked = *kicked > pos ? *kicked : pos; *kicked < pos + PAGE_AHEAD && *kicked < TOTAL_BYTES;
         *kicked += PAGE)
        __builtin_prefetch(src + *kicked, 0, 2);
#else
    (void) src, (void) pos, (void) packet, (void) kicked;
#endif
}

int main(int argc, char **argv)
{
    size_t packet = argc > 1 ? strtoul(argv[1], NULL, 10) : 0;
    size_t n_heaps = argc > 2 ? strtoul(argv[2], NULL, 10) : 6;
    size_t heap = argc > 3 ? strtoul(argv[3], NULL, 10) : (size_t) 1 << 20;
    if (packet <= HEADER || packet > heap || n_heaps == 0 || n_heaps > 1024)
    {
        fprintf(stderr, "usage: %s PACKET_BYTES(>%d) [HEAP_BUFFERS(1-1024) [HEAP_BYTES]]\n", argv[0], HEADER);
        return 2;
    }
    uint8_t *src = malloc(TOTAL_BYTES);
    uint8_t **heaps = calloc(n_heaps, sizeof(*heaps));
    if (!src || !heaps)
        return 1;
    memset(src, 1, TOTAL_BYTES);
    for (size_t k = 0; k < n_heaps; k++)
    {
        if (!(heaps[k] = malloc(heap)))
            return 1;
        memset(heaps[k], 0, heap);
    }
    size_t payload = packet - HEADER, packets = TOTAL_BYTES / packet;
    double best = 1e30;
    for (int rep = 0; rep < 5; rep++)
    {
        double start = now_s();
        size_t offset = 0, h = 0, kicked = 0;
        for (size_t pos = 0; pos + packet <= TOTAL_BYTES; pos += packet)
        {
            if (offset + payload > heap)
            {
                offset = 0;
                h = (h + 1) % n_heaps;
            }
            prefetch_ahead(src, pos, packet, &kicked);
            memcpy(heaps[h] + offset, src + pos + HEADER, payload);
            offset += payload;
        }
        double took = now_s() - start;
        if (took < best)
            best = took;
    }
    printf("packet %zu B, %zu heap buffers of %zu B: %.0f ns per packet (best of 5)\n", packet, n_heaps,
           heap, best / (double) packets * 1e9);
    return 0;
}
