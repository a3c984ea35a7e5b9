/*
 * The minimal C NFQUEUE loop, the baseline of scripts/bench-inline.sh: binds
 * a queue with libnetfilter_queue (copy-packet mode, GSO packets taken
 * whole, a large receive buffer, as sluice binds its queues) and accepts
 * every packet at once, with one verdict per packet and nothing else.
 * It is what any NFQUEUE program costs at least: a packet's trip to user
 * space and back.
 *
 * Usage: nfq_loop [QUEUE]   (stops on SIGTERM/SIGINT; the queue rule is the
 * caller's). Build: cc -O2 -o nfq_loop nfq_loop.c -lnetfilter_queue -lnfnetlink
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <linux/netfilter.h>
#include <libnetfilter_queue/libnetfilter_queue.h>

static volatile sig_atomic_t stop;
static unsigned long long packets;

static void on_signal(int sig) { (void)sig; stop = 1; }

static int on_packet(struct nfq_q_handle *qh, struct nfgenmsg *msg, struct nfq_data *nfa, void *data)
{
    (void)msg;
    (void)data;
    struct nfqnl_msg_packet_hdr *ph = nfq_get_msg_packet_hdr(nfa);
    if (!ph)
        return 0;
    packets++;
    return nfq_set_verdict(qh, ntohl(ph->packet_id), NF_ACCEPT, 0, NULL);
}

int main(int argc, char **argv)
{
    uint16_t queue = argc > 1 ? (uint16_t)atoi(argv[1]) : 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal; /* no SA_RESTART: recv returns EINTR */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    struct nfq_handle *h = nfq_open();
    if (!h) {
        perror("nfq_loop: nfq_open");
        return 1;
    }
    struct nfq_q_handle *qh = nfq_create_queue(h, queue, on_packet, NULL);
    if (!qh) {
        perror("nfq_loop: nfq_create_queue");
        return 1;
    }
    if (nfq_set_mode(qh, NFQNL_COPY_PACKET, 0xffff) < 0 || nfq_set_queue_maxlen(qh, 4096) < 0) {
        perror("nfq_loop: queue settings");
        return 1;
    }
    /* GSO: take super-packets whole, as sluice does (NFQA_CFG_F_GSO). */
    if (nfq_set_queue_flags(qh, NFQA_CFG_F_GSO, NFQA_CFG_F_GSO) < 0) {
        perror("nfq_loop: NFQA_CFG_F_GSO");
        return 1;
    }
    int fd = nfq_fd(h);
    nfnl_rcvbufsiz(nfq_nfnlh(h), 8 << 20);
    int one = 1;
    setsockopt(fd, SOL_NETLINK, NETLINK_NO_ENOBUFS, &one, sizeof one);
    fprintf(stderr, "nfq_loop: ready on queue %u\n", queue);

    static char buf[256 * 1024] __attribute__((aligned));
    while (!stop) {
        int n = recv(fd, buf, sizeof buf, 0);
        if (n < 0) {
            if (errno == EINTR || errno == ENOBUFS)
                continue;
            perror("nfq_loop: recv");
            break;
        }
        nfq_handle_packet(h, buf, n);
    }
    nfq_destroy_queue(qh);
    nfq_close(h);
    fprintf(stderr, "nfq_loop: %llu packets accepted\n", packets);
    return 0;
}
