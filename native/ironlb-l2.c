/*
 * ironlb-l2: the Layer-2 packet helper of ironlb.
 *
 * It only moves packets; every decision stays in the TypeScript speaker (src/l2/helper.ts), which
 * drives it with JSON lines on stdin and reads JSON events on stdout (see native/README.md):
 *   - answers ARP requests and NDP Neighbor Solicitations for the IPs it is told to own, on the
 *     interfaces it is told, with that interface's MAC;
 *   - sends gratuitous ARP (request and reply form) and unsolicited NAs on command;
 *   - reports other hosts that answer for or announce an owned IP ("foreign");
 *   - probes an IP before it is claimed (ARP probe / DAD NS) and reports who answered.
 *
 * One poll() loop, no timers at idle. Needs CAP_NET_RAW only. Exits when stdin closes.
 *
 * Answer workers (default on machines with more than one CPU): the receive sockets of each
 * interface and protocol form a PACKET_FANOUT_CPU group with one socket per CPU, joined in CPU
 * order, and worker thread k, pinned to CPU k, polls socket k. A request is then answered on the
 * CPU that took it in, by a thread woken there: no inter-processor interrupt, which on a VM costs
 * more than the answer itself (measured: helper on another CPU than the request 67 us, on the same
 * CPU 6 us, the kernel's own reply 4 us). All state stays behind one mutex; the main thread holds
 * it except while it waits in poll(), and does everything else as before.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "l2proto.h"

#define HELPER_VERSION 1
#define RCVBUF_BYTES (1 << 20)
#define MAX_OUT_PENDING (4u << 20) /* events beyond this are dropped (and counted) */
#define MAX_PROBES 64
#define MAX_PROBE_ANSWERS 8
#define MAX_ANNOUNCES 65536
#define RX_BURST 64
#define FOREIGN_REPORT_MS 1000 /* the same foreign MAC for the same IP is reported at most once a second */
#define MAX_WORKERS 64

/* ============================================================================================ */
/* State                                                                                        */
/* ============================================================================================ */

struct owned {
    struct l2_ip ip;
    uint64_t requests, responses, gratuitous, foreign;
    uint8_t foreign_mac[6];
    int64_t foreign_ms; /* last report; 0 = never */
};

struct sockstat {
    uint64_t packets, drops, send_errors;
};

struct iface {
    char name[L2_IFNAMSIZ];
    int ifindex;
    uint8_t mac[6];
    int arp_fd, nd_fd; /* -1 once the interface went away; also the sending sockets */
    /* With workers: receive sockets 1..n-1 of the fanout groups (socket 0 is arp_fd / nd_fd). */
    int x_arp[MAX_WORKERS], x_nd[MAX_WORKERS];
    struct owned *ips; /* sorted by l2_ip_cmp: IPv4 first */
    size_t n_ips, n_v4;
    struct sockstat arp_st, nd_st;
    int down_reported;
    int reused; /* scratch during set */
};

struct mcgroup {
    int ifindex;
    uint8_t group[16];
    unsigned refs;
    int fd; /* the membership socket, -1 when the join failed */
};

struct announce {
    struct l2_ip ip;
    char iface[L2_IFNAMSIZ]; /* "" = every interface that owns ip */
    uint32_t count, round, interval_ms;
    int64_t due_ms;
    int has_id;
    uint64_t id;
};

struct probe_answer {
    uint8_t mac[6];
    const char *kind;
};

struct probe {
    int active;
    int has_id;
    uint64_t id;
    struct l2_ip ip;
    char iface[L2_IFNAMSIZ];
    int ifindex, fd;
    uint8_t mac[6];
    uint32_t sent, count, timeout_ms;
    int64_t start_ms, deadline_ms;
    int joined;
    uint8_t group[16];
    struct probe_answer answers[MAX_PROBE_ANSWERS];
    size_t n_answers;
};

static struct iface *g_ifs;
static size_t g_n_ifs;
static struct mcgroup *g_mc;
static size_t g_n_mc, g_cap_mc;
static int g_mc_fds[32];
static size_t g_n_mc_fds;
static struct announce *g_ann;
static size_t g_n_ann, g_cap_ann;
static struct probe g_probes[MAX_PROBES];
static struct l2_str g_out;
static size_t g_out_off;
static uint64_t g_events_dropped, g_bad_commands;
static int64_t g_start_ms;
static struct sock_filter g_prog[L2_BPF_MAX];

/* Answer workers (see the top of this file). g_nworkers == 0: the main thread polls the sockets. */
struct worker {
    pthread_t thread;
    int k;   /* its CPU and its socket index in every fanout group */
    int efd; /* eventfd: the receive sockets changed */
};
static int g_nworkers;
static struct worker g_workers[MAX_WORKERS];
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t g_gen;        /* bumped, under g_lock, whenever receive sockets open or close */
static int g_wake_main = -1;  /* eventfd: a worker left events for stdout */

static const uint8_t BCAST[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
static const uint8_t ZERO6[6];
static const uint8_t ZERO16[16];
static const uint8_t ALL_NODES[16] = {0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
static const uint8_t ALL_NODES_MAC[6] = {0x33, 0x33, 0, 0, 0, 1};

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ============================================================================================ */
/* Events                                                                                       */
/* ============================================================================================ */

static void flush_out(int blocking) {
    while (g_out_off < g_out.len) {
        ssize_t w = write(STDOUT_FILENO, g_out.buf + g_out_off, g_out.len - g_out_off);
        if (w > 0) {
            g_out_off += (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!blocking) break;
            struct pollfd p = {STDOUT_FILENO, POLLOUT, 0};
            if (poll(&p, 1, 1000) <= 0) break;
            continue;
        }
        _exit(0); /* EPIPE or similar: nobody reads our events any more */
    }
    if (g_out_off == g_out.len) {
        g_out.len = 0;
        g_out_off = 0;
    }
}

/* Starts an event object: {"event":"<name>" plus ,"id":N when has_id. */
static void ev_begin(struct l2_str *s, const char *name, int has_id, uint64_t id) {
    l2_str_init(s);
    l2_str_raw(s, "{\"event\":");
    l2_str_json(s, name);
    if (has_id) {
        l2_str_raw(s, ",\"id\":");
        l2_str_u64(s, id);
    }
}

static void ev_str(struct l2_str *s, const char *key, const char *val) {
    l2_str_raw(s, ",");
    l2_str_json(s, key);
    l2_str_raw(s, ":");
    l2_str_json(s, val);
}

static void ev_u64(struct l2_str *s, const char *key, uint64_t v) {
    l2_str_raw(s, ",");
    l2_str_json(s, key);
    l2_str_raw(s, ":");
    l2_str_u64(s, v);
}

/* Queues an event. Unsolicited events (reply == 0) are dropped, and counted, while more than
 * MAX_OUT_PENDING bytes wait for the reader; answers to commands are always queued. */
static void ev_emit(struct l2_str *s, int reply) {
    l2_str_raw(s, "}\n");
    if (s->oom || (!reply && g_out.len - g_out_off + s->len > MAX_OUT_PENDING)) {
        g_events_dropped++;
    } else {
        l2_str_raw(&g_out, s->buf);
        if (g_out.oom) {
            g_events_dropped++;
            g_out.oom = 0;
        }
    }
    l2_str_free(s);
    flush_out(0);
}

static void emit_error(int has_id, uint64_t id, const char *cmd, const char *iface, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void emit_error(int has_id, uint64_t id, const char *cmd, const char *iface, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    struct l2_str s;
    ev_begin(&s, "error", has_id, id);
    if (cmd) ev_str(&s, "cmd", cmd);
    if (iface) ev_str(&s, "iface", iface);
    ev_str(&s, "message", msg);
    ev_emit(&s, has_id);
}

/* ============================================================================================ */
/* Interfaces and sockets                                                                       */
/* ============================================================================================ */

static int is_our_mac(const uint8_t mac[6]) {
    for (size_t i = 0; i < g_n_ifs; i++)
        if (memcmp(g_ifs[i].mac, mac, 6) == 0) return 1;
    return 0;
}

static int owned_cmp(const void *a, const void *b) {
    return l2_ip_cmp(&((const struct owned *)a)->ip, &((const struct owned *)b)->ip);
}

static struct owned *find_owned(const struct iface *ifc, int family, const uint8_t *addr) {
    if (ifc->n_ips == 0) return NULL;
    struct owned key;
    memset(&key, 0, sizeof(key));
    key.ip.family = (uint8_t)family;
    memcpy(key.ip.addr, addr, family == 4 ? 4 : 16);
    return bsearch(&key, ifc->ips, ifc->n_ips, sizeof(struct owned), owned_cmp);
}

/* Receive socket k (0 .. max(1, g_nworkers) - 1) of an interface. */
static int rx_fd(const struct iface *ifc, int is_arp, int k) {
    if (k == 0) return is_arp ? ifc->arp_fd : ifc->nd_fd;
    return is_arp ? ifc->x_arp[k] : ifc->x_nd[k];
}

static int n_rx(void) { return g_nworkers > 1 ? g_nworkers : 1; }

static void signal_fd(int fd) {
    uint64_t one = 1;
    if (fd >= 0 && write(fd, &one, sizeof(one)) < 0) { /* a full eventfd is already signalled */
    }
}

/* Receive sockets opened or closed (g_lock held): workers rebuild their poll sets. */
static void workers_changed(void) {
    if (!g_nworkers) return;
    g_gen++;
    for (int k = 0; k < g_nworkers; k++) signal_fd(g_workers[k].efd);
}

static int attach_filter(int fd, struct sock_filter *prog, size_t n) {
    struct sock_fprog fprog = {(unsigned short)n, prog};
    return setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &fprog, sizeof(fprog));
}

/* Socket with protocol 0 (receives nothing), filter attached, then bound to proto + ifindex
 * (lab notes 6.1: nothing unfiltered or from another interface is ever queued). */
static int open_packet_socket(int proto, int ifindex, struct sock_filter *prog, size_t n, char *err, size_t errlen) {
    int fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket(AF_PACKET): %s", strerror(errno));
        return -1;
    }
    if (attach_filter(fd, prog, n) < 0) {
        snprintf(err, errlen, "SO_ATTACH_FILTER: %s", strerror(errno));
        close(fd);
        return -1;
    }
    int one = 1;
    if (setsockopt(fd, SOL_PACKET, PACKET_AUXDATA, &one, sizeof(one)) < 0) {
        snprintf(err, errlen, "PACKET_AUXDATA: %s", strerror(errno));
        close(fd);
        return -1;
    }
    int sz = RCVBUF_BYTES;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof(sz)) < 0) /* needs CAP_NET_ADMIN */
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
    struct sockaddr_ll sll;
    memset(&sll, 0, sizeof(sll));
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = htons((uint16_t)proto);
    sll.sll_ifindex = ifindex;
    if (bind(fd, (struct sockaddr *)&sll, sizeof(sll)) < 0) {
        snprintf(err, errlen, "bind(AF_PACKET): %s", strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/*
 * The receive sockets of one interface and protocol: one socket without workers; with them, a
 * PACKET_FANOUT_CPU group of g_nworkers sockets joined in CPU order (the kernel queues a frame
 * taken in on CPU c on member c % n), with a group id the kernel picks.
 */
static int open_rx_group(int proto, int ifindex, struct sock_filter *prog, size_t n, int *fd0, int *xs, char *err,
                         size_t errlen) {
    for (int k = 0; k < MAX_WORKERS; k++) xs[k] = -1;
    *fd0 = open_packet_socket(proto, ifindex, prog, n, err, errlen);
    if (*fd0 < 0) return -1;
    if (g_nworkers < 2) return 0;
    int val = (PACKET_FANOUT_CPU | PACKET_FANOUT_FLAG_UNIQUEID) << 16;
    socklen_t len = sizeof(val);
    if (setsockopt(*fd0, SOL_PACKET, PACKET_FANOUT, &val, sizeof(val)) < 0 ||
        getsockopt(*fd0, SOL_PACKET, PACKET_FANOUT, &val, &len) < 0)
        goto fanout_failed;
    int join = (PACKET_FANOUT_CPU << 16) | (val & 0xffff);
    for (int k = 1; k < g_nworkers; k++) {
        xs[k] = open_packet_socket(proto, ifindex, prog, n, err, errlen);
        if (xs[k] < 0) goto failed;
        if (setsockopt(xs[k], SOL_PACKET, PACKET_FANOUT, &join, sizeof(join)) < 0) goto fanout_failed;
    }
    return 0;
fanout_failed:
    snprintf(err, errlen, "PACKET_FANOUT: %s (run with --workers 0)", strerror(errno));
failed:
    close(*fd0);
    *fd0 = -1;
    for (int k = 1; k < MAX_WORKERS; k++)
        if (xs[k] >= 0) {
            close(xs[k]);
            xs[k] = -1;
        }
    return -1;
}

/* The filter on every receive socket of one protocol of an interface. */
static int attach_rx_filter(const struct iface *ifc, int is_arp, struct sock_filter *prog, size_t n) {
    for (int k = 0; k < n_rx(); k++) {
        int fd = rx_fd(ifc, is_arp, k);
        if (fd >= 0 && attach_filter(fd, prog, n) < 0) return -1;
    }
    return 0;
}

static int read_mac(int fd, const char *name, uint8_t mac[6], char *err, size_t errlen) {
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
    if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0) {
        snprintf(err, errlen, "SIOCGIFHWADDR: %s", strerror(errno));
        return -1;
    }
    if (ifr.ifr_hwaddr.sa_family != ARPHRD_ETHER) {
        snprintf(err, errlen, "not an Ethernet interface (hardware type %d)", ifr.ifr_hwaddr.sa_family);
        return -1;
    }
    memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
    return 0;
}

static size_t build_iface_arp_filter(const struct iface *ifc) {
    uint8_t(*v4s)[4] = calloc(ifc->n_v4 + 1, 4);
    if (!v4s) return l2_bpf_arp(g_prog, NULL, 100000); /* the accept-all fall-back */
    for (size_t i = 0; i < ifc->n_v4; i++) memcpy(v4s[i], ifc->ips[i].ip.addr, 4);
    size_t n = l2_bpf_arp(g_prog, (const uint8_t(*)[4])v4s, ifc->n_v4);
    free(v4s);
    return n;
}

static size_t build_iface_ndp_filter(const struct iface *ifc) {
    size_t n6 = ifc->n_ips - ifc->n_v4;
    uint8_t(*v6s)[16] = calloc(n6 + 1, 16);
    if (!v6s) return l2_bpf_ndp(g_prog, NULL, 100000);
    for (size_t i = 0; i < n6; i++) memcpy(v6s[i], ifc->ips[ifc->n_v4 + i].ip.addr, 16);
    size_t n = l2_bpf_ndp(g_prog, (const uint8_t(*)[16])v6s, n6);
    free(v6s);
    return n;
}

static void read_sock_stats(int fd, struct sockstat *st) {
    if (fd < 0) return;
    struct tpacket_stats ts;
    socklen_t len = sizeof(ts);
    if (getsockopt(fd, SOL_PACKET, PACKET_STATISTICS, &ts, &len) == 0) { /* resets the kernel counters */
        st->packets += ts.tp_packets;
        st->drops += ts.tp_drops;
    }
}

static void close_iface_sockets(struct iface *ifc) {
    if (ifc->arp_fd >= 0) close(ifc->arp_fd);
    if (ifc->nd_fd >= 0) close(ifc->nd_fd);
    ifc->arp_fd = ifc->nd_fd = -1;
    for (int k = 1; k < MAX_WORKERS; k++) {
        if (ifc->x_arp[k] >= 0) close(ifc->x_arp[k]);
        if (ifc->x_nd[k] >= 0) close(ifc->x_nd[k]);
        ifc->x_arp[k] = ifc->x_nd[k] = -1;
    }
    workers_changed();
}

/* ---- multicast memberships (ref-counted per interface and solicited-node group) --------------- */

static struct mcgroup *mc_find(int ifindex, const uint8_t group[16]) {
    for (size_t i = 0; i < g_n_mc; i++)
        if (g_mc[i].ifindex == ifindex && memcmp(g_mc[i].group, group, 16) == 0) return &g_mc[i];
    return NULL;
}

static int mc_join_on(int fd, int ifindex, const uint8_t group[16]) {
    struct ipv6_mreq mr;
    memcpy(&mr.ipv6mr_multiaddr, group, 16);
    mr.ipv6mr_interface = (unsigned)ifindex;
    return setsockopt(fd, IPPROTO_IPV6, IPV6_JOIN_GROUP, &mr, sizeof(mr));
}

static void mc_ref(int ifindex, const uint8_t group[16], const char *ifname) {
    struct mcgroup *g = mc_find(ifindex, group);
    if (g) {
        g->refs++;
        return;
    }
    if (g_n_mc == g_cap_mc) {
        size_t cap = g_cap_mc ? g_cap_mc * 2 : 16;
        struct mcgroup *ng = realloc(g_mc, cap * sizeof(*ng));
        if (!ng) {
            emit_error(0, 0, NULL, ifname, "out of memory for multicast memberships");
            return;
        }
        g_mc = ng;
        g_cap_mc = cap;
    }
    int fd = -1, err = 0;
    /* A socket holds a limited number of memberships (optmem): use more sockets when it is full. */
    for (size_t i = 0; i <= g_n_mc_fds && i < sizeof(g_mc_fds) / sizeof(g_mc_fds[0]); i++) {
        if (i == g_n_mc_fds) {
            int nfd = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
            if (nfd < 0) {
                err = errno;
                break;
            }
            g_mc_fds[g_n_mc_fds++] = nfd;
        }
        if (mc_join_on(g_mc_fds[i], ifindex, group) == 0) {
            fd = g_mc_fds[i];
            break;
        }
        err = errno;
        if (err != ENOBUFS && err != ENOMEM) break;
    }
    if (fd < 0) {
        char gs[64];
        struct l2_ip gip = {6, {0}};
        memcpy(gip.addr, group, 16);
        l2_ip_format(&gip, gs, sizeof(gs));
        emit_error(0, 0, NULL, ifname, "IPV6_JOIN_GROUP %s: %s", gs, strerror(err));
    }
    struct mcgroup *ng = &g_mc[g_n_mc++];
    ng->ifindex = ifindex;
    memcpy(ng->group, group, 16);
    ng->refs = 1;
    ng->fd = fd;
}

static void mc_unref(int ifindex, const uint8_t group[16]) {
    struct mcgroup *g = mc_find(ifindex, group);
    if (!g || --g->refs > 0) return;
    if (g->fd >= 0) {
        struct ipv6_mreq mr;
        memcpy(&mr.ipv6mr_multiaddr, group, 16);
        mr.ipv6mr_interface = (unsigned)ifindex;
        (void)setsockopt(g->fd, IPPROTO_IPV6, IPV6_LEAVE_GROUP, &mr, sizeof(mr)); /* fails if the link is gone */
    }
    *g = g_mc[--g_n_mc];
}

static void mc_ref_iface(const struct iface *ifc, int up) {
    for (size_t i = ifc->n_v4; i < ifc->n_ips; i++) {
        uint8_t group[16];
        l2_solicited_node(ifc->ips[i].ip.addr, group);
        if (up) mc_ref(ifc->ifindex, group, ifc->name);
        else mc_unref(ifc->ifindex, group);
    }
}

/* ============================================================================================ */
/* Sending                                                                                      */
/* ============================================================================================ */

static int send_frame(int fd, const uint8_t *buf, size_t len, struct sockstat *st) {
    if (fd < 0) return -1;
    for (;;) {
        ssize_t w = send(fd, buf, len, MSG_DONTWAIT);
        if (w == (ssize_t)len) return 0;
        if (w < 0 && errno == EINTR) continue;
        if (st) st->send_errors++;
        return -1;
    }
}

/* Gratuitous ARP request + reply (tha = sha), or an unsolicited NA (O=1). Returns frames sent. */
static unsigned send_gratuitous(struct iface *ifc, struct owned *o) {
    uint8_t frame[L2_NA_FRAME_LEN];
    unsigned sent = 0;
    if (o->ip.family == 4) {
        l2_build_arp(frame, L2_ARP_REQUEST, BCAST, ifc->mac, ifc->mac, o->ip.addr, ZERO6, o->ip.addr);
        if (send_frame(ifc->arp_fd, frame, L2_ARP_FRAME_LEN, &ifc->arp_st) == 0) sent++;
        l2_build_arp(frame, L2_ARP_REPLY, BCAST, ifc->mac, ifc->mac, o->ip.addr, ifc->mac, o->ip.addr);
        if (send_frame(ifc->arp_fd, frame, L2_ARP_FRAME_LEN, &ifc->arp_st) == 0) sent++;
    } else {
        l2_build_na(frame, ALL_NODES_MAC, ifc->mac, o->ip.addr, ALL_NODES, o->ip.addr, L2_NA_FLAG_OVERRIDE);
        if (send_frame(ifc->nd_fd, frame, L2_NA_FRAME_LEN, &ifc->nd_st) == 0) sent++;
    }
    o->gratuitous += sent;
    return sent;
}

/* ============================================================================================ */
/* Receiving                                                                                    */
/* ============================================================================================ */

static void report_foreign(struct iface *ifc, struct owned *o, const uint8_t mac[6], const char *kind) {
    o->foreign++;
    int64_t now = now_ms();
    if (o->foreign_ms && memcmp(o->foreign_mac, mac, 6) == 0 && now - o->foreign_ms < FOREIGN_REPORT_MS) return;
    o->foreign_ms = now;
    memcpy(o->foreign_mac, mac, 6);
    char ips[64], macs[18];
    l2_ip_format(&o->ip, ips, sizeof(ips));
    l2_mac_format(mac, macs);
    struct l2_str s;
    ev_begin(&s, "foreign", 0, 0);
    ev_str(&s, "ip", ips);
    ev_str(&s, "mac", macs);
    ev_str(&s, "iface", ifc->name);
    ev_str(&s, "kind", kind);
    ev_emit(&s, 0);
}

static void on_arp(struct iface *ifc, const uint8_t *buf, size_t len) {
    struct l2_arp a;
    if (l2_parse_arp(buf, len, &a) != L2_OK) return;
    if (is_our_mac(a.eth_src) || is_our_mac(a.sha)) return; /* one of our own interfaces */
    static const uint8_t zero4[4];
    struct owned *sp = memcmp(a.spa, zero4, 4) ? find_owned(ifc, 4, a.spa) : NULL;
    if (a.oper == L2_ARP_REPLY) {
        if (sp) report_foreign(ifc, sp, a.sha, "arp-reply");
        return;
    }
    if (memcmp(a.spa, a.tpa, 4) == 0) { /* a gratuitous request: someone else's announcement */
        if (sp) report_foreign(ifc, sp, a.sha, "arp-announce");
        return;
    }
    if (sp) report_foreign(ifc, sp, a.sha, "arp-request"); /* someone uses our IP as its source */
    struct owned *tp = find_owned(ifc, 4, a.tpa);
    if (!tp) return;
    if (memcmp(a.eth_dst, BCAST, 6) != 0 && memcmp(a.eth_dst, ifc->mac, 6) != 0) return;
    tp->requests++;
    uint8_t frame[L2_ARP_FRAME_LEN];
    /* Also for RFC 5227 probes (spa 0.0.0.0): the reply then has tpa 0.0.0.0, unicast, like Linux. */
    l2_build_arp(frame, L2_ARP_REPLY, a.sha, ifc->mac, ifc->mac, tp->ip.addr, a.sha, a.spa);
    if (send_frame(ifc->arp_fd, frame, sizeof(frame), &ifc->arp_st) == 0) tp->responses++;
}

static void on_ndp(struct iface *ifc, const uint8_t *buf, size_t len) {
    struct l2_ndp n;
    if (l2_parse_ndp(buf, len, &n) != L2_OK) return;
    if (is_our_mac(n.eth_src)) return;
    if (n.type == L2_ICMP6_NA) {
        struct owned *tp = find_owned(ifc, 6, n.target);
        const uint8_t *mac = n.has_lla ? n.lla : n.eth_src;
        if (tp && !is_our_mac(mac)) report_foreign(ifc, tp, mac, "na");
        return;
    }
    int dad = memcmp(n.src, ZERO16, 16) == 0;
    if (!dad) {
        struct owned *sp = find_owned(ifc, 6, n.src);
        if (sp) report_foreign(ifc, sp, n.has_lla ? n.lla : n.eth_src, "ns");
    }
    struct owned *tp = find_owned(ifc, 6, n.target);
    if (!tp) return;
    uint8_t sn[16];
    l2_solicited_node(n.target, sn);
    if (memcmp(n.dst, sn, 16) != 0 && memcmp(n.dst, n.target, 16) != 0) return; /* RFC 4861 7.1.1 */
    tp->requests++;
    uint8_t frame[L2_NA_FRAME_LEN];
    if (dad) /* RFC 4861 7.2.4: to all-nodes, S=0 */
        l2_build_na(frame, ALL_NODES_MAC, ifc->mac, tp->ip.addr, ALL_NODES, tp->ip.addr, L2_NA_FLAG_OVERRIDE);
    else /* unicast to the solicitor; without SLLAO to the frame's source MAC */
        l2_build_na(frame, n.has_lla ? n.lla : n.eth_src, ifc->mac, tp->ip.addr, n.src, tp->ip.addr,
                    L2_NA_FLAG_SOLICITED | L2_NA_FLAG_OVERRIDE);
    if (send_frame(ifc->nd_fd, frame, sizeof(frame), &ifc->nd_st) == 0) tp->responses++;
}

/* Reads one frame. Returns its length, 0 for a frame to skip, -1 when the queue is empty. */
static ssize_t recv_frame(int fd, uint8_t *buf, size_t cap) {
    struct sockaddr_ll from;
    union {
        struct cmsghdr h;
        char b[CMSG_SPACE(sizeof(struct tpacket_auxdata))];
    } cbuf;
    struct iovec iov = {buf, cap};
    struct msghdr msg;
    memset(&msg, 0, sizeof(msg));
    msg.msg_name = &from;
    msg.msg_namelen = sizeof(from);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.b;
    msg.msg_controllen = sizeof(cbuf.b);
    ssize_t r = recvmsg(fd, &msg, MSG_DONTWAIT);
    if (r < 0) return -1;
    if (msg.msg_flags & MSG_TRUNC) return 0;
    /* The BPF filter drops these already; keep the check in case a frame was queued under an older filter. */
    if (from.sll_pkttype == PACKET_OTHERHOST || from.sll_pkttype == PACKET_OUTGOING) return 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == SOL_PACKET && c->cmsg_type == PACKET_AUXDATA) {
            struct tpacket_auxdata aux;
            memcpy(&aux, CMSG_DATA(c), sizeof(aux));
            if (aux.tp_status & TP_STATUS_VLAN_VALID) return 0; /* tagged: not for this interface */
        }
    }
    return r;
}

static void on_socket_error(struct iface *ifc, int fd) {
    int err = 0;
    socklen_t len = sizeof(err);
    (void)getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    char name[IF_NAMESIZE + 1];
    if (!if_indextoname((unsigned)ifc->ifindex, name) || strcmp(name, ifc->name) != 0) {
        emit_error(0, 0, NULL, ifc->name, "interface %s went away; its sockets are closed until the next set",
                   ifc->name);
        mc_ref_iface(ifc, 0);
        close_iface_sockets(ifc);
        return;
    }
    if (!ifc->down_reported) {
        ifc->down_reported = 1;
        emit_error(0, 0, NULL, ifc->name, "interface %s: %s", ifc->name, strerror(err ? err : ENETDOWN));
    }
}

static void drain_socket(struct iface *ifc, int is_arp, int fd) {
    uint8_t buf[2048];
    for (int i = 0; i < RX_BURST; i++) {
        if (fd < 0) return;
        ssize_t r = recv_frame(fd, buf, sizeof(buf));
        if (r < 0) return;
        if (r == 0) continue;
        ifc->down_reported = 0;
        if (is_arp) on_arp(ifc, buf, (size_t)r);
        else on_ndp(ifc, buf, (size_t)r);
    }
}

/* ============================================================================================ */
/* Commands                                                                                     */
/* ============================================================================================ */

static void free_ifaces(struct iface *ifs, size_t n) {
    for (size_t i = 0; i < n; i++) free(ifs[i].ips);
    free(ifs);
}

static struct iface *old_iface(const char *name) {
    for (size_t i = 0; i < g_n_ifs; i++)
        if (strcmp(g_ifs[i].name, name) == 0) return &g_ifs[i];
    return NULL;
}

static void cmd_set(struct l2_cmd *c) {
    char err[300] = "";
    const char *bad_iface = NULL;
    struct iface *nifs = calloc(c->n_ifaces + 1, sizeof(*nifs));
    if (!nifs) {
        emit_error(c->has_id, c->id, "set", NULL, "out of memory");
        return;
    }
    for (size_t i = 0; i < g_n_ifs; i++) g_ifs[i].reused = 0;
    for (size_t i = 0; i < c->n_ifaces; i++) {
        memcpy(nifs[i].name, c->ifaces[i].name, sizeof(nifs[i].name));
        nifs[i].arp_fd = nifs[i].nd_fd = -1;
        for (int k = 0; k < MAX_WORKERS; k++) nifs[i].x_arp[k] = nifs[i].x_nd[k] = -1;
    }
    for (size_t i = 0; i < c->n_ifaces; i++) {
        struct iface *nf = &nifs[i];
        const struct l2_cmd_iface *ci = &c->ifaces[i];
        bad_iface = ci->name;
        nf->ifindex = (int)if_nametoindex(ci->name);
        if (!nf->ifindex) {
            snprintf(err, sizeof(err), "interface %s: %s", ci->name, strerror(errno));
            goto fail;
        }
        nf->ips = calloc(ci->n_ips + 1, sizeof(struct owned));
        if (!nf->ips) {
            snprintf(err, sizeof(err), "out of memory");
            goto fail;
        }
        struct iface *old = old_iface(ci->name);
        for (size_t j = 0; j < ci->n_ips; j++) {
            nf->ips[j].ip = ci->ips[j];
            if (ci->ips[j].family == 4) nf->n_v4++;
            struct owned *prev = old ? find_owned(old, ci->ips[j].family, ci->ips[j].addr) : NULL;
            if (prev) nf->ips[j] = *prev; /* keep the counters of an IP that stays */
        }
        nf->n_ips = ci->n_ips;
        if (old && old->ifindex == nf->ifindex && old->arp_fd >= 0 && old->nd_fd >= 0) {
            old->reused = 1;
            nf->arp_fd = old->arp_fd;
            nf->nd_fd = old->nd_fd;
            memcpy(nf->x_arp, old->x_arp, sizeof(nf->x_arp));
            memcpy(nf->x_nd, old->x_nd, sizeof(nf->x_nd));
            nf->arp_st = old->arp_st;
            nf->nd_st = old->nd_st;
            size_t n = build_iface_arp_filter(nf);
            if (attach_rx_filter(nf, 1, g_prog, n) < 0) {
                snprintf(err, sizeof(err), "interface %s: SO_ATTACH_FILTER: %s", ci->name, strerror(errno));
                goto fail;
            }
            n = build_iface_ndp_filter(nf);
            if (attach_rx_filter(nf, 0, g_prog, n) < 0) {
                snprintf(err, sizeof(err), "interface %s: SO_ATTACH_FILTER: %s", ci->name, strerror(errno));
                goto fail;
            }
        } else {
            char e[200];
            size_t n = build_iface_arp_filter(nf);
            if (open_rx_group(ETH_P_ARP, nf->ifindex, g_prog, n, &nf->arp_fd, nf->x_arp, e, sizeof(e)) == 0) {
                n = build_iface_ndp_filter(nf);
                (void)open_rx_group(ETH_P_IPV6, nf->ifindex, g_prog, n, &nf->nd_fd, nf->x_nd, e, sizeof(e));
            }
            if (nf->arp_fd < 0 || nf->nd_fd < 0) {
                snprintf(err, sizeof(err), "interface %s: %s", ci->name, e);
                goto fail;
            }
        }
        char e[200];
        if (read_mac(nf->arp_fd, nf->name, nf->mac, e, sizeof(e)) < 0) {
            snprintf(err, sizeof(err), "interface %s: %s", ci->name, e);
            goto fail;
        }
    }
    /* Success: join the new groups before leaving the old ones, then swap. */
    for (size_t i = 0; i < c->n_ifaces; i++) mc_ref_iface(&nifs[i], 1);
    for (size_t i = 0; i < g_n_ifs; i++) {
        if (g_ifs[i].arp_fd >= 0 || g_ifs[i].reused) mc_ref_iface(&g_ifs[i], 0);
        if (!g_ifs[i].reused) close_iface_sockets(&g_ifs[i]);
    }
    free_ifaces(g_ifs, g_n_ifs);
    g_ifs = nifs;
    g_n_ifs = c->n_ifaces;
    workers_changed(); /* they hold indexes into the old array */
    struct l2_str s;
    ev_begin(&s, "set", c->has_id, c->id);
    l2_str_raw(&s, ",\"interfaces\":[");
    for (size_t i = 0; i < g_n_ifs; i++) {
        char macs[18];
        l2_mac_format(g_ifs[i].mac, macs);
        l2_str_raw(&s, i ? ",{\"name\":" : "{\"name\":");
        l2_str_json(&s, g_ifs[i].name);
        ev_u64(&s, "ifindex", (uint64_t)g_ifs[i].ifindex);
        ev_str(&s, "mac", macs);
        ev_u64(&s, "ips", g_ifs[i].n_ips);
        l2_str_raw(&s, "}");
    }
    l2_str_raw(&s, "]");
    ev_emit(&s, 1);
    return;
fail:
    /* Roll back: new sockets are closed, reused ones get their old filter back. */
    for (size_t i = 0; i < c->n_ifaces; i++) {
        struct iface *nf = &nifs[i];
        struct iface *old = old_iface(nf->name);
        if (old && old->reused && old->arp_fd == nf->arp_fd) {
            attach_rx_filter(old, 1, g_prog, build_iface_arp_filter(old));
            attach_rx_filter(old, 0, g_prog, build_iface_ndp_filter(old));
            old->reused = 0;
        } else {
            close_iface_sockets(nf);
        }
    }
    free_ifaces(nifs, c->n_ifaces);
    emit_error(c->has_id, c->id, "set", bad_iface, "%s (the previous set stays in force)", err);
}

/* One announcement round for job a: every interface that owns a->ip (restricted to a->iface). */
static int announce_round(struct announce *a) {
    char ips[64];
    l2_ip_format(&a->ip, ips, sizeof(ips));
    struct l2_str s;
    ev_begin(&s, "announced", a->has_id, a->id);
    ev_str(&s, "ip", ips);
    ev_u64(&s, "round", a->round + 1);
    ev_u64(&s, "count", a->count);
    l2_str_raw(&s, ",\"ifaces\":[");
    unsigned frames = 0, n_if = 0;
    for (size_t i = 0; i < g_n_ifs; i++) {
        struct iface *ifc = &g_ifs[i];
        if (a->iface[0] && strcmp(a->iface, ifc->name) != 0) continue;
        struct owned *o = find_owned(ifc, a->ip.family, a->ip.addr);
        if (!o) continue;
        frames += send_gratuitous(ifc, o);
        if (n_if++) l2_str_raw(&s, ",");
        l2_str_json(&s, ifc->name);
    }
    l2_str_raw(&s, "]");
    ev_u64(&s, "frames", frames);
    l2_str_raw(&s, ",\"tsUs\":");
    l2_str_i64(&s, wall_us());
    if (n_if == 0) {
        l2_str_free(&s);
        return -1;
    }
    ev_emit(&s, a->round == 0 && a->has_id);
    a->round++;
    return 0;
}

static void cmd_announce(struct l2_cmd *c) {
    struct announce a;
    memset(&a, 0, sizeof(a));
    a.ip = c->ip;
    memcpy(a.iface, c->iface, sizeof(a.iface));
    a.count = c->count;
    a.interval_ms = c->interval_ms;
    a.has_id = c->has_id;
    a.id = c->id;
    /* A new announce for the same IP and interface selection replaces the running one. */
    for (size_t i = 0; i < g_n_ann; i++) {
        if (l2_ip_cmp(&g_ann[i].ip, &a.ip) == 0 && strcmp(g_ann[i].iface, a.iface) == 0) {
            g_ann[i] = g_ann[--g_n_ann];
            break;
        }
    }
    if (announce_round(&a) < 0) {
        char ips[64];
        l2_ip_format(&c->ip, ips, sizeof(ips));
        emit_error(c->has_id, c->id, "announce", c->iface[0] ? c->iface : NULL, "%s is not owned on %s", ips,
                   c->iface[0] ? c->iface : "any interface");
        return;
    }
    if (a.round >= a.count) return;
    if (g_n_ann >= MAX_ANNOUNCES) {
        emit_error(c->has_id, c->id, "announce", NULL, "too many announcements running; only the first round was sent");
        return;
    }
    if (g_n_ann == g_cap_ann) {
        size_t cap = g_cap_ann ? g_cap_ann * 2 : 16;
        struct announce *na = realloc(g_ann, cap * sizeof(*na));
        if (!na) {
            emit_error(c->has_id, c->id, "announce", NULL, "out of memory; only the first round was sent");
            return;
        }
        g_ann = na;
        g_cap_ann = cap;
    }
    a.due_ms = now_ms() + a.interval_ms;
    g_ann[g_n_ann++] = a;
}

static void run_announces(int64_t now) {
    for (size_t i = 0; i < g_n_ann;) {
        struct announce *a = &g_ann[i];
        if (a->due_ms > now) {
            i++;
            continue;
        }
        /* Not owned any more (a later set dropped it): the job ends quietly. */
        if (announce_round(a) < 0 || a->round >= a->count) {
            g_ann[i] = g_ann[--g_n_ann];
            continue;
        }
        a->due_ms += a->interval_ms;
        if (a->due_ms < now) a->due_ms = now; /* we were late: do not burst */
        i++;
    }
}

/* ---- probes ------------------------------------------------------------------------------ */

static void probe_send(struct probe *p) {
    uint8_t frame[L2_NS_FRAME_MAX];
    static const uint8_t zero4[4];
    if (p->ip.family == 4) {
        l2_build_arp(frame, L2_ARP_REQUEST, BCAST, p->mac, p->mac, zero4, ZERO6, p->ip.addr);
        (void)send_frame(p->fd, frame, L2_ARP_FRAME_LEN, NULL);
    } else {
        size_t len = l2_build_ns(frame, BCAST, p->mac, ZERO16, p->group, p->ip.addr, NULL);
        (void)send_frame(p->fd, frame, len, NULL);
    }
    p->sent++;
}

static int64_t probe_next_send(const struct probe *p) {
    return p->start_ms + (int64_t)p->timeout_ms * p->sent / p->count;
}

static void probe_finish(struct probe *p) {
    char ips[64];
    l2_ip_format(&p->ip, ips, sizeof(ips));
    struct l2_str s;
    ev_begin(&s, "probe_result", p->has_id, p->id);
    ev_str(&s, "ip", ips);
    ev_str(&s, "iface", p->iface);
    l2_str_raw(&s, p->n_answers ? ",\"conflict\":true" : ",\"conflict\":false");
    ev_u64(&s, "sent", p->sent);
    l2_str_raw(&s, ",\"answers\":[");
    for (size_t i = 0; i < p->n_answers; i++) {
        char macs[18];
        l2_mac_format(p->answers[i].mac, macs);
        l2_str_raw(&s, i ? ",{\"mac\":" : "{\"mac\":");
        l2_str_json(&s, macs);
        ev_str(&s, "kind", p->answers[i].kind);
        l2_str_raw(&s, "}");
    }
    l2_str_raw(&s, "]");
    ev_emit(&s, p->has_id);
    if (p->fd >= 0) close(p->fd);
    if (p->joined) mc_unref(p->ifindex, p->group);
    memset(p, 0, sizeof(*p));
    p->fd = -1;
}

static void probe_answer(struct probe *p, const uint8_t mac[6], const char *kind) {
    if (memcmp(mac, p->mac, 6) == 0 || is_our_mac(mac)) return;
    for (size_t i = 0; i < p->n_answers; i++)
        if (memcmp(p->answers[i].mac, mac, 6) == 0) return;
    if (p->n_answers == MAX_PROBE_ANSWERS) return;
    memcpy(p->answers[p->n_answers].mac, mac, 6);
    p->answers[p->n_answers].kind = kind;
    p->n_answers++;
}

static void drain_probe(struct probe *p) {
    uint8_t buf[2048];
    for (int i = 0; i < RX_BURST; i++) {
        ssize_t r = recv_frame(p->fd, buf, sizeof(buf));
        if (r < 0) return;
        if (r == 0) continue;
        if (p->ip.family == 4) {
            struct l2_arp a;
            if (l2_parse_arp(buf, (size_t)r, &a) != L2_OK) continue;
            static const uint8_t zero4[4];
            if (memcmp(a.spa, p->ip.addr, 4) == 0)
                probe_answer(p, a.sha, a.oper == L2_ARP_REPLY ? "arp-reply" : "arp-announce");
            else if (a.oper == L2_ARP_REQUEST && memcmp(a.spa, zero4, 4) == 0 && memcmp(a.tpa, p->ip.addr, 4) == 0)
                probe_answer(p, a.sha, "arp-probe"); /* someone else probes for it at the same time */
        } else {
            struct l2_ndp n;
            if (l2_parse_ndp(buf, (size_t)r, &n) != L2_OK || memcmp(n.target, p->ip.addr, 16) != 0) continue;
            if (n.type == L2_ICMP6_NA) probe_answer(p, n.has_lla ? n.lla : n.eth_src, "na");
            else if (memcmp(n.src, ZERO16, 16) == 0) probe_answer(p, n.eth_src, "dad-ns");
        }
    }
}

static void cmd_probe(struct l2_cmd *c) {
    struct probe *p = NULL;
    for (size_t i = 0; i < MAX_PROBES; i++)
        if (!g_probes[i].active) {
            p = &g_probes[i];
            break;
        }
    if (!p) {
        emit_error(c->has_id, c->id, "probe", c->iface, "too many probes running (%d)", MAX_PROBES);
        return;
    }
    int ifindex = (int)if_nametoindex(c->iface);
    if (!ifindex) {
        emit_error(c->has_id, c->id, "probe", c->iface, "interface %s: %s", c->iface, strerror(errno));
        return;
    }
    char e[200];
    size_t n = c->ip.family == 4 ? l2_bpf_probe_arp(g_prog, c->ip.addr) : l2_bpf_probe_ndp(g_prog, c->ip.addr);
    int fd = open_packet_socket(c->ip.family == 4 ? ETH_P_ARP : ETH_P_IPV6, ifindex, g_prog, n, e, sizeof(e));
    if (fd < 0) {
        emit_error(c->has_id, c->id, "probe", c->iface, "interface %s: %s", c->iface, e);
        return;
    }
    uint8_t mac[6];
    if (read_mac(fd, c->iface, mac, e, sizeof(e)) < 0) {
        close(fd);
        emit_error(c->has_id, c->id, "probe", c->iface, "interface %s: %s", c->iface, e);
        return;
    }
    memset(p, 0, sizeof(*p));
    p->active = 1;
    p->has_id = c->has_id;
    p->id = c->id;
    p->ip = c->ip;
    memcpy(p->iface, c->iface, sizeof(p->iface));
    p->ifindex = ifindex;
    p->fd = fd;
    memcpy(p->mac, mac, 6);
    p->count = c->count;
    p->timeout_ms = c->timeout_ms;
    p->start_ms = now_ms();
    p->deadline_ms = p->start_ms + c->timeout_ms;
    if (c->ip.family == 6) {
        /* A simultaneous DAD probe from another host goes to the solicited-node group. */
        l2_solicited_node(c->ip.addr, p->group);
        mc_ref(ifindex, p->group, c->iface);
        p->joined = 1;
    }
    probe_send(p);
}

static void run_probes(int64_t now) {
    for (size_t i = 0; i < MAX_PROBES; i++) {
        struct probe *p = &g_probes[i];
        if (!p->active) continue;
        if (now >= p->deadline_ms) {
            drain_probe(p);
            probe_finish(p);
            continue;
        }
        while (p->sent < p->count && now >= probe_next_send(p)) probe_send(p);
    }
}

/* ---- stats ------------------------------------------------------------------------------- */

static void cmd_stats(struct l2_cmd *c) {
    struct l2_str s;
    ev_begin(&s, "stats", c->has_id, c->id);
    ev_u64(&s, "uptimeMs", (uint64_t)(now_ms() - g_start_ms));
    ev_u64(&s, "eventsDropped", g_events_dropped);
    ev_u64(&s, "badCommands", g_bad_commands);
    l2_str_raw(&s, ",\"ips\":[");
    int first = 1;
    for (size_t i = 0; i < g_n_ifs; i++) {
        for (size_t j = 0; j < g_ifs[i].n_ips; j++) {
            struct owned *o = &g_ifs[i].ips[j];
            char ips[64];
            l2_ip_format(&o->ip, ips, sizeof(ips));
            l2_str_raw(&s, first ? "{\"ip\":" : ",{\"ip\":");
            first = 0;
            l2_str_json(&s, ips);
            ev_str(&s, "iface", g_ifs[i].name);
            ev_u64(&s, "requests", o->requests);
            ev_u64(&s, "responses", o->responses);
            ev_u64(&s, "gratuitous", o->gratuitous);
            ev_u64(&s, "foreign", o->foreign);
            l2_str_raw(&s, "}");
        }
    }
    l2_str_raw(&s, "],\"sockets\":[");
    for (size_t i = 0; i < g_n_ifs; i++) {
        struct iface *ifc = &g_ifs[i];
        for (int k = 0; k < n_rx(); k++) {
            read_sock_stats(rx_fd(ifc, 1, k), &ifc->arp_st);
            read_sock_stats(rx_fd(ifc, 0, k), &ifc->nd_st);
        }
        for (int k = 0; k < 2; k++) {
            struct sockstat *st = k == 0 ? &ifc->arp_st : &ifc->nd_st;
            l2_str_raw(&s, i || k ? ",{\"iface\":" : "{\"iface\":");
            l2_str_json(&s, ifc->name);
            ev_str(&s, "proto", k == 0 ? "arp" : "ipv6");
            l2_str_raw(&s, (k == 0 ? ifc->arp_fd : ifc->nd_fd) >= 0 ? ",\"open\":true" : ",\"open\":false");
            ev_u64(&s, "packets", st->packets);
            ev_u64(&s, "drops", st->drops);
            ev_u64(&s, "sendErrors", st->send_errors);
            l2_str_raw(&s, "}");
        }
    }
    l2_str_raw(&s, "]");
    ev_emit(&s, 1);
}

/* Returns 1 when the helper should exit. */
static int handle_line(const char *line, size_t len) {
    while (len && (line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t')) len--;
    if (len == 0) return 0; /* blank lines are ignored */
    struct l2_cmd *c = calloc(1, sizeof(*c));
    if (!c) {
        emit_error(0, 0, NULL, NULL, "out of memory");
        return 0;
    }
    char err[300];
    int quit = 0;
    if (l2_cmd_parse(line, len, c, err, sizeof(err)) < 0) {
        g_bad_commands++;
        emit_error(c->has_id, c->id, NULL, NULL, "bad command: %s", err);
    } else {
        switch (c->kind) {
        case L2_CMD_SET: cmd_set(c); break;
        case L2_CMD_ANNOUNCE: cmd_announce(c); break;
        case L2_CMD_PROBE: cmd_probe(c); break;
        case L2_CMD_STATS: cmd_stats(c); break;
        case L2_CMD_QUIT: quit = 1; break;
        }
    }
    l2_cmd_free(c);
    free(c);
    return quit;
}

/* ============================================================================================ */
/* Main loop                                                                                    */
/* ============================================================================================ */

static char *g_in;
static size_t g_in_len;
static int g_in_discard; /* inside an over-long line */

/* Reads stdin; returns 1 when the helper should exit (EOF or quit). */
static int read_stdin(void) {
    ssize_t r = read(STDIN_FILENO, g_in + g_in_len, L2_MAX_LINE + 1 - g_in_len);
    if (r < 0) return errno == EINTR || errno == EAGAIN ? 0 : 1;
    if (r == 0) {
        if (g_in_len && !g_in_discard) handle_line(g_in, g_in_len);
        return 1;
    }
    size_t start = 0, i = g_in_len; /* bytes before g_in_len hold no newline: scan only the new ones */
    g_in_len += (size_t)r;
    for (; i < g_in_len; i++) {
        if (g_in[i] != '\n') continue;
        if (g_in_discard) g_in_discard = 0;
        else if (handle_line(g_in + start, i - start)) return 1;
        start = i + 1;
    }
    memmove(g_in, g_in + start, g_in_len - start);
    g_in_len -= start;
    if (g_in_len > L2_MAX_LINE) {
        if (!g_in_discard) {
            g_bad_commands++;
            emit_error(0, 0, NULL, NULL, "bad command: line longer than %u bytes", L2_MAX_LINE);
        }
        g_in_discard = 1;
        g_in_len = 0;
    }
    return 0;
}

static int64_t next_deadline(void) {
    int64_t d = -1;
    for (size_t i = 0; i < g_n_ann; i++)
        if (d < 0 || g_ann[i].due_ms < d) d = g_ann[i].due_ms;
    for (size_t i = 0; i < MAX_PROBES; i++) {
        const struct probe *p = &g_probes[i];
        if (!p->active) continue;
        int64_t t = p->sent < p->count ? probe_next_send(p) : p->deadline_ms;
        if (d < 0 || t < d) d = t;
    }
    return d;
}

static void usage(FILE *f) {
    fprintf(f, "usage: ironlb-l2 [--version] [--workers N]\n"
               "Answers ARP/NDP for the IPs it is told to own. Commands: JSON lines on stdin;\n"
               "events: JSON lines on stdout. See native/README.md. Needs CAP_NET_RAW.\n"
               "--workers N: answer threads, one per CPU (default: the number of CPUs; 0 or 1: none,\n"
               "             the main thread answers).\n");
}

/* Worker k: pinned to CPU k, polls receive socket k of every interface (see the top of the file). */
static void *worker_main(void *arg) {
    struct worker *w = arg;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(w->k, &set);
    (void)pthread_setaffinity_np(pthread_self(), sizeof(set), &set); /* not allowed there: unpinned */
    struct pollfd *pfds = NULL;
    size_t cap = 0;
    pthread_mutex_lock(&g_lock);
    for (;;) {
        size_t need = 1 + 2 * g_n_ifs;
        if (need > cap) {
            struct pollfd *np = realloc(pfds, need * sizeof(*np));
            if (!np) {
                pthread_mutex_unlock(&g_lock);
                usleep(10000);
                pthread_mutex_lock(&g_lock);
                continue;
            }
            pfds = np;
            cap = need;
        }
        size_t n = 0;
        pfds[n++] = (struct pollfd){w->efd, POLLIN, 0};
        for (size_t i = 0; i < g_n_ifs; i++) {
            pfds[n++] = (struct pollfd){rx_fd(&g_ifs[i], 1, w->k), POLLIN, 0};
            pfds[n++] = (struct pollfd){rx_fd(&g_ifs[i], 0, w->k), POLLIN, 0};
        }
        uint64_t gen = g_gen;
        pthread_mutex_unlock(&g_lock);
        int r = poll(pfds, n, -1);
        pthread_mutex_lock(&g_lock);
        if (r <= 0) continue;
        if (pfds[0].revents & POLLIN) {
            uint64_t v;
            if (read(w->efd, &v, sizeof(v)) < 0) { /* already drained */
            }
        }
        /* The fds polled are only used while no socket was opened or closed since. */
        for (size_t i = 0; i < g_n_ifs && gen == g_gen; i++) {
            for (int k = 0; k < 2 && gen == g_gen; k++) {
                const struct pollfd *p = &pfds[1 + 2 * i + (size_t)k];
                if (p->revents & POLLIN) drain_socket(&g_ifs[i], k == 0, p->fd);
                if ((p->revents & POLLERR) && p->fd >= 0 && gen == g_gen) on_socket_error(&g_ifs[i], p->fd);
            }
        }
        if (g_out.len > g_out_off) signal_fd(g_wake_main); /* stdout was full: the main thread writes */
    }
    return NULL;
}

/* Can this kernel give us PACKET_FANOUT_CPU groups with ids of its choosing? (probed on lo) */
static int fanout_supported(void) {
    int ifindex = (int)if_nametoindex("lo");
    if (!ifindex) return 1; /* no way to tell here: the first set reports it */
    char e[200];
    struct sock_filter none[1] = {BPF_STMT(BPF_RET | BPF_K, 0)};
    int fd = open_packet_socket(ETH_P_ARP, ifindex, none, 1, e, sizeof(e));
    if (fd < 0) return 0;
    int val = (PACKET_FANOUT_CPU | PACKET_FANOUT_FLAG_UNIQUEID) << 16;
    int ok = setsockopt(fd, SOL_PACKET, PACKET_FANOUT, &val, sizeof(val)) == 0;
    close(fd);
    return ok;
}

/* Starts up to `want` workers (fewer if threads cannot be made); sets g_nworkers. */
static void start_workers(long want) {
    if (want > MAX_WORKERS) want = MAX_WORKERS;
    if (want < 2 || !fanout_supported()) return;
    g_wake_main = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (g_wake_main < 0) return;
    int n = 0;
    for (int k = 0; k < want; k++) {
        struct worker *w = &g_workers[n];
        w->k = k;
        w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (w->efd < 0) break;
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            close(w->efd);
            break;
        }
        n++;
    }
    /* Fewer than asked: frames of CPU c go to worker c % n (correct, not always local). */
    g_nworkers = n;
}

int main(int argc, char **argv) {
    long workers = sysconf(_SC_NPROCESSORS_CONF);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--version") == 0) {
            printf("ironlb-l2 %d\n", HELPER_VERSION);
            return 0;
        }
        if (strcmp(argv[i], "--workers") == 0 && i + 1 < argc) {
            char *end;
            workers = strtol(argv[++i], &end, 10);
            if (*end || workers < 0) {
                usage(stderr);
                return 2;
            }
            continue;
        }
        usage(strcmp(argv[i], "--help") == 0 ? stdout : stderr);
        return strcmp(argv[i], "--help") == 0 ? 0 : 2;
    }
    pid_t ppid = getppid();
    (void)prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != ppid) return 0; /* the parent died before the prctl */
    signal(SIGPIPE, SIG_IGN);
    struct stat st;
    if (fstat(STDOUT_FILENO, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode)))
        (void)fcntl(STDOUT_FILENO, F_SETFL, fcntl(STDOUT_FILENO, F_GETFL) | O_NONBLOCK);
    g_start_ms = now_ms();
    for (size_t i = 0; i < MAX_PROBES; i++) g_probes[i].fd = -1;
    g_in = malloc(L2_MAX_LINE + 1);
    if (!g_in) return 1;

    int test = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
    if (test < 0) {
        int e = errno;
        struct l2_str s;
        ev_begin(&s, "error", 0, 0);
        ev_str(&s, "message", e == EPERM ? "socket(AF_PACKET): Operation not permitted (the helper needs CAP_NET_RAW)"
                                         : strerror(e));
        l2_str_raw(&s, ",\"fatal\":true");
        ev_emit(&s, 1);
        flush_out(1);
        return 3;
    }
    close(test);
    pthread_mutex_lock(&g_lock); /* held except while the main thread waits in poll() */
    start_workers(workers);
    {
        struct l2_str s;
        ev_begin(&s, "ready", 0, 0);
        ev_u64(&s, "version", HELPER_VERSION);
        ev_u64(&s, "pid", (uint64_t)getpid());
        ev_u64(&s, "workers", (uint64_t)g_nworkers);
        ev_emit(&s, 1);
    }

    struct pollfd *pfds = NULL;
    size_t pcap = 0;
    for (;;) {
        size_t need = 3 + 2 * g_n_ifs + MAX_PROBES;
        if (need > pcap) {
            struct pollfd *np = realloc(pfds, need * sizeof(*np));
            if (!np) return 1;
            pfds = np;
            pcap = need;
        }
        size_t n = 0;
        pfds[n++] = (struct pollfd){STDIN_FILENO, POLLIN, 0};
        pfds[n++] = (struct pollfd){g_out.len > g_out_off ? STDOUT_FILENO : -1, POLLOUT, 0};
        for (size_t i = 0; i < g_n_ifs; i++) { /* the workers poll them, if any */
            pfds[n++] = (struct pollfd){g_nworkers ? -1 : g_ifs[i].arp_fd, POLLIN, 0};
            pfds[n++] = (struct pollfd){g_nworkers ? -1 : g_ifs[i].nd_fd, POLLIN, 0};
        }
        size_t probe_base = n;
        for (size_t i = 0; i < MAX_PROBES; i++) pfds[n++] = (struct pollfd){g_probes[i].fd, POLLIN, 0};
        size_t wake_idx = n;
        pfds[n++] = (struct pollfd){g_wake_main, POLLIN, 0};
        int64_t deadline = next_deadline();
        int timeout = -1;
        if (deadline >= 0) {
            int64_t d = deadline - now_ms();
            timeout = d < 0 ? 0 : d > 3600000 ? 3600000 : (int)d;
        }
        pthread_mutex_unlock(&g_lock);
        int r = poll(pfds, n, timeout);
        int poll_errno = errno;
        pthread_mutex_lock(&g_lock);
        if (r < 0 && poll_errno != EINTR) return 1;
        if (r > 0) {
            if (pfds[wake_idx].revents & POLLIN) {
                uint64_t v;
                if (read(g_wake_main, &v, sizeof(v)) < 0) { /* already drained */
                }
            }
            if (pfds[1].revents) flush_out(0);
            size_t n_ifs = g_n_ifs;
            for (size_t i = 0; i < n_ifs; i++) {
                struct iface *ifc = &g_ifs[i];
                for (int k = 0; k < 2; k++) {
                    short re = pfds[2 + 2 * i + (size_t)k].revents;
                    int fd = k == 0 ? ifc->arp_fd : ifc->nd_fd;
                    if (re & POLLIN) drain_socket(ifc, k == 0, fd);
                    if ((re & POLLERR) && fd >= 0) on_socket_error(ifc, fd);
                }
            }
            for (size_t i = 0; i < MAX_PROBES; i++) {
                short re = pfds[probe_base + i].revents;
                if (!g_probes[i].active || !re) continue;
                if (re & POLLIN) drain_probe(&g_probes[i]);
                if (re & POLLERR) {
                    int err = 0;
                    socklen_t len = sizeof(err);
                    (void)getsockopt(g_probes[i].fd, SOL_SOCKET, SO_ERROR, &err, &len);
                }
            }
            if (pfds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
                if (read_stdin()) break; /* g_ifs may have changed: nothing below uses pfds */
            }
        }
        int64_t now = now_ms();
        run_announces(now);
        run_probes(now);
    }
    flush_out(1);
    return 0;
}
