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

/* Naps per readiness at most (sp2_udp_reader_set_nap), bounding the time the loop is held. */
#define MAX_NAPS 4
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
    int64_t nap_ns;               /* coalescing: see sp2_udp_reader_set_nap */
    uint32_t nap_backoff;
#if defined(SP2_HAVE_UDP_DRAIN) && defined(__linux__)
    struct mmsghdr *msgs;
    struct iovec *iovs;
#endif
};

int sp2_udp_reader_supported(void)
{
#ifdef SP2_HAVE_UDP_DRAIN
    return 1;
#else
    return 0;
#endif
}

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
    if (!r->buffers || !r->ptrs || !r->sizes)
        goto fail;
#if defined(SP2_HAVE_UDP_DRAIN) && defined(__linux__)
    r->msgs = calloc(n_slots, sizeof(*r->msgs));
    r->iovs = calloc(n_slots, sizeof(*r->iovs));
    if (!r->msgs || !r->iovs)
        goto fail;
    for (uint32_t i = 0; i < n_slots; i++)
    {
        r->iovs[i].iov_base = r->buffers + (size_t) i * r->slot_size;
        r->iovs[i].iov_len = r->slot_size;
        r->msgs[i].msg_hdr.msg_iov = &r->iovs[i];
        r->msgs[i].msg_hdr.msg_iovlen = 1;
    }
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
    free(r->msgs);
    free(r->iovs);
#endif
    free(r->buffers);
    free(r->ptrs);
    free(r->sizes);
    free(r);
}

size_t sp2_udp_reader_pending(sp2_udp_reader *r)
{
    return r->ready - r->next;
}

/* Feeds what is left of the current batch. */
static int feed_pending(sp2_udp_reader *r, sp2_stream *s)
{
    if (r->next >= r->ready)
        return SP2_OK;
    size_t consumed = 0;
    int status = sp2_stream_add_datagrams(s, r->ptrs + r->next, r->sizes + r->next, r->ready - r->next,
                                          &consumed);
    r->next += consumed;
    if (status == SP2_STOPPED)
        r->next = r->ready;
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
    r->ready++;
}

/* Receives one batch into the slots.  Returns the number of datagrams, 0 if there are none
 * (or only a passing error), -1 on a real error. */
#ifdef __linux__
static int receive_batch(sp2_udp_reader *r, int fd, size_t *truncated)
{
    *truncated = 0;
    int n;
    do
        n = recvmmsg(fd, r->msgs, r->n_slots, MSG_DONTWAIT, NULL);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK || transient(errno) ? 0 : -1;
    r->next = r->ready = 0;
    for (int i = 0; i < n; i++)
        take_datagram(r, (uint32_t) i, r->msgs[i].msg_len, r->msgs[i].msg_hdr.msg_flags & MSG_TRUNC, truncated);
    r->received += (size_t) n;
    return n;
}
#else
static int receive_batch(sp2_udp_reader *r, int fd, size_t *truncated)
{
    *truncated = 0;
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
        take_datagram(r, (uint32_t) n, (size_t) len, 0, truncated);
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
    int status = feed_pending(r, s);
    if (status != SP2_OK)
        return status;
#ifdef SP2_HAVE_UDP_DRAIN
    for (uint32_t batch = 0; batch < max_batches; batch++)
    {
        size_t truncated;
        int n = receive_batch(r, fd, &truncated);
        if (n < 0)
            return SP2_E_OS;
        if (truncated)
            sp2_stream_count_drop(s, SP2_DROP_TOO_LARGE, truncated);
        if (n == 0)
            break;
        status = feed_pending(r, s);
        if (status != SP2_OK)
            return status;
        if ((uint32_t) n < r->n_slots)
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
}

void sp2_udp_reader_ready(sp2_udp_reader *r)
{
    sp2_stream *s = r->stream;
    if (!s || !r->notify)
        return;
    /* Only the owner thread (this one) writes the totals, so it may read them without the lock. */
    uint64_t heaps = s->totals.heaps;
    int status = sp2_udp_reader_drain(r, s, r->fd, r->max_batches);
#ifdef SP2_HAVE_UDP_DRAIN
    for (int naps = 0; status == SP2_OK && r->nap_ns > 0 && naps < MAX_NAPS; naps++)
    {
        size_t got = r->received;
        if (got == 0 || got >= r->n_slots / 2)
            break;                /* nothing came (nothing to coalesce) / batches are full */
        if (r->nap_backoff > 0)
        {
            r->nap_backoff--;
            break;
        }
        struct timespec ts = {0, (long) r->nap_ns};
        nanosleep(&ts, NULL);
        status = sp2_udp_reader_drain(r, s, r->fd, r->max_batches);
        if (status == SP2_OK && r->received == 0)
            r->nap_backoff = 64;  /* the traffic is too sparse for napping to pay */
    }
#endif
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
}
