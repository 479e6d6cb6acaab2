/* Native parts of the socket and file readers (cffi cdef: no preprocessor directives).
 * Each function here only moves bytes into the kernel, and is called on the stream's owner
 * thread (its event loop).  Statuses are those of kernel.h: a caller hands SP2_OK / SP2_FULL /
 * SP2_STOPPED to the stream core exactly as for the sp2_stream_add_* functions. */

/* ---- UDP: drain a socket with recvmmsg (udp.c) ---- */

typedef struct sp2_udp_reader sp2_udp_reader;

/* 1 where sp2_udp_reader_drain can read sockets (POSIX), 0 elsewhere. */
int sp2_udp_reader_supported(void);
/* n_slots reusable datagram buffers of max_size + 1 bytes (at most 65536: no UDP datagram is
 * larger).  NULL when out of memory. */
sp2_udp_reader *sp2_udp_reader_new(size_t max_size, uint32_t n_slots);
void sp2_udp_reader_free(sp2_udp_reader *reader);
/* Reads the socket fd without blocking (MSG_DONTWAIT: the socket's own flags are left alone)
 * and feeds the datagrams to the stream, one kernel batch per recvmmsg.  Datagrams a full ring
 * could not take stay in the reader and are fed first on the next call.  Reads at most
 * max_batches batches per call.  Datagrams larger than max_size are dropped and counted as
 * SP2_DROP_TOO_LARGE.  Returns SP2_OK (socket empty or budget spent), SP2_FULL, SP2_STOPPED or
 * SP2_E_OS (errno says why; transient errors are not reported). */
int sp2_udp_reader_drain(sp2_udp_reader *reader, sp2_stream *stream, int fd, uint32_t max_batches);
/* Datagrams received but not yet fed (a full ring interrupted their batch). */
size_t sp2_udp_reader_pending(sp2_udp_reader *reader);
/* Binds the reader to a stream and socket for sp2_udp_reader_ready, which the event loop calls
 * directly when the socket is readable (no Python in between).  notify(status, err) is called
 * when Python has to act: a status other than SP2_OK (err: errno for SP2_E_OS), or SP2_OK when
 * heaps were finished (only if notify_heaps) or packets were dropped (at most once a second,
 * for the log).  After a notification with another status than SP2_OK, the call returns. */
void sp2_udp_reader_attach(sp2_udp_reader *reader, sp2_stream *stream, int fd, uint32_t max_batches,
                           void (*notify)(int status, int err), int notify_heaps);
void sp2_udp_reader_ready(sp2_udp_reader *reader);
/* Coalescing for a loop thread that only serves readers (0: off).  When a readiness brings only
 * a few datagrams, sp2_udp_reader_ready naps and reads again, so that each wake-up of the thread
 * takes a larger batch.  Each nap is sized to bring about 3/4 of a batch at the rate seen (between
 * nap_ns / 8 and nap_ns), and the naps of one readiness add up to nap_ns at most; it stops napping
 * for a while when a nap brings nothing (sparse traffic). */
void sp2_udp_reader_set_nap(sp2_udp_reader *reader, int64_t nap_ns);
/* Landing (Linux; off by default): datagrams that continue the heap of the one before, in order,
 * are received with their payload straight into the heap, sparing a copy of each payload. */
void sp2_udp_reader_set_landing(sp2_udp_reader *reader, int on);
/* Datagrams whose payloads landed in their heap, since the reader was made. */
uint64_t sp2_udp_reader_landed(sp2_udp_reader *reader);

/* ---- pcap / pcapng replay (pcap.c) ---- */

/* One classic BPF instruction, as libpcap compiles a filter. */
typedef struct sp2_bpf_insn {
    uint16_t code;
    uint8_t jt;
    uint8_t jf;
    uint32_t k;
} sp2_bpf_insn;

/* Checks a program as the BPF validator does (jumps in range, no division by a zero constant,
 * scratch memory in range, ends in a return).  Returns 0 if it is safe to run. */
int sp2_bpf_validate(const sp2_bpf_insn *insns, uint32_t n);
/* Runs a validated program over a frame; nonzero means the frame is accepted. */
uint32_t sp2_bpf_run(const sp2_bpf_insn *insns, const uint8_t *frame, uint32_t wirelen,
                     uint32_t caplen);

/* Why frames of a capture were skipped (counters of sp2_pcap_counts.skipped). */
typedef enum sp2_pcap_skip {
    SP2_PCAP_SKIP_FILTERED = 0,      /* rejected by the filter */
    SP2_PCAP_SKIP_NOT_UDP = 1,       /* not IPv4 UDP (ARP, IPv6, TCP, ...) */
    SP2_PCAP_SKIP_FRAGMENT = 2,      /* an IPv4 fragment */
    SP2_PCAP_SKIP_TRUNCATED = 3,     /* the capture holds less than the datagram */
    SP2_PCAP_SKIP_BAD_LENGTH = 4,    /* IPv4 or UDP length field inconsistent with the frame */
    SP2_PCAP_SKIP_LINKTYPE = 5,      /* pcapng interface of an unsupported link type */
    SP2_PCAP_SKIP_COUNT = 6
} sp2_pcap_skip;

typedef struct sp2_pcap_counts {
    uint64_t records;                /* frames read */
    uint64_t datagrams;              /* UDP datagrams handed to the stream */
    uint64_t skipped[SP2_PCAP_SKIP_COUNT];
} sp2_pcap_counts;

/* Link-layer decoding of a link type: SP2_LINK_FIXED means "IPv4 after a fixed-size header". */
typedef enum sp2_link_kind {
    SP2_LINK_NONE = 0,
    SP2_LINK_ETHERNET = 1,
    SP2_LINK_SLL = 2,
    SP2_LINK_SLL2 = 3,
    SP2_LINK_RAW = 4,
    SP2_LINK_NULL = 5,
    SP2_LINK_LOOP = 6,
    SP2_LINK_FIXED = 7
} sp2_link_kind;

typedef struct sp2_pcap_reader sp2_pcap_reader;

/* The link decoding the C walker knows for a link type (SP2_LINK_NONE if it knows none). */
int sp2_pcap_link_kind(uint32_t linktype);
/* A reader over a whole capture file in memory (data stays owned by the caller and must
 * outlive the reader).  Returns SP2_OK, SP2_E_INVALID (*error says why: not a capture, corrupt
 * header) or SP2_E_NOMEM.  *linktype is the link type of the file (pcapng: of its first
 * interface of a link type sp2_pcap_link_kind knows, else of its first interface, or 0xffffffff
 * if none is described before the first packet). */
int sp2_pcap_reader_new(const uint8_t *data, size_t size, sp2_pcap_reader **out, uint32_t *linktype,
                        uint32_t *snaplen, int *is_pcapng, const char **error);
/* The same over a file read in windows: data/size is the first window (the start of the file;
 * at_eof if it holds all of it), owned by the caller, who keeps it until it gives the next
 * window with sp2_pcap_reader_set_window (see sp2_pcap_reader_run_window). */
int sp2_pcap_reader_open(const uint8_t *data, size_t size, int at_eof, sp2_pcap_reader **out,
                         uint32_t *linktype, uint32_t *snaplen, int *is_pcapng, const char **error);
void sp2_pcap_reader_free(sp2_pcap_reader *reader);
/* Decoding of link types the walker does not know itself: IPv4 after header_size bytes. */
void sp2_pcap_reader_add_fixed_link(sp2_pcap_reader *reader, uint32_t linktype, uint32_t header_size);
/* The filter (a validated program, copied) applies to frames of link type `linktype`; frames of
 * other link types (pcapng only) are skipped as libpcap would refuse them. */
int sp2_pcap_reader_set_filter(sp2_pcap_reader *reader, uint32_t linktype, const sp2_bpf_insn *insns,
                               uint32_t n);
/* Walks up to max_records records and feeds the datagrams to the stream in batches.  Returns
 * SP2_OK, SP2_FULL or SP2_STOPPED as the kernel does; *ended is set once every record has been
 * read and fed, *error (if not NULL) says why reading ended early (a truncated or corrupt
 * file: everything before it has been fed). */
int sp2_pcap_reader_run(sp2_pcap_reader *reader, sp2_stream *stream, uint64_t max_records, int *ended,
                        const char **error);
/* The same for a windowed reader: *need_more is set when the next record runs past the window
 * (and every datagram of the window has been fed); the caller then gives the next window, which
 * starts at sp2_pcap_reader_window_pos of this one, with sp2_pcap_reader_set_window. */
int sp2_pcap_reader_run_window(sp2_pcap_reader *reader, sp2_stream *stream, uint64_t max_records,
                               int *ended, int *need_more, const char **error);
void sp2_pcap_reader_counts(sp2_pcap_reader *reader, sp2_pcap_counts *out);
/* Where in the window the next record starts (the bytes before it are done with). */
size_t sp2_pcap_reader_window_pos(sp2_pcap_reader *reader);
/* Where in the file the next record starts (for messages). */
uint64_t sp2_pcap_reader_offset(sp2_pcap_reader *reader);
void sp2_pcap_reader_set_window(sp2_pcap_reader *reader, const uint8_t *data, size_t size, int at_eof);
