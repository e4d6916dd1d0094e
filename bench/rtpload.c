/* rtpload: the RTP load generator of bench/rtp.py (see bench/README.md).
 *
 * Written in C so that the generator costs little CPU on the machine that also runs the
 * gateway. bench/rtp.py creates the UDP sockets (one per call leg, each bound to its own port,
 * so the gateway latches each leg separately), sets the calls up through the control protocol,
 * and passes the sockets to this program as inherited file descriptors. stdin has one line per
 * leg: "<fd> <destination port> <stream id>". Every leg sends a 172-byte RTP packet (PCMU,
 * 160-byte payload) every 20 ms to its destination on 127.0.0.1, the legs' phases spread evenly
 * over the 20 ms; the payload carries the stream id, the sequence number and the send time
 * (CLOCK_MONOTONIC). Every packet received on any socket is timed against its send time.
 *
 * usage: rtpload <seconds> <legs>   prints one JSON object with the totals and the latency
 * percentiles (one-way: send call to receive return, including both kernels and the gateway).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PERIOD_NS 20000000LL
#define BINS 20000            /* 10 us bins up to 200 ms */
#define BIN_NS 10000LL

struct leg { int fd; struct sockaddr_in dst; uint32_t id; uint16_t seq; uint32_t ts;
             long long next; long long sent; long long received; };

static long long now_ns(void) {
    struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static long long hist[BINS + 1];

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: rtpload seconds legs\n"); return 2; }
    double seconds = atof(argv[1]);
    int n = atoi(argv[2]);
    struct leg *legs = calloc(n, sizeof *legs);
    int maxfd = 0;
    for (int i = 0; i < n; i++) {
        int port; unsigned id;
        if (scanf("%d %d %u", &legs[i].fd, &port, &id) != 3) { fprintf(stderr, "bad input\n"); return 2; }
        legs[i].id = id;
        legs[i].dst.sin_family = AF_INET;
        legs[i].dst.sin_port = htons(port);
        legs[i].dst.sin_addr.s_addr = htonl(0x7f000001);
        if (legs[i].fd > maxfd) maxfd = legs[i].fd;
    }
    int *index = malloc(sizeof(int) * (maxfd + 1));
    int ep = epoll_create1(0);
    for (int i = 0; i < n; i++) {
        index[legs[i].fd] = i;
        struct epoll_event ev = { .events = EPOLLIN, .data.u32 = i };
        epoll_ctl(ep, EPOLL_CTL_ADD, legs[i].fd, &ev);
    }
    long long start = now_ns() + 50000000LL;
    for (int i = 0; i < n; i++) legs[i].next = start + (PERIOD_NS * i) / n;
    long long stop_send = start + (long long)(seconds * 1e9);
    long long stop = stop_send + 2000000000LL;   /* drain: until 300 ms quiet, at most 2 s */
    long long last_rx = 0;
    unsigned char pkt[172];
    memset(pkt, 0xff, sizeof pkt);
    pkt[0] = 0x80; pkt[1] = 0;
    long long total_sent = 0, total_recv = 0, send_errors = 0, late_sends = 0, max_lag = 0;
    int cursor = 0;    /* legs are due in round-robin order: leg i at start + i*P/n + k*P */
    struct epoll_event events[512];
    unsigned char buf[2048];
    for (;;) {
        long long t = now_ns();
        if (t >= stop) break;
        if (t >= stop_send && t - (last_rx > stop_send ? last_rx : stop_send) > 300000000LL) break;
        /* send what is due */
        while (t < stop_send) {
            struct leg *l = &legs[cursor];
            if (l->next > t) break;
            long long lag = t - l->next;
            if (lag > max_lag) max_lag = lag;
            if (lag > 5000000LL) late_sends++;
            pkt[2] = l->seq >> 8; pkt[3] = l->seq & 0xff;
            uint32_t ts = l->ts;
            pkt[4] = ts >> 24; pkt[5] = ts >> 16; pkt[6] = ts >> 8; pkt[7] = ts;
            uint32_t ssrc = l->id;
            memcpy(pkt + 8, &ssrc, 4);
            memcpy(pkt + 12, &l->id, 4);
            long long stamp = now_ns();
            memcpy(pkt + 16, &stamp, 8);
            if (sendto(l->fd, pkt, sizeof pkt, 0, (struct sockaddr *)&l->dst, sizeof l->dst) < 0)
                send_errors++;
            else { l->sent++; total_sent++; }
            l->seq++; l->ts += 160; l->next += PERIOD_NS;
            cursor = (cursor + 1) % n;
        }
        long long wait_ns = (t < stop_send ? legs[cursor].next : t + 1000000LL) - now_ns();
        /* never spin: wait at least 1 ms (sends due meanwhile go out together, each stamped
         * when it is sent); an arriving packet ends the wait at once */
        int timeout = wait_ns > 1000000LL ? (int)(wait_ns / 1000000LL) : 1;
        int k = epoll_wait(ep, events, 512, timeout);
        long long r = now_ns();
        if (k > 0) last_rx = r;
        for (int e = 0; e < k; e++) {
            struct leg *l = &legs[events[e].data.u32];
            {   /* one datagram per event: level-triggered epoll reports the socket again */
                ssize_t got = recv(l->fd, buf, sizeof buf, MSG_DONTWAIT);
                if (got < 0) continue;
                if (got >= 24) {
                    long long sent; memcpy(&sent, buf + 16, 8);
                    long long d = r - sent;
                    long long bin = d / BIN_NS;
                    if (bin < 0) bin = 0;
                    if (bin > BINS) bin = BINS;
                    hist[bin]++;
                }
                l->received++; total_recv++;
            }
        }
    }
    long long p50 = -1, p99 = -1, p999 = -1, cum = 0;
    long long histo_total = 0;
    for (int b = 0; b <= BINS; b++) histo_total += hist[b];
    for (int b = 0; b <= BINS; b++) {
        cum += hist[b];
        if (p50 < 0 && cum * 2 >= histo_total) p50 = b;
        if (p99 < 0 && cum * 100 >= histo_total * 99) p99 = b;
        if (p999 < 0 && cum * 1000 >= histo_total * 999) p999 = b;
    }
    struct rusage ru; getrusage(RUSAGE_SELF, &ru);
    double cpu = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
    printf("{\"sent\": %lld, \"received\": %lld, \"send_errors\": %lld, \"late_sends\": %lld, "
           "\"max_send_lag_ms\": %.3f, \"p50_ms\": %.3f, \"p99_ms\": %.3f, \"p999_ms\": %.3f, "
           "\"generator_cpu_s\": %.3f, \"elapsed_s\": %.3f}\n",
           total_sent, total_recv, send_errors, late_sends, max_lag / 1e6,
           (p50 + 0.5) * BIN_NS / 1e6, (p99 + 0.5) * BIN_NS / 1e6, (p999 + 0.5) * BIN_NS / 1e6, cpu, (now_ns() - start + 50000000LL) / 1e9);
    return 0;
}
