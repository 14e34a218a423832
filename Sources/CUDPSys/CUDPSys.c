#define _GNU_SOURCE
#include "CUDPSys.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__linux__)
#include <sys/eventfd.h>

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
#else
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

unsigned long cudp_segment_control_space(void) { return 0; }

unsigned long cudp_segment_control(void *buffer, unsigned short size)
{
    (void)buffer; (void)size;
    return 0;
}
#endif
