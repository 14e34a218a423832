/*
 * udp_echo: the baseline UDP echo server for the benchmarks.
 *
 *   udp_echo PORT        (binds 127.0.0.1:PORT; PORT 0 picks a free port)
 *
 * It is meant to be about as fast as a single-threaded echo server can be
 * with plain sockets, so that every other server is measured against it:
 * one recvmmsg call collects up to BATCH datagrams, one sendmmsg call
 * returns them to their senders. No per-datagram work beyond that.
 *
 * SIGTERM or SIGINT ends it; it prints a one-line summary on stderr.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum { BATCH = 64, BUFSIZE = 2048 };

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s PORT\n", argv[0]);
        return 2;
    }
    char *end;
    long port = strtol(argv[1], &end, 10);
    if (*argv[1] == '\0' || *end != '\0' || port < 0 || port > 65535) {
        fprintf(stderr, "udp_echo: bad port '%s'\n", argv[1]);
        return 2;
    }

    /* No SA_RESTART: a signal must interrupt the blocking recvmmsg with
     * EINTR so the loop sees stop_requested; otherwise the process would
     * only stop after the next datagram arrives. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0) {
        perror("udp_echo: socket");
        return 1;
    }
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
        perror("udp_echo: bind");
        return 1;
    }
    socklen_t alen = sizeof addr;
    getsockname(fd, (struct sockaddr *)&addr, &alen);
    fprintf(stderr, "udp_echo: listening on 127.0.0.1:%u\n", ntohs(addr.sin_port));

    /* Static so the 128 KiB of buffers are not on the stack. */
    static char bufs[BATCH][BUFSIZE];
    static struct sockaddr_storage peers[BATCH];
    static struct iovec iov[BATCH];
    static struct mmsghdr msgs[BATCH];

    unsigned long long received = 0, sent = 0, send_errors = 0;

    while (!stop_requested) {
        /* recvmmsg overwrites msg_namelen and we shrink iov_len below, so
         * both are reset before every call. */
        for (int i = 0; i < BATCH; i++) {
            iov[i].iov_base = bufs[i];
            iov[i].iov_len = BUFSIZE;
            msgs[i].msg_hdr.msg_iov = &iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
            msgs[i].msg_hdr.msg_name = &peers[i];
            msgs[i].msg_hdr.msg_namelen = sizeof peers[i];
            msgs[i].msg_hdr.msg_control = NULL;
            msgs[i].msg_hdr.msg_controllen = 0;
            msgs[i].msg_hdr.msg_flags = 0;
        }

        /* MSG_WAITFORONE: block until at least one datagram is there, then
         * take whatever else is already queued without waiting for more.
         * That keeps latency low at one datagram in flight and batches
         * naturally under load. */
        int n = recvmmsg(fd, msgs, BATCH, MSG_WAITFORONE, NULL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("udp_echo: recvmmsg");
            break;
        }
        received += (unsigned long long)n;

        /* Send back exactly what arrived: each reply is as long as its
         * request (a truncated request comes back truncated). */
        for (int i = 0; i < n; i++)
            iov[i].iov_len = msgs[i].msg_len;

        int done = 0;
        while (done < n) {
            int m = sendmmsg(fd, msgs + done, (unsigned)(n - done), 0);
            if (m < 0) {
                if (stop_requested)
                    break;
                if (errno == EINTR)
                    continue;
                /* sendmmsg stops at the first failing datagram (say, an
                 * unreachable sender). Skip that one and go on with the
                 * rest rather than dropping the whole batch. */
                send_errors++;
                done++;
                continue;
            }
            done += m;
            sent += (unsigned long long)m;
        }
    }

    close(fd);
    fprintf(stderr, "udp_echo: %llu received, %llu sent, %llu send errors\n",
            received, sent, send_errors);
    return 0;
}
