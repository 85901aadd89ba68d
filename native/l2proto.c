/*
 * ironlb-l2: packet building/parsing, checksum, BPF programs, command parser, JSON output.
 * No I/O here: see l2proto.h, and native/test/test_l2proto.c for the byte-level tests.
 */
#include "l2proto.h"

#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ============================================================================================ */
/* Addresses                                                                                    */
/* ============================================================================================ */

int l2_ip_parse(const char *s, struct l2_ip *out) {
    memset(out, 0, sizeof(*out));
    if (strchr(s, ':')) {
        if (inet_pton(AF_INET6, s, out->addr) != 1) return -1;
        out->family = 6;
        return 0;
    }
    if (inet_pton(AF_INET, s, out->addr) != 1) return -1;
    out->family = 4;
    return 0;
}

void l2_ip_format(const struct l2_ip *ip, char *buf, size_t len) {
    if (!inet_ntop(ip->family == 6 ? AF_INET6 : AF_INET, ip->addr, buf, (socklen_t)len)) {
        snprintf(buf, len, "?");
    }
}

int l2_ip_cmp(const struct l2_ip *a, const struct l2_ip *b) {
    if (a->family != b->family) return a->family < b->family ? -1 : 1;
    return memcmp(a->addr, b->addr, 16);
}

const char *l2_ip_unusable(const struct l2_ip *ip) {
    const uint8_t *a = ip->addr;
    if (ip->family == 4) {
        if (a[0] == 0) return "0.0.0.0/8 is not a unicast address";
        if (a[0] == 127) return "loopback address";
        if (a[0] >= 224) return "multicast, broadcast or reserved address";
        return NULL;
    }
    static const uint8_t zero[16];
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(a, zero, 16) == 0) return "unspecified address";
    if (memcmp(a, zero, 15) == 0 && a[15] == 1) return "loopback address";
    if (a[0] == 0xff) return "multicast address";
    if (memcmp(a, mapped, 12) == 0) return "IPv4-mapped address";
    return NULL;
}

void l2_mac_format(const uint8_t mac[6], char *buf) {
    snprintf(buf, 18, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
}

int l2_mac_is_multicast(const uint8_t mac[6]) { return (mac[0] & 1) != 0; }

int l2_mac_is_zero(const uint8_t mac[6]) {
    static const uint8_t zero[6];
    return memcmp(mac, zero, 6) == 0;
}

void l2_solicited_node(const uint8_t addr[16], uint8_t group[16]) {
    static const uint8_t prefix[13] = {0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff};
    memcpy(group, prefix, 13);
    memcpy(group + 13, addr + 13, 3);
}

void l2_ipv6_multicast_mac(const uint8_t group[16], uint8_t mac[6]) {
    mac[0] = 0x33;
    mac[1] = 0x33;
    memcpy(mac + 2, group + 12, 4);
}

/* ============================================================================================ */
/* Checksum                                                                                     */
/* ============================================================================================ */

static uint32_t sum16(uint32_t sum, const uint8_t *p, size_t len) {
    while (len > 1) {
        sum += (uint32_t)p[0] << 8 | p[1];
        p += 2;
        len -= 2;
    }
    if (len) sum += (uint32_t)p[0] << 8;
    return sum;
}

uint16_t l2_icmp6_checksum(const uint8_t src[16], const uint8_t dst[16], const uint8_t *msg, size_t len) {
    uint32_t sum = 0;
    sum = sum16(sum, src, 16);
    sum = sum16(sum, dst, 16);
    sum += (uint32_t)(len >> 16) + (uint32_t)(len & 0xffff);
    sum += 58;
    sum = sum16(sum, msg, len);
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)(~sum & 0xffff);
}

/* ============================================================================================ */
/* Frames we send                                                                               */
/* ============================================================================================ */

static void put16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }

static void eth_header(uint8_t *buf, const uint8_t dst[6], const uint8_t src[6], uint16_t type) {
    memcpy(buf, dst, 6);
    memcpy(buf + 6, src, 6);
    put16(buf + 12, type);
}

size_t l2_build_arp(uint8_t *buf, uint16_t oper, const uint8_t eth_dst[6], const uint8_t eth_src[6],
                    const uint8_t sha[6], const uint8_t spa[4], const uint8_t tha[6], const uint8_t tpa[4]) {
    memset(buf, 0, L2_ARP_FRAME_LEN);
    eth_header(buf, eth_dst, eth_src, L2_ETHERTYPE_ARP);
    uint8_t *a = buf + L2_ETH_HLEN;
    put16(a, 1);      /* htype Ethernet */
    put16(a + 2, 0x0800); /* ptype IPv4 */
    a[4] = 6;
    a[5] = 4;
    put16(a + 6, oper);
    memcpy(a + 8, sha, 6);
    memcpy(a + 14, spa, 4);
    memcpy(a + 18, tha, 6);
    memcpy(a + 24, tpa, 4);
    return L2_ARP_FRAME_LEN;
}

static void ipv6_header(uint8_t *p, uint16_t plen, const uint8_t src[16], const uint8_t dst[16]) {
    p[0] = 0x60;
    p[1] = p[2] = p[3] = 0;
    put16(p + 4, plen);
    p[6] = 58;  /* ICMPv6 */
    p[7] = 255; /* hop limit: RFC 4861 */
    memcpy(p + 8, src, 16);
    memcpy(p + 24, dst, 16);
}

size_t l2_build_na(uint8_t *buf, const uint8_t eth_dst[6], const uint8_t eth_src[6], const uint8_t ip_src[16],
                   const uint8_t ip_dst[16], const uint8_t target[16], uint8_t flags) {
    memset(buf, 0, L2_NA_FRAME_LEN);
    eth_header(buf, eth_dst, eth_src, L2_ETHERTYPE_IPV6);
    ipv6_header(buf + 14, 32, ip_src, ip_dst);
    uint8_t *m = buf + 54;
    m[0] = L2_ICMP6_NA;
    m[1] = 0;
    m[4] = flags;
    memcpy(m + 8, target, 16);
    m[24] = 2; /* target link-layer address */
    m[25] = 1;
    memcpy(m + 26, eth_src, 6);
    put16(m + 2, l2_icmp6_checksum(ip_src, ip_dst, m, 32));
    return L2_NA_FRAME_LEN;
}

size_t l2_build_ns(uint8_t *buf, const uint8_t eth_dst[6], const uint8_t eth_src[6], const uint8_t ip_src[16],
                   const uint8_t ip_dst[16], const uint8_t target[16], const uint8_t *sllao) {
    size_t mlen = sllao ? 32 : 24;
    memset(buf, 0, 54 + mlen);
    uint8_t dmac[6];
    if (ip_dst[0] == 0xff) l2_ipv6_multicast_mac(ip_dst, dmac);
    else memcpy(dmac, eth_dst, 6);
    eth_header(buf, dmac, eth_src, L2_ETHERTYPE_IPV6);
    ipv6_header(buf + 14, (uint16_t)mlen, ip_src, ip_dst);
    uint8_t *m = buf + 54;
    m[0] = L2_ICMP6_NS;
    memcpy(m + 8, target, 16);
    if (sllao) {
        m[24] = 1;
        m[25] = 1;
        memcpy(m + 26, sllao, 6);
    }
    put16(m + 2, l2_icmp6_checksum(ip_src, ip_dst, m, mlen));
    return 54 + mlen;
}

/* ============================================================================================ */
/* Frames we receive                                                                            */
/* ============================================================================================ */

int l2_parse_arp(const uint8_t *f, size_t len, struct l2_arp *out) {
    if (len < 42) return L2_ESHORT;
    if (get16(f + 12) != L2_ETHERTYPE_ARP) return L2_ETYPE;
    const uint8_t *a = f + 14;
    if (get16(a) != 1 || get16(a + 2) != 0x0800 || a[4] != 6 || a[5] != 4) return L2_EHDR;
    uint16_t oper = get16(a + 6);
    if (oper != L2_ARP_REQUEST && oper != L2_ARP_REPLY) return L2_EOPER;
    if (l2_mac_is_multicast(f + 6) || l2_mac_is_multicast(a + 8)) return L2_EMAC;
    memcpy(out->eth_dst, f, 6);
    memcpy(out->eth_src, f + 6, 6);
    out->oper = oper;
    memcpy(out->sha, a + 8, 6);
    memcpy(out->spa, a + 14, 4);
    memcpy(out->tha, a + 18, 6);
    memcpy(out->tpa, a + 24, 4);
    return L2_OK;
}

static int is_unspecified(const uint8_t a[16]) {
    static const uint8_t zero[16];
    return memcmp(a, zero, 16) == 0;
}

int l2_parse_ndp(const uint8_t *f, size_t len, struct l2_ndp *out) {
    if (len < 14 + 40 + 24) return L2_ESHORT;
    if (get16(f + 12) != L2_ETHERTYPE_IPV6) return L2_ETYPE;
    const uint8_t *ip = f + 14;
    if ((ip[0] >> 4) != 6 || ip[6] != 58) return L2_EHDR;
    if (ip[7] != 255) return L2_EHOP;
    size_t plen = get16(ip + 4);
    if (plen < 24 || plen > len - 54) return L2_ESHORT;
    const uint8_t *m = ip + 40;
    if (m[0] != L2_ICMP6_NS && m[0] != L2_ICMP6_NA) return L2_ETYPE;
    if (m[1] != 0) return L2_ECODE;
    if (l2_icmp6_checksum(ip + 8, ip + 24, m, plen) != 0) return L2_ECSUM;
    if (l2_mac_is_multicast(f + 6)) return L2_EMAC;
    memset(out, 0, sizeof(*out));
    memcpy(out->eth_dst, f, 6);
    memcpy(out->eth_src, f + 6, 6);
    memcpy(out->src, ip + 8, 16);
    memcpy(out->dst, ip + 24, 16);
    out->type = m[0];
    out->flags = m[0] == L2_ICMP6_NA ? m[4] : 0;
    memcpy(out->target, m + 8, 16);
    if (out->target[0] == 0xff) return L2_ETARGET;
    if (out->src[0] == 0xff) return L2_EHDR;
    uint8_t want = m[0] == L2_ICMP6_NS ? 1 : 2;
    for (size_t off = 24; off < plen;) {
        if (plen - off < 2) return L2_EOPT;
        size_t olen = (size_t)m[off + 1] * 8;
        if (olen == 0 || olen > plen - off) return L2_EOPT;
        if (m[off] == want && olen >= 8 && !out->has_lla) {
            out->has_lla = 1;
            memcpy(out->lla, m + off + 2, 6);
        }
        off += olen;
    }
    if (out->type == L2_ICMP6_NS && is_unspecified(out->src)) {
        static const uint8_t snm[13] = {0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff};
        if (out->has_lla || memcmp(out->dst, snm, 13) != 0) return L2_EDAD;
    }
    if (out->type == L2_ICMP6_NA && out->dst[0] == 0xff && (out->flags & L2_NA_FLAG_SOLICITED)) return L2_EHDR;
    return L2_OK;
}

const char *l2_strerror(int code) {
    switch (code) {
    case L2_OK: return "ok";
    case L2_ESHORT: return "truncated frame";
    case L2_ETYPE: return "unexpected type";
    case L2_EHDR: return "bad header";
    case L2_EOPER: return "bad ARP operation";
    case L2_EMAC: return "multicast sender MAC";
    case L2_EHOP: return "hop limit is not 255";
    case L2_ECSUM: return "bad ICMPv6 checksum";
    case L2_ECODE: return "ICMPv6 code is not 0";
    case L2_EOPT: return "bad option length";
    case L2_ETARGET: return "multicast target";
    case L2_EDAD: return "invalid DAD solicitation";
    default: return "unknown error";
    }
}

/* ============================================================================================ */
/* Classic BPF                                                                                  */
/* ============================================================================================ */

#define ACCEPT 0xffff
/* Each helper uses only jump offsets 0 and 1, so programs of any length stay valid (8-bit jt/jf). */
#define EMIT(code, k) (out[n++] = (struct sock_filter)BPF_STMT((code), (k)))
#define REQUIRE_EQ(kval)                                                                            \
    do {                                                                                            \
        out[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (kval), 1, 0);          \
        EMIT(BPF_RET | BPF_K, 0);                                                                   \
    } while (0)
#define ACCEPT_IF_EQ(kval)                                                                          \
    do {                                                                                            \
        out[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (kval), 0, 1);          \
        EMIT(BPF_RET | BPF_K, ACCEPT);                                                              \
    } while (0)

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Drops VLAN-tagged frames and frames of pkttype OTHERHOST / OUTGOING. 8 instructions. */
static size_t prologue(struct sock_filter *out) {
    size_t n = 0;
    EMIT(BPF_LD | BPF_W | BPF_ABS, (uint32_t)(SKF_AD_OFF + SKF_AD_VLAN_TAG_PRESENT));
    REQUIRE_EQ(0);
    EMIT(BPF_LD | BPF_W | BPF_ABS, (uint32_t)(SKF_AD_OFF + SKF_AD_PKTTYPE));
    out[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, PACKET_OTHERHOST, 0, 1);
    EMIT(BPF_RET | BPF_K, 0);
    out[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, PACKET_OUTGOING, 0, 1);
    EMIT(BPF_RET | BPF_K, 0);
    return n;
}

/* Ethernet type ARP, htype 1, ptype IPv4, hlen 6, plen 4. */
static size_t arp_header(struct sock_filter *out) {
    size_t n = 0;
    EMIT(BPF_LD | BPF_H | BPF_ABS, 12);
    REQUIRE_EQ(L2_ETHERTYPE_ARP);
    EMIT(BPF_LD | BPF_W | BPF_ABS, 14);
    REQUIRE_EQ(0x00010800);
    EMIT(BPF_LD | BPF_H | BPF_ABS, 18);
    REQUIRE_EQ(0x0604);
    return n;
}

/* Ethernet type IPv6, next header 58, hop limit 255, ICMPv6 type 135..136 (type left in X). */
static size_t ndp_header(struct sock_filter *out) {
    size_t n = 0;
    EMIT(BPF_LD | BPF_H | BPF_ABS, 12);
    REQUIRE_EQ(L2_ETHERTYPE_IPV6);
    EMIT(BPF_LD | BPF_B | BPF_ABS, 20);
    REQUIRE_EQ(58);
    EMIT(BPF_LD | BPF_B | BPF_ABS, 21);
    REQUIRE_EQ(255);
    EMIT(BPF_LD | BPF_B | BPF_ABS, 54);
    EMIT(BPF_MISC | BPF_TAX, 0);
    out[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, L2_ICMP6_NS, 1, 0);
    EMIT(BPF_RET | BPF_K, 0);
    out[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGT | BPF_K, L2_ICMP6_NA, 0, 1);
    EMIT(BPF_RET | BPF_K, 0);
    return n;
}

/* Fixed parts: prologue 8 + header 9 (+6 for NDP) + 6; plus two lists of 2 instructions per IP. */
#define ARP_FIXED 23
#define NDP_FIXED 29

size_t l2_bpf_arp(struct sock_filter *out, const uint8_t (*v4s)[4], size_t n_ips) {
    size_t n = prologue(out);
    n += arp_header(out + n);
    if (ARP_FIXED + 4 * n_ips > L2_BPF_MAX) {
        EMIT(BPF_RET | BPF_K, ACCEPT); /* too many for one program: user space matches */
        return n;
    }
    EMIT(BPF_LD | BPF_W | BPF_ABS, 28); /* spa */
    for (size_t i = 0; i < n_ips; i++) ACCEPT_IF_EQ(be32(v4s[i]));
    EMIT(BPF_LD | BPF_H | BPF_ABS, 20); /* oper */
    REQUIRE_EQ(L2_ARP_REQUEST);
    EMIT(BPF_LD | BPF_W | BPF_ABS, 38); /* tpa */
    for (size_t i = 0; i < n_ips; i++) ACCEPT_IF_EQ(be32(v4s[i]));
    EMIT(BPF_RET | BPF_K, 0);
    return n;
}

size_t l2_bpf_ndp(struct sock_filter *out, const uint8_t (*v6s)[16], size_t n_ips) {
    size_t n = prologue(out);
    n += ndp_header(out + n);
    if (NDP_FIXED + 4 * n_ips > L2_BPF_MAX) {
        EMIT(BPF_RET | BPF_K, ACCEPT);
        return n;
    }
    EMIT(BPF_LD | BPF_W | BPF_ABS, 74); /* last 32 bits of the target */
    for (size_t i = 0; i < n_ips; i++) ACCEPT_IF_EQ(be32(v6s[i] + 12));
    EMIT(BPF_MISC | BPF_TXA, 0);
    REQUIRE_EQ(L2_ICMP6_NS);
    EMIT(BPF_LD | BPF_W | BPF_ABS, 34); /* last 32 bits of the source: someone using our IP */
    for (size_t i = 0; i < n_ips; i++) ACCEPT_IF_EQ(be32(v6s[i] + 12));
    EMIT(BPF_RET | BPF_K, 0);
    return n;
}

size_t l2_bpf_probe_arp(struct sock_filter *out, const uint8_t ip[4]) {
    size_t n = prologue(out);
    n += arp_header(out + n);
    EMIT(BPF_LD | BPF_W | BPF_ABS, 28);
    ACCEPT_IF_EQ(be32(ip));
    EMIT(BPF_LD | BPF_H | BPF_ABS, 20);
    REQUIRE_EQ(L2_ARP_REQUEST);
    EMIT(BPF_LD | BPF_W | BPF_ABS, 38);
    ACCEPT_IF_EQ(be32(ip));
    EMIT(BPF_RET | BPF_K, 0);
    return n;
}

size_t l2_bpf_probe_ndp(struct sock_filter *out, const uint8_t ip[16]) {
    size_t n = prologue(out);
    n += ndp_header(out + n);
    EMIT(BPF_LD | BPF_W | BPF_ABS, 74);
    ACCEPT_IF_EQ(be32(ip + 12));
    EMIT(BPF_RET | BPF_K, 0);
    return n;
}

/* ============================================================================================ */
/* JSON: a small DOM parser (objects, arrays, strings, numbers, literals), depth-limited         */
/* ============================================================================================ */

enum jtype { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ };

struct jval {
    enum jtype t;
    int is_uint;  /* J_NUM: a plain non-negative integer <= 2^53-1 */
    uint64_t u;   /* its value */
    char *s;      /* J_STR */
    size_t n;     /* J_ARR / J_OBJ: number of children */
    struct jval *kids;
    char **keys;  /* J_OBJ */
};

struct jparser {
    const char *p, *end;
    char *err;
    size_t errlen;
    int failed;
};

#define MAX_DEPTH 8
#define MAX_CHILDREN (L2_MAX_IPS + 16)

static void jfail(struct jparser *jp, const char *fmt, ...) {
    if (jp->failed) return;
    jp->failed = 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(jp->err, jp->errlen, fmt, ap);
    va_end(ap);
}

static void jfree(struct jval *v) {
    if (v->t == J_STR) free(v->s);
    if (v->t == J_ARR || v->t == J_OBJ) {
        for (size_t i = 0; i < v->n; i++) {
            jfree(&v->kids[i]);
            if (v->keys) free(v->keys[i]);
        }
        free(v->kids);
        free(v->keys);
    }
    memset(v, 0, sizeof(*v));
}

static void skip_ws(struct jparser *jp) {
    while (jp->p < jp->end && (*jp->p == ' ' || *jp->p == '\t' || *jp->p == '\n' || *jp->p == '\r')) jp->p++;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static char *jstring(struct jparser *jp) {
    /* jp->p is at the opening quote */
    jp->p++;
    size_t cap = 16, len = 0;
    char *s = malloc(cap);
    if (!s) {
        jfail(jp, "out of memory");
        return NULL;
    }
    for (;;) {
        if (jp->p >= jp->end) {
            jfail(jp, "unterminated string");
            break;
        }
        unsigned char c = (unsigned char)*jp->p++;
        char outc[4];
        size_t outn = 1;
        if (c == '"') {
            s[len] = 0;
            return s;
        }
        if (c < 0x20) {
            jfail(jp, "control character in string");
            break;
        }
        if (c == '\\') {
            if (jp->p >= jp->end) {
                jfail(jp, "unterminated string");
                break;
            }
            char e = *jp->p++;
            switch (e) {
            case '"': outc[0] = '"'; break;
            case '\\': outc[0] = '\\'; break;
            case '/': outc[0] = '/'; break;
            case 'b': outc[0] = '\b'; break;
            case 'f': outc[0] = '\f'; break;
            case 'n': outc[0] = '\n'; break;
            case 'r': outc[0] = '\r'; break;
            case 't': outc[0] = '\t'; break;
            case 'u': {
                if (jp->end - jp->p < 4) {
                    jfail(jp, "bad \\u escape");
                    goto fail;
                }
                int cp = 0;
                for (int i = 0; i < 4; i++) {
                    int h = hexval(jp->p[i]);
                    if (h < 0) {
                        jfail(jp, "bad \\u escape");
                        goto fail;
                    }
                    cp = cp * 16 + h;
                }
                jp->p += 4;
                if (cp == 0 || (cp >= 0xd800 && cp <= 0xdfff)) {
                    jfail(jp, "unsupported \\u escape");
                    goto fail;
                }
                if (cp < 0x80) {
                    outc[0] = (char)cp;
                } else if (cp < 0x800) {
                    outc[0] = (char)(0xc0 | (cp >> 6));
                    outc[1] = (char)(0x80 | (cp & 0x3f));
                    outn = 2;
                } else {
                    outc[0] = (char)(0xe0 | (cp >> 12));
                    outc[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
                    outc[2] = (char)(0x80 | (cp & 0x3f));
                    outn = 3;
                }
                break;
            }
            default: jfail(jp, "bad escape in string"); goto fail;
            }
        } else {
            outc[0] = (char)c;
        }
        if (len + outn + 1 > cap) {
            while (len + outn + 1 > cap) cap *= 2;
            char *ns = realloc(s, cap);
            if (!ns) {
                jfail(jp, "out of memory");
                break;
            }
            s = ns;
        }
        memcpy(s + len, outc, outn);
        len += outn;
    }
fail:
    free(s);
    return NULL;
}

static int jvalue(struct jparser *jp, struct jval *v, int depth);

static int jnumber(struct jparser *jp, struct jval *v) {
    const char *start = jp->p;
    if (jp->p < jp->end && *jp->p == '-') jp->p++;
    if (jp->p >= jp->end || *jp->p < '0' || *jp->p > '9') {
        jfail(jp, "bad number");
        return -1;
    }
    if (*jp->p == '0') jp->p++;
    else
        while (jp->p < jp->end && *jp->p >= '0' && *jp->p <= '9') jp->p++;
    int plain = *start != '-';
    if (jp->p < jp->end && *jp->p == '.') {
        plain = 0;
        jp->p++;
        if (jp->p >= jp->end || *jp->p < '0' || *jp->p > '9') {
            jfail(jp, "bad number");
            return -1;
        }
        while (jp->p < jp->end && *jp->p >= '0' && *jp->p <= '9') jp->p++;
    }
    if (jp->p < jp->end && (*jp->p == 'e' || *jp->p == 'E')) {
        plain = 0;
        jp->p++;
        if (jp->p < jp->end && (*jp->p == '+' || *jp->p == '-')) jp->p++;
        if (jp->p >= jp->end || *jp->p < '0' || *jp->p > '9') {
            jfail(jp, "bad number");
            return -1;
        }
        while (jp->p < jp->end && *jp->p >= '0' && *jp->p <= '9') jp->p++;
    }
    v->t = J_NUM;
    if (plain && jp->p - start <= 16) {
        uint64_t u = 0;
        for (const char *q = start; q < jp->p; q++) u = u * 10 + (uint64_t)(*q - '0');
        if (u <= (1ull << 53) - 1) {
            v->is_uint = 1;
            v->u = u;
        }
    }
    return 0;
}

static int jliteral(struct jparser *jp, const char *word, struct jval *v, enum jtype t, uint64_t u) {
    size_t wl = strlen(word);
    if ((size_t)(jp->end - jp->p) < wl || memcmp(jp->p, word, wl) != 0) {
        jfail(jp, "unexpected character");
        return -1;
    }
    jp->p += wl;
    v->t = t;
    v->u = u;
    return 0;
}

static int jcontainer(struct jparser *jp, struct jval *v, int depth, int is_obj) {
    char close = is_obj ? '}' : ']';
    jp->p++;
    v->t = is_obj ? J_OBJ : J_ARR;
    size_t cap = 0;
    skip_ws(jp);
    if (jp->p < jp->end && *jp->p == close) {
        jp->p++;
        return 0;
    }
    for (;;) {
        if (v->n >= MAX_CHILDREN) {
            jfail(jp, "too many elements");
            return -1;
        }
        if (v->n == cap) {
            cap = cap ? cap * 2 : 8;
            struct jval *nk = realloc(v->kids, cap * sizeof(*nk));
            if (!nk) {
                jfail(jp, "out of memory");
                return -1;
            }
            v->kids = nk;
            if (is_obj) {
                char **nkeys = realloc(v->keys, cap * sizeof(*nkeys));
                if (!nkeys) {
                    jfail(jp, "out of memory");
                    return -1;
                }
                v->keys = nkeys;
            }
        }
        skip_ws(jp);
        char *key = NULL;
        if (is_obj) {
            if (jp->p >= jp->end || *jp->p != '"') {
                jfail(jp, "expected a string key");
                return -1;
            }
            key = jstring(jp);
            if (!key) return -1;
            for (size_t i = 0; i < v->n; i++) {
                if (strcmp(v->keys[i], key) == 0) {
                    jfail(jp, "duplicate key \"%.40s\"", key);
                    free(key);
                    return -1;
                }
            }
            skip_ws(jp);
            if (jp->p >= jp->end || *jp->p != ':') {
                free(key);
                jfail(jp, "expected ':'");
                return -1;
            }
            jp->p++;
        }
        struct jval *kid = &v->kids[v->n];
        memset(kid, 0, sizeof(*kid));
        if (is_obj) v->keys[v->n] = key;
        v->n++; /* counted before parsing so that jfree releases a partly parsed child */
        if (jvalue(jp, kid, depth + 1) < 0) return -1;
        skip_ws(jp);
        if (jp->p < jp->end && *jp->p == ',') {
            jp->p++;
            continue;
        }
        if (jp->p < jp->end && *jp->p == close) {
            jp->p++;
            return 0;
        }
        jfail(jp, is_obj ? "expected ',' or '}'" : "expected ',' or ']'");
        return -1;
    }
}

static int jvalue(struct jparser *jp, struct jval *v, int depth) {
    if (depth > MAX_DEPTH) {
        jfail(jp, "nested too deeply");
        return -1;
    }
    skip_ws(jp);
    if (jp->p >= jp->end) {
        jfail(jp, "unexpected end of line");
        return -1;
    }
    switch (*jp->p) {
    case '{': return jcontainer(jp, v, depth, 1);
    case '[': return jcontainer(jp, v, depth, 0);
    case '"':
        v->t = J_STR;
        v->s = jstring(jp);
        if (!v->s) {
            v->t = J_NULL;
            return -1;
        }
        return 0;
    case 't': return jliteral(jp, "true", v, J_BOOL, 1);
    case 'f': return jliteral(jp, "false", v, J_BOOL, 0);
    case 'n': return jliteral(jp, "null", v, J_NULL, 0);
    default:
        if (*jp->p == '-' || (*jp->p >= '0' && *jp->p <= '9')) return jnumber(jp, v);
        jfail(jp, "unexpected character");
        return -1;
    }
}

/* ============================================================================================ */
/* Commands                                                                                     */
/* ============================================================================================ */

int l2_ifname_valid(const char *s) {
    size_t len = strlen(s);
    if (len == 0 || len >= L2_IFNAMSIZ) return 0;
    if (strcmp(s, ".") == 0 || strcmp(s, "..") == 0) return 0;
    for (const char *p = s; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '/' || c == ':' || c <= ' ' || c >= 0x7f) return 0;
    }
    return 1;
}

static const struct jval *jget(const struct jval *obj, const char *key) {
    for (size_t i = 0; i < obj->n; i++)
        if (strcmp(obj->keys[i], key) == 0) return &obj->kids[i];
    return NULL;
}

static int ip_qsort_cmp(const void *a, const void *b) { return l2_ip_cmp(a, b); }

static int cmd_error(char *err, size_t errlen, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* Every key of obj must be one of allowed (NULL-terminated). */
static int check_keys(const struct jval *obj, const char *const *allowed, const char *cmd, char *err,
                      size_t errlen) {
    for (size_t i = 0; i < obj->n; i++) {
        int ok = 0;
        for (const char *const *a = allowed; *a; a++)
            if (strcmp(obj->keys[i], *a) == 0) ok = 1;
        if (!ok) return cmd_error(err, errlen, "%s: unknown field \"%.40s\"", cmd, obj->keys[i]);
    }
    return 0;
}

static int get_uint(const struct jval *obj, const char *key, int required, uint64_t min, uint64_t max,
                    uint64_t dflt, uint64_t *out, const char *cmd, char *err, size_t errlen) {
    const struct jval *v = jget(obj, key);
    if (!v) {
        if (required) return cmd_error(err, errlen, "%s: missing field \"%s\"", cmd, key);
        *out = dflt;
        return 0;
    }
    if (v->t != J_NUM || !v->is_uint || v->u < min || v->u > max)
        return cmd_error(err, errlen, "%s: \"%s\" must be an integer in %llu..%llu", cmd, key,
                         (unsigned long long)min, (unsigned long long)max);
    *out = v->u;
    return 0;
}

static int get_ifname(const struct jval *v, char out[L2_IFNAMSIZ], const char *cmd, const char *what, char *err,
                      size_t errlen) {
    if (v->t != J_STR || !l2_ifname_valid(v->s))
        return cmd_error(err, errlen, "%s: %s must be an interface name (1..15 characters, no '/', ':' or spaces)",
                         cmd, what);
    snprintf(out, L2_IFNAMSIZ, "%s", v->s);
    return 0;
}

static int get_ip(const struct jval *v, struct l2_ip *ip, const char *cmd, char *err, size_t errlen) {
    if (v->t != J_STR) return cmd_error(err, errlen, "%s: an IP address must be a string", cmd);
    if (l2_ip_parse(v->s, ip) < 0) return cmd_error(err, errlen, "%s: \"%.60s\" is not an IP address", cmd, v->s);
    const char *why = l2_ip_unusable(ip);
    if (why) return cmd_error(err, errlen, "%s: %.60s: %s", cmd, v->s, why);
    return 0;
}

static int parse_set(const struct jval *root, struct l2_cmd *cmd, char *err, size_t errlen) {
    static const char *const keys[] = {"cmd", "id", "interfaces", "ips", NULL};
    if (check_keys(root, keys, "set", err, errlen) < 0) return -1;
    const struct jval *ifs = jget(root, "interfaces");
    const struct jval *ips = jget(root, "ips");
    if (!ifs || ifs->t != J_ARR) return cmd_error(err, errlen, "set: \"interfaces\" must be an array");
    if (!ips || ips->t != J_OBJ) return cmd_error(err, errlen, "set: \"ips\" must be an object");
    if (ifs->n > L2_MAX_IFACES) return cmd_error(err, errlen, "set: more than %d interfaces", L2_MAX_IFACES);
    for (size_t i = 0; i < ifs->n; i++) {
        if (get_ifname(&ifs->kids[i], cmd->ifaces[i].name, "set", "every interface", err, errlen) < 0) return -1;
        for (size_t j = 0; j < i; j++)
            if (strcmp(cmd->ifaces[j].name, cmd->ifaces[i].name) == 0)
                return cmd_error(err, errlen, "set: interface %s listed twice", cmd->ifaces[i].name);
        cmd->n_ifaces = i + 1;
    }
    size_t total = 0;
    for (size_t k = 0; k < ips->n; k++) {
        size_t idx = cmd->n_ifaces;
        for (size_t i = 0; i < cmd->n_ifaces; i++)
            if (strcmp(cmd->ifaces[i].name, ips->keys[k]) == 0) idx = i;
        if (idx == cmd->n_ifaces)
            return cmd_error(err, errlen, "set: \"ips\" names %.40s, which is not in \"interfaces\"", ips->keys[k]);
        const struct jval *list = &ips->kids[k];
        if (list->t != J_ARR) return cmd_error(err, errlen, "set: ips.%s must be an array", ips->keys[k]);
        total += list->n;
        if (total > L2_MAX_IPS) return cmd_error(err, errlen, "set: more than %d IPs", L2_MAX_IPS);
        struct l2_cmd_iface *ci = &cmd->ifaces[idx];
        if (list->n == 0) continue;
        ci->ips = calloc(list->n, sizeof(struct l2_ip));
        if (!ci->ips) return cmd_error(err, errlen, "set: out of memory");
        for (size_t j = 0; j < list->n; j++)
            if (get_ip(&list->kids[j], &ci->ips[j], "set", err, errlen) < 0) return -1;
        ci->n_ips = list->n;
        qsort(ci->ips, ci->n_ips, sizeof(struct l2_ip), ip_qsort_cmp);
        for (size_t j = 1; j < ci->n_ips; j++) {
            if (l2_ip_cmp(&ci->ips[j - 1], &ci->ips[j]) == 0) {
                char b[64];
                l2_ip_format(&ci->ips[j], b, sizeof(b));
                return cmd_error(err, errlen, "set: %s listed twice for %s", b, ci->name);
            }
        }
    }
    return 0;
}

int l2_cmd_parse(const char *line, size_t len, struct l2_cmd *cmd, char *err, size_t errlen) {
    memset(cmd, 0, sizeof(*cmd));
    struct jparser jp = {line, line + len, err, errlen, 0};
    struct jval root;
    memset(&root, 0, sizeof(root));
    int rc = -1;
    if (jvalue(&jp, &root, 0) < 0) goto out;
    skip_ws(&jp);
    if (jp.p != jp.end) {
        jfail(&jp, "trailing characters after the command");
        goto out;
    }
    if (root.t != J_OBJ) {
        cmd_error(err, errlen, "a command must be a JSON object");
        goto out;
    }
    const struct jval *id = jget(&root, "id");
    if (id) {
        if (id->t != J_NUM || !id->is_uint) {
            cmd_error(err, errlen, "\"id\" must be a non-negative integer");
            goto out;
        }
        cmd->has_id = 1;
        cmd->id = id->u;
    }
    const struct jval *c = jget(&root, "cmd");
    if (!c || c->t != J_STR) {
        cmd_error(err, errlen, "missing string field \"cmd\"");
        goto out;
    }
    uint64_t u;
    if (strcmp(c->s, "set") == 0) {
        cmd->kind = L2_CMD_SET;
        if (parse_set(&root, cmd, err, errlen) < 0) goto out;
    } else if (strcmp(c->s, "announce") == 0) {
        static const char *const keys[] = {"cmd", "id", "ip", "iface", "count", "intervalMs", NULL};
        cmd->kind = L2_CMD_ANNOUNCE;
        if (check_keys(&root, keys, "announce", err, errlen) < 0) goto out;
        const struct jval *ip = jget(&root, "ip");
        if (!ip) {
            cmd_error(err, errlen, "announce: missing field \"ip\"");
            goto out;
        }
        if (get_ip(ip, &cmd->ip, "announce", err, errlen) < 0) goto out;
        const struct jval *ifc = jget(&root, "iface");
        if (ifc && get_ifname(ifc, cmd->iface, "announce", "\"iface\"", err, errlen) < 0) goto out;
        if (get_uint(&root, "count", 0, 1, 1000, 1, &u, "announce", err, errlen) < 0) goto out;
        cmd->count = (uint32_t)u;
        if (get_uint(&root, "intervalMs", 0, 0, 3600000, 1000, &u, "announce", err, errlen) < 0) goto out;
        cmd->interval_ms = (uint32_t)u;
    } else if (strcmp(c->s, "probe") == 0) {
        static const char *const keys[] = {"cmd", "id", "ip", "iface", "timeoutMs", "count", NULL};
        cmd->kind = L2_CMD_PROBE;
        if (check_keys(&root, keys, "probe", err, errlen) < 0) goto out;
        const struct jval *ip = jget(&root, "ip");
        const struct jval *ifc = jget(&root, "iface");
        if (!ip || !ifc) {
            cmd_error(err, errlen, "probe: needs \"ip\" and \"iface\"");
            goto out;
        }
        if (get_ip(ip, &cmd->ip, "probe", err, errlen) < 0) goto out;
        if (get_ifname(ifc, cmd->iface, "probe", "\"iface\"", err, errlen) < 0) goto out;
        if (get_uint(&root, "timeoutMs", 1, 1, 60000, 0, &u, "probe", err, errlen) < 0) goto out;
        cmd->timeout_ms = (uint32_t)u;
        if (get_uint(&root, "count", 0, 1, 10, 1, &u, "probe", err, errlen) < 0) goto out;
        cmd->count = (uint32_t)u;
    } else if (strcmp(c->s, "stats") == 0 || strcmp(c->s, "quit") == 0) {
        static const char *const keys[] = {"cmd", "id", NULL};
        cmd->kind = c->s[0] == 's' ? L2_CMD_STATS : L2_CMD_QUIT;
        if (check_keys(&root, keys, c->s, err, errlen) < 0) goto out;
    } else {
        cmd_error(err, errlen, "unknown command \"%.40s\"", c->s);
        goto out;
    }
    rc = 0;
out:
    jfree(&root);
    if (rc < 0) {
        int has_id = cmd->has_id;
        uint64_t idv = cmd->id;
        l2_cmd_free(cmd);
        cmd->has_id = has_id;
        cmd->id = idv;
    }
    return rc;
}

void l2_cmd_free(struct l2_cmd *cmd) {
    for (size_t i = 0; i < L2_MAX_IFACES; i++) free(cmd->ifaces[i].ips);
    memset(cmd, 0, sizeof(*cmd));
}

/* ============================================================================================ */
/* JSON output                                                                                  */
/* ============================================================================================ */

void l2_str_init(struct l2_str *s) { memset(s, 0, sizeof(*s)); }

void l2_str_free(struct l2_str *s) {
    free(s->buf);
    memset(s, 0, sizeof(*s));
}

static void str_append(struct l2_str *s, const char *p, size_t n) {
    if (s->oom) return;
    if (s->len + n + 1 > s->cap) {
        size_t cap = s->cap ? s->cap : 256;
        while (s->len + n + 1 > cap) cap *= 2;
        char *nb = realloc(s->buf, cap);
        if (!nb) {
            s->oom = 1;
            return;
        }
        s->buf = nb;
        s->cap = cap;
    }
    memcpy(s->buf + s->len, p, n);
    s->len += n;
    s->buf[s->len] = 0;
}

void l2_str_raw(struct l2_str *s, const char *text) { str_append(s, text, strlen(text)); }

void l2_str_json(struct l2_str *s, const char *text) {
    str_append(s, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        char esc[8];
        if (*p == '"' || *p == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*p;
            str_append(s, esc, 2);
        } else if (*p < 0x20 || *p == 0x7f) {
            snprintf(esc, sizeof(esc), "\\u%04x", *p);
            str_append(s, esc, 6);
        } else if (*p >= 0x80) {
            str_append(s, "?", 1); /* never emit invalid UTF-8 */
        } else {
            str_append(s, (const char *)p, 1);
        }
    }
    str_append(s, "\"", 1);
}

void l2_str_u64(struct l2_str *s, uint64_t v) {
    char b[24];
    snprintf(b, sizeof(b), "%llu", (unsigned long long)v);
    l2_str_raw(s, b);
}

void l2_str_i64(struct l2_str *s, int64_t v) {
    char b[24];
    snprintf(b, sizeof(b), "%lld", (long long)v);
    l2_str_raw(s, b);
}
