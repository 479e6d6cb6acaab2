/* Threads, clocks and byte order for the kernel: POSIX by default, Win32 where needed. */
#ifndef SP2_PLATFORM_H
#define SP2_PLATFORM_H

#include <stdint.h>

#ifdef _WIN32
#include <windows.h>
typedef SRWLOCK sp2_mutex;
typedef CONDITION_VARIABLE sp2_cond;
typedef HANDLE sp2_thread;
static inline int sp2_mutex_init(sp2_mutex *m) { InitializeSRWLock(m); return 0; }
static inline void sp2_mutex_destroy(sp2_mutex *m) { (void) m; }
static inline void sp2_mutex_lock(sp2_mutex *m) { AcquireSRWLockExclusive(m); }
static inline void sp2_mutex_unlock(sp2_mutex *m) { ReleaseSRWLockExclusive(m); }
static inline int sp2_cond_init(sp2_cond *c) { InitializeConditionVariable(c); return 0; }
static inline void sp2_cond_destroy(sp2_cond *c) { (void) c; }
static inline void sp2_cond_signal(sp2_cond *c) { WakeConditionVariable(c); }
static inline void sp2_cond_broadcast(sp2_cond *c) { WakeAllConditionVariable(c); }
static inline void sp2_cond_wait(sp2_cond *c, sp2_mutex *m) { SleepConditionVariableSRW(c, m, INFINITE, 0); }
/* Returns 0 when woken, nonzero on timeout (callers re-check their predicate either way). */
static inline int sp2_cond_timedwait_ns(sp2_cond *c, sp2_mutex *m, int64_t ns)
{
    DWORD ms = (DWORD) ((ns + 999999) / 1000000);
    return SleepConditionVariableSRW(c, m, ms, 0) ? 0 : 1;
}
static inline int64_t sp2_now_ns(void)
{
    LARGE_INTEGER f, t;
    QueryPerformanceFrequency(&f);
    QueryPerformanceCounter(&t);
    return (int64_t) ((double) t.QuadPart * 1e9 / (double) f.QuadPart);
}
#else
#include <pthread.h>
#include <time.h>
typedef pthread_mutex_t sp2_mutex;
typedef pthread_cond_t sp2_cond;
typedef pthread_t sp2_thread;
static inline int sp2_mutex_init(sp2_mutex *m) { return pthread_mutex_init(m, NULL); }
static inline void sp2_mutex_destroy(sp2_mutex *m) { pthread_mutex_destroy(m); }
static inline void sp2_mutex_lock(sp2_mutex *m) { pthread_mutex_lock(m); }
static inline void sp2_mutex_unlock(sp2_mutex *m) { pthread_mutex_unlock(m); }
static inline int sp2_cond_init(sp2_cond *c) { return pthread_cond_init(c, NULL); }
static inline void sp2_cond_destroy(sp2_cond *c) { pthread_cond_destroy(c); }
static inline void sp2_cond_signal(sp2_cond *c) { pthread_cond_signal(c); }
static inline void sp2_cond_broadcast(sp2_cond *c) { pthread_cond_broadcast(c); }
static inline void sp2_cond_wait(sp2_cond *c, sp2_mutex *m) { pthread_cond_wait(c, m); }
static inline int sp2_cond_timedwait_ns(sp2_cond *c, sp2_mutex *m, int64_t ns)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t total = (int64_t) ts.tv_nsec + ns;
    ts.tv_sec += (time_t) (total / 1000000000);
    ts.tv_nsec = (long) (total % 1000000000);
    return pthread_cond_timedwait(c, m, &ts);
}
static inline int64_t sp2_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}
#endif

#if defined(_MSC_VER)
static inline long sp2_atomic_add(volatile long *v, long d) { return InterlockedExchangeAdd(v, d) + d; }
#else
static inline long sp2_atomic_add(volatile long *v, long d) { return __atomic_add_fetch(v, d, __ATOMIC_ACQ_REL); }
#endif

static inline uint64_t sp2_load_be64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
#if defined(__GNUC__) || defined(__clang__)
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    v = __builtin_bswap64(v);
#endif
#elif defined(_MSC_VER)
    v = _byteswap_uint64(v);
#else
    v = ((uint64_t) p[0] << 56) | ((uint64_t) p[1] << 48) | ((uint64_t) p[2] << 40)
        | ((uint64_t) p[3] << 32) | ((uint64_t) p[4] << 24) | ((uint64_t) p[5] << 16)
        | ((uint64_t) p[6] << 8) | (uint64_t) p[7];
#endif
    return v;
}

#endif
