/*
 * Unit tests of native/l2proto.c: frames are compared byte for byte with frames the Linux kernel
 * and ndisc6 produced on this machine kind (captured with tcpdump -xx), the checksum is checked
 * against them, the BPF programs run through a small classic-BPF interpreter, and the command
 * parser is driven with good and bad lines. Prints "N passed, N failed".
 */
#include <linux/if_packet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "l2proto.h"

static int g_passed, g_failed;

#define CHECK(cond, ...)                                                                            \
    do {                                                                                            \
        if (cond) {                                                                                 \
            g_passed++;                                                                             \
        } else {                                                                                    \
            g_failed++;                                                                             \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                                             \
            printf(__VA_ARGS__);                                                                    \
            printf("\n");                                                                           \
        }                                                                                           \
    } while (0)

static void hexdump_diff(const uint8_t *got, const uint8_t *want, size_t len) {
    for (size_t i = 0; i < len; i++)
        if (got[i] != want[i]) printf("   byte %zu: got %02x want %02x\n", i, got[i], want[i]);
}

#define CHECK_BYTES(got, want, len, what)                                                           \
    do {                                                                                            \
        int same_ = memcmp((got), (want), (len)) == 0;                                              \
        CHECK(same_, "%s: bytes differ", (what));                                                   \
        if (!same_) hexdump_diff((got), (want), (len));                                             \
    } while (0)

static const uint8_t MAC_C[6] = {2, 0, 0, 0, 0, 0x10}; /* the client */
static const uint8_t MAC_N[6] = {2, 0, 0, 0, 0, 0x11}; /* the node */
static const uint8_t BCAST[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
static const uint8_t ZERO6[6];
static const uint8_t IP_C[4] = {192, 0, 2, 10};
static const uint8_t IP_N[4] = {192, 0, 2, 11};

/* tcpdump -xx of the kernel of 192.0.2.11 / 02:00:00:00:00:11 answering `arping 192.0.2.11`. */
static const uint8_t KERNEL_ARP_REQUEST[60] = {
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x10, 0x08, 0x06, 0x00, 0x01,
    0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x10, 0xc0, 0x00, 0x02, 0x0a,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc0, 0x00, 0x02, 0x0b};
static const uint8_t KERNEL_ARP_REPLY[42] = {
    0x02, 0x00, 0x00, 0x00, 0x00, 0x10, 0x02, 0x00, 0x00, 0x00, 0x00, 0x11, 0x08, 0x06, 0x00, 0x01,
    0x08, 0x00, 0x06, 0x04, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x11, 0xc0, 0x00, 0x02, 0x0b,
    0x02, 0x00, 0x00, 0x00, 0x00, 0x10, 0xc0, 0x00, 0x02, 0x0a};

/* ndisc6 1.0.5 soliciting 2001:db8::11 from fe80::ff:fe00:10, and the kernel's NA. */
static const uint8_t NDISC6_NS[86] = {
    0x33, 0x33, 0xff, 0x00, 0x00, 0x11, 0x02, 0x00, 0x00, 0x00, 0x00, 0x10, 0x86, 0xdd, 0x60, 0x02,
    0x6e, 0xac, 0x00, 0x20, 0x3a, 0xff, 0xfe, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0xff, 0xfe, 0x00, 0x00, 0x10, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x01, 0xff, 0x00, 0x00, 0x11, 0x87, 0x00, 0x4c, 0x23, 0x00, 0x00, 0x00, 0x00, 0x20, 0x01,
    0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x11, 0x01, 0x01,
    0x02, 0x00, 0x00, 0x00, 0x00, 0x10};
static const uint8_t KERNEL_NA[86] = {
    0x02, 0x00, 0x00, 0x00, 0x00, 0x10, 0x02, 0x00, 0x00, 0x00, 0x00, 0x11, 0x86, 0xdd, 0x60, 0x00,
    0x00, 0x00, 0x00, 0x20, 0x3a, 0xff, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x11, 0xfe, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0xff, 0xfe, 0x00, 0x00, 0x10, 0x88, 0x00, 0xba, 0x6d, 0x60, 0x00, 0x00, 0x00, 0x20, 0x01,
    0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x11, 0x02, 0x01,
    0x02, 0x00, 0x00, 0x00, 0x00, 0x11};

static void ip6(const char *s, uint8_t out[16]) {
    struct l2_ip ip;
    if (l2_ip_parse(s, &ip) != 0 || ip.family != 6) {
        printf("bad test address %s\n", s);
        exit(2);
    }
    memcpy(out, ip.addr, 16);
}

/* ---- frames ---------------------------------------------------------------------------------- */

static void test_arp_build(void) {
    uint8_t f[64];
    memset(f, 0xaa, sizeof(f));
    size_t n = l2_build_arp(f, L2_ARP_REPLY, MAC_C, MAC_N, MAC_N, IP_N, MAC_C, IP_C);
    CHECK(n == 60, "ARP frame length %zu", n);
    CHECK_BYTES(f, KERNEL_ARP_REPLY, 42, "ARP reply vs kernel");
    uint8_t zeros[18] = {0};
    CHECK_BYTES(f + 42, zeros, 18, "ARP padding");

    /* Gratuitous request: broadcast, oper 1, sha = our MAC, spa = tpa = VIP, tha = 0. */
    static const uint8_t want_req[42] = {
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 0x11, 0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1,
        2,    0,    0,    0,    0,    0x11, 192, 0, 2, 100, 0, 0, 0, 0, 0, 0, 192, 0, 2, 100};
    const uint8_t vip[4] = {192, 0, 2, 100};
    l2_build_arp(f, L2_ARP_REQUEST, BCAST, MAC_N, MAC_N, vip, ZERO6, vip);
    CHECK_BYTES(f, want_req, 42, "gratuitous ARP request");
    /* Gratuitous reply: oper 2, tha = sha (Linux only treats tha == sha as gratuitous). */
    static const uint8_t want_rep[42] = {
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 0x11, 0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 2,
        2,    0,    0,    0,    0,    0x11, 192, 0, 2, 100, 2, 0, 0, 0, 0, 0x11, 192, 0, 2, 100};
    l2_build_arp(f, L2_ARP_REPLY, BCAST, MAC_N, MAC_N, vip, MAC_N, vip);
    CHECK_BYTES(f, want_rep, 42, "gratuitous ARP reply");
}

static void test_arp_parse(void) {
    struct l2_arp a;
    CHECK(l2_parse_arp(KERNEL_ARP_REQUEST, 60, &a) == L2_OK, "parse kernel request");
    CHECK(a.oper == 1 && memcmp(a.sha, MAC_C, 6) == 0 && memcmp(a.spa, IP_C, 4) == 0 && memcmp(a.tpa, IP_N, 4) == 0,
          "request fields");
    CHECK(memcmp(a.eth_dst, BCAST, 6) == 0, "request eth dst");
    CHECK(l2_parse_arp(KERNEL_ARP_REPLY, 42, &a) == L2_OK && a.oper == 2, "parse 42-byte reply");
    CHECK(l2_parse_arp(KERNEL_ARP_REPLY, 41, &a) == L2_ESHORT, "truncated");
    uint8_t f[60];
    memcpy(f, KERNEL_ARP_REQUEST, 60);
    f[15] = 6; /* htype IEEE 802 */
    CHECK(l2_parse_arp(f, 60, &a) == L2_EHDR, "htype 6 rejected");
    memcpy(f, KERNEL_ARP_REQUEST, 60);
    f[19] = 16; /* plen */
    CHECK(l2_parse_arp(f, 60, &a) == L2_EHDR, "plen 16 rejected");
    memcpy(f, KERNEL_ARP_REQUEST, 60);
    f[21] = 3; /* RARP request */
    CHECK(l2_parse_arp(f, 60, &a) == L2_EOPER, "oper 3 rejected");
    memcpy(f, KERNEL_ARP_REQUEST, 60);
    f[22] = 0x01; /* multicast sender hardware address */
    CHECK(l2_parse_arp(f, 60, &a) == L2_EMAC, "multicast sha rejected");
    memcpy(f, KERNEL_ARP_REQUEST, 60);
    f[12] = 0x86;
    f[13] = 0xdd;
    CHECK(l2_parse_arp(f, 60, &a) == L2_ETYPE, "ethertype checked");
}

static void test_checksum(void) {
    /* The kernel's NA and ndisc6's NS carry correct checksums: summing over them gives 0. */
    CHECK(l2_icmp6_checksum(KERNEL_NA + 22, KERNEL_NA + 38, KERNEL_NA + 54, 32) == 0, "kernel NA checksum");
    CHECK(l2_icmp6_checksum(NDISC6_NS + 22, NDISC6_NS + 38, NDISC6_NS + 54, 32) == 0, "ndisc6 NS checksum");
    uint8_t m[32];
    memcpy(m, KERNEL_NA + 54, 32);
    m[2] = m[3] = 0;
    CHECK(l2_icmp6_checksum(KERNEL_NA + 22, KERNEL_NA + 38, m, 32) == 0xba6d, "computes 0xba6d");
    /* odd length is padded with a zero byte */
    uint8_t odd[3] = {0x01, 0x02, 0x03};
    uint8_t z[16] = {0};
    /* pseudo: len 3 + nh 58 = 61 = 0x3d; data 0x0102 + 0x0300 = 0x0402 -> sum 0x043f -> ~ = 0xfbc0 */
    CHECK(l2_icmp6_checksum(z, z, odd, 3) == 0xfbc0, "odd length: got %04x", l2_icmp6_checksum(z, z, odd, 3));
}

static void test_na_build(void) {
    uint8_t src[16], dst[16], f[L2_NA_FRAME_LEN];
    ip6("2001:db8::11", src);
    ip6("fe80::ff:fe00:10", dst);
    size_t n = l2_build_na(f, MAC_C, MAC_N, src, dst, src, L2_NA_FLAG_SOLICITED | L2_NA_FLAG_OVERRIDE);
    CHECK(n == 86, "NA length %zu", n);
    CHECK_BYTES(f, KERNEL_NA, 86, "solicited NA vs kernel");

    /* Unsolicited NA: to ff02::1 / 33:33:00:00:00:01, S=0, O=1, sourced from the VIP. */
    uint8_t vip[16], all[16];
    ip6("2001:db8::100", vip);
    ip6("ff02::1", all);
    const uint8_t allmac[6] = {0x33, 0x33, 0, 0, 0, 1};
    l2_build_na(f, allmac, MAC_N, vip, all, vip, L2_NA_FLAG_OVERRIDE);
    CHECK_BYTES(f, allmac, 6, "unsolicited NA eth dst");
    CHECK(f[21] == 255, "hop limit 255");
    CHECK(memcmp(f + 22, vip, 16) == 0 && memcmp(f + 38, all, 16) == 0, "unsolicited NA addresses");
    CHECK(f[54] == 136 && f[55] == 0 && f[58] == 0x20, "type 136, code 0, flags O only (got %02x)", f[58]);
    CHECK(f[78] == 2 && f[79] == 1 && memcmp(f + 80, MAC_N, 6) == 0, "TLLA option");
    CHECK(l2_icmp6_checksum(vip, all, f + 54, 32) == 0, "unsolicited NA checksum valid");
    struct l2_ndp p;
    CHECK(l2_parse_ndp(f, n, &p) == L2_OK && p.type == 136 && p.flags == 0x20 && p.has_lla, "our NA parses");
}

static void test_ns_build_parse(void) {
    struct l2_ndp p;
    CHECK(l2_parse_ndp(NDISC6_NS, 86, &p) == L2_OK, "parse ndisc6 NS");
    uint8_t tgt[16], src[16], sn[16];
    ip6("2001:db8::11", tgt);
    ip6("fe80::ff:fe00:10", src);
    ip6("ff02::1:ff00:11", sn);
    CHECK(p.type == 135 && memcmp(p.target, tgt, 16) == 0 && memcmp(p.src, src, 16) == 0, "NS fields");
    CHECK(p.has_lla && memcmp(p.lla, MAC_C, 6) == 0, "NS SLLAO");
    CHECK(memcmp(p.dst, sn, 16) == 0, "NS dst = solicited-node group");

    /* Our NS builder reproduces ndisc6's frame except the IPv6 flow label (bytes 14..17). */
    uint8_t f[L2_NS_FRAME_MAX];
    size_t n = l2_build_ns(f, BCAST, MAC_C, src, sn, tgt, MAC_C);
    CHECK(n == 86, "NS length %zu", n);
    CHECK_BYTES(f, NDISC6_NS, 14, "NS Ethernet header (multicast MAC derived)");
    CHECK_BYTES(f + 18, NDISC6_NS + 18, 86 - 18, "NS from byte 18");

    /* DAD probe: src ::, no SLLAO, to the solicited-node group. */
    uint8_t zero[16] = {0};
    n = l2_build_ns(f, BCAST, MAC_N, zero, sn, tgt, NULL);
    CHECK(n == 78, "DAD NS length %zu", n);
    CHECK(f[19] == 24, "payload length 24");
    CHECK(l2_parse_ndp(f, n, &p) == L2_OK && p.type == 135 && !p.has_lla, "DAD NS parses");

    /* Validation */
    uint8_t g[86];
    memcpy(g, NDISC6_NS, 86);
    g[21] = 64;
    CHECK(l2_parse_ndp(g, 86, &p) == L2_EHOP, "hop limit 64 rejected");
    memcpy(g, NDISC6_NS, 86);
    g[85] ^= 1;
    CHECK(l2_parse_ndp(g, 86, &p) == L2_ECSUM, "bad checksum rejected");
    memcpy(g, NDISC6_NS, 86);
    g[79] = 0; /* option length 0 */
    g[56] = g[57] = 0;
    uint16_t c = l2_icmp6_checksum(g + 22, g + 38, g + 54, 32);
    g[56] = (uint8_t)(c >> 8);
    g[57] = (uint8_t)c;
    CHECK(l2_parse_ndp(g, 86, &p) == L2_EOPT, "option length 0 rejected");
    memcpy(g, NDISC6_NS, 86);
    g[55] = 1; /* code */
    CHECK(l2_parse_ndp(g, 86, &p) == L2_ECODE || l2_parse_ndp(g, 86, &p) == L2_ECSUM, "code 1 rejected");
    memcpy(g, NDISC6_NS, 86);
    g[20] = 0; /* hop-by-hop header */
    CHECK(l2_parse_ndp(g, 86, &p) == L2_EHDR, "extension header rejected");
    CHECK(l2_parse_ndp(NDISC6_NS, 77, &p) == L2_ESHORT, "short frame rejected");
    memcpy(g, NDISC6_NS, 86);
    g[19] = 40; /* payload longer than the frame */
    CHECK(l2_parse_ndp(g, 86, &p) == L2_ESHORT, "payload length beyond frame rejected");

    /* DAD NS with an SLLAO is invalid (RFC 4861 7.1.1). */
    n = l2_build_ns(f, BCAST, MAC_N, zero, sn, tgt, MAC_N);
    CHECK(l2_parse_ndp(f, n, &p) == L2_EDAD, "DAD NS with SLLAO rejected");
    /* DAD NS not to a solicited-node group */
    uint8_t all[16];
    ip6("ff02::1", all);
    n = l2_build_ns(f, BCAST, MAC_N, zero, all, tgt, NULL);
    CHECK(l2_parse_ndp(f, n, &p) == L2_EDAD, "DAD NS to ff02::1 rejected");
    /* multicast target */
    n = l2_build_ns(f, BCAST, MAC_N, src, sn, all, NULL);
    CHECK(l2_parse_ndp(f, n, &p) == L2_ETARGET, "multicast target rejected");
    /* an NA to a multicast address with S set */
    const uint8_t allmac[6] = {0x33, 0x33, 0, 0, 0, 1};
    l2_build_na(f, allmac, MAC_N, tgt, all, tgt, L2_NA_FLAG_SOLICITED);
    CHECK(l2_parse_ndp(f, L2_NA_FRAME_LEN, &p) == L2_EHDR, "multicast NA with S rejected");
    /* unicast NUD probe: NS to the target itself, with SLLAO */
    n = l2_build_ns(f, MAC_N, MAC_C, src, tgt, tgt, MAC_C);
    CHECK(memcmp(f, MAC_N, 6) == 0, "unicast NS eth dst");
    CHECK(l2_parse_ndp(f, n, &p) == L2_OK && memcmp(p.dst, tgt, 16) == 0, "unicast NS parses");
}

static void test_addresses(void) {
    struct l2_ip ip;
    char b[64];
    CHECK(l2_ip_parse("2001:0db8:0:0:0:0:0:0100", &ip) == 0 && ip.family == 6, "parse v6");
    l2_ip_format(&ip, b, sizeof(b));
    CHECK(strcmp(b, "2001:db8::100") == 0, "RFC 5952 format: %s", b);
    CHECK(l2_ip_parse("192.0.2.1", &ip) == 0 && ip.family == 4 && ip.addr[3] == 1 && ip.addr[4] == 0, "parse v4");
    CHECK(l2_ip_parse("192.0.2.01", &ip) < 0, "leading zero rejected");
    CHECK(l2_ip_parse("192.0.2", &ip) < 0, "short v4 rejected");
    CHECK(l2_ip_parse("192.0.2.1 ", &ip) < 0, "trailing space rejected");
    CHECK(l2_ip_parse("2001:db8::/64", &ip) < 0, "prefix rejected");
    l2_ip_parse("224.0.0.1", &ip);
    CHECK(l2_ip_unusable(&ip) != NULL, "multicast v4 unusable");
    l2_ip_parse("255.255.255.255", &ip);
    CHECK(l2_ip_unusable(&ip) != NULL, "broadcast unusable");
    l2_ip_parse("0.0.0.0", &ip);
    CHECK(l2_ip_unusable(&ip) != NULL, "0.0.0.0 unusable");
    l2_ip_parse("::", &ip);
    CHECK(l2_ip_unusable(&ip) != NULL, ":: unusable");
    l2_ip_parse("ff02::1", &ip);
    CHECK(l2_ip_unusable(&ip) != NULL, "multicast v6 unusable");
    l2_ip_parse("::ffff:192.0.2.1", &ip);
    CHECK(l2_ip_unusable(&ip) != NULL, "mapped unusable");
    l2_ip_parse("fe80::1", &ip);
    CHECK(l2_ip_unusable(&ip) == NULL, "link-local usable");
    l2_ip_parse("198.51.100.7", &ip);
    CHECK(l2_ip_unusable(&ip) == NULL, "unicast v4 usable");

    uint8_t a[16], g[16], want[16], mac[6];
    ip6("2001:db8::12:3456", a);
    l2_solicited_node(a, g);
    ip6("ff02::1:ff12:3456", want);
    CHECK(memcmp(g, want, 16) == 0, "solicited-node group");
    l2_ipv6_multicast_mac(g, mac);
    const uint8_t wmac[6] = {0x33, 0x33, 0xff, 0x12, 0x34, 0x56};
    CHECK(memcmp(mac, wmac, 6) == 0, "solicited-node MAC");
    l2_mac_format(wmac, b);
    CHECK(strcmp(b, "33:33:ff:12:34:56") == 0, "mac format %s", b);
}

/* ---- BPF ------------------------------------------------------------------------------------- */

/* A classic-BPF interpreter for the instructions our programs use. pkttype and vlan are the
 * ancillary values. Returns the program's verdict (0 = drop). */
static uint32_t bpf_run(const struct sock_filter *prog, size_t n, const uint8_t *pkt, size_t len, uint32_t pkttype,
                        uint32_t vlan) {
    uint32_t A = 0, X = 0;
    for (size_t pc = 0; pc < n; pc++) {
        const struct sock_filter *f = &prog[pc];
        switch (f->code) {
        case BPF_LD | BPF_W | BPF_ABS:
            if (f->k == (uint32_t)(SKF_AD_OFF + SKF_AD_PKTTYPE)) A = pkttype;
            else if (f->k == (uint32_t)(SKF_AD_OFF + SKF_AD_VLAN_TAG_PRESENT)) A = vlan;
            else if (f->k + 4 > len) return 0;
            else A = (uint32_t)pkt[f->k] << 24 | (uint32_t)pkt[f->k + 1] << 16 | (uint32_t)pkt[f->k + 2] << 8 | pkt[f->k + 3];
            break;
        case BPF_LD | BPF_H | BPF_ABS:
            if (f->k + 2 > len) return 0;
            A = (uint32_t)pkt[f->k] << 8 | pkt[f->k + 1];
            break;
        case BPF_LD | BPF_B | BPF_ABS:
            if (f->k + 1 > len) return 0;
            A = pkt[f->k];
            break;
        case BPF_MISC | BPF_TAX: X = A; break;
        case BPF_MISC | BPF_TXA: A = X; break;
        case BPF_JMP | BPF_JEQ | BPF_K: pc += A == f->k ? f->jt : f->jf; break;
        case BPF_JMP | BPF_JGE | BPF_K: pc += A >= f->k ? f->jt : f->jf; break;
        case BPF_JMP | BPF_JGT | BPF_K: pc += A > f->k ? f->jt : f->jf; break;
        case BPF_RET | BPF_K: return f->k;
        default: printf("bpf: unsupported opcode %#x\n", f->code); return 0xdead;
        }
    }
    printf("bpf: fell off the end\n");
    return 0xdead;
}

static struct sock_filter prog[L2_BPF_MAX];

static void test_bpf(void) {
    const uint8_t v4s[2][4] = {{192, 0, 2, 100}, {192, 0, 2, 11}};
    size_t n = l2_bpf_arp(prog, v4s, 2);
    CHECK(n == 23 + 8, "ARP program length %zu", n);
    CHECK(bpf_run(prog, n, KERNEL_ARP_REQUEST, 60, PACKET_BROADCAST, 0) != 0, "request for owned IP accepted");
    CHECK(bpf_run(prog, n, KERNEL_ARP_REQUEST, 60, PACKET_OTHERHOST, 0) == 0, "OTHERHOST dropped");
    CHECK(bpf_run(prog, n, KERNEL_ARP_REQUEST, 60, PACKET_OUTGOING, 0) == 0, "OUTGOING dropped");
    CHECK(bpf_run(prog, n, KERNEL_ARP_REQUEST, 60, PACKET_BROADCAST, 1) == 0, "VLAN-tagged dropped");
    CHECK(bpf_run(prog, n, KERNEL_ARP_REPLY, 42, PACKET_HOST, 0) != 0, "reply with spa owned accepted (foreign)");
    uint8_t f[60];
    memcpy(f, KERNEL_ARP_REQUEST, 60);
    f[41] = 99; /* tpa 192.0.2.99 */
    CHECK(bpf_run(prog, n, f, 60, PACKET_BROADCAST, 0) == 0, "request for another IP dropped");
    f[31] = 100; /* spa 192.0.2.100: someone else uses our IP */
    CHECK(bpf_run(prog, n, f, 60, PACKET_BROADCAST, 0) != 0, "spa owned accepted");
    memcpy(f, KERNEL_ARP_REPLY, 42);
    f[31] = 12; /* reply from 192.0.2.12 to tpa 192.0.2.10 */
    CHECK(bpf_run(prog, n, f, 42, PACKET_HOST, 0) == 0, "unrelated reply dropped");
    memcpy(f, KERNEL_ARP_REPLY, 42);
    f[31] = 12;
    f[41] = 100; /* reply whose tpa is owned: only requests are matched on tpa */
    CHECK(bpf_run(prog, n, f, 42, PACKET_HOST, 0) == 0, "reply matched on tpa dropped");
    CHECK(bpf_run(prog, n, KERNEL_NA, 86, PACKET_HOST, 0) == 0, "IPv6 frame dropped by the ARP filter");

    n = l2_bpf_arp(prog, NULL, 0);
    CHECK(bpf_run(prog, n, KERNEL_ARP_REQUEST, 60, PACKET_BROADCAST, 0) == 0, "empty set drops everything");
    n = l2_bpf_arp(prog, NULL, 5000);
    CHECK(n < 30 && bpf_run(prog, n, KERNEL_ARP_REQUEST, 60, PACKET_BROADCAST, 0) != 0, "fall-back accepts all ARP");
    CHECK(bpf_run(prog, n, KERNEL_ARP_REQUEST, 60, PACKET_OTHERHOST, 0) == 0, "fall-back still drops OTHERHOST");
    static uint8_t many[1018][4];
    for (size_t i = 0; i < 1018; i++) {
        many[i][0] = 198;
        many[i][1] = 51;
        many[i][2] = (uint8_t)(i >> 8);
        many[i][3] = (uint8_t)i;
    }
    many[1017][0] = 192;
    many[1017][1] = 0;
    many[1017][2] = 2;
    many[1017][3] = 11;
    n = l2_bpf_arp(prog, (const uint8_t(*)[4])many, 1018);
    CHECK(n <= L2_BPF_MAX && n > 4000, "largest exact ARP program: %zu instructions", n);
    CHECK(bpf_run(prog, n, KERNEL_ARP_REQUEST, 60, PACKET_BROADCAST, 0) != 0, "last of 1018 IPs matched");

    uint8_t v6s[2][16];
    ip6("2001:db8::11", v6s[0]);
    ip6("2001:db8::100", v6s[1]);
    n = l2_bpf_ndp(prog, (const uint8_t(*)[16])v6s, 2);
    CHECK(bpf_run(prog, n, NDISC6_NS, 86, PACKET_MULTICAST, 0) != 0, "NS for owned target accepted");
    CHECK(bpf_run(prog, n, NDISC6_NS, 86, PACKET_MULTICAST, 1) == 0, "tagged NS dropped");
    CHECK(bpf_run(prog, n, KERNEL_NA, 86, PACKET_HOST, 0) != 0, "NA for owned target accepted");
    uint8_t g[86];
    memcpy(g, NDISC6_NS, 86);
    g[77] = 0x12; /* target ::12 */
    CHECK(bpf_run(prog, n, g, 86, PACKET_MULTICAST, 0) == 0, "NS for another target dropped");
    memcpy(g, NDISC6_NS, 86);
    g[21] = 64;
    CHECK(bpf_run(prog, n, g, 86, PACKET_MULTICAST, 0) == 0, "hop limit 64 dropped");
    memcpy(g, NDISC6_NS, 86);
    g[54] = 128; /* echo request */
    CHECK(bpf_run(prog, n, g, 86, PACKET_HOST, 0) == 0, "echo request dropped");
    g[54] = 137; /* redirect */
    CHECK(bpf_run(prog, n, g, 86, PACKET_HOST, 0) == 0, "redirect dropped");
    memcpy(g, NDISC6_NS, 86);
    g[77] = 0x12;
    g[34] = g[35] = g[36] = 0;
    g[37] = 0x11; /* NS from ...::11 (last 32 bits owned), target not owned: someone uses our IP */
    CHECK(bpf_run(prog, n, g, 86, PACKET_MULTICAST, 0) != 0, "NS with owned source accepted");
    CHECK(bpf_run(prog, n, KERNEL_ARP_REQUEST, 60, PACKET_BROADCAST, 0) == 0, "ARP dropped by the NDP filter");

    const uint8_t probe4[4] = {192, 0, 2, 11};
    n = l2_bpf_probe_arp(prog, probe4);
    CHECK(bpf_run(prog, n, KERNEL_ARP_REPLY, 42, PACKET_HOST, 0) != 0, "probe: reply from the IP accepted");
    CHECK(bpf_run(prog, n, KERNEL_ARP_REQUEST, 60, PACKET_BROADCAST, 0) != 0, "probe: request for the IP accepted");
    memcpy(f, KERNEL_ARP_REQUEST, 60);
    f[41] = 12;
    CHECK(bpf_run(prog, n, f, 60, PACKET_BROADCAST, 0) == 0, "probe: other request dropped");
    n = l2_bpf_probe_ndp(prog, v6s[0]);
    CHECK(bpf_run(prog, n, KERNEL_NA, 86, PACKET_HOST, 0) != 0, "probe: NA accepted");
}

/* ---- commands -------------------------------------------------------------------------------- */

static int parse(const char *line, struct l2_cmd *c, char *err) {
    return l2_cmd_parse(line, strlen(line), c, err, 300);
}

static void expect_error(const char *line, const char *fragment) {
    struct l2_cmd c;
    char err[300] = "";
    int rc = parse(line, &c, err);
    CHECK(rc < 0 && strstr(err, fragment) != NULL, "%s -> rc %d, error \"%s\" (want \"%s\")", line, rc, err,
          fragment);
    l2_cmd_free(&c);
}

static void test_commands(void) {
    struct l2_cmd c;
    char err[300];
    int rc = parse("{\"cmd\":\"set\",\"id\":7,\"interfaces\":[\"eth0\",\"eth1\"],"
                   "\"ips\":{\"eth0\":[\"2001:db8::100\",\"192.0.2.100\",\"192.0.2.5\"]}}",
                   &c, err);
    CHECK(rc == 0, "set parses: %s", err);
    CHECK(c.kind == L2_CMD_SET && c.has_id && c.id == 7 && c.n_ifaces == 2, "set fields");
    CHECK(strcmp(c.ifaces[0].name, "eth0") == 0 && c.ifaces[0].n_ips == 3 && c.ifaces[1].n_ips == 0, "set ifaces");
    char b[64];
    l2_ip_format(&c.ifaces[0].ips[0], b, sizeof(b));
    CHECK(strcmp(b, "192.0.2.5") == 0, "sorted: v4 first, ascending (%s)", b);
    CHECK(c.ifaces[0].ips[2].family == 6, "v6 last");
    l2_cmd_free(&c);

    rc = parse(" { \"ips\" : { } , \"interfaces\" : [ ] , \"cmd\" : \"set\" } ", &c, err);
    CHECK(rc == 0 && c.kind == L2_CMD_SET && c.n_ifaces == 0 && !c.has_id, "empty set: %s", err);
    l2_cmd_free(&c);

    rc = parse("{\"cmd\":\"announce\",\"ip\":\"192.0.2.100\"}", &c, err);
    CHECK(rc == 0 && c.kind == L2_CMD_ANNOUNCE && c.count == 1 && c.interval_ms == 1000 && c.iface[0] == 0,
          "announce defaults: %s", err);
    l2_cmd_free(&c);
    rc = parse("{\"cmd\":\"announce\",\"ip\":\"2001:db8::1\",\"count\":5,\"intervalMs\":1100,\"iface\":\"eth0\"}", &c,
               err);
    CHECK(rc == 0 && c.count == 5 && c.interval_ms == 1100 && strcmp(c.iface, "eth0") == 0, "announce: %s", err);
    l2_cmd_free(&c);
    rc = parse("{\"cmd\":\"probe\",\"ip\":\"192.0.2.9\",\"iface\":\"e\\u0074h0\",\"timeoutMs\":300,\"id\":9007199254740991}",
               &c, err);
    CHECK(rc == 0 && c.kind == L2_CMD_PROBE && c.timeout_ms == 300 && c.count == 1 && strcmp(c.iface, "eth0") == 0 &&
              c.id == 9007199254740991ull,
          "probe with \\u escape and max id: %s", err);
    l2_cmd_free(&c);
    rc = parse("{\"cmd\":\"stats\"}", &c, err);
    CHECK(rc == 0 && c.kind == L2_CMD_STATS, "stats");
    rc = parse("{\"cmd\":\"quit\",\"id\":0}", &c, err);
    CHECK(rc == 0 && c.kind == L2_CMD_QUIT && c.has_id && c.id == 0, "quit");

    /* an error still carries the id when it was valid */
    rc = parse("{\"id\":42,\"cmd\":\"nope\"}", &c, err);
    CHECK(rc < 0 && c.has_id && c.id == 42 && strstr(err, "unknown command"), "id kept on error: %s", err);

    expect_error("", "unexpected end");
    expect_error("[]", "must be a JSON object");
    expect_error("\"set\"", "must be a JSON object");
    expect_error("{\"cmd\":\"stats\"} x", "trailing");
    expect_error("{\"cmd\":\"stats\",}", "expected a string key");
    expect_error("{\"cmd\":\"stats\"", "expected ',' or '}'");
    expect_error("{\"cmd\":\"stats\",\"cmd\":\"quit\"}", "duplicate key");
    expect_error("{\"cmd\":5}", "missing string field \"cmd\"");
    expect_error("{\"cmd\":\"stats\",\"extra\":1}", "unknown field \"extra\"");
    expect_error("{\"cmd\":\"stats\",\"id\":-1}", "\"id\" must be");
    expect_error("{\"cmd\":\"stats\",\"id\":1.5}", "\"id\" must be");
    expect_error("{\"cmd\":\"stats\",\"id\":9007199254740992}", "\"id\" must be");
    expect_error("{\"cmd\":\"stats\",\"id\":01}", "expected ',' or '}'");
    expect_error("{\"cmd\":\"st\\x\"}", "bad escape");
    expect_error("{\"cmd\":\"st\\u0000\"}", "unsupported");
    expect_error("{\"cmd\":\"st\tx\"}", "control character");
    expect_error("{\"cmd\":\"set\",\"interfaces\":[\"eth0\"]}", "\"ips\" must be an object");
    expect_error("{\"cmd\":\"set\",\"interfaces\":\"eth0\",\"ips\":{}}", "\"interfaces\" must be an array");
    expect_error("{\"cmd\":\"set\",\"interfaces\":[\"eth0\",\"eth0\"],\"ips\":{}}", "listed twice");
    expect_error("{\"cmd\":\"set\",\"interfaces\":[\"a/b\"],\"ips\":{}}", "interface name");
    expect_error("{\"cmd\":\"set\",\"interfaces\":[\"0123456789abcdef\"],\"ips\":{}}", "interface name");
    expect_error("{\"cmd\":\"set\",\"interfaces\":[\"\"],\"ips\":{}}", "interface name");
    expect_error("{\"cmd\":\"set\",\"interfaces\":[\"eth0\"],\"ips\":{\"eth1\":[]}}", "not in \"interfaces\"");
    expect_error("{\"cmd\":\"set\",\"interfaces\":[\"eth0\"],\"ips\":{\"eth0\":[\"192.0.2.300\"]}}",
                 "is not an IP address");
    expect_error("{\"cmd\":\"set\",\"interfaces\":[\"eth0\"],\"ips\":{\"eth0\":[\"192.0.2.0/24\"]}}",
                 "is not an IP address");
    expect_error("{\"cmd\":\"set\",\"interfaces\":[\"eth0\"],\"ips\":{\"eth0\":[\"224.0.0.5\"]}}", "multicast");
    expect_error("{\"cmd\":\"set\",\"interfaces\":[\"eth0\"],\"ips\":{\"eth0\":[\"192.0.2.1\",\"192.0.2.1\"]}}",
                 "listed twice");
    expect_error("{\"cmd\":\"set\",\"interfaces\":[\"eth0\"],\"ips\":{\"eth0\":\"192.0.2.1\"}}", "must be an array");
    expect_error("{\"cmd\":\"set\",\"interfaces\":[\"eth0\"],\"ips\":{\"eth0\":[1]}}", "must be a string");
    expect_error("{\"cmd\":\"announce\"}", "missing field \"ip\"");
    expect_error("{\"cmd\":\"announce\",\"ip\":\"192.0.2.1\",\"count\":0}", "\"count\" must be an integer in 1..1000");
    expect_error("{\"cmd\":\"announce\",\"ip\":\"192.0.2.1\",\"count\":\"5\"}", "\"count\" must be");
    expect_error("{\"cmd\":\"announce\",\"ip\":\"192.0.2.1\",\"intervalMs\":1e3}", "\"intervalMs\" must be");
    expect_error("{\"cmd\":\"probe\",\"ip\":\"192.0.2.1\"}", "needs \"ip\" and \"iface\"");
    expect_error("{\"cmd\":\"probe\",\"ip\":\"192.0.2.1\",\"iface\":\"eth0\"}", "missing field \"timeoutMs\"");
    expect_error("{\"cmd\":\"probe\",\"ip\":\"192.0.2.1\",\"iface\":\"eth0\",\"timeoutMs\":60001}", "timeoutMs");
    expect_error("{\"cmd\":\"stats\",\"id\":[[[[[[[[[[1]]]]]]]]]]}", "nested too deeply");
    expect_error("{\"cmd\":\"stats\",\"id\":tru}", "unexpected character");
}

static void test_json_out(void) {
    struct l2_str s;
    l2_str_init(&s);
    l2_str_json(&s, "a\"b\\c\nd\x01\xc3");
    l2_str_raw(&s, ",");
    l2_str_u64(&s, 18446744073709551615ull);
    l2_str_raw(&s, ",");
    l2_str_i64(&s, -5);
    CHECK(strcmp(s.buf, "\"a\\\"b\\\\c\\u000ad\\u0001?\",18446744073709551615,-5") == 0, "json out: %s", s.buf);
    l2_str_free(&s);
}

int main(void) {
    test_arp_build();
    test_arp_parse();
    test_checksum();
    test_na_build();
    test_ns_build_parse();
    test_addresses();
    test_bpf();
    test_commands();
    test_json_out();
    printf("%d passed, %d failed\n", g_passed, g_failed);
    return g_failed ? 1 : 0;
}
