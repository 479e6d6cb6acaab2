/* The ring of finished heaps between the owner thread (producer) and any consumer thread.
 *
 * When it reaches capacity the producer finishes its batch of input past it, a bounded way
 * (may_overfill), may wait in C for a while (a blocking consumer on another thread), then pauses
 * its readers and asks to be woken through the space fd, which a pop signals
 * once the ring has drained to the resume level.  The data fd is a semaphore (one count per
 * queued heap) for poll-based frameworks; it stays readable for good once the ring stops.
 *
 * Hand-offs between threads cost context switches, and on one CPU each one is paid twice:
 * - a push does not wake a sleeping consumer for each heap (on a busy or shared CPU that is two
 *   switches per heap) but when the ring fills or the producer's batch of input ends
 *   (sp2_ring_publish), so that each wake-up hands over every heap that is ready;
 * - a side about to sleep spins briefly first only when the other side is at work on another CPU
 *   at that moment (it then usually delivers within microseconds); a spinner sharing the other's
 *   CPU would only burn the time slice that the other needs.  The consumer's spin also shrinks
 *   while it fails;
 * - when both threads are pinned to the same CPU, a paused producer resumes only once the ring is
 *   empty rather than half empty, so that each switch between them moves a whole ring.
 * Wake-ups are signalled after unlocking, so that the woken side does not run into the lock. */
#include "internal.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
static inline void sp2_cpu_relax(void) { _mm_pause(); }
#else
static inline void sp2_cpu_relax(void) {}
#endif

static const int64_t SPIN_NS = 20000;
/* How far past capacity a producer may fill the ring to finish its batch (may_overfill). */
enum { OVERFILL_HEAPS = 60 };
static const uint64_t OVERFILL_BYTES = (uint64_t) 4 << 20;

#include <errno.h>
#ifndef _WIN32
#include <fcntl.h>
#include <unistd.h>
#ifdef __linux__
#include <sched.h>
#include <sys/eventfd.h>
#endif
#endif

/* ---- where each side runs ---- */

enum { CPU_SEVERAL = -1, CPU_UNKNOWN = -2 };
static const int64_t AFFINITY_REFRESH_NS = 100000000;

#if defined(__linux__) && (defined(__GNUC__) || defined(__clang__))
/* The one CPU the calling thread may run on, or CPU_SEVERAL.  Cached per thread and read again
 * every AFFINITY_REFRESH_NS, so that a taskset or cgroup change is noticed; the clock itself is
 * read only every AFFINITY_CALLS calls (it was a tenth of the consumer's C time per heap). */
enum { AFFINITY_CALLS = 64 };
static int pinned_cpu(void)
{
    static __thread int cpu = CPU_UNKNOWN;
    static __thread int64_t checked = 0;
    static __thread unsigned calls = 0;
    if (cpu != CPU_UNKNOWN && ++calls < AFFINITY_CALLS)
        return cpu;
    calls = 0;
    int64_t now = sp2_now_ns();
    if (cpu != CPU_UNKNOWN && now - checked < AFFINITY_REFRESH_NS)
        return cpu;
    checked = now;
    cpu_set_t set;
    cpu = CPU_SEVERAL;
    if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) == 1)
        for (int i = 0; i < CPU_SETSIZE; i++)
            if (CPU_ISSET(i, &set))
            {
                cpu = i;
                break;
            }
    return cpu;
}

static int current_cpu(void)
{
    return sched_getcpu();   /* from the rseq area or the vDSO: no system call */
}
#else
static int pinned_cpu(void)
{
    return CPU_SEVERAL;
}

static int current_cpu(void)
{
    return -1;   /* unknown: spinning adapts to its own success */
}
#endif

static void store_if_changed(int *slot, int value)
{
    if (__atomic_load_n(slot, __ATOMIC_RELAXED) != value)
        __atomic_store_n(slot, value, __ATOMIC_RELAXED);
}

/* Publishes where the calling side runs and whether it is at work (not asleep or idle). */
static void note_side(sp2_ring_side *side, int busy)
{
    store_if_changed(&side->pinned, pinned_cpu());
    store_if_changed(&side->cpu, current_cpu());
    store_if_changed(&side->busy, busy);
}

/* Whether producer and consumer are pinned to one and the same CPU (a side not seen yet is taken
 * to share the other's affinity, as threads inherit it). */
static int one_cpu(const sp2_ring *r)
{
    int p = __atomic_load_n(&r->producer.pinned, __ATOMIC_RELAXED);
    int c = __atomic_load_n(&r->consumer.pinned, __ATOMIC_RELAXED);
    if (p == CPU_UNKNOWN)
        p = c;
    if (c == CPU_UNKNOWN)
        c = p;
    return p >= 0 && p == c;
}

/* Whether waiting for the other side by spinning can pay: it is at work, on another CPU than the
 * caller's at this moment (a spinner sharing its CPU would only delay it). */
static int worth_spinning(const sp2_ring *r, const sp2_ring_side *other)
{
    if (one_cpu(r) || !__atomic_load_n(&other->busy, __ATOMIC_RELAXED))
        return 0;
    int there = __atomic_load_n(&other->cpu, __ATOMIC_RELAXED);
    int here = current_cpu();
    return here < 0 || there < 0 || here != there;
}

/* The level down to which the ring must drain before a paused producer goes on: half the ring, so
 * that a producer on another CPU refills it while the consumer works; but a producer that shares
 * the consumer's one CPU waits until the ring is empty, so that each switch between them moves a
 * whole ring.  (A producer on the consumer's own thread does not wait in C: same_thread.) */
static size_t resume_level(const sp2_ring *r)
{
    if (one_cpu(r) && !__atomic_load_n(&r->same_thread, __ATOMIC_RELAXED))
        return 0;
    return r->resume_level;
}

/* A producer finishes its batch of input past a full ring while the overfill stays small: every
 * pause costs two context switches (or a trip through the loop), and a wake-up on another CPU
 * tens of µs, so it should move many heaps, not a ring of four (small heaps on two CPUs ran at a
 * third of the reference's rate).  Only to the end of the batch: a UDP reader's batch is one
 * recvmmsg, so the socket is not left unread for long (a buffer reader's is a 4 MiB window).
 * The heaps past capacity are, as with a flush, conceptually still with the producer
 * (sp2_ring_size does not count them). */
static int may_overfill(const sp2_ring *r)
{
    return r->count < r->capacity + OVERFILL_HEAPS && r->bytes < OVERFILL_BYTES;
}

#ifndef _WIN32
static int make_pipe(int fd[2])
{
    if (pipe(fd) != 0)
        return -1;
    for (int i = 0; i < 2; i++)
    {
        fcntl(fd[i], F_SETFL, fcntl(fd[i], F_GETFL) | O_NONBLOCK);
        fcntl(fd[i], F_SETFD, FD_CLOEXEC);
    }
    return 0;
}

static void write_bytes(int fd, size_t n)
{
    static const uint8_t ones[64] = {0};
    while (n > 0)
    {
        size_t chunk = n < sizeof(ones) ? n : sizeof(ones);
        ssize_t ret = write(fd, ones, chunk);
        if (ret <= 0)
            return;
        n -= (size_t) ret;
    }
}
#endif

#ifndef _WIN32
/* ---- the data fd: a semaphore of queued heaps ----
 * Linux: an eventfd in semaphore mode (no limit on the count; at the stop it gets a huge count,
 * so that it stays readable).  Elsewhere: a pipe holding a byte per heap (so at most the pipe's
 * capacity of heaps) whose write end is closed at the stop. */

static int data_fd_open(sp2_ring *r, uint64_t count)
{
#ifdef __linux__
    int fd = eventfd(0, EFD_SEMAPHORE | EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd >= 0)
    {
        r->data_fd[0] = r->data_fd[1] = fd;
        return 0;
    }
#endif
    if (make_pipe(r->data_fd) != 0)
        return -1;
    write_bytes(r->data_fd[1], count);
    return 1;
}

static void data_fd_post(sp2_ring *r, uint64_t n)
{
    if (r->data_fd[1] < 0 || n == 0)
        return;
    if (r->data_fd[0] == r->data_fd[1])
    {
        ssize_t ret = write(r->data_fd[1], &n, sizeof(n));
        SP2_UNUSED(ret);
    }
    else
        write_bytes(r->data_fd[1], n);
}

static void data_fd_take(sp2_ring *r)
{
    if (r->data_fd[0] < 0)
        return;
    uint64_t buf;   /* an eventfd wants 8 bytes; a pipe gives one */
    ssize_t ret = read(r->data_fd[0], &buf, r->data_fd[0] == r->data_fd[1] ? sizeof(buf) : 1);
    SP2_UNUSED(ret);
}

static void data_fd_stop(sp2_ring *r)
{
    if (r->data_fd[1] < 0)
        return;
    if (r->data_fd[0] == r->data_fd[1])
        data_fd_post(r, UINT64_C(1) << 62);
    else
    {
        close(r->data_fd[1]);
        r->data_fd[1] = -1;
    }
}

static void close_fds(int fd[2])
{
    if (fd[0] >= 0)
        close(fd[0]);
    if (fd[1] >= 0 && fd[1] != fd[0])
        close(fd[1]);
    fd[0] = fd[1] = -1;
}
#endif

int sp2_ring_init(sp2_ring *r, size_t capacity)
{
    memset(r, 0, sizeof(*r));
    r->capacity = capacity;
    r->resume_level = capacity / 2;
    r->spin_ns = SPIN_NS;
    r->producer.pinned = r->consumer.pinned = CPU_UNKNOWN;
    r->producer.cpu = r->consumer.cpu = -1;
    r->data_fd[0] = r->data_fd[1] = -1;
    r->space_fd[0] = r->space_fd[1] = -1;
    if (sp2_mutex_init(&r->lock) != 0)
        return -1;
    if (sp2_cond_init(&r->data_cond) != 0)
    {
        sp2_mutex_destroy(&r->lock);
        return -1;
    }
    if (sp2_cond_init(&r->space_cond) != 0)
    {
        sp2_cond_destroy(&r->data_cond);
        sp2_mutex_destroy(&r->lock);
        return -1;
    }
    return 0;
}

void sp2_ring_destroy(sp2_ring *r)
{
    sp2_heap_impl *h = r->head;
    while (h)
    {
        sp2_heap_impl *next = h->next;
        sp2_heap_free(&h->pub);
        h = next;
    }
    r->head = r->tail = NULL;
#ifndef _WIN32
    close_fds(r->data_fd);
    close_fds(r->space_fd);
#endif
    sp2_cond_destroy(&r->space_cond);
    sp2_cond_destroy(&r->data_cond);
    sp2_mutex_destroy(&r->lock);
}

int sp2_ring_push(sp2_ring *r, sp2_heap_impl *h)
{
    note_side(&r->producer, 1);
    sp2_mutex_lock(&r->lock);
    if (r->stopped)
    {
        sp2_mutex_unlock(&r->lock);
        sp2_heap_free(&h->pub);
        return 0;
    }
    h->next = NULL;
    if (r->tail)
        r->tail->next = h;
    else
        r->head = h;
    r->tail = h;
    r->count++;
#ifndef _WIN32
    data_fd_post(r, 1);
#endif
    r->bytes += h->payload_capacity;
    int full = r->count >= r->capacity;
    int result = !full ? SP2_PUSH_ROOM : may_overfill(r) ? SP2_PUSH_DEFER : SP2_PUSH_FULL;
    /* A consumer woken for each heap would, on the producer's own CPU, take the CPU for one heap
     * at a time (two context switches per heap): there it is woken when the ring fills or the
     * batch ends.  Where the two can run on two CPUs, it is woken at once, so that they overlap. */
    int wake = r->waiters && (result == SP2_PUSH_FULL || !one_cpu(r));
    r->wake_pending = r->waiters && !wake;
    sp2_mutex_unlock(&r->lock);
    /* Signalled after unlocking, so that the woken side does not run straight into the lock. */
    if (wake)
        sp2_cond_signal(&r->data_cond);
    return result;
}

/* Delivers a wake-up that pushes deferred. */
static void deliver(sp2_ring *r)
{
    store_if_changed(&r->producer.busy, 0);
    /* wake_pending is only written by the producer (this thread) */
    if (!r->wake_pending)
        return;
    sp2_mutex_lock(&r->lock);
    int wake = r->waiters;
    r->wake_pending = 0;
    sp2_mutex_unlock(&r->lock);
    if (wake)
        sp2_cond_signal(&r->data_cond);
}

int sp2_ring_held_on_one_cpu(const sp2_ring *r)
{
    return r->held && one_cpu(r);
}

void sp2_ring_publish(sp2_ring *r)
{
    if (sp2_ring_held_on_one_cpu(r))
        store_if_changed(&r->producer.busy, 0);
    else
        deliver(r);
}

/* On one CPU a consumer woken at the end of each batch takes the CPU then and there (the
 * scheduler favours a task that slept), so a reader that takes several batches per wake-up
 * (naps included) would hand over a heap or two per switch; held, it hands over all it got, when
 * it is about to sleep anyway. */
void sp2_ring_hold(sp2_ring *r)
{
    r->held = 1;
}

void sp2_ring_release(sp2_ring *r)
{
    r->held = 0;
    deliver(r);
}

static int make_space_fd_locked(sp2_ring *r);

static int has_room_locked(const sp2_ring *r)
{
    return r->stopped || r->count <= resume_level(r);
}

int sp2_ring_want_space(sp2_ring *r, int64_t wait_ns, int *blocked)
{
    if (__atomic_load_n(&r->same_thread, __ATOMIC_RELAXED) != (wait_ns == 0))
        __atomic_store_n(&r->same_thread, wait_ns == 0, __ATOMIC_RELAXED);
    deliver(r);   /* a consumer must not sleep on a full ring */
    sp2_mutex_lock(&r->lock);
    *blocked = !has_room_locked(r);
    if (wait_ns > 0 && *blocked && worth_spinning(r, &r->consumer))
    {
        /* The consumer is on another thread and usually takes a heap within microseconds:
         * spin briefly before sleeping, so that neither side settles into waking the other. */
        sp2_mutex_unlock(&r->lock);
        int64_t until = sp2_now_ns() + (wait_ns < SPIN_NS ? wait_ns : SPIN_NS);
        while (sp2_now_ns() < until
               && __atomic_load_n(&r->count, __ATOMIC_ACQUIRE) > resume_level(r)
               && !__atomic_load_n(&r->stopped, __ATOMIC_ACQUIRE))
            sp2_cpu_relax();
        sp2_mutex_lock(&r->lock);
    }
    if (wait_ns > 0 && !has_room_locked(r))
    {
        int64_t deadline = sp2_now_ns() + wait_ns;
        store_if_changed(&r->producer.busy, 0);
        while (!has_room_locked(r))
        {
            int64_t left = deadline - sp2_now_ns();
            if (left <= 0)
                break;
            r->producer_waiting = 1;   /* cleared by the pop that signals */
            sp2_cond_timedwait_ns(&r->space_cond, &r->lock, left);
        }
        r->producer_waiting = 0;
        store_if_changed(&r->producer.busy, 1);
    }
    /* The fd must exist before a pop can see space_wanted, or its signal would be lost.  If it
     * cannot be made, the producer does not pause: the ring overfills rather than hangs. */
    int wait = !has_room_locked(r) && make_space_fd_locked(r) == 0;
    r->space_wanted = wait;
    sp2_mutex_unlock(&r->lock);
    return wait;
}

static void signal_space(sp2_ring *r)
{
#ifndef _WIN32
    if (r->space_fd[1] >= 0)
    {
        uint64_t one = 1;
        ssize_t ret = write(r->space_fd[1], &one, sizeof(one));
        SP2_UNUSED(ret);
    }
#else
    SP2_UNUSED(r);
#endif
}

/* Marks the ring stopped: pushes are dropped, pops drain what is queued and then report the
 * stop.  Wakes everyone who might wait on it. */
static void stop_locked(sp2_ring *r)
{
    if (r->stopped)
        return;
    r->stopped = 1;
    sp2_cond_broadcast(&r->data_cond);
    sp2_cond_broadcast(&r->space_cond);
#ifndef _WIN32
    data_fd_stop(r);
#endif
    if (r->space_wanted)
    {
        r->space_wanted = 0;
        signal_space(r);
    }
}

void sp2_ring_close(sp2_ring *r)
{
    sp2_mutex_lock(&r->lock);
    stop_locked(r);
    sp2_mutex_unlock(&r->lock);
}

void sp2_ring_stop(sp2_stream *s)
{
    sp2_ring_close(&s->ring);
}

/* Spins for up to r->spin_ns waiting for a heap; returns nonzero if one came. */
static int spin_for_heap(sp2_ring *r)
{
    int64_t spin = __atomic_load_n(&r->spin_ns, __ATOMIC_RELAXED);
    if (spin <= 0)
        return 0;
    int64_t until = sp2_now_ns() + spin;
    while (sp2_now_ns() < until)
    {
        if (__atomic_load_n(&r->count, __ATOMIC_ACQUIRE) != 0 || __atomic_load_n(&r->stopped, __ATOMIC_ACQUIRE))
            return 1;
        sp2_cpu_relax();
    }
    return 0;
}

/* Lock held, ring empty: sleeps until a heap comes, the ring stops or the timeout (negative:
 * none) passes. */
static void wait_for_data(sp2_ring *r, int64_t timeout_ns)
{
    int64_t start = sp2_now_ns();
    int64_t deadline = timeout_ns > 0 ? start + timeout_ns : 0;
    r->waiters++;
    store_if_changed(&r->consumer.busy, 0);
    while (r->count == 0 && !r->stopped)
    {
        if (timeout_ns < 0)
            sp2_cond_wait(&r->data_cond, &r->lock);
        else
        {
            int64_t left = deadline - sp2_now_ns();
            if (left <= 0)
                break;
            sp2_cond_timedwait_ns(&r->data_cond, &r->lock, left);
        }
    }
    r->waiters--;
    store_if_changed(&r->consumer.busy, 1);
    if (r->count != 0 && sp2_now_ns() - start < 4 * SPIN_NS)
        r->spin_ns = SPIN_NS;   /* the sleep was short: spinning would have paid */
}

/* Lock held, ring not empty: unlinks the oldest heap, and says whom its room wakes. */
static sp2_heap_impl *take_head(sp2_ring *r, int *wake_producer, int *wake_loop)
{
    sp2_heap_impl *h = r->head;
    r->head = h->next;
    if (!r->head)
        r->tail = NULL;
    r->count--;
    r->bytes -= h->payload_capacity;
#ifndef _WIN32
    data_fd_take(r);
#endif
    *wake_producer = *wake_loop = 0;
    if (r->count <= resume_level(r))
    {
        *wake_producer = r->producer_waiting;
        *wake_loop = r->space_wanted;
        r->producer_waiting = r->space_wanted = 0;
    }
    h->next = NULL;
    return h;
}

sp2_heap *sp2_ring_pop(sp2_stream *s, int64_t timeout_ns)
{
    sp2_ring *r = &s->ring;
    int spun = 0, spin_paid = 0;
    note_side(&r->consumer, 1);
    if (timeout_ns != 0 && __atomic_load_n(&r->count, __ATOMIC_ACQUIRE) == 0
        && worth_spinning(r, &r->producer))
    {
        /* A busy producer on another core usually delivers within microseconds: a short spin
         * saves a sleep and a wake-up (two context switches, and a futex wake that the producer
         * pays for).  The spin adapts: it shrinks while it fails (an idle stream costs no CPU)
         * and comes back when sleeps turn out short. */
        spun = 1;
        spin_paid = spin_for_heap(r);
    }
    sp2_mutex_lock(&r->lock);
    if (spun)
        r->spin_ns = spin_paid ? SPIN_NS : r->spin_ns - SPIN_NS / 8;
    if (r->count == 0 && !r->stopped && timeout_ns != 0)
        wait_for_data(r, timeout_ns);
    if (r->count == 0)
    {
        sp2_mutex_unlock(&r->lock);
        return NULL;
    }
    int wake_producer, wake_loop;
    sp2_heap_impl *h = take_head(r, &wake_producer, &wake_loop);
    sp2_mutex_unlock(&r->lock);
    /* After unlocking, so that the woken producer does not run straight into the lock. */
    if (wake_producer)
        sp2_cond_signal(&r->space_cond);
    if (wake_loop)
        signal_space(r);
    return &h->pub;
}

int sp2_ring_drained(sp2_stream *s)
{
    sp2_mutex_lock(&s->ring.lock);
    int drained = s->ring.stopped && s->ring.count == 0;
    sp2_mutex_unlock(&s->ring.lock);
    return drained;
}

int sp2_ring_waiters(sp2_stream *s)
{
    sp2_mutex_lock(&s->ring.lock);
    int waiters = s->ring.waiters;
    sp2_mutex_unlock(&s->ring.lock);
    return waiters;
}

size_t sp2_ring_size(sp2_stream *s)
{
    sp2_mutex_lock(&s->ring.lock);
    /* Heaps beyond capacity are those a flush or a single batch produced after the ring filled:
     * conceptually they are still with the producer, which is paused. */
    size_t n = s->ring.count < s->ring.capacity ? s->ring.count : s->ring.capacity;
    sp2_mutex_unlock(&s->ring.lock);
    return n;
}

size_t sp2_ring_capacity(sp2_stream *s)
{
    return s->ring.capacity;
}

int sp2_ring_data_fd(sp2_stream *s)
{
#ifdef _WIN32
    SP2_UNUSED(s);
    errno = ENOSYS;
    return -1;
#else
    sp2_ring *r = &s->ring;
    sp2_mutex_lock(&r->lock);
    if (r->data_fd[0] < 0)
    {
        int kind = data_fd_open(r, r->count);
        if (kind < 0)
        {
            sp2_mutex_unlock(&r->lock);
            return -1;
        }
        if (kind == 0)
            data_fd_post(r, r->count);
        if (r->stopped)
            data_fd_stop(r);
    }
    int fd = r->data_fd[0];
    sp2_mutex_unlock(&r->lock);
    return fd;
#endif
}

static int make_space_fd_locked(sp2_ring *r)
{
#ifdef _WIN32
    SP2_UNUSED(r);
    return -1;
#else
    if (r->space_fd[0] >= 0)
        return 0;
#ifdef __linux__
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd >= 0)
    {
        r->space_fd[0] = r->space_fd[1] = fd;
        return 0;
    }
#endif
    return make_pipe(r->space_fd);
#endif
}

int sp2_ring_space_fd(sp2_stream *s)
{
    sp2_ring *r = &s->ring;
    sp2_mutex_lock(&r->lock);
    int fd = make_space_fd_locked(r) == 0 ? r->space_fd[0] : -1;
    sp2_mutex_unlock(&r->lock);
    return fd;
}

void sp2_ring_space_ack(sp2_stream *s)
{
#ifndef _WIN32
    sp2_ring *r = &s->ring;
    if (r->space_fd[0] < 0)
        return;
    uint8_t buf[64];
    while (read(r->space_fd[0], buf, sizeof(buf)) > 0)
    {
    }
#else
    SP2_UNUSED(s);
#endif
}
