/*
 * udp_load: closed-loop load generator for UDP echo servers.
 *
 *   udp_load HOST PORT [--size BYTES] [--inflight N] [--duration SECONDS]
 *                      [--warmup SECONDS] [--timeout-ms MS] [--max-sends N]
 *
 * Every echo server in the benchmarks is driven by this one program so that
 * they all see the same load. It keeps N datagrams outstanding: each reply
 * immediately releases its slot for a new datagram. A datagram with no reply
 * after --timeout-ms counts as lost and its slot is reused, so a dropped
 * datagram never shrinks the window for good.
 *
 * With --inflight 1 it is a latency probe (send one, wait, repeat); with a
 * large window it measures throughput. After --warmup seconds the counters
 * are reset and it measures for --duration seconds, then prints one JSON line:
 *
 *   {"echoes":N,"seconds":S,"echoes_per_s":X,"p50_us":..,"p99_us":..,"lost":L,...}
 *
 * Only loopback destinations (127.0.0.0/8, ::1, localhost) are accepted.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum {
    BATCH = 64,           /* datagrams per sendmmsg / recvmmsg call */
    HEADER = 24,          /* magic, slot, sequence number, send time */
    MAX_INFLIGHT = 65536,
    SCAN_NS = 10000000,   /* look for timed-out datagrams every 10 ms */
};

static const uint32_t MAGIC = 0x554c4431; /* "ULD1" */

/* ---- time ---------------------------------------------------------------- */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- histogram ------------------------------------------------------------
 * Log-linear buckets over nanoseconds: values below 128 ns are exact, above
 * that every power of two is split into 64 equal buckets, so any recorded
 * value is known to within 1/64 (about 1.6 %). Fixed size, no allocation,
 * constant-time recording: cheap enough to record every echo. */

enum {
    SUB_BITS = 7,
    LINEAR = 1 << SUB_BITS,          /* 128 exact buckets */
    PER_OCTAVE = 1 << (SUB_BITS - 1), /* 64 buckets per power of two */
    MAX_MSB = 42,                    /* about 73 minutes; larger values clamp */
    NBUCKETS = LINEAR + (MAX_MSB - SUB_BITS + 1) * PER_OCTAVE,
};

struct histogram {
    uint64_t counts[NBUCKETS];
    uint64_t total, min, max;
    long double sum;
};

static void hist_reset(struct histogram *h)
{
    memset(h, 0, sizeof *h);
    h->min = UINT64_MAX;
}

static unsigned hist_bucket(uint64_t v)
{
    if (v < LINEAR)
        return (unsigned)v;
    int msb = 63 - __builtin_clzll(v);
    if (msb > MAX_MSB) {
        msb = MAX_MSB;
        v = (UINT64_C(1) << (MAX_MSB + 1)) - 1;
    }
    int shift = msb - (SUB_BITS - 1);
    return LINEAR + (unsigned)(shift - 1) * PER_OCTAVE + (unsigned)((v >> shift) - PER_OCTAVE);
}

/* The middle of a bucket: the best single guess for values that fell in it. */
static uint64_t hist_bucket_value(unsigned i)
{
    if (i < LINEAR)
        return i;
    unsigned k = i - LINEAR;
    unsigned shift = k / PER_OCTAVE + 1;
    uint64_t lower = (uint64_t)(k % PER_OCTAVE + PER_OCTAVE) << shift;
    return lower + (UINT64_C(1) << shift) / 2;
}

static void hist_record(struct histogram *h, uint64_t v)
{
    h->counts[hist_bucket(v)]++;
    h->total++;
    h->sum += (long double)v;
    if (v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
}

/* The smallest recorded value with at least fraction q of all values at or
 * below it (q in (0, 1]). */
static uint64_t hist_quantile(const struct histogram *h, double q)
{
    uint64_t rank = (uint64_t)(q * (double)h->total + 0.999999);
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < NBUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            uint64_t v = hist_bucket_value(i);
            if (v < h->min)
                v = h->min;
            if (v > h->max)
                v = h->max;
            return v;
        }
    }
    return h->max;
}

/* ---- arguments ----------------------------------------------------------- */

struct options {
    const char *host;
    const char *port;
    long size;
    long inflight;
    double duration;
    double warmup;
    long timeout_ms;
    long long max_sends;
};

static void usage(void)
{
    fprintf(stderr,
            "usage: udp_load HOST PORT [--size BYTES] [--inflight N] [--duration SECONDS]\n"
            "                [--warmup SECONDS] [--timeout-ms MS] [--max-sends N]\n");
    exit(2);
}

static double parse_number(const char *name, const char *text, double lo, double hi)
{
    char *end;
    double v = strtod(text, &end);
    if (*text == '\0' || *end != '\0' || !(v >= lo && v <= hi)) {
        fprintf(stderr, "udp_load: %s must be a number from %g to %g, not '%s'\n", name, lo, hi, text);
        exit(2);
    }
    return v;
}

static struct options parse_options(int argc, char **argv)
{
    struct options o = {
        .size = 64, .inflight = 256, .duration = 5, .warmup = 1,
        .timeout_ms = 200, .max_sends = 2000000000LL,
    };
    int positional = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) == 0) {
            if (i + 1 >= argc)
                usage();
            const char *v = argv[++i];
            if (strcmp(a, "--size") == 0)
                o.size = (long)parse_number(a, v, HEADER, 65507);
            else if (strcmp(a, "--inflight") == 0)
                o.inflight = (long)parse_number(a, v, 1, MAX_INFLIGHT);
            else if (strcmp(a, "--duration") == 0)
                o.duration = parse_number(a, v, 0, 3600);
            else if (strcmp(a, "--warmup") == 0)
                o.warmup = parse_number(a, v, 0, 600);
            else if (strcmp(a, "--timeout-ms") == 0)
                o.timeout_ms = (long)parse_number(a, v, 1, 60000);
            else if (strcmp(a, "--max-sends") == 0)
                o.max_sends = (long long)parse_number(a, v, 1, 1e12);
            else
                usage();
        } else if (positional == 0) {
            o.host = a;
            positional++;
        } else if (positional == 1) {
            o.port = a;
            positional++;
        } else {
            usage();
        }
    }
    if (positional != 2)
        usage();
    return o;
}

/* Resolves HOST to a loopback address and returns a socket connected to it.
 * Connecting lets the kernel drop datagrams from anyone but the server and
 * lets plain send/recv skip per-call addresses. */
static int connect_loopback(const char *host, const char *port_text)
{
    long port = (long)parse_number("PORT", port_text, 1, 65535);
    struct sockaddr_storage ss;
    socklen_t len;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
    if (strcmp(host, "localhost") == 0)
        host = "127.0.0.1";
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        if ((ntohl(v4->sin_addr.s_addr) >> 24) != 127) {
            fprintf(stderr, "udp_load: refusing non-loopback destination %s\n", host);
            exit(2);
        }
        v4->sin_family = AF_INET;
        v4->sin_port = htons((unsigned short)port);
        len = sizeof *v4;
    } else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        if (!IN6_IS_ADDR_LOOPBACK(&v6->sin6_addr)) {
            fprintf(stderr, "udp_load: refusing non-loopback destination %s\n", host);
            exit(2);
        }
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((unsigned short)port);
        len = sizeof *v6;
    } else {
        fprintf(stderr, "udp_load: HOST must be a numeric loopback address, not '%s'\n", host);
        exit(2);
    }

    int fd = socket(ss.ss_family, SOCK_DGRAM, 0);
    if (fd < 0) {
        perror("udp_load: socket");
        exit(1);
    }
    /* A full window of replies can arrive at once; make room for them so the
     * loader itself is not where datagrams get dropped. FORCE works when
     * running as root, the plain option is capped by net.core.rmem_max. */
    int rcvbuf = 4 << 20;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) < 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    /* Sends should never block on loopback, but if they do, give control
     * back so the deadline is still honoured. */
    struct timeval tv = {.tv_sec = 0, .tv_usec = 100000};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&ss, len) < 0) {
        perror("udp_load: connect");
        exit(1);
    }
    return fd;
}

/* ---- the load loop -------------------------------------------------------- */

struct slot {
    uint64_t seq;
    uint64_t sent_ns;
    int busy;
};

struct stats {
    uint64_t echoes, sent, lost, late, invalid, refused;
};

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void put32(unsigned char *p, uint32_t v) { memcpy(p, &v, 4); }
static void put64(unsigned char *p, uint64_t v) { memcpy(p, &v, 8); }
static uint32_t get32(const unsigned char *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t get64(const unsigned char *p) { uint64_t v; memcpy(&v, p, 8); return v; }

int main(int argc, char **argv)
{
    struct options o = parse_options(argc, argv);
    int fd = connect_loopback(o.host, o.port);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    size_t size = (size_t)o.size;
    unsigned inflight = (unsigned)o.inflight;
    struct slot *slots = calloc(inflight, sizeof *slots);
    unsigned *pending = calloc(inflight, sizeof *pending); /* slots waiting to be (re)sent */
    unsigned char *sbuf = calloc(BATCH, size);
    unsigned char *rbuf = calloc(BATCH, size);
    static struct histogram hist;
    if (!slots || !pending || !sbuf || !rbuf) {
        fprintf(stderr, "udp_load: out of memory\n");
        return 1;
    }
    hist_reset(&hist);

    /* Payload bytes after the header stay as they are: the content does not
     * matter to an echo server, only the length does. */
    memset(sbuf, 0xa5, BATCH * size);

    struct iovec siov[BATCH], riov[BATCH];
    struct mmsghdr smsg[BATCH], rmsg[BATCH];
    memset(smsg, 0, sizeof smsg);
    memset(rmsg, 0, sizeof rmsg);
    for (int i = 0; i < BATCH; i++) {
        siov[i].iov_base = sbuf + (size_t)i * size;
        siov[i].iov_len = size;
        smsg[i].msg_hdr.msg_iov = &siov[i];
        smsg[i].msg_hdr.msg_iovlen = 1;
        riov[i].iov_base = rbuf + (size_t)i * size;
        riov[i].iov_len = size;
        rmsg[i].msg_hdr.msg_iov = &riov[i];
        rmsg[i].msg_hdr.msg_iovlen = 1;
    }

    unsigned npending = 0;
    for (unsigned i = 0; i < inflight; i++)
        pending[npending++] = i;

    struct stats st = {0};
    uint64_t next_seq = 1;
    long long total_sends = 0;
    uint64_t timeout_ns = (uint64_t)o.timeout_ms * 1000000u;
    uint64_t start = now_ns();
    uint64_t measure_start = start + (uint64_t)(o.warmup * 1e9);
    uint64_t deadline = measure_start + (uint64_t)(o.duration * 1e9);
    uint64_t next_scan = start + SCAN_NS;
    int measuring = 0;
    int skip_poll = 0;
    uint64_t now = start;

    while (!stop_requested) {
        now = now_ns();
        if (now >= deadline)
            break;
        if (!measuring && now >= measure_start) {
            /* Warmup over: forget everything seen so far. Datagrams already
             * in flight still count when they come back. */
            measuring = 1;
            measure_start = now;
            memset(&st, 0, sizeof st);
            hist_reset(&hist);
        }

        /* Give up on datagrams that have been out too long; their slots go
         * back to the pending list and get a fresh sequence number. */
        if (now >= next_scan) {
            for (unsigned i = 0; i < inflight; i++) {
                if (slots[i].busy && now - slots[i].sent_ns >= timeout_ns) {
                    slots[i].busy = 0;
                    pending[npending++] = i;
                    st.lost++;
                }
            }
            next_scan = now + SCAN_NS;
        }

        /* Fill the window. */
        while (npending > 0 && total_sends < o.max_sends) {
            unsigned n = npending < BATCH ? npending : BATCH;
            if ((long long)n > o.max_sends - total_sends)
                n = (unsigned)(o.max_sends - total_sends);
            uint64_t t = now_ns();
            for (unsigned j = 0; j < n; j++) {
                unsigned s = pending[npending - 1 - j];
                unsigned char *p = sbuf + (size_t)j * size;
                slots[s].seq = next_seq++;
                slots[s].sent_ns = t;
                put32(p, MAGIC);
                put32(p + 4, s);
                put64(p + 8, slots[s].seq);
                put64(p + 16, t);
            }
            int m = sendmmsg(fd, smsg, n, 0);
            if (m < 0) {
                if (errno == ECONNREFUSED) {
                    /* An earlier datagram hit a closed port; the error is
                     * reported once and nothing was sent this time. */
                    st.refused++;
                    continue;
                }
                if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)
                    break; /* try again on the next turn of the loop */
                perror("udp_load: sendmmsg");
                return 1;
            }
            for (int j = 0; j < m; j++)
                slots[pending[npending - 1 - (unsigned)j]].busy = 1;
            npending -= (unsigned)m;
            st.sent += (uint64_t)m;
            total_sends += m;
            if ((unsigned)m < n)
                break;
        }

        /* Wait for replies unless the last read filled a whole batch, in
         * which case more are very likely queued already. The wait ends at
         * the next timeout scan or the deadline, whichever is first. */
        if (!skip_poll) {
            uint64_t until = next_scan < deadline ? next_scan : deadline;
            now = now_ns();
            uint64_t wait = until > now ? until - now : 0;
            struct timespec ts = {.tv_sec = (time_t)(wait / 1000000000u),
                                  .tv_nsec = (long)(wait % 1000000000u)};
            struct pollfd pfd = {.fd = fd, .events = POLLIN};
            int r = ppoll(&pfd, 1, &ts, NULL);
            if (r < 0 && errno != EINTR) {
                perror("udp_load: ppoll");
                return 1;
            }
            if (r <= 0)
                continue;
        }

        for (int i = 0; i < BATCH; i++) {
            riov[i].iov_len = size;
            rmsg[i].msg_hdr.msg_flags = 0;
        }
        int n = recvmmsg(fd, rmsg, BATCH, MSG_DONTWAIT, NULL);
        if (n < 0) {
            skip_poll = 0;
            if (errno == ECONNREFUSED) {
                st.refused++;
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                continue;
            perror("udp_load: recvmmsg");
            return 1;
        }
        skip_poll = (n == BATCH);
        now = now_ns();
        for (int i = 0; i < n; i++) {
            const unsigned char *p = rbuf + (size_t)i * size;
            if (rmsg[i].msg_len != size || (rmsg[i].msg_hdr.msg_flags & MSG_TRUNC) ||
                get32(p) != MAGIC || get32(p + 4) >= inflight) {
                st.invalid++;
                continue;
            }
            unsigned s = get32(p + 4);
            if (!slots[s].busy || slots[s].seq != get64(p + 8)) {
                st.late++; /* already given up on, or a duplicate */
                continue;
            }
            slots[s].busy = 0;
            pending[npending++] = s;
            st.echoes++;
            hist_record(&hist, now - slots[s].sent_ns);
        }
    }

    double seconds = measuring ? (double)(now - measure_start) / 1e9 : 0.0;
    double rate = seconds > 0 ? (double)st.echoes / seconds : 0.0;
    printf("{\"echoes\":%llu,\"seconds\":%.6f,\"echoes_per_s\":%.1f",
           (unsigned long long)st.echoes, seconds, rate);
    if (hist.total > 0) {
        printf(",\"p50_us\":%.2f,\"p90_us\":%.2f,\"p99_us\":%.2f,\"p999_us\":%.2f"
               ",\"min_us\":%.2f,\"max_us\":%.2f,\"mean_us\":%.2f",
               hist_quantile(&hist, 0.50) / 1e3, hist_quantile(&hist, 0.90) / 1e3,
               hist_quantile(&hist, 0.99) / 1e3, hist_quantile(&hist, 0.999) / 1e3,
               hist.min / 1e3, hist.max / 1e3, (double)(hist.sum / hist.total) / 1e3);
    } else {
        printf(",\"p50_us\":null,\"p90_us\":null,\"p99_us\":null,\"p999_us\":null"
               ",\"min_us\":null,\"max_us\":null,\"mean_us\":null");
    }
    printf(",\"lost\":%llu,\"late\":%llu,\"invalid\":%llu,\"refused\":%llu,\"sent\":%llu"
           ",\"inflight\":%u,\"size\":%zu}\n",
           (unsigned long long)st.lost, (unsigned long long)st.late,
           (unsigned long long)st.invalid, (unsigned long long)st.refused,
           (unsigned long long)st.sent, inflight, size);
    fflush(stdout);
    close(fd);
    return 0;
}
