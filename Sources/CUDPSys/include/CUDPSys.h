#ifndef CUDPSYS_H
#define CUDPSYS_H

/* The batched socket calls UDPKit needs that Swift's Glibc module does not show (they are
 * declared only under _GNU_SOURCE). Elsewhere they fail with ENOSYS. */

#include <sys/socket.h>
#include <sys/types.h>

/* Same layout as Linux's struct mmsghdr. */
typedef struct {
    struct msghdr msg_hdr;
    unsigned int msg_len;
} cudp_mmsghdr;

/* recvmmsg(2) without a timeout. */
int cudp_recvmmsg(int fd, cudp_mmsghdr *messages, unsigned int count, int flags);

/* sendmmsg(2). */
int cudp_sendmmsg(int fd, cudp_mmsghdr *messages, unsigned int count, int flags);

/* Room for one UDP_SEGMENT control message (CMSG_SPACE of a 16-bit value). */
unsigned long cudp_segment_control_space(void);

/* Writes a UDP_SEGMENT control message asking the kernel to cut a send into datagrams of `size`
 * bytes (UDP generic segmentation offload) into `buffer`, which has cudp_segment_control_space()
 * bytes; returns the msg_controllen to use. */
unsigned long cudp_segment_control(void *buffer, unsigned short size);

/* A non-blocking, close-on-exec eventfd counting from 0 (Linux); -1 with ENOSYS elsewhere. */
int cudp_eventfd(void);

#endif
