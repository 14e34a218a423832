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

/* Room for the control messages a packet-information receive brings (IP_PKTINFO or IPV6_PKTINFO). */
unsigned long cudp_packet_info_control_space(void);

/* Asks the kernel to attach the destination address and arrival interface to every datagram: IP_PKTINFO,
 * and IPV6_RECVPKTINFO too when `ipv6` (a dual-stack socket gets IPv4 datagrams with IP_PKTINFO).
 * Returns 0, or -1 with errno. */
int cudp_enable_packet_info(int fd, int ipv6);

/* Reads a received message's IP_PKTINFO / IPV6_PKTINFO control message: the destination address
 * (with port 0) into `destination` and the interface index into `interface_index`. Returns 1 when
 * found, 0 when the message carries none. */
int cudp_packet_info(const struct msghdr *message, struct sockaddr_storage *destination, int *interface_index);

/* How many datagrams the kernel dropped for this socket since it was made (full receive buffer and
 * the like): the counter SO_RXQ_OVFL reports with each datagram, read at once through SO_MEMINFO
 * (Linux 4.6 and later). Returns 0 and sets `drops`, or -1 with errno. */
int cudp_socket_drops(int fd, unsigned int *drops);

/* A non-blocking, close-on-exec eventfd counting from 0 (Linux); -1 with ENOSYS elsewhere. */
int cudp_eventfd(void);

/* An epoll set (close-on-exec) watching `first` and `second` for input (errors wake it too); -1 and errno when it
 * cannot be made (ENOSYS outside Linux). */
int cudp_epoll_readable(int first, int second);

/* Waits on `set` until one of its descriptors is ready: 1 when `second` is among them, 0 when only the other, -1
 * and errno on failure (EINTR included). */
int cudp_epoll_wait(int set, int second);

/* Names the calling thread (shown by debuggers and `ps -L`). Linux keeps the first 15 bytes. Returns 0, or an
 * error number. */
int cudp_set_thread_name(const char *name);

#endif
