#define _GNU_SOURCE
#include "CUDPSys.h"

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__linux__)
#include <sys/epoll.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <netinet/in.h>
#include <linux/sock_diag.h>

_Static_assert(sizeof(cudp_mmsghdr) == sizeof(struct mmsghdr), "cudp_mmsghdr must match struct mmsghdr");

int cudp_recvmmsg(int fd, cudp_mmsghdr *messages, unsigned int count, int flags)
{
    return recvmmsg(fd, (struct mmsghdr *)messages, count, flags, NULL);
}

int cudp_sendmmsg(int fd, cudp_mmsghdr *messages, unsigned int count, int flags)
{
    return sendmmsg(fd, (struct mmsghdr *)messages, count, flags);
}

int cudp_eventfd(void) { return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); }

int cudp_epoll_readable(int first, int second)
{
    int set = epoll_create1(EPOLL_CLOEXEC);
    if (set < 0) return -1;
    int fds[2] = {first, second};
    for (int i = 0; i < 2; i++) {
        struct epoll_event event = {.events = EPOLLIN, .data = {.fd = fds[i]}};
        if (epoll_ctl(set, EPOLL_CTL_ADD, fds[i], &event) != 0) {
            int saved = errno;
            close(set);
            errno = saved;
            return -1;
        }
    }
    return set;
}

int cudp_epoll_wait(int set, int second)
{
    struct epoll_event events[2];
    int count = epoll_wait(set, events, 2, -1);
    if (count < 0) return -1;
    for (int i = 0; i < count; i++) {
        if (events[i].data.fd == second) return 1;
    }
    return 0;
}

#ifndef SOL_UDP
#define SOL_UDP 17
#endif
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif

unsigned long cudp_segment_control_space(void) { return CMSG_SPACE(sizeof(uint16_t)); }

unsigned long cudp_segment_control(void *buffer, unsigned short size)
{
    struct msghdr header;
    memset(&header, 0, sizeof header);
    memset(buffer, 0, CMSG_SPACE(sizeof(uint16_t)));
    header.msg_control = buffer;
    header.msg_controllen = CMSG_SPACE(sizeof(uint16_t));
    struct cmsghdr *control = CMSG_FIRSTHDR(&header);
    control->cmsg_level = SOL_UDP;
    control->cmsg_type = UDP_SEGMENT;
    control->cmsg_len = CMSG_LEN(sizeof(uint16_t));
    uint16_t value = size;
    memcpy(CMSG_DATA(control), &value, sizeof value);
    return CMSG_SPACE(sizeof(uint16_t));
}

unsigned long cudp_packet_info_control_space(void)
{
    /* Both kinds fit, and a few more messages (SO_RXQ_OVFL, timestamps) the socket may also carry. */
    return CMSG_SPACE(sizeof(struct in6_pktinfo)) + CMSG_SPACE(sizeof(struct in_pktinfo)) + 64;
}

int cudp_enable_packet_info(int fd, int ipv6)
{
    int one = 1;
    /* On an IPv6 socket IP_PKTINFO still reports IPv4 datagrams (dual stack); it may be refused when
     * the socket is IPv6-only, which is harmless. */
    int v4 = setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof one);
    if (!ipv6) return v4;
    return setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof one);
}

int cudp_packet_info(const struct msghdr *message, struct sockaddr_storage *destination, int *interface_index)
{
    for (struct cmsghdr *c = CMSG_FIRSTHDR((struct msghdr *)message); c != NULL; c = CMSG_NXTHDR((struct msghdr *)message, c)) {
        if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO && c->cmsg_len >= CMSG_LEN(sizeof(struct in_pktinfo))) {
            struct in_pktinfo info;
            memcpy(&info, CMSG_DATA(c), sizeof info);
            struct sockaddr_in *out = (struct sockaddr_in *)destination;
            memset(out, 0, sizeof *out);
            out->sin_family = AF_INET;
            out->sin_addr = info.ipi_addr;
            *interface_index = info.ipi_ifindex;
            return 1;
        }
        if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO && c->cmsg_len >= CMSG_LEN(sizeof(struct in6_pktinfo))) {
            struct in6_pktinfo info;
            memcpy(&info, CMSG_DATA(c), sizeof info);
            struct sockaddr_in6 *out = (struct sockaddr_in6 *)destination;
            memset(out, 0, sizeof *out);
            out->sin6_family = AF_INET6;
            out->sin6_addr = info.ipi6_addr;
            *interface_index = (int)info.ipi6_ifindex;
            return 1;
        }
    }
    return 0;
}

#ifndef SO_MEMINFO
#define SO_MEMINFO 55
#endif

int cudp_socket_drops(int fd, unsigned int *drops)
{
    uint32_t info[SK_MEMINFO_VARS];
    socklen_t length = sizeof info;
    memset(info, 0, sizeof info);
    if (getsockopt(fd, SOL_SOCKET, SO_MEMINFO, info, &length) != 0) return -1;
    if (length <= SK_MEMINFO_DROPS * sizeof(uint32_t)) {
        errno = ENOPROTOOPT;
        return -1;
    }
    *drops = info[SK_MEMINFO_DROPS];
    return 0;
}
#else
unsigned long cudp_packet_info_control_space(void) { return 0; }

int cudp_enable_packet_info(int fd, int ipv6)
{
    (void)fd; (void)ipv6;
    errno = ENOSYS;
    return -1;
}

int cudp_packet_info(const struct msghdr *message, struct sockaddr_storage *destination, int *interface_index)
{
    (void)message; (void)destination; (void)interface_index;
    return 0;
}

int cudp_socket_drops(int fd, unsigned int *drops)
{
    (void)fd; (void)drops;
    errno = ENOSYS;
    return -1;
}

int cudp_recvmmsg(int fd, cudp_mmsghdr *messages, unsigned int count, int flags)
{
    (void)fd; (void)messages; (void)count; (void)flags;
    errno = ENOSYS;
    return -1;
}

int cudp_sendmmsg(int fd, cudp_mmsghdr *messages, unsigned int count, int flags)
{
    (void)fd; (void)messages; (void)count; (void)flags;
    errno = ENOSYS;
    return -1;
}

int cudp_eventfd(void)
{
    errno = ENOSYS;
    return -1;
}

int cudp_epoll_readable(int first, int second)
{
    (void)first;
    (void)second;
    errno = ENOSYS;
    return -1;
}

int cudp_epoll_wait(int set, int second)
{
    (void)set;
    (void)second;
    errno = ENOSYS;
    return -1;
}

unsigned long cudp_segment_control_space(void) { return 0; }

unsigned long cudp_segment_control(void *buffer, unsigned short size)
{
    (void)buffer; (void)size;
    return 0;
}
#endif

int cudp_set_thread_name(const char *name)
{
#if defined(__APPLE__)
    return pthread_setname_np(name);
#elif defined(__linux__)
    /* Linux refuses (ERANGE) a name of 16 bytes or more rather than shortening it. */
    char shortened[16];
    strncpy(shortened, name, sizeof shortened - 1);
    shortened[sizeof shortened - 1] = 0;
    return pthread_setname_np(pthread_self(), shortened);
#else
    (void)name;
    return ENOSYS;
#endif
}
