/* Capture of UDP datagrams to a pcap file (capture.c; cffi cdef: no preprocessor directives).
 * Datagrams are read with recvmmsg in batches and written as Ethernet / IPv4 (or IPv6) / UDP
 * records of a nanosecond pcap file, through one large buffer flushed with write(2).  Called on
 * one thread only (spead2_capture's loop). */

/* ---- the pcap writer ---- */

typedef struct sp2_pcap_writer sp2_pcap_writer;

/* A writer to fd (-1: count records, write nothing), with a buffer of buffer_size bytes (at
 * least 256 KiB are used), records cut at snaplen bytes of frame.  direct: fd was opened with
 * O_DIRECT, so whole blocks of 4096 bytes from an aligned buffer are written (the tail goes out
 * at sp2_pcap_writer_close, after O_DIRECT is cleared).  The file header goes into the buffer
 * at once.  NULL when out of memory. */
sp2_pcap_writer *sp2_pcap_writer_new(int fd, size_t buffer_size, uint32_t snaplen, int direct);
/* Flushes (SP2_OK or SP2_E_OS) and frees; the fd stays the caller's. */
int sp2_pcap_writer_close(sp2_pcap_writer *writer);
void sp2_pcap_writer_free(sp2_pcap_writer *writer);
/* One datagram as a frame.  Addresses are 4 (IPv4) or 16 (IPv6) bytes in network order; both of
 * one family.  Returns SP2_OK, SP2_E_INVALID (bad address lengths) or SP2_E_OS (a flush failed;
 * errno says why). */
int sp2_pcap_writer_record(sp2_pcap_writer *writer, const uint8_t *payload, size_t size,
                           const uint8_t *src_addr, size_t addr_len, uint16_t src_port,
                           const uint8_t *dst_addr, uint16_t dst_port, int64_t timestamp_ns);
/* Writes out the whole buffer (blocks only, when direct).  SP2_OK or SP2_E_OS. */
int sp2_pcap_writer_flush(sp2_pcap_writer *writer);
/* The bytes buffered and not yet written (*size of them), for a caller that writes them itself
 * (a writer to fd -1); sp2_pcap_writer_consume drops the first n of them. */
const uint8_t *sp2_pcap_writer_pending(sp2_pcap_writer *writer, size_t *size);
void sp2_pcap_writer_consume(sp2_pcap_writer *writer, size_t n);
/* Bytes written to the file so far and still buffered. */
uint64_t sp2_pcap_writer_bytes(sp2_pcap_writer *writer);

/* ---- reading sockets into the writer ---- */

typedef struct sp2_capture sp2_capture;

/* 1 where sp2_capture_drain can read sockets (Linux: recvmmsg), 0 elsewhere. */
int sp2_capture_supported(void);
/* Batches of n_slots datagrams of up to 65535 bytes each.  NULL when out of memory. */
sp2_capture *sp2_capture_new(sp2_pcap_writer *writer, uint32_t n_slots);
void sp2_capture_free(sp2_capture *capture);
/* Asks the kernel for each datagram's destination address and receive time (IP_PKTINFO or
 * IPV6_RECVPKTINFO, SO_TIMESTAMPNS).  family: 4 or 6.  SP2_OK or SP2_E_OS. */
int sp2_capture_prepare_socket(int fd, int family);
/* Reads the socket without blocking until it is empty, max_batches batches were read or
 * max_packets datagrams were captured (0: no limit), writing every datagram.  local_addr (4 or
 * 16 bytes) and local_port stand for the destination when the kernel gives none.  Adds to
 * *packets and *bytes (payload).  SP2_OK, or SP2_E_OS (errno: a socket or write error;
 * transient socket errors are not reported). */
int sp2_capture_drain(sp2_capture *capture, int fd, const uint8_t *local_addr, size_t addr_len,
                      uint16_t local_port, uint32_t max_batches, uint64_t max_packets,
                      uint64_t *packets, uint64_t *bytes);
/* Serves n sockets until timeout_ms has passed, a signal interrupted the wait, or max_packets
 * (0: no limit) datagrams were captured by this call: poll(2), then sp2_capture_drain on each
 * readable socket.  Socket i stands for local_addrs[16 * i ...] (addr_lens[i] bytes) and
 * ports[i]; its counts are added to packets[i] and bytes[i].  When a round brings less than half
 * a batch, it sleeps nap_us (0: never) before polling again, so that traffic is read in fewer,
 * larger batches.  SP2_OK or SP2_E_OS. */
int sp2_capture_run(sp2_capture *capture, const int *fds, const uint8_t *local_addrs, const size_t *addr_lens,
                    const uint16_t *ports, uint32_t n, int timeout_ms, uint32_t nap_us, uint64_t max_packets,
                    uint64_t *packets, uint64_t *bytes);
