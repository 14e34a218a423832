/*
 * udp_relay: the baseline UDP relay for the benchmarks, of `udp proxy`'s design.
 *
 *   udp_relay LISTEN_PORT UPSTREAM_PORT   (binds 127.0.0.1:LISTEN_PORT, relays to 127.0.0.1:UPSTREAM_PORT)
 *
 * A relay does three times the socket work of an echo server: it receives a
 * datagram from a client, sends it upstream, receives the answer and sends
 * that back. Comparing `udp proxy` with an echo server says little; this
 * program is what the same design costs written plainly in C:
 *
 *   - one connected upstream socket per client (so the upstream's answer
 *     says which client it is for, with no table lookup on the way back);
 *   - one epoll set over the listening socket and every upstream socket;
 *   - recvmmsg to take up to BATCH datagrams at a time, and sendmmsg to
 *     pass on the datagrams of one batch that go the same way.
 *
 * Single-threaded, no idle timeout, at most MAX_CLIENTS clients (the
 * benchmark has one or a few). SIGTERM or SIGINT ends it with a summary on
 * stderr.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

enum { BATCH = 64, BUFSIZE = 2048, MAX_CLIENTS = 1024, EVENTS = 64 };

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

struct client {
    struct sockaddr_in addr;  /* the client, as the listening socket sees it */
    int fd;                   /* its upstream socket, connected to the upstream */
};

static struct client clients[MAX_CLIENTS];
static int client_count;

/* Static so the buffers are not on the stack. */
static char bufs[BATCH][BUFSIZE];
static struct sockaddr_in peers[BATCH];
static struct iovec iov[BATCH];
static struct mmsghdr msgs[BATCH];
static struct mmsghdr out[BATCH];

static unsigned long long from_clients, to_clients, send_errors, refused_clients;

static int parse_port(const char *text)
{
    char *end;
    long port = strtol(text, &end, 10);
    if (*text == '\0' || *end != '\0' || port < 0 || port > 65535)
        return -1;
    return (int)port;
}

static void reset_batch(void)
{
    for (int i = 0; i < BATCH; i++) {
        iov[i].iov_base = bufs[i];
        iov[i].iov_len = BUFSIZE;
        memset(&msgs[i].msg_hdr, 0, sizeof msgs[i].msg_hdr);
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
        msgs[i].msg_hdr.msg_name = &peers[i];
        msgs[i].msg_hdr.msg_namelen = sizeof peers[i];
    }
}

/* Sends count prepared messages on fd, skipping one that fails (as udp_echo does). */
static void send_all(int fd, struct mmsghdr *m, int count, unsigned long long *sent)
{
    int done = 0;
    while (done < count) {
        int k = sendmmsg(fd, m + done, (unsigned)(count - done), 0);
        if (k < 0) {
            if (errno == EINTR && !stop_requested)
                continue;
            send_errors++;
            done++;
            continue;
        }
        done += k;
        if (sent)
            *sent += (unsigned long long)k;
    }
}

static int find_or_add(const struct sockaddr_in *addr, int epfd, const struct sockaddr_in *upstream)
{
    /* Linear search: the benchmark has a handful of clients, and a C relay
     * for many would use a hash table here at no extra cost per datagram. */
    for (int i = 0; i < client_count; i++)
        if (clients[i].addr.sin_port == addr->sin_port && clients[i].addr.sin_addr.s_addr == addr->sin_addr.s_addr)
            return i;
    if (client_count == MAX_CLIENTS)
        return -1;
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (const struct sockaddr *)upstream, sizeof *upstream) < 0) {
        close(fd);
        return -1;
    }
    int index = client_count++;
    clients[index].addr = *addr;
    clients[index].fd = fd;
    struct epoll_event ev = { .events = EPOLLIN, .data.u32 = (uint32_t)index + 1 };
    epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
    return index;
}

/* Datagrams from clients: each goes out on its client's upstream socket; a
 * run of datagrams for the same client is one sendmmsg. */
static void from_listener(int listener, int epfd, const struct sockaddr_in *upstream)
{
    for (;;) {
        reset_batch();
        int n = recvmmsg(listener, msgs, BATCH, MSG_DONTWAIT, NULL);
        if (n <= 0)
            return;
        from_clients += (unsigned long long)n;
        int i = 0;
        while (i < n) {
            int c = find_or_add(&peers[i], epfd, upstream);
            int j = i;
            int count = 0;
            while (j < n && (j == i || (peers[j].sin_port == peers[i].sin_port
                                        && peers[j].sin_addr.s_addr == peers[i].sin_addr.s_addr))) {
                iov[j].iov_len = msgs[j].msg_len;
                memset(&out[count].msg_hdr, 0, sizeof out[count].msg_hdr);
                out[count].msg_hdr.msg_iov = &iov[j];
                out[count].msg_hdr.msg_iovlen = 1;
                count++;
                j++;
            }
            if (c < 0)
                refused_clients += (unsigned long long)count;
            else
                send_all(clients[c].fd, out, count, NULL);
            i = j;
        }
        if (n < BATCH)
            return;
    }
}

/* Answers on one client's upstream socket: all go back to that client with one sendmmsg. */
static void from_upstream(int listener, int index)
{
    struct client *c = &clients[index];
    for (;;) {
        reset_batch();
        int n = recvmmsg(c->fd, msgs, BATCH, MSG_DONTWAIT, NULL);
        if (n <= 0)
            return;
        for (int i = 0; i < n; i++) {
            iov[i].iov_len = msgs[i].msg_len;
            msgs[i].msg_hdr.msg_name = &c->addr;
            msgs[i].msg_hdr.msg_namelen = sizeof c->addr;
        }
        send_all(listener, msgs, n, &to_clients);
        if (n < BATCH)
            return;
    }
}

int main(int argc, char **argv)
{
    int listen_port = argc == 3 ? parse_port(argv[1]) : -1;
    int upstream_port = argc == 3 ? parse_port(argv[2]) : -1;
    if (listen_port < 0 || upstream_port <= 0) {
        fprintf(stderr, "usage: %s LISTEN_PORT UPSTREAM_PORT\n", argv[0]);
        return 2;
    }

    /* No SA_RESTART: epoll_wait returns EINTR and the loop sees stop_requested. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    int listener = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    if (listener < 0) {
        perror("udp_relay: socket");
        return 1;
    }
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons((unsigned short)listen_port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    if (bind(listener, (struct sockaddr *)&addr, sizeof addr) < 0) {
        perror("udp_relay: bind");
        return 1;
    }
    socklen_t alen = sizeof addr;
    getsockname(listener, (struct sockaddr *)&addr, &alen);
    struct sockaddr_in upstream = { .sin_family = AF_INET, .sin_port = htons((unsigned short)upstream_port),
                                    .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    fprintf(stderr, "udp_relay: 127.0.0.1:%u -> 127.0.0.1:%d\n", ntohs(addr.sin_port), upstream_port);

    int epfd = epoll_create1(0);
    struct epoll_event ev = { .events = EPOLLIN, .data.u32 = 0 };
    if (epfd < 0 || epoll_ctl(epfd, EPOLL_CTL_ADD, listener, &ev) < 0) {
        perror("udp_relay: epoll");
        return 1;
    }

    struct epoll_event events[EVENTS];
    while (!stop_requested) {
        int n = epoll_wait(epfd, events, EVENTS, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("udp_relay: epoll_wait");
            break;
        }
        for (int i = 0; i < n; i++) {
            if (events[i].data.u32 == 0)
                from_listener(listener, epfd, &upstream);
            else
                from_upstream(listener, (int)events[i].data.u32 - 1);
        }
    }

    for (int i = 0; i < client_count; i++)
        close(clients[i].fd);
    close(listener);
    close(epfd);
    fprintf(stderr, "udp_relay: %llu from clients, %llu back to clients, %d clients, %llu send errors, %llu refused\n",
            from_clients, to_clients, client_count, send_errors, refused_clients);
    return 0;
}
