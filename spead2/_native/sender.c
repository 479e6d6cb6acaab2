/* The sender: queued groups of heaps -> paced batches of packets -> a transport.
 *
 * Groups are generated and transmitted in the order they were pushed, so they also finish in
 * that order.  A batch holds up to BATCH packets; a rate-limited stream ends a batch where its
 * burst ends.  UDP sends a batch with one sendmmsg (runs of equal-size packets to one substream
 * merged into one GSO message where the kernel takes it), TCP with sendmsg, memory by copying. */
#include "send_internal.h"

#include <errno.h>
#include <math.h>

#ifndef _WIN32
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <sys/socket.h>
#include <unistd.h>
#endif
#ifdef __linux__
#include <sys/prctl.h>
#include <sys/timerfd.h>
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#endif

#define BATCH 64
/* Scratch memory per sender (a batch holds fewer packets when packets are this large). */
#define SCRATCH_BYTES (4u << 20)
#define IOV_PER_PACKET 8
/* UDP GSO: segments per message, and bytes per message (below the 64 KiB datagram limit). */
#define GSO_MAX_SEGMENTS 64
#define GSO_MAX_BYTES 65000

typedef struct precise_time {       /* ns + a fraction of a ns in [0, 1): see dev-send-rate-limit */
    int64_t ns;
    double frac;
} precise_time;

typedef struct batch_packet {
    sp2_send_group *group;
    uint32_t substream;
    uint32_t size;
    uint32_t first_iov;
    uint32_t n_iov;
} batch_packet;

typedef struct endpoint {
#ifndef _WIN32
    struct sockaddr_storage addr;
    socklen_t len;
#else
    int unused;
#endif
} endpoint;

struct sp2_sender {
    int transport;
    int fd;
    uint32_t n_substreams;
    uint64_t max_packet_size;
    endpoint *endpoints;
    size_t scratch_size;
    uint8_t *scratch;                 /* batch_cap packets' headers and copied payload */
    uint32_t batch_cap;
    batch_packet packets[BATCH];
    struct iovec iov[BATCH * IOV_PER_PACKET];
    uint32_t batch_count;
    uint32_t batch_next;              /* first packet not yet transmitted */
    size_t partial;                   /* TCP: bytes of packets[batch_next] already written */
    sp2_send_group *head, *tail;      /* pushed and not finished, in order */
    sp2_send_group *gen;              /* the group whose packets are being generated */
    sp2_send_group *done_head, *done_tail;
    int broken;
    int gso;                          /* UDP GSO active (segment size set on the socket) */
    /* rate limiter */
    double seconds_per_byte;          /* of the stream's rate; per heap it is the ref's rate */
    double burst_rate_ratio;
    uint64_t burst_size;
    uint64_t burst_bytes;             /* bytes in the burst being built */
    double burst_std_s;               /* its duration at the standard rate */
    double burst_fast_s;              /* and at the catch-up rate */
    int64_t burst_start_ns;
    precise_time std_time;            /* lower bound from the standard rate */
    precise_time fast_time;           /* lower bound from the catch-up rate */
    int idle;
    int64_t idle_since_ns;            /* when the queue last ran empty */
    int limited;                      /* the burst being built is paced */
    int64_t spin_ns;                  /* waits end with this much spinning */
    /* memory transport */
    uint8_t *mem;
    size_t mem_size, mem_cap;
    uint32_t *mem_sizes, *mem_substreams;
    size_t mem_packets, mem_packets_cap;
};

int64_t sp2_send_now_ns(void)
{
    return sp2_now_ns();
}

static void time_add(precise_time *t, double seconds)
{
    double ns = seconds * 1e9 + t->frac;
    double whole = floor(ns);
    t->ns += (int64_t) whole;
    t->frac = ns - whole;
}

static int time_after(const precise_time *a, const precise_time *b)
{
    return a->ns > b->ns || (a->ns == b->ns && a->frac > b->frac);
}

/* ---- construction ---- */

sp2_sender *sp2_sender_new(int transport, int fd, uint32_t n_substreams, uint64_t max_packet_size,
                           double rate, uint64_t burst_size, double burst_rate_ratio)
{
    if (n_substreams == 0 || max_packet_size > UINT32_MAX || !(rate >= 0.0)
        || !(burst_rate_ratio >= 1.0))
        return NULL;
    sp2_sender *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->transport = transport;
    s->fd = fd;
    s->n_substreams = n_substreams;
    s->max_packet_size = max_packet_size;
    s->scratch_size = (size_t) (max_packet_size & ~(uint64_t) 7);
    s->batch_cap = BATCH;
    if (s->scratch_size > 0 && SCRATCH_BYTES / s->scratch_size < BATCH)
        s->batch_cap = SCRATCH_BYTES / s->scratch_size > 0 ? (uint32_t) (SCRATCH_BYTES / s->scratch_size) : 1;
    s->scratch = malloc(s->scratch_size * s->batch_cap + 1);
    s->endpoints = calloc(n_substreams, sizeof(endpoint));
    if (s->scratch == NULL || s->endpoints == NULL)
    {
        sp2_sender_free(s);
        return NULL;
    }
    s->seconds_per_byte = rate > 0.0 ? 1.0 / rate : 0.0;
    s->burst_rate_ratio = burst_rate_ratio;
    s->burst_size = burst_size;
    s->idle = 1;
    s->spin_ns = 30000;
    return s;
}

void sp2_sender_free(sp2_sender *s)
{
    if (s == NULL)
        return;
    free(s->scratch);
    free(s->endpoints);
    free(s->mem);
    free(s->mem_sizes);
    free(s->mem_substreams);
    free(s);
}

int sp2_sender_set_endpoint(sp2_sender *s, uint32_t substream, const char *address, uint16_t port,
                            uint32_t scope_id)
{
    if (substream >= s->n_substreams)
        return SP2_E_INVALID;
#ifndef _WIN32
    endpoint *e = &s->endpoints[substream];
    memset(e, 0, sizeof(*e));
    struct sockaddr_in *v4 = (struct sockaddr_in *) &e->addr;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *) &e->addr;
    if (inet_pton(AF_INET, address, &v4->sin_addr) == 1)
    {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
        e->len = sizeof(*v4);
        return SP2_OK;
    }
    if (inet_pton(AF_INET6, address, &v6->sin6_addr) == 1)
    {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
        v6->sin6_scope_id = scope_id;
        e->len = sizeof(*v6);
        return SP2_OK;
    }
#else
    SP2_UNUSED(address);
    SP2_UNUSED(port);
    SP2_UNUSED(scope_id);
#endif
    return SP2_E_INVALID;
}

int sp2_sender_enable_gso(sp2_sender *s)
{
#ifdef __linux__
    int size = (int) s->scratch_size;
    if (s->transport == SP2_TRANSPORT_UDP
        && setsockopt(s->fd, IPPROTO_UDP, UDP_SEGMENT, &size, sizeof(size)) == 0)
        s->gso = 1;
#endif
    return s->gso;
}

int sp2_sender_gso_active(const sp2_sender *s)
{
    return s->gso;
}

static void disable_gso(sp2_sender *s)
{
#ifdef __linux__
    int zero = 0;
    setsockopt(s->fd, IPPROTO_UDP, UDP_SEGMENT, &zero, sizeof(zero));
#endif
    s->gso = 0;
}

/* ---- the queue ---- */

/* A stream dormant for longer than this does not catch up on the time (shorter gaps, such as
 * between the heaps of a blocking sender, are caught up like oversleeping). */
#define DORMANT_NS 1000000

/* Time spent dormant is not oversleeping: the standard bound moves on by it (and no further
 * than now), so that a lag from before stays to be caught up and the dormant time does not. */
static void wake_from_idle(sp2_sender *s)
{
    int64_t now = sp2_now_ns();
    precise_time t = {now, 0.0};
    if (now - s->idle_since_ns > DORMANT_NS && time_after(&t, &s->std_time))
    {
        s->std_time.ns += now - s->idle_since_ns;
        if (time_after(&s->std_time, &t))
            s->std_time = t;
    }
    s->idle = 0;
}

void sp2_sender_push(sp2_sender *s, sp2_send_group *g)
{
    if (s->idle)
        wake_from_idle(s);
    g->next = NULL;
    g->bytes = 0;
    g->error = 0;
    g->current = 0;
    g->unfinished = g->n_refs;
    g->in_flight = 0;
    if (s->tail != NULL)
        s->tail->next = g;
    else
        s->head = g;
    s->tail = g;
    if (s->gen == NULL)
        s->gen = g;
}

int sp2_sender_push_one(sp2_sender *s, sp2_send_slot *slot, const sp2_send_heap *heap, uint64_t cnt,
                        uint32_t substream, double rate, uint64_t token)
{
    int status = sp2_packet_iter_init(&slot->ref.it, heap, cnt, s->max_packet_size);
    if (status != SP2_SEND_OK)
        return status;
    slot->ref.substream = substream;
    slot->ref.rate = rate;
    slot->group.refs = &slot->ref;
    slot->group.n_refs = 1;
    slot->group.mode = SP2_GROUP_SERIAL;
    slot->group.token = token;
    sp2_sender_push(s, &slot->group);
    return SP2_SEND_OK;
}

/* Moves finished groups from the front of the queue to the done list. */
static void collect_done(sp2_sender *s)
{
    while (s->head != NULL && s->head->unfinished == 0 && s->head->in_flight == 0)
    {
        sp2_send_group *g = s->head;
        s->head = g->next;
        if (s->head == NULL)
            s->tail = NULL;
        g->next = NULL;
        if (s->done_tail != NULL)
            s->done_tail->next = g;
        else
            s->done_head = g;
        s->done_tail = g;
    }
}

sp2_send_group *sp2_sender_pop_done(sp2_sender *s)
{
    sp2_send_group *g = s->done_head;
    if (g != NULL)
    {
        s->done_head = g->next;
        if (s->done_head == NULL)
            s->done_tail = NULL;
        g->next = NULL;
    }
    return g;
}

int sp2_sender_broken(const sp2_sender *s)
{
    return s->broken;
}

/* Fails every group still queued or in flight with err (they become done). */
static void abort_all(sp2_sender *s, int err)
{
    for (sp2_send_group *g = s->head; g != NULL; g = g->next)
    {
        if (g->error == 0)
            g->error = err;
        g->unfinished = 0;
        g->in_flight = 0;
    }
    s->gen = NULL;
    s->batch_count = s->batch_next = 0;
    s->partial = 0;
    collect_done(s);
}

/* ---- generating a batch ---- */

/* The ref of the generating group that gives the next packet (round robin or serial). */
static sp2_send_ref *next_ref(sp2_send_group *g)
{
    for (uint32_t tries = 0; tries < g->n_refs; tries++)
    {
        sp2_send_ref *ref = &g->refs[g->current];
        if (!sp2_packet_iter_done(&ref->it))
            return ref;
        g->current = (g->current + 1) % g->n_refs;
    }
    return NULL;
}

/* Adds the next packet of the generating group to the batch. */
static void generate_packet(sp2_sender *s)
{
    sp2_send_group *g = s->gen;
    sp2_send_ref *ref = next_ref(g);
    uint32_t index = s->batch_count;
    batch_packet *p = &s->packets[index];
    uint32_t first = index == 0 ? 0 : s->packets[index - 1].first_iov + s->packets[index - 1].n_iov;
    int n_iov;
    size_t size = sp2_packet_iter_next(&ref->it, s->scratch + (size_t) index * s->scratch_size,
                                       &s->iov[first], IOV_PER_PACKET, &n_iov);
    p->group = g;
    p->substream = ref->substream;
    p->size = (uint32_t) size;
    p->first_iov = first;
    p->n_iov = (uint32_t) n_iov;
    s->batch_count++;
    g->in_flight++;
    if (ref->rate > 0.0)
    {
        s->burst_std_s += (double) size / ref->rate;
        s->burst_fast_s += (double) size / (ref->rate * s->burst_rate_ratio);
    }
    s->burst_bytes += size;
    if (sp2_packet_iter_done(&ref->it))
    {
        g->unfinished--;
        if (g->unfinished == 0)
            s->gen = g->next;
    }
    if (g->mode == SP2_GROUP_ROUND_ROBIN)
        g->current = (g->current + 1) % g->n_refs;
}

static void fill_batch(sp2_sender *s)
{
    s->batch_count = s->batch_next = 0;
    s->partial = 0;
    uint64_t cap = s->limited ? s->burst_size : UINT64_MAX;
    while (s->batch_count < s->batch_cap && s->gen != NULL && (s->burst_bytes < cap || s->batch_count == 0))
        generate_packet(s);
}

/* ---- transmitting ---- */

static void packets_sent(sp2_sender *s, uint32_t count, int err)
{
    for (uint32_t i = 0; i < count; i++)
    {
        batch_packet *p = &s->packets[s->batch_next++];
        if (err != 0)
        {
            if (p->group->error == 0)
                p->group->error = err;
        }
        else
            p->group->bytes += p->size;
        p->group->in_flight--;
    }
    s->partial = 0;
}

static int transmit_memory(sp2_sender *s)
{
    while (s->batch_next < s->batch_count)
    {
        batch_packet *p = &s->packets[s->batch_next];
        if (s->mem_size + p->size > s->mem_cap)
        {
            size_t cap = s->mem_cap ? s->mem_cap * 2 : 65536;
            while (cap < s->mem_size + p->size)
                cap *= 2;
            uint8_t *mem = realloc(s->mem, cap);
            if (mem == NULL)
                return ENOMEM;
            s->mem = mem;
            s->mem_cap = cap;
        }
        if (s->mem_packets == s->mem_packets_cap)
        {
            size_t cap = s->mem_packets_cap ? s->mem_packets_cap * 2 : 256;
            uint32_t *sizes = realloc(s->mem_sizes, cap * sizeof(uint32_t));
            if (sizes != NULL)
                s->mem_sizes = sizes;
            uint32_t *subs = realloc(s->mem_substreams, cap * sizeof(uint32_t));
            if (subs != NULL)
                s->mem_substreams = subs;
            if (sizes == NULL || subs == NULL)
                return ENOMEM;
            s->mem_packets_cap = cap;
        }
        uint8_t *out = s->mem + s->mem_size;
        for (uint32_t i = 0; i < p->n_iov; i++)
        {
            memcpy(out, s->iov[p->first_iov + i].iov_base, s->iov[p->first_iov + i].iov_len);
            out += s->iov[p->first_iov + i].iov_len;
        }
        s->mem_size += p->size;
        s->mem_sizes[s->mem_packets] = p->size;
        s->mem_substreams[s->mem_packets] = p->substream;
        s->mem_packets++;
        packets_sent(s, 1, 0);
    }
    return 0;
}

#ifndef _WIN32
/* Packets from batch_next that make one UDP message: one, or a GSO run of full-size packets
 * to one substream (the run's last packet may be shorter). */
static uint32_t message_packets(const sp2_sender *s, uint32_t first)
{
    if (!s->gso)
        return 1;
    const batch_packet *p = &s->packets[first];
    uint32_t count = 1;
    size_t bytes = p->size;
    while (p->size == s->scratch_size && first + count < s->batch_count && count < GSO_MAX_SEGMENTS)
    {
        const batch_packet *q = &s->packets[first + count];
        if (q->substream != p->substream || bytes + q->size > GSO_MAX_BYTES)
            break;
        count++;
        bytes += q->size;
        p = q;
    }
    return count;
}

static int is_transient(int err)
{
    return err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS || err == EINTR;
}

#ifdef __linux__
static int transmit_udp(sp2_sender *s)
{
    struct mmsghdr msgs[BATCH];
    uint32_t counts[BATCH];
    while (s->batch_next < s->batch_count)
    {
        unsigned n_msgs = 0;
        for (uint32_t i = s->batch_next; i < s->batch_count; n_msgs++)
        {
            uint32_t count = message_packets(s, i);
            const batch_packet *p = &s->packets[i];
            const endpoint *e = &s->endpoints[p->substream];
            struct msghdr *h = &msgs[n_msgs].msg_hdr;
            memset(h, 0, sizeof(*h));
            h->msg_name = (void *) &e->addr;
            h->msg_namelen = e->len;
            h->msg_iov = &s->iov[p->first_iov];
            h->msg_iovlen = s->packets[i + count - 1].first_iov + s->packets[i + count - 1].n_iov
                            - p->first_iov;
            counts[n_msgs] = count;
            i += count;
        }
        int sent = sendmmsg(s->fd, msgs, n_msgs, MSG_DONTWAIT);
        if (sent < 0)
        {
            int err = errno;
            if (err == EINTR)
                continue;
            if (err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS)
                return SP2_RUN_BLOCKED;
            if (s->gso && counts[0] > 1)
            {
                /* GSO may not work on this route (see dev-send-gso): retry without it. */
                disable_gso(s);
                continue;
            }
            packets_sent(s, counts[0], err);     /* that message failed; go on with the rest */
            continue;
        }
        for (int m = 0; m < sent; m++)
            packets_sent(s, counts[m], 0);
    }
    return SP2_RUN_MORE;
}
#else
static int transmit_udp(sp2_sender *s)
{
    while (s->batch_next < s->batch_count)
    {
        const batch_packet *p = &s->packets[s->batch_next];
        const endpoint *e = &s->endpoints[p->substream];
        struct msghdr h;
        memset(&h, 0, sizeof(h));
        h.msg_name = (void *) &e->addr;
        h.msg_namelen = e->len;
        h.msg_iov = &s->iov[p->first_iov];
        h.msg_iovlen = p->n_iov;
        if (sendmsg(s->fd, &h, MSG_DONTWAIT) < 0)
        {
            if (is_transient(errno))
                return SP2_RUN_BLOCKED;
            packets_sent(s, 1, errno);
            continue;
        }
        packets_sent(s, 1, 0);
    }
    return SP2_RUN_MORE;
}
#endif

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0
#endif

static int transmit_tcp(sp2_sender *s)
{
    while (s->batch_next < s->batch_count)
    {
        const batch_packet *first = &s->packets[s->batch_next];
        const batch_packet *last = &s->packets[s->batch_count - 1];
        struct iovec iov[BATCH * IOV_PER_PACKET];
        uint32_t n = last->first_iov + last->n_iov - first->first_iov;
        memcpy(iov, &s->iov[first->first_iov], n * sizeof(struct iovec));
        /* Skip what an earlier partial write took. */
        size_t skip = s->partial;
        uint32_t k = 0;
        while (skip > 0 && skip >= iov[k].iov_len)
            skip -= iov[k++].iov_len;
        iov[k].iov_base = (uint8_t *) iov[k].iov_base + skip;
        iov[k].iov_len -= skip;
        struct msghdr h;
        memset(&h, 0, sizeof(h));
        h.msg_iov = &iov[k];
        h.msg_iovlen = n - k;
        ssize_t written = sendmsg(s->fd, &h, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (written < 0)
        {
            if (errno == EINTR)
                continue;
            if (is_transient(errno))
                return SP2_RUN_BLOCKED;
            s->broken = errno;
            return SP2_RUN_IDLE;
        }
        size_t total = s->partial + (size_t) written;
        while (s->batch_next < s->batch_count && total >= s->packets[s->batch_next].size)
        {
            total -= s->packets[s->batch_next].size;
            packets_sent(s, 1, 0);
        }
        s->partial = total;
    }
    return SP2_RUN_MORE;
}
#else
static int transmit_udp(sp2_sender *s)
{
    s->broken = ENOSYS;
    return SP2_RUN_IDLE;
}
static int transmit_tcp(sp2_sender *s)
{
    s->broken = ENOSYS;
    return SP2_RUN_IDLE;
}
#endif

/* Sends what is left of the batch; SP2_RUN_MORE when all of it went. */
static int transmit(sp2_sender *s)
{
    int status = SP2_RUN_MORE;
    if (s->transport == SP2_TRANSPORT_UDP)
        status = transmit_udp(s);
    else if (s->transport == SP2_TRANSPORT_TCP)
        status = transmit_tcp(s);
    else
    {
        int err = transmit_memory(s);
        if (err != 0)
            s->broken = err;
    }
    if (s->broken)
        abort_all(s, s->broken);
    collect_done(s);
    return s->broken ? SP2_RUN_IDLE : status;
}

/* ---- pacing ---- */

/* A burst went out: move the two lower bounds on the next burst's start. */
static void burst_done(sp2_sender *s)
{
    if (s->burst_std_s > 0.0)
    {
        time_add(&s->std_time, s->burst_std_s);
        s->fast_time.ns = s->burst_start_ns;
        s->fast_time.frac = 0.0;
        time_add(&s->fast_time, s->burst_fast_s);
    }
    s->burst_bytes = 0;
    s->burst_std_s = s->burst_fast_s = 0.0;
}

/* Before a burst: 1 (and *wake_ns) if the rate limiter says to wait. */
static int must_wait(sp2_sender *s, int64_t *wake_ns)
{
    if (s->burst_bytes != 0)
        return 0;                                /* a burst is under way */
    sp2_send_group *g = s->gen;
    int limited = s->seconds_per_byte > 0.0;
    for (uint32_t i = 0; !limited && i < g->n_refs; i++)
        limited = g->refs[i].rate > 0.0;
    s->limited = limited;
    if (!limited)
        return 0;
    int64_t now = sp2_now_ns();
    precise_time next = time_after(&s->fast_time, &s->std_time) ? s->fast_time : s->std_time;
    if (next.ns - now > s->spin_ns)
    {
        *wake_ns = next.ns - s->spin_ns;
        return 1;
    }
    while (now < next.ns)
        now = sp2_now_ns();
    s->burst_start_ns = now;
    return 0;
}

void sp2_sender_set_spin(sp2_sender *s, int64_t spin_ns)
{
    s->spin_ns = spin_ns > 0 ? spin_ns : 0;
}

void sp2_sleep_until(int64_t deadline_ns)
{
#ifdef _WIN32
    int64_t left = deadline_ns - sp2_now_ns();
    if (left > 0)
        Sleep((DWORD) (left / 1000000));
#else
#ifdef __linux__
    int slack = prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0);
    if (slack > 1000)
        prctl(PR_SET_TIMERSLACK, 1000, 0, 0, 0);
#endif
    struct timespec ts;
    ts.tv_sec = (time_t) (deadline_ns / 1000000000);
    ts.tv_nsec = (long) (deadline_ns % 1000000000);
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
#ifdef __linux__
    if (slack > 1000)
        prctl(PR_SET_TIMERSLACK, (unsigned long) slack, 0, 0, 0);
#endif
#endif
}

int sp2_sender_run(sp2_sender *s, uint32_t max_packets, int64_t *wake_ns)
{
    uint32_t budget = max_packets;
    for (;;)
    {
        if (s->batch_next < s->batch_count)
        {
            int status = transmit(s);
            if (status != SP2_RUN_MORE)
                return status;
            if (!s->limited || s->burst_bytes >= s->burst_size)
                burst_done(s);
        }
        if (s->gen == NULL || s->broken)
        {
            if (!s->idle)
            {
                s->idle = 1;
                s->idle_since_ns = sp2_now_ns();
            }
            return SP2_RUN_IDLE;
        }
        if (budget == 0)
            return SP2_RUN_MORE;
        if (must_wait(s, wake_ns))
            return SP2_RUN_SLEEP;
        fill_batch(s);
        budget = budget > s->batch_count ? budget - s->batch_count : 0;
    }
}

/* ---- memory transport ---- */

const uint8_t *sp2_sender_memory(const sp2_sender *s, size_t *size)
{
    *size = s->mem_size;
    return s->mem;
}

size_t sp2_sender_memory_packets(const sp2_sender *s, const uint32_t **sizes,
                                 const uint32_t **substreams)
{
    *sizes = s->mem_sizes;
    *substreams = s->mem_substreams;
    return s->mem_packets;
}

void sp2_sender_memory_clear(sp2_sender *s)
{
    s->mem_size = 0;
    s->mem_packets = 0;
}

/* ---- timers ---- */

int sp2_timer_fd_new(void)
{
#ifdef __linux__
    return timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
#else
    return -1;
#endif
}

int sp2_timer_fd_arm(int fd, int64_t deadline_ns)
{
#ifdef __linux__
    struct itimerspec spec;
    memset(&spec, 0, sizeof(spec));
    if (deadline_ns <= 0)
        deadline_ns = 1;
    spec.it_value.tv_sec = (time_t) (deadline_ns / 1000000000);
    spec.it_value.tv_nsec = (long) (deadline_ns % 1000000000);
    return timerfd_settime(fd, TFD_TIMER_ABSTIME, &spec, NULL) == 0 ? SP2_OK : SP2_E_OS;
#else
    SP2_UNUSED(fd);
    SP2_UNUSED(deadline_ns);
    return SP2_E_INVALID;
#endif
}

void sp2_timer_fd_ack(int fd)
{
#ifdef __linux__
    uint64_t expirations;
    ssize_t r = read(fd, &expirations, sizeof(expirations));
    SP2_UNUSED(r);
#else
    SP2_UNUSED(fd);
#endif
}
