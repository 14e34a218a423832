#define _GNU_SOURCE
#include "CUDPSys.h"

#include <errno.h>
#include <stddef.h>

#if defined(__linux__)
_Static_assert(sizeof(cudp_mmsghdr) == sizeof(struct mmsghdr), "cudp_mmsghdr must match struct mmsghdr");

int cudp_recvmmsg(int fd, cudp_mmsghdr *messages, unsigned int count, int flags)
{
    return recvmmsg(fd, (struct mmsghdr *)messages, count, flags, NULL);
}

int cudp_sendmmsg(int fd, cudp_mmsghdr *messages, unsigned int count, int flags)
{
    return sendmmsg(fd, (struct mmsghdr *)messages, count, flags);
}

int cudp_msg_waitforone(void) { return MSG_WAITFORONE; }
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

int cudp_msg_waitforone(void) { return 0; }
#endif
