/* Payload copy with a non-temporal cache hint (MEMCPY_NONTEMPORAL), where the CPU has one. */
#include "internal.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

/* 32-byte streaming stores where the CPU has AVX2 (chosen at run time), else 16-byte SSE2.
 * The stores are fenced once per heap (sp2_copy_fence, before the heap leaves the producer),
 * not once per packet. */
__attribute__((target("avx2"))) static void copy_nt_avx2(uint8_t *dst, const uint8_t *src, size_t n)
{
    for (; n >= 128; n -= 128, dst += 128, src += 128)
    {
        __m256i a = _mm256_loadu_si256((const __m256i *) src);
        __m256i b = _mm256_loadu_si256((const __m256i *) (src + 32));
        __m256i c = _mm256_loadu_si256((const __m256i *) (src + 64));
        __m256i d = _mm256_loadu_si256((const __m256i *) (src + 96));
        _mm256_stream_si256((__m256i *) dst, a);
        _mm256_stream_si256((__m256i *) (dst + 32), b);
        _mm256_stream_si256((__m256i *) (dst + 64), c);
        _mm256_stream_si256((__m256i *) (dst + 96), d);
    }
    memcpy(dst, src, n);
}

__attribute__((target("avx512f"))) static void copy_nt_avx512(uint8_t *dst, const uint8_t *src, size_t n)
{
    for (; n >= 256; n -= 256, dst += 256, src += 256)
    {
        __m512i a = _mm512_loadu_si512((const void *) src);
        __m512i b = _mm512_loadu_si512((const void *) (src + 64));
        __m512i c = _mm512_loadu_si512((const void *) (src + 128));
        __m512i d = _mm512_loadu_si512((const void *) (src + 192));
        _mm512_stream_si512((void *) dst, a);
        _mm512_stream_si512((void *) (dst + 64), b);
        _mm512_stream_si512((void *) (dst + 128), c);
        _mm512_stream_si512((void *) (dst + 192), d);
    }
    for (; n >= 64; n -= 64, dst += 64, src += 64)
        _mm512_stream_si512((void *) dst, _mm512_loadu_si512((const void *) src));
    memcpy(dst, src, n);
}

static void copy_nt_sse2(uint8_t *dst, const uint8_t *src, size_t n)
{
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
    memcpy(dst, src, n);
}

void sp2_copy_nontemporal(uint8_t *dst, const uint8_t *src, size_t n)
{
    static int has_avx2 = -1;
    if (n < 256)
    {
        memcpy(dst, src, n);
        return;
    }
    /* align the destination for the streaming stores */
    size_t head = (64 - ((uintptr_t) dst & 63)) & 63;
    memcpy(dst, src, head);
    dst += head;
    src += head;
    n -= head;
    if (has_avx2 < 0)
        has_avx2 = __builtin_cpu_supports("avx512f") ? 2 : __builtin_cpu_supports("avx2") ? 1 : 0;
    if (has_avx2 == 2)
        copy_nt_avx512(dst, src, n);
    else if (has_avx2)
        copy_nt_avx2(dst, src, n);
    else
        copy_nt_sse2(dst, src, n);
}
void sp2_copy_fence(void)
{
    _mm_sfence();
}
#else
void sp2_copy_nontemporal(uint8_t *dst, const uint8_t *src, size_t n)
{
    memcpy(dst, src, n);
}

void sp2_copy_fence(void)
{
}
#endif
