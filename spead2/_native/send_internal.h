/* Private declarations of the send kernel (packetize.c, sender.c). */
#ifndef SP2_SEND_INTERNAL_H
#define SP2_SEND_INTERNAL_H

#include "internal.h"

#ifdef _WIN32
struct iovec {
    void *iov_base;
    size_t iov_len;
};
#else
#include <sys/uio.h>
#endif

/* Bytes of a packet header, and of one item pointer. */
#define SP2_HEADER_SIZE 8
#define SP2_POINTER_SIZE 8
/* HEAP_CNT, HEAP_LENGTH, PAYLOAD_OFFSET, PAYLOAD_LENGTH: in every packet. */
#define SP2_STANDARD_POINTERS 4
/* Payload pieces shorter than this are copied next to the header rather than gathered. */
#define SP2_GATHER_MIN 256

/* Writes the next packet: header and item pointers (and any copied payload) into scratch
 * (it->packet_size bytes), the packet as up to max_iov pieces into iov.  Returns the packet's
 * size (0 when the heap is done); *n_iov is the number of pieces. */
size_t sp2_packet_iter_next(sp2_packet_iter *it, uint8_t *scratch, struct iovec *iov, int max_iov,
                            int *n_iov);

#endif
