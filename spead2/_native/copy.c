/* Payload copy with a non-temporal cache hint (MEMCPY_NONTEMPORAL), where the CPU has one. */
#include "internal.h"

#if defined(__SSE2__) || defined(_M_X64)
#include <emmintrin.h>

void sp2_copy_nontemporal(uint8_t *dst, const uint8_t *src, size_t n)
{
    if (n < 256)
    {
        memcpy(dst, src, n);
        return;
    }
    size_t head = (16 - ((uintptr_t) dst & 15)) & 15;
    memcpy(dst, src, head);
    dst += head;
    src += head;
    n -= head;
    for (; n >= 64; n -= 64, dst += 64, src += 64)
    {
        __m128i a = _mm_loadu_si128((const __m128i *) src);
        __m128i b = _mm_loadu_si128((const __m128i *) (src + 16));
        __m128i c = _mm_loadu_si128((const __m128i *) (src + 32));
        __m128i d = _mm_loadu_si128((const __m128i *) (src + 48));
        _mm_stream_si128((__m128i *) dst, a);
        _mm_stream_si128((__m128i *) (dst + 16), b);
        _mm_stream_si128((__m128i *) (dst + 32), c);
        _mm_stream_si128((__m128i *) (dst + 48), d);
    }
    _mm_sfence();
    memcpy(dst, src, n);
}
#else
void sp2_copy_nontemporal(uint8_t *dst, const uint8_t *src, size_t n)
{
    memcpy(dst, src, n);
}
#endif
