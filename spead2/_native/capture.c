/* Capture of UDP datagrams to a pcap file: recvmmsg batches, records built in C, one large
 * buffer written with write(2).  See api/capture.h. */
#include "internal.h"
#include "api/capture.h"

#include <errno.h>

#ifdef __linux__
#include <fcntl.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#define SP2_HAVE_CAPTURE 1
#endif

#define PCAP_MAGIC_NS 0xA1B23C4Du
#define LINKTYPE_ETHERNET 1u
#define RECORD_HEADER 16
#define ETH_HEADER 14
#define IPV4_HEADER 20
#define IPV6_HEADER 40
#define UDP_HEADER 8
#define BLOCK 4096                /* O_DIRECT writes whole, aligned blocks */
#define MIN_BUFFER (256 * 1024)
#define SLOT_SIZE 65536           /* no UDP datagram is larger */
#define CONTROL_SIZE 256          /* room for a pktinfo and a timestamp message */

static const uint8_t SRC_MAC[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x01};
static const uint8_t UNICAST_DST_MAC[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x02};

#define N_BUFFERS 4               /* one filling, the others queued for (or in) the writer thread */

struct sp2_pcap_writer {
    int fd;
    int direct;
    uint32_t snaplen;
    uint16_t ip_id;
    size_t cap;                   /* bytes per buffer */
    uint8_t *bufs[N_BUFFERS];
    uint8_t *buf;                 /* the buffer being filled */
    size_t used;
    uint64_t handed;              /* bytes handed to the file (or consumed) */
#ifdef SP2_HAVE_CAPTURE
    /* The writer thread (fd >= 0): full buffers queue up for it; it returns them to `spare`. */
    int threaded;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    uint8_t *queue_buf[N_BUFFERS];
    size_t queue_size[N_BUFFERS];
    size_t queue_head, queue_len;
    uint8_t *spare[N_BUFFERS];
    size_t n_spare;
    int stopping;
    int error;                    /* errno of a failed write (the file is then incomplete) */
#endif
};

static void put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t) v;
    p[1] = (uint8_t) (v >> 8);
    p[2] = (uint8_t) (v >> 16);
    p[3] = (uint8_t) (v >> 24);
}

static void put_be16(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t) (v >> 8);
    p[1] = (uint8_t) v;
}

static void write_file_header(sp2_pcap_writer *w)
{
    uint8_t *h = w->buf;
    put_le32(h, PCAP_MAGIC_NS);
    h[4] = 2; h[5] = 0;           /* version 2.4, little-endian fields */
    h[6] = 4; h[7] = 0;
    put_le32(h + 8, 0);           /* thiszone */
    put_le32(h + 12, 0);          /* sigfigs */
    put_le32(h + 16, w->snaplen);
    put_le32(h + 20, LINKTYPE_ETHERNET);
    w->used = 24;
}

#ifdef SP2_HAVE_CAPTURE

static int write_all(int fd, const uint8_t *data, size_t size)
{
    while (size > 0)
    {
        ssize_t n = write(fd, data, size);
        if (n < 0)
        {
            if (errno == EINTR)
                continue;
            return SP2_E_OS;
        }
        data += n;
        size -= (size_t) n;
    }
    return SP2_OK;
}

static void *writer_thread(void *arg)
{
    sp2_pcap_writer *w = arg;
    pthread_mutex_lock(&w->lock);
    for (;;)
    {
        while (w->queue_len == 0 && !w->stopping)
            pthread_cond_wait(&w->cond, &w->lock);
        if (w->queue_len == 0)
            break;
        uint8_t *buf = w->queue_buf[w->queue_head];
        size_t size = w->queue_size[w->queue_head];
        pthread_mutex_unlock(&w->lock);
        int failed = !w->error && write_all(w->fd, buf, size) != SP2_OK ? errno : 0;
        pthread_mutex_lock(&w->lock);
        if (failed)
            w->error = failed;
        w->queue_head = (w->queue_head + 1) % N_BUFFERS;
        w->queue_len--;
        w->spare[w->n_spare++] = buf;
        pthread_cond_broadcast(&w->cond);
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

static int start_thread(sp2_pcap_writer *w)
{
    if (pthread_mutex_init(&w->lock, NULL) != 0)
        return SP2_E_OS;
    if (pthread_cond_init(&w->cond, NULL) != 0)
    {
        pthread_mutex_destroy(&w->lock);
        return SP2_E_OS;
    }
    for (size_t i = 1; i < N_BUFFERS; i++)
        w->spare[w->n_spare++] = w->bufs[i];
    int err = pthread_create(&w->thread, NULL, writer_thread, w);
    if (err != 0)
    {
        pthread_cond_destroy(&w->cond);
        pthread_mutex_destroy(&w->lock);
        errno = err;
        return SP2_E_OS;
    }
    w->threaded = 1;
    return SP2_OK;
}

static void stop_thread(sp2_pcap_writer *w)
{
    if (!w->threaded)
        return;
    pthread_mutex_lock(&w->lock);
    w->stopping = 1;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->lock);
    w->threaded = 0;
}

sp2_pcap_writer *sp2_pcap_writer_new(int fd, size_t buffer_size, uint32_t snaplen, int direct)
{
    sp2_pcap_writer *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->fd = fd;
    w->direct = direct && fd >= 0;
    w->snaplen = snaplen ? snaplen : 262144;
    size_t per_buffer = fd >= 0 ? buffer_size / N_BUFFERS : buffer_size;
    w->cap = per_buffer < MIN_BUFFER ? MIN_BUFFER : (per_buffer + BLOCK - 1) / BLOCK * BLOCK;
    size_t n_buffers = fd >= 0 ? N_BUFFERS : 1;
    for (size_t i = 0; i < n_buffers; i++)
    {
        void *buf = NULL;
        if (posix_memalign(&buf, BLOCK, w->cap) != 0)
        {
            sp2_pcap_writer_free(w);
            errno = ENOMEM;
            return NULL;
        }
        w->bufs[i] = buf;
    }
    w->buf = w->bufs[0];
    write_file_header(w);
    if (fd >= 0 && start_thread(w) != SP2_OK)
    {
        sp2_pcap_writer_free(w);
        return NULL;
    }
    return w;
}

/* Hands the whole blocks (direct) or all of the buffer to the writer thread, and goes on in a
 * spare buffer (waiting for one if the disk is behind). */
static int hand_over(sp2_pcap_writer *w)
{
    size_t n = w->direct ? w->used / BLOCK * BLOCK : w->used;
    if (n == 0)
        return SP2_OK;
    pthread_mutex_lock(&w->lock);
    while (w->n_spare == 0 && !w->error)
        pthread_cond_wait(&w->cond, &w->lock);
    if (w->error)
    {
        errno = w->error;
        pthread_mutex_unlock(&w->lock);
        return SP2_E_OS;
    }
    uint8_t *next = w->spare[--w->n_spare];
    size_t tail = (w->queue_head + w->queue_len) % N_BUFFERS;
    w->queue_buf[tail] = w->buf;
    w->queue_size[tail] = n;
    w->queue_len++;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
    memcpy(next, w->buf + n, w->used - n);
    w->buf = next;
    w->used -= n;
    w->handed += n;
    return SP2_OK;
}

int sp2_pcap_writer_flush(sp2_pcap_writer *w)
{
    if (w->threaded)
        return hand_over(w);
    /* No file (fd -1): nothing to write, the bytes are dropped. */
    w->handed += w->used;
    w->used = 0;
    return SP2_OK;
}

int sp2_pcap_writer_close(sp2_pcap_writer *w)
{
    if (!w->threaded)
        return sp2_pcap_writer_flush(w);
    int status = hand_over(w);
    stop_thread(w);               /* every queued buffer is written */
    if (status == SP2_OK && w->error)
    {
        errno = w->error;
        status = SP2_E_OS;
    }
    if (status == SP2_OK && w->used > 0)
    {
#ifdef O_DIRECT
        /* The tail is not a whole block: write it through the page cache. */
        int flags = fcntl(w->fd, F_GETFL);
        if (w->direct && (flags < 0 || fcntl(w->fd, F_SETFL, flags & ~O_DIRECT) < 0))
            return SP2_E_OS;
#endif
        status = write_all(w->fd, w->buf, w->used);
        w->handed += w->used;
        w->used = 0;
    }
    return status;
}

#else  /* no capture: the writer exists, reading sockets does not */

sp2_pcap_writer *sp2_pcap_writer_new(int fd, size_t buffer_size, uint32_t snaplen, int direct)
{
    SP2_UNUSED(fd);
    SP2_UNUSED(buffer_size);
    SP2_UNUSED(snaplen);
    SP2_UNUSED(direct);
    errno = ENOSYS;
    return NULL;
}

int sp2_pcap_writer_flush(sp2_pcap_writer *w)
{
    SP2_UNUSED(w);
    errno = ENOSYS;
    return SP2_E_OS;
}

int sp2_pcap_writer_close(sp2_pcap_writer *w)
{
    return sp2_pcap_writer_flush(w);
}

#endif

void sp2_pcap_writer_free(sp2_pcap_writer *w)
{
    if (!w)
        return;
#ifdef SP2_HAVE_CAPTURE
    stop_thread(w);               /* not closed: what is queued is still written */
#endif
    for (size_t i = 0; i < N_BUFFERS; i++)
        free(w->bufs[i]);
    free(w);
}

const uint8_t *sp2_pcap_writer_pending(sp2_pcap_writer *w, size_t *size)
{
    *size = w->used;
    return w->buf;
}

void sp2_pcap_writer_consume(sp2_pcap_writer *w, size_t n)
{
    if (n > w->used)
        n = w->used;
    memmove(w->buf, w->buf + n, w->used - n);
    w->used -= n;
    w->handed += n;
}

uint64_t sp2_pcap_writer_bytes(sp2_pcap_writer *w)
{
    return w->handed + w->used;
}

/* Ones' complement sum of 16-bit big-endian words (the Internet checksum before folding). */
static uint64_t sum16(const uint8_t *p, size_t n, uint64_t sum)
{
    for (; n >= 2; p += 2, n -= 2)
        sum += (uint32_t) p[0] << 8 | p[1];
    if (n)
        sum += (uint32_t) p[0] << 8;
    return sum;
}

static uint16_t fold(uint64_t sum)
{
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t) ~sum;
}

static void dst_mac(uint8_t *mac, const uint8_t *dst, size_t addr_len)
{
    if (addr_len == 4 && dst[0] >= 224 && dst[0] <= 239)
    {
        const uint8_t m[6] = {0x01, 0x00, 0x5e, (uint8_t) (dst[1] & 0x7f), dst[2], dst[3]};
        memcpy(mac, m, 6);
    }
    else if (addr_len == 16 && dst[0] == 0xff)
    {
        mac[0] = 0x33;
        mac[1] = 0x33;
        memcpy(mac + 2, dst + 12, 4);
    }
    else
        memcpy(mac, UNICAST_DST_MAC, 6);
}

/* IP and UDP headers at p; returns their length. */
static size_t ip_udp_headers(sp2_pcap_writer *w, uint8_t *p, const uint8_t *payload, size_t size,
                             const uint8_t *src, size_t addr_len, uint16_t sport, const uint8_t *dst,
                             uint16_t dport)
{
    uint32_t udp_len = (uint32_t) (UDP_HEADER + size);
    if (addr_len == 4)
    {
        uint8_t *ip = p;
        ip[0] = 0x45;
        ip[1] = 0;
        put_be16(ip + 2, IPV4_HEADER + udp_len > 0xffff ? 0xffff : IPV4_HEADER + udp_len);
        put_be16(ip + 4, ++w->ip_id);
        put_be16(ip + 6, 0x4000);  /* don't fragment */
        ip[8] = 64;
        ip[9] = 17;                /* UDP */
        put_be16(ip + 10, 0);
        memcpy(ip + 12, src, 4);
        memcpy(ip + 16, dst, 4);
        put_be16(ip + 10, fold(sum16(ip, IPV4_HEADER, 0)));
        uint8_t *udp = ip + IPV4_HEADER;
        put_be16(udp, sport);
        put_be16(udp + 2, dport);
        put_be16(udp + 4, udp_len > 0xffff ? 0xffff : udp_len);
        put_be16(udp + 6, 0);      /* optional over IPv4 */
        return IPV4_HEADER + UDP_HEADER;
    }
    uint8_t *ip = p;
    ip[0] = 0x60;
    ip[1] = ip[2] = ip[3] = 0;
    put_be16(ip + 4, udp_len);
    ip[6] = 17;
    ip[7] = 64;
    memcpy(ip + 8, src, 16);
    memcpy(ip + 24, dst, 16);
    uint8_t *udp = ip + IPV6_HEADER;
    put_be16(udp, sport);
    put_be16(udp + 2, dport);
    put_be16(udp + 4, udp_len);
    put_be16(udp + 6, 0);
    /* Mandatory over IPv6: pseudo-header (addresses, length, next header), header, payload. */
    uint64_t sum = sum16(ip + 8, 32, 0) + udp_len + 17;
    sum = sum16(udp, UDP_HEADER, sum);
    sum = sum16(payload, size, sum);
    uint16_t checksum = fold(sum);
    put_be16(udp + 6, checksum ? checksum : 0xffff);
    return IPV6_HEADER + UDP_HEADER;
}

int sp2_pcap_writer_record(sp2_pcap_writer *w, const uint8_t *payload, size_t size, const uint8_t *src_addr,
                           size_t addr_len, uint16_t src_port, const uint8_t *dst_addr, uint16_t dst_port,
                           int64_t timestamp_ns)
{
    if ((addr_len != 4 && addr_len != 16) || size > 0xffff)
        return SP2_E_INVALID;
    size_t headers = ETH_HEADER + (addr_len == 4 ? IPV4_HEADER : IPV6_HEADER) + UDP_HEADER;
    size_t frame = headers + size;
    size_t kept = frame < w->snaplen ? frame : w->snaplen;
    if (w->cap - w->used < RECORD_HEADER + frame)
    {
        if (sp2_pcap_writer_flush(w) != SP2_OK)
            return SP2_E_OS;
    }
    uint8_t *rec = w->buf + w->used;
    if (timestamp_ns < 0)
        timestamp_ns = 0;
    put_le32(rec, (uint32_t) (timestamp_ns / 1000000000));
    put_le32(rec + 4, (uint32_t) (timestamp_ns % 1000000000));
    put_le32(rec + 8, (uint32_t) kept);
    put_le32(rec + 12, (uint32_t) frame);
    uint8_t *eth = rec + RECORD_HEADER;
    dst_mac(eth, dst_addr, addr_len);
    memcpy(eth + 6, SRC_MAC, 6);
    put_be16(eth + 12, addr_len == 4 ? 0x0800 : 0x86dd);
    ip_udp_headers(w, eth + ETH_HEADER, payload, size, src_addr, addr_len, src_port, dst_addr, dst_port);
    if (kept > headers)
        memcpy(eth + headers, payload, kept - headers);
    w->used += RECORD_HEADER + kept;
    return SP2_OK;
}

/* ---------------------------------------------------------------- reading sockets */

struct sp2_capture {
    sp2_pcap_writer *writer;
    uint32_t n_slots;
    uint8_t *buffers;
#ifdef SP2_HAVE_CAPTURE
    struct mmsghdr *msgs;
    struct iovec *iovs;
    struct sockaddr_storage *names;
    uint8_t *controls;
#endif
};

int sp2_capture_supported(void)
{
#ifdef SP2_HAVE_CAPTURE
    return 1;
#else
    return 0;
#endif
}

void sp2_capture_free(sp2_capture *c)
{
    if (!c)
        return;
#ifdef SP2_HAVE_CAPTURE
    free(c->msgs);
    free(c->iovs);
    free(c->names);
    free(c->controls);
#endif
    free(c->buffers);
    free(c);
}

#ifdef SP2_HAVE_CAPTURE

sp2_capture *sp2_capture_new(sp2_pcap_writer *writer, uint32_t n_slots)
{
    if (n_slots == 0)
        n_slots = 1;
    sp2_capture *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->writer = writer;
    c->n_slots = n_slots;
    c->buffers = malloc((size_t) SLOT_SIZE * n_slots);
    c->msgs = calloc(n_slots, sizeof(*c->msgs));
    c->iovs = calloc(n_slots, sizeof(*c->iovs));
    c->names = calloc(n_slots, sizeof(*c->names));
    c->controls = calloc(n_slots, CONTROL_SIZE);
    if (!c->buffers || !c->msgs || !c->iovs || !c->names || !c->controls)
    {
        sp2_capture_free(c);
        errno = ENOMEM;
        return NULL;
    }
    for (uint32_t i = 0; i < n_slots; i++)
    {
        c->iovs[i].iov_base = c->buffers + (size_t) i * SLOT_SIZE;
        c->iovs[i].iov_len = SLOT_SIZE;
        c->msgs[i].msg_hdr.msg_iov = &c->iovs[i];
        c->msgs[i].msg_hdr.msg_iovlen = 1;
        c->msgs[i].msg_hdr.msg_name = &c->names[i];
        c->msgs[i].msg_hdr.msg_control = c->controls + (size_t) i * CONTROL_SIZE;
    }
    return c;
}

int sp2_capture_prepare_socket(int fd, int family)
{
    int one = 1;
    if (family == 6)
    {
        if (setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof(one)) < 0)
            return SP2_E_OS;
        /* A dual-stack socket receives IPv4 too: ask for its IPv4 destination as well. */
        (void) setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one));
    }
    else if (setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one)) < 0)
        return SP2_E_OS;
    if (setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one)) < 0)
        return SP2_E_OS;
    return SP2_OK;
}

static const uint8_t V4_MAPPED[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* The address of a sockaddr as 4 or 16 bytes (IPv4-mapped IPv6 addresses as IPv4); 0 if neither. */
static size_t sockaddr_bytes(const struct sockaddr_storage *ss, uint8_t *out, uint16_t *port)
{
    if (ss->ss_family == AF_INET)
    {
        const struct sockaddr_in *sin = (const struct sockaddr_in *) ss;
        memcpy(out, &sin->sin_addr, 4);
        *port = ntohs(sin->sin_port);
        return 4;
    }
    if (ss->ss_family == AF_INET6)
    {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *) ss;
        *port = ntohs(sin6->sin6_port);
        if (memcmp(&sin6->sin6_addr, V4_MAPPED, 12) == 0)
        {
            memcpy(out, (const uint8_t *) &sin6->sin6_addr + 12, 4);
            return 4;
        }
        memcpy(out, &sin6->sin6_addr, 16);
        return 16;
    }
    return 0;
}

/* Destination address (4 or 16 bytes, 0 if not given) and receive time from the control data. */
static size_t control_info(struct msghdr *msg, uint8_t *dst, int64_t *timestamp_ns)
{
    size_t len = 0;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(msg); cm; cm = CMSG_NXTHDR(msg, cm))
    {
        if (cm->cmsg_level == IPPROTO_IP && cm->cmsg_type == IP_PKTINFO)
        {
            struct in_pktinfo info;
            memcpy(&info, CMSG_DATA(cm), sizeof(info));
            memcpy(dst, &info.ipi_addr, 4);
            len = 4;
        }
        else if (cm->cmsg_level == IPPROTO_IPV6 && cm->cmsg_type == IPV6_PKTINFO)
        {
            struct in6_pktinfo info;
            memcpy(&info, CMSG_DATA(cm), sizeof(info));
            if (memcmp(&info.ipi6_addr, V4_MAPPED, 12) == 0)
            {
                memcpy(dst, (const uint8_t *) &info.ipi6_addr + 12, 4);
                len = 4;
            }
            else
            {
                memcpy(dst, &info.ipi6_addr, 16);
                len = 16;
            }
        }
        else if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_TIMESTAMPNS)
        {
            struct timespec ts;
            memcpy(&ts, CMSG_DATA(cm), sizeof(ts));
            *timestamp_ns = (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
        }
    }
    return len;
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Writes datagram i of the last batch. */
static int write_datagram(sp2_capture *c, uint32_t i, const uint8_t *local_addr, size_t local_len,
                          uint16_t local_port, int64_t batch_time)
{
    struct mmsghdr *m = &c->msgs[i];
    uint8_t src[16], dst[16];
    uint16_t sport = 0;
    int64_t timestamp = batch_time;
    size_t src_len = sockaddr_bytes(&c->names[i], src, &sport);
    size_t dst_len = control_info(&m->msg_hdr, dst, &timestamp);
    if (dst_len == 0 || dst_len != src_len)
    {
        dst_len = local_len;
        memcpy(dst, local_addr, local_len);
    }
    if (src_len != dst_len)       /* cannot happen for one datagram; keep the frame well formed */
    {
        src_len = dst_len;
        memset(src, 0, sizeof(src));
    }
    return sp2_pcap_writer_record(c->writer, c->buffers + (size_t) i * SLOT_SIZE, m->msg_len, src, src_len,
                                  sport, dst, local_port, timestamp);
}

static int transient(int err)
{
    return err == EAGAIN || err == EWOULDBLOCK || err == EINTR || err == ECONNREFUSED || err == EHOSTUNREACH
           || err == ENETUNREACH || err == ENOBUFS || err == ENOMEM;
}

int sp2_capture_drain(sp2_capture *c, int fd, const uint8_t *local_addr, size_t addr_len, uint16_t local_port,
                      uint32_t max_batches, uint64_t max_packets, uint64_t *packets, uint64_t *bytes)
{
    if (addr_len != 4 && addr_len != 16)
        return SP2_E_INVALID;
    uint64_t captured = 0;
    for (uint32_t batch = 0; batch < max_batches; batch++)
    {
        uint32_t want = c->n_slots;
        if (max_packets && max_packets - captured < want)
            want = (uint32_t) (max_packets - captured);
        if (want == 0)
            break;
        for (uint32_t i = 0; i < want; i++)
        {
            c->msgs[i].msg_hdr.msg_namelen = sizeof(c->names[i]);
            c->msgs[i].msg_hdr.msg_controllen = CONTROL_SIZE;
        }
        int n = recvmmsg(fd, c->msgs, want, MSG_DONTWAIT, NULL);
        if (n < 0)
        {
            if (errno == EINTR)
                continue;
            if (transient(errno))
                break;
            return SP2_E_OS;
        }
        int64_t batch_time = now_ns();
        for (int i = 0; i < n; i++)
        {
            int status = write_datagram(c, (uint32_t) i, local_addr, addr_len, local_port, batch_time);
            if (status != SP2_OK)
                return status;
            *bytes += c->msgs[i].msg_len;
        }
        captured += (uint64_t) n;
        *packets += (uint64_t) n;
        if ((uint32_t) n < want)
            break;                /* the socket is (almost surely) empty */
    }
    return SP2_OK;
}

static int64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One round: drains every socket that poll says is readable.  Returns SP2_OK, SP2_E_OS, or 1
 * when a signal interrupted the poll. */
static int serve_round(sp2_capture *c, struct pollfd *pfds, const uint8_t *local_addrs, const size_t *addr_lens,
                       const uint16_t *ports, uint32_t n, int wait_ms, uint64_t max_packets, uint64_t *done,
                       uint64_t *packets, uint64_t *bytes)
{
    int ready = poll(pfds, n, wait_ms);
    if (ready < 0)
        return errno == EINTR ? 1 : SP2_E_OS;
    for (uint32_t i = 0; i < n && ready > 0; i++)
    {
        if (!pfds[i].revents)
            continue;
        uint64_t before = packets[i];
        uint64_t left = max_packets ? max_packets - *done : 0;
        int status = sp2_capture_drain(c, pfds[i].fd, local_addrs + 16 * (size_t) i, addr_lens[i], ports[i], 16,
                                       left, &packets[i], &bytes[i]);
        if (status != SP2_OK)
            return status;
        *done += packets[i] - before;
        if (max_packets && *done >= max_packets)
            break;
    }
    return SP2_OK;
}

int sp2_capture_run(sp2_capture *c, const int *fds, const uint8_t *local_addrs, const size_t *addr_lens,
                    const uint16_t *ports, uint32_t n, int timeout_ms, uint32_t nap_us, uint64_t max_packets,
                    uint64_t *packets, uint64_t *bytes)
{
    struct pollfd pfds[64];
    if (n == 0 || n > 64)
        return SP2_E_INVALID;
    for (uint32_t i = 0; i < n; i++)
    {
        pfds[i].fd = fds[i];
        pfds[i].events = POLLIN;
    }
    int64_t deadline = monotonic_ms() + timeout_ms;
    uint64_t done = 0;
    for (;;)
    {
        int64_t left = deadline - monotonic_ms();
        if (left <= 0 || (max_packets && done >= max_packets))
            return SP2_OK;
        uint64_t before = done;
        int status = serve_round(c, pfds, local_addrs, addr_lens, ports, n, (int) left, max_packets, &done,
                                 packets, bytes);
        if (status == 1)
            return SP2_OK;        /* a signal: the caller looks at it */
        if (status != SP2_OK)
            return status;
        if (nap_us && done - before < c->n_slots / 2)
        {
            struct timespec nap = {0, (long) nap_us * 1000};
            if (nanosleep(&nap, NULL) < 0 && errno == EINTR)
                return SP2_OK;    /* a signal: the caller looks at it */
        }
    }
}

#else  /* no recvmmsg */

int sp2_capture_run(sp2_capture *c, const int *fds, const uint8_t *local_addrs, const size_t *addr_lens,
                    const uint16_t *ports, uint32_t n, int timeout_ms, uint32_t nap_us, uint64_t max_packets,
                    uint64_t *packets, uint64_t *bytes)
{
    SP2_UNUSED(c);
    SP2_UNUSED(fds);
    SP2_UNUSED(local_addrs);
    SP2_UNUSED(addr_lens);
    SP2_UNUSED(ports);
    SP2_UNUSED(n);
    SP2_UNUSED(timeout_ms);
    SP2_UNUSED(nap_us);
    SP2_UNUSED(max_packets);
    SP2_UNUSED(packets);
    SP2_UNUSED(bytes);
    errno = ENOSYS;
    return SP2_E_OS;
}

sp2_capture *sp2_capture_new(sp2_pcap_writer *writer, uint32_t n_slots)
{
    SP2_UNUSED(writer);
    SP2_UNUSED(n_slots);
    errno = ENOSYS;
    return NULL;
}

int sp2_capture_prepare_socket(int fd, int family)
{
    SP2_UNUSED(fd);
    SP2_UNUSED(family);
    errno = ENOSYS;
    return SP2_E_OS;
}

int sp2_capture_drain(sp2_capture *c, int fd, const uint8_t *local_addr, size_t addr_len, uint16_t local_port,
                      uint32_t max_batches, uint64_t max_packets, uint64_t *packets, uint64_t *bytes)
{
    SP2_UNUSED(c);
    SP2_UNUSED(fd);
    SP2_UNUSED(local_addr);
    SP2_UNUSED(addr_len);
    SP2_UNUSED(local_port);
    SP2_UNUSED(max_batches);
    SP2_UNUSED(max_packets);
    SP2_UNUSED(packets);
    SP2_UNUSED(bytes);
    errno = ENOSYS;
    return SP2_E_OS;
}

#endif
