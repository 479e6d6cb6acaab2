/* UDP reader: drains a socket into reusable buffers and feeds the kernel, one batch per
 * recvmmsg (Linux) or per run of recv calls (other POSIX systems).  Never blocks: every read
 * uses MSG_DONTWAIT, so a socket the user lent us keeps its own blocking mode.  Windows has no
 * native drain: the Python reader uses its portable DatagramProtocol path there. */
#include "internal.h"

#include <errno.h>

#ifndef _WIN32
#include <time.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/uio.h>
#define SP2_HAVE_UDP_DRAIN 1
#endif

/* No UDP datagram holds more than 65535 bytes of payload, so larger buffers are wasted. */
#define SP2_UDP_SLOT_MAX 65536

struct sp2_udp_reader {
    size_t max_size;
    size_t slot_size;
    uint32_t n_slots;
    uint8_t *buffers;
    const uint8_t **ptrs;         /* the batch handed to the kernel */
    size_t *sizes;
    size_t next;                  /* batch entries [next, ready) are still to be fed */
    size_t ready;
    /* sp2_udp_reader_ready's binding */
    sp2_stream *stream;
    int fd;
    uint32_t max_batches;
    void (*notify)(int status, int err);
    int notify_heaps;
    uint64_t drops_seen;
    int64_t next_drop_note;
    size_t received;              /* datagrams the last drain read from the socket */
    size_t received_bytes;        /* and their bytes */
    int rcvbuf;                   /* the socket's SO_RCVBUF (0: unknown) */
    uint32_t batch_len;           /* datagrams the last batch asked for */
    int64_t nap_ns;               /* coalescing: the longest nap (sp2_udp_reader_set_nap) */
    int64_t nap_now;              /* the nap that brings nap_goal datagrams at the current rate */
    uint32_t nap_backoff;
    const uint8_t **payloads;     /* per batch entry: where its payload landed, or NULL */
#if defined(SP2_HAVE_UDP_DRAIN) && defined(__linux__)
    struct mmsghdr *msgs;
    struct iovec *iovs;           /* 3 per slot: header, landing place, the rest */
    /* landing (see plan_landing) */
    int landing;                  /* on (sp2_udp_reader_set_landing) */
    uint32_t landing_backoff;     /* batches to read without landing after a bad prediction */
    int probed;                   /* read a datagram alone for the next heap (plan_landing) */
    uint32_t n_planned;           /* slots of this batch given a landing place */
    sp2_landing plan;
    sp2_stream *leased;           /* the stream whose landing this reader holds */
    uint64_t landed_total;
#endif
};

static void end_lease(sp2_udp_reader *r);

int sp2_udp_reader_supported(void)
{
#ifdef SP2_HAVE_UDP_DRAIN
    return 1;
#else
    return 0;
#endif
}

#if defined(SP2_HAVE_UDP_DRAIN) && defined(__linux__)
/* Slot i receives a datagram whole. */
static void whole_slot(sp2_udp_reader *r, uint32_t i)
{
    r->iovs[3 * i].iov_base = r->buffers + (size_t) i * r->slot_size;
    r->iovs[3 * i].iov_len = r->slot_size;
    r->msgs[i].msg_hdr.msg_iov = &r->iovs[3 * i];
    r->msgs[i].msg_hdr.msg_iovlen = 1;
}
#endif

sp2_udp_reader *sp2_udp_reader_new(size_t max_size, uint32_t n_slots)
{
    if (n_slots == 0)
        n_slots = 1;
    sp2_udp_reader *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->max_size = max_size;
    r->slot_size = max_size < SP2_UDP_SLOT_MAX ? max_size + 1 : SP2_UDP_SLOT_MAX;
    r->n_slots = n_slots;
    r->buffers = malloc(r->slot_size * n_slots);
    r->ptrs = calloc(n_slots, sizeof(*r->ptrs));
    r->sizes = calloc(n_slots, sizeof(*r->sizes));
    r->payloads = calloc(n_slots, sizeof(*r->payloads));
    if (!r->buffers || !r->ptrs || !r->sizes || !r->payloads)
        goto fail;
#if defined(SP2_HAVE_UDP_DRAIN) && defined(__linux__)
    r->msgs = calloc(n_slots, sizeof(*r->msgs));
    r->iovs = calloc(3 * (size_t) n_slots, sizeof(*r->iovs));
    if (!r->msgs || !r->iovs)
        goto fail;
    for (uint32_t i = 0; i < n_slots; i++)
        whole_slot(r, i);
#endif
    return r;

fail:
    sp2_udp_reader_free(r);
    return NULL;
}

void sp2_udp_reader_free(sp2_udp_reader *r)
{
    if (!r)
        return;
#if defined(SP2_HAVE_UDP_DRAIN) && defined(__linux__)
    end_lease(r);
    free(r->msgs);
    free(r->iovs);
#endif
    free(r->buffers);
    free(r->ptrs);
    free(r->sizes);
    free(r->payloads);
    free(r);
}

size_t sp2_udp_reader_pending(sp2_udp_reader *r)
{
    return r->ready - r->next;
}

/* Gives back the stream's landing once every landed payload is fed. */
static void end_lease(sp2_udp_reader *r)
{
#if defined(SP2_HAVE_UDP_DRAIN) && defined(__linux__)
    if (r->leased)
        sp2_stream_landing_done(r->leased, r);
    r->leased = NULL;
#else
    SP2_UNUSED(r);
#endif
}

/* Feeds what is left of the current batch. */
static int feed_pending(sp2_udp_reader *r, sp2_stream *s)
{
    if (r->next >= r->ready)
        return SP2_OK;
    size_t consumed = 0;
    int status = sp2_stream_add_landed(s, r->ptrs + r->next, r->sizes + r->next, r->payloads + r->next,
                                       r->ready - r->next, &consumed);
    r->next += consumed;
    if (status == SP2_STOPPED)
        r->next = r->ready;
    if (r->next >= r->ready)
        end_lease(r);
    return status;
}

#ifdef SP2_HAVE_UDP_DRAIN
/* Errors that concern one datagram or a passing condition, not the socket. */
static int transient(int err)
{
    return err == EINTR || err == ECONNREFUSED || err == EHOSTUNREACH || err == ENETUNREACH
           || err == ENOBUFS || err == ENOMEM;
}

/* Puts the datagram in slot i (len bytes; cut: the socket truncated it) in the batch, unless it
 * is larger than max_size (then it is only counted). */
static void take_datagram(sp2_udp_reader *r, uint32_t i, size_t len, int cut, size_t *truncated)
{
    if (len > r->max_size || cut)
    {
        (*truncated)++;
        return;
    }
    r->ptrs[r->ready] = r->buffers + (size_t) i * r->slot_size;
    r->sizes[r->ready] = len;
    r->payloads[r->ready] = r->payloads[i];   /* (ready <= i) */
    r->ready++;
}

#ifdef __linux__
/* Landing: most datagrams continue the heap of the one before, in order and of the same size,
 * so the stream can say where their payloads go (sp2_stream_landing).  Each slot of the batch
 * then receives its datagram scattered: the header in the slot, the payload straight into the
 * heap at the next place, anything longer after it in the slot.  That spares a copy of every
 * payload.  A datagram that turns out not to be the predicted one is put back together in its
 * slot (its bytes in the heap were in a part not received yet, which its real packets fill).
 * Returns the slots planned. */
static uint32_t plan_landing(sp2_udp_reader *r, sp2_stream *s)
{
    r->n_planned = 0;
    end_lease(r);                 /* (the last batch is all fed) */
    if (!r->landing)
        return 0;
    if (r->landing_backoff > 0)
    {
        r->landing_backoff--;
        return 0;
    }
    sp2_landing *l = &r->plan;
    if (!sp2_stream_landing(s, r, l))
    {
        /* The last heap, a large one, has ended: receive the next datagram alone (most likely the
         * next heap's first), so that the batch after it lands the rest of its heap; a full
         * batch would copy the datagrams of that heap already in.  Once until the next landing:
         * traffic that does not continue so (single-datagram heaps) is read in full batches. */
        if (l->next_heap && !r->probed)
        {
            r->batch_len = 1;
            r->probed = 1;
        }
        return 0;
    }
    r->probed = 0;
    r->leased = s;
    if (l->header_size + l->payload_size >= r->slot_size)
        return 0;
    uint64_t offset = 0;
    uint32_t i = 0;
    for (; i < r->n_slots && offset < l->room; i++)
    {
        size_t len = (size_t) (l->room - offset < l->payload_size ? l->room - offset : l->payload_size);
        uint8_t *slot = r->buffers + (size_t) i * r->slot_size;
        struct iovec *v = &r->iovs[3 * i];
        v[0].iov_base = slot;
        v[0].iov_len = l->header_size;
        v[1].iov_base = l->dst + offset;
        v[1].iov_len = len;
        v[2].iov_base = slot + l->header_size + len;
        v[2].iov_len = r->slot_size - l->header_size - len;
        r->msgs[i].msg_hdr.msg_iovlen = 3;
        offset += len;
    }
    /* The heap ends within the batch: the rest of a full batch would be the next heap's, copied.
     * Where heaps are large, ask for one datagram past the end (the next heap's first) instead,
     * so that the next batch can land the next heap's: one more recvmmsg a heap, against copies
     * of up to a batch (sp2_land_large). */
    if (i < r->n_slots && sp2_land_large(l->offset + (int64_t) l->room, l->payload_size))
        r->batch_len = i + 1;
    return r->n_planned = i;
}

/* Is the datagram that slot i received (len bytes) the packet predicted for it? */
static int landed_as_planned(const sp2_udp_reader *r, uint32_t i, size_t len)
{
    const sp2_landing *l = &r->plan;
    const struct iovec *v = &r->iovs[3 * i];
    const uint8_t *slot = v[0].iov_base;
    if (len <= l->header_size || len - l->header_size > v[1].iov_len
        || (sp2_load_be64(slot) & 0xffff) * 8 + 8 != l->header_size)
        return 0;
    sp2_packet p;
    uint64_t offset = (uint64_t) l->offset + (uint64_t) ((const uint8_t *) v[1].iov_base - l->dst);
    return sp2_decode(slot, len, 1, &p) == SP2_DROP_NONE && p.info.heap_cnt == l->cnt
           && (uint64_t) p.info.payload_offset == offset;
}

/* After a batch of n datagrams: payloads[i] is where slot i's payload landed, or NULL (its
 * datagram is whole in the slot: a datagram not planned, or not the predicted one, which is put
 * back together).  The slots are reset to receive whole datagrams. */
static void settle_landing(sp2_udp_reader *r, uint32_t n)
{
    uint32_t missed = 0;
    for (uint32_t i = 0; i < n; i++)
        r->payloads[i] = NULL;
    for (uint32_t i = 0; i < r->n_planned; i++)
    {
        const struct iovec *v = &r->iovs[3 * i];
        size_t len = i < n ? r->msgs[i].msg_len : 0;
        if (i < n && landed_as_planned(r, i, len))
        {
            r->payloads[i] = v[1].iov_base;
            r->landed_total++;
        }
        else if (i < n)
        {
            size_t in_heap = len > r->plan.header_size ? len - r->plan.header_size : 0;
            if (in_heap > v[1].iov_len)
                in_heap = v[1].iov_len;
            memcpy((uint8_t *) v[0].iov_base + r->plan.header_size, v[1].iov_base, in_heap);
            missed++;
        }
        whole_slot(r, i);
    }
    /* Traffic that the prediction does not fit (interleaved heaps, changing sizes): stop
     * paying for it for a while. */
    if (missed > r->n_planned / 2)
        r->landing_backoff = 16;
    r->n_planned = 0;
}

/* Receives one batch into the slots.  Returns the number of datagrams, 0 if there are none
 * (or only a passing error), -1 on a real error. */
static int receive_batch(sp2_udp_reader *r, sp2_stream *s, int fd, size_t *truncated)
{
    *truncated = 0;
    r->batch_len = r->n_slots;
    plan_landing(r, s);
    int n;
    do
        n = recvmmsg(fd, r->msgs, r->batch_len, MSG_DONTWAIT, NULL);
    while (n < 0 && errno == EINTR);
    int err = errno;
    if (n <= 0 && r->batch_len == 1)
        r->probed = 0;            /* the socket was empty: the next datagram is still to read alone */
    settle_landing(r, n > 0 ? (uint32_t) n : 0);
    if (n < 0)
    {
        errno = err;
        return err == EAGAIN || err == EWOULDBLOCK || transient(err) ? 0 : -1;
    }
    r->next = r->ready = 0;
    for (int i = 0; i < n; i++)
    {
        take_datagram(r, (uint32_t) i, r->msgs[i].msg_len, r->msgs[i].msg_hdr.msg_flags & MSG_TRUNC, truncated);
        r->received_bytes += r->msgs[i].msg_len;
    }
    r->received += (size_t) n;
    return n;
}
#else
static int receive_batch(sp2_udp_reader *r, sp2_stream *s, int fd, size_t *truncated)
{
    SP2_UNUSED(s);
    *truncated = 0;
    r->batch_len = r->n_slots;
    r->next = r->ready = 0;
    int n = 0;
    while ((uint32_t) n < r->n_slots)
    {
        ssize_t len = recv(fd, r->buffers + (size_t) n * r->slot_size, r->slot_size, MSG_DONTWAIT);
        if (len < 0 && errno == EINTR)
            continue;
        if (len < 0)
        {
            if (n == 0 && !(errno == EAGAIN || errno == EWOULDBLOCK || transient(errno)))
                return -1;
            break;
        }
        r->payloads[n] = NULL;
        take_datagram(r, (uint32_t) n, (size_t) len, 0, truncated);
        r->received_bytes += (size_t) len;
        n++;
    }
    r->received += (size_t) n;
    return n;
}
#endif
#endif

int sp2_udp_reader_drain(sp2_udp_reader *r, sp2_stream *s, int fd, uint32_t max_batches)
{
    r->received = 0;
    r->received_bytes = 0;
    int status = feed_pending(r, s);
    if (status != SP2_OK)
        return status;
#ifdef SP2_HAVE_UDP_DRAIN
    for (uint32_t batch = 0; batch < max_batches; batch++)
    {
        size_t truncated;
        int n = receive_batch(r, s, fd, &truncated);
        if (n < 0)
            return SP2_E_OS;
        if (truncated)
            sp2_stream_count_drop(s, SP2_DROP_TOO_LARGE, truncated);
        if (n == 0)
            break;
        status = feed_pending(r, s);
        if (status != SP2_OK)
            return status;
        if ((uint32_t) n < r->batch_len)
            break;                /* the socket is (almost surely) empty: let the loop poll it */
    }
    return SP2_OK;
#else
    SP2_UNUSED(fd);
    SP2_UNUSED(max_batches);
    errno = ENOSYS;
    return SP2_E_OS;
#endif
}

void sp2_udp_reader_attach(sp2_udp_reader *r, sp2_stream *s, int fd, uint32_t max_batches,
                           void (*notify)(int status, int err), int notify_heaps)
{
    r->stream = s;
    r->fd = fd;
    r->max_batches = max_batches;
    r->notify = notify;
    r->notify_heaps = notify_heaps;
    r->drops_seen = sp2_stream_drops_total(s);
    r->next_drop_note = 0;
#ifdef SP2_HAVE_UDP_DRAIN
    socklen_t len = sizeof(r->rcvbuf);
    if (getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &r->rcvbuf, &len) != 0)
        r->rcvbuf = 0;
#endif
}

/* How many datagrams a wake-up should find: NAP_GOAL, or fewer where they would fill more than an
 * eighth of the socket's buffer (the rest absorbs a late wake-up: with a quarter, 9000 B datagrams
 * at 15 Gb/s were lost on two CPUs).  The kernel charges each datagram its buffer's true size: a
 * power of two above the data and headroom, plus the socket buffer's own struct; this errs
 * large.  Below NAP_GOAL_MIN there is no napping: a buffer that small (stock kernels cap
 * SO_RCVBUF at 416 KiB: 3 jumbo datagrams to an eighth of it) gathers too little for a nap to
 * pay. */
enum { NAP_GOAL = 192, NAP_GOAL_MIN = 16 };

static size_t nap_goal(const sp2_udp_reader *r)
{
    size_t goal = NAP_GOAL;
    if (r->rcvbuf > 0 && r->received > 0)
    {
        size_t truesize = 1024;
        while (truesize < r->received_bytes / r->received + 512 && truesize < ((size_t) 1 << 20))
            truesize *= 2;
        size_t fits = (size_t) r->rcvbuf / 8 / (truesize + 512);
        if (fits < goal)
            goal = fits;
    }
    return goal;
}

/* After a nap brought r->received datagrams: the nap that would bring nap_goal, between an
 * eighth of the longest nap and the longest, moved halfway there.  Each nap is a pair of context
 * switches (and on one CPU, the consumer's wake-ups come with them), so the fewer the better,
 * while the socket buffer holds what comes. */
static void adapt_nap(sp2_udp_reader *r)
{
    int64_t want = r->nap_now * (int64_t) (nap_goal(r) + 1) / (int64_t) r->received;
    int64_t low = r->nap_ns >= 8 ? r->nap_ns / 8 : 1;
    if (want < low)
        want = low;
    if (want > r->nap_ns)
        want = r->nap_ns;
    r->nap_now = (r->nap_now + want) / 2;
}

void sp2_udp_reader_ready(sp2_udp_reader *r)
{
    sp2_stream *s = r->stream;
    if (!s || !r->notify)
        return;
    /* Only the owner thread (this one) writes the totals, so it may read them without the lock. */
    uint64_t heaps = s->totals.heaps;
    sp2_ring_hold(&s->ring);      /* the consumer is woken once this thread sleeps */
    int status = sp2_udp_reader_drain(r, s, r->fd, r->max_batches);
#ifdef SP2_HAVE_UDP_DRAIN
    /* (the naps of one readiness add up to nap_ns at most: the loop and the heaps wait that long) */
    for (int64_t napped = 0; status == SP2_OK && r->nap_ns > 0 && napped < r->nap_ns;)
    {
        size_t got = r->received, goal = nap_goal(r);
        if (got == 0 || 3 * got >= 2 * goal || goal < NAP_GOAL_MIN)
            break;                /* nothing came (nothing to coalesce) / enough came / the
                                     socket's buffer is too small to gather enough */
        if (r->nap_backoff > 0)
        {
            r->nap_backoff--;
            break;
        }
        struct timespec ts = {0, (long) r->nap_now};
        sp2_ring_release(&s->ring);
        nanosleep(&ts, NULL);
        sp2_ring_hold(&s->ring);
        napped += r->nap_now;
        status = sp2_udp_reader_drain(r, s, r->fd, r->max_batches);
        if (status == SP2_OK && r->received == 0)
            r->nap_backoff = 64;  /* the traffic is too sparse for napping to pay */
        else
            adapt_nap(r);
    }
#endif
    sp2_ring_release(&s->ring);
    if (status != SP2_OK)
    {
        int err = status == SP2_E_OS ? errno : 0;
        r->notify(status, err);
        return;
    }
    if (r->notify_heaps && s->totals.heaps != heaps)
    {
        r->notify(SP2_OK, 0);
        return;
    }
    uint64_t drops = sp2_stream_drops_total(s);
    if (drops != r->drops_seen)
    {
        int64_t now = sp2_now_ns();
        if (now >= r->next_drop_note)
        {
            r->drops_seen = drops;
            r->next_drop_note = now + 1000000000;
            r->notify(SP2_OK, 0);
        }
    }
}

void sp2_udp_reader_set_nap(sp2_udp_reader *r, int64_t nap_ns)
{
    r->nap_ns = nap_ns > 0 && nap_ns < 1000000000 ? nap_ns : 0;
    r->nap_now = r->nap_ns >= 4 ? r->nap_ns / 4 : r->nap_ns;
}

void sp2_udp_reader_set_landing(sp2_udp_reader *r, int on)
{
#if defined(SP2_HAVE_UDP_DRAIN) && defined(__linux__)
    r->landing = on != 0;
#else
    SP2_UNUSED(r);
    SP2_UNUSED(on);
#endif
}

uint64_t sp2_udp_reader_landed(sp2_udp_reader *r)
{
#if defined(SP2_HAVE_UDP_DRAIN) && defined(__linux__)
    return r->landed_total;
#else
    SP2_UNUSED(r);
    return 0;
#endif
}
