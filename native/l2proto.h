/*
 * ironlb-l2: pure, I/O-free pieces of the L2 helper (packet building and parsing, the ICMPv6
 * checksum, classic BPF programs, the JSON command parser and JSON output helpers).
 * Everything here is unit-tested by native/test/test_l2proto.c.
 */
#ifndef IRONLB_L2PROTO_H
#define IRONLB_L2PROTO_H

#include <linux/filter.h>
#include <stddef.h>
#include <stdint.h>

#define L2_ETH_HLEN 14
#define L2_ETHERTYPE_ARP 0x0806
#define L2_ETHERTYPE_IPV6 0x86dd
#define L2_ARP_FRAME_LEN 60 /* 42 bytes of Ethernet + ARP, padded to the Ethernet minimum */
#define L2_NA_FRAME_LEN 86  /* 14 + 40 + 24 + 8 (target link-layer address option) */
#define L2_NS_FRAME_MAX 86  /* with a source link-layer address option */

#define L2_ARP_REQUEST 1
#define L2_ARP_REPLY 2

#define L2_ICMP6_NS 135
#define L2_ICMP6_NA 136
#define L2_NA_FLAG_ROUTER 0x80
#define L2_NA_FLAG_SOLICITED 0x40
#define L2_NA_FLAG_OVERRIDE 0x20

#define L2_IFNAMSIZ 16 /* IFNAMSIZ, including the NUL */
#define L2_MAX_IFACES 64
#define L2_MAX_IPS 65536      /* per set command, all interfaces together */
#define L2_MAX_LINE (8u << 20) /* longest accepted command line (65536 IPv6 addresses fit) */

struct l2_ip {
    uint8_t family; /* 4 or 6 */
    uint8_t addr[16]; /* IPv4 uses the first 4 bytes; the rest is zero */
};

/* ---- addresses ---------------------------------------------------------------------------- */

/* Parses a dotted IPv4 or an IPv6 address (inet_pton rules). 0 on success, -1 otherwise. */
int l2_ip_parse(const char *s, struct l2_ip *out);
/* Formats into buf (at least 46 bytes): dotted IPv4 or RFC 5952 IPv6. */
void l2_ip_format(const struct l2_ip *ip, char *buf, size_t len);
/* Orders by family, then address bytes (for sorting and bsearch). */
int l2_ip_cmp(const struct l2_ip *a, const struct l2_ip *b);
/* NULL when the address may be owned (a unicast address), else the reason. */
const char *l2_ip_unusable(const struct l2_ip *ip);
/* "aa:bb:cc:dd:ee:ff" (lower case) into buf (at least 18 bytes). */
void l2_mac_format(const uint8_t mac[6], char *buf);
int l2_mac_is_multicast(const uint8_t mac[6]);
int l2_mac_is_zero(const uint8_t mac[6]);
/* ff02::1:ffXX:XXXX for addr, and its Ethernet group 33:33:ff:XX:XX:XX. */
void l2_solicited_node(const uint8_t addr[16], uint8_t group[16]);
void l2_ipv6_multicast_mac(const uint8_t group[16], uint8_t mac[6]);

/* ---- checksum ----------------------------------------------------------------------------- */

/* ICMPv6 checksum over the pseudo-header (src, dst, upper-layer length, next header 58) and
 * `len` bytes of the message (with its checksum field as it is). Returns it in host order; a
 * message whose checksum field is correct yields 0. */
uint16_t l2_icmp6_checksum(const uint8_t src[16], const uint8_t dst[16], const uint8_t *msg, size_t len);

/* ---- frames we send ----------------------------------------------------------------------- */

/* An Ethernet + ARP frame (htype 1, ptype 0x0800), padded to 60 bytes. Returns 60. */
size_t l2_build_arp(uint8_t *buf, uint16_t oper, const uint8_t eth_dst[6], const uint8_t eth_src[6],
                    const uint8_t sha[6], const uint8_t spa[4], const uint8_t tha[6], const uint8_t tpa[4]);

/* A Neighbor Advertisement with a target link-layer address option (= eth_src), hop limit 255,
 * sourced from `ip_src`. Returns 86. */
size_t l2_build_na(uint8_t *buf, const uint8_t eth_dst[6], const uint8_t eth_src[6], const uint8_t ip_src[16],
                   const uint8_t ip_dst[16], const uint8_t target[16], uint8_t flags);

/* A Neighbor Solicitation to ip_dst (eth dst is derived when ip_dst is multicast, else eth_dst is
 * used). With sllao != NULL a source link-layer address option is added. Returns 78 or 86. */
size_t l2_build_ns(uint8_t *buf, const uint8_t eth_dst[6], const uint8_t eth_src[6], const uint8_t ip_src[16],
                   const uint8_t ip_dst[16], const uint8_t target[16], const uint8_t *sllao);

/* ---- frames we receive -------------------------------------------------------------------- */

struct l2_arp {
    uint8_t eth_dst[6], eth_src[6];
    uint16_t oper;
    uint8_t sha[6], spa[4], tha[6], tpa[4];
};

/* Validates an Ethernet + ARP frame (type 0x0806, 1/0x0800/6/4, oper 1 or 2, sender MAC not
 * multicast). 0 on success, else a negative L2_E* code. */
int l2_parse_arp(const uint8_t *frame, size_t len, struct l2_arp *out);

struct l2_ndp {
    uint8_t eth_dst[6], eth_src[6];
    uint8_t src[16], dst[16];
    uint8_t type; /* 135 NS, 136 NA */
    uint8_t flags; /* NA: R/S/O */
    uint8_t target[16];
    int has_lla; /* NS: source LLA option; NA: target LLA option */
    uint8_t lla[6];
};

/* Validates an Ethernet + IPv6 + NS/NA frame per RFC 4861 7.1.1 / 7.1.2: next header 58 (no
 * extension headers), hop limit 255, code 0, correct checksum, ICMP length >= 24, option lengths
 * non-zero and in bounds, target not multicast; NS from :: must go to a solicited-node group and
 * carry no SLLAO; a multicast NA must not have S set. 0 on success, else a negative L2_E* code. */
int l2_parse_ndp(const uint8_t *frame, size_t len, struct l2_ndp *out);

enum {
    L2_OK = 0,
    L2_ESHORT = -1,
    L2_ETYPE = -2,
    L2_EHDR = -3,
    L2_EOPER = -4,
    L2_EMAC = -5,
    L2_EHOP = -6,
    L2_ECSUM = -7,
    L2_ECODE = -8,
    L2_EOPT = -9,
    L2_ETARGET = -10,
    L2_EDAD = -11,
};
const char *l2_strerror(int code);

/* ---- classic BPF programs ------------------------------------------------------------------ */

#define L2_BPF_MAX 4096 /* BPF_MAXINSNS */

/* Common prologue of every filter: drop VLAN-tagged frames and pkttype OTHERHOST / OUTGOING. */
/* ARP socket filter: well-formed Ethernet/IPv4 ARP and (spa in v4s, or oper 1 with tpa in v4s).
 * v4s are 4-byte addresses. When the list is too long for one program, the filter accepts every
 * well-formed ARP frame (user space matches). Returns the number of instructions written. */
size_t l2_bpf_arp(struct sock_filter *out, const uint8_t (*v4s)[4], size_t n);
/* IPv6 socket filter: next header 58, hop limit 255, ICMPv6 type 135 or 136 and (target's last
 * 32 bits in the list, or, for NS, the source's last 32 bits in the list). Same fall-back. */
size_t l2_bpf_ndp(struct sock_filter *out, const uint8_t (*v6s)[16], size_t n);
/* Probe filters: ARP frames with spa == ip or (oper 1, tpa == ip); NS/NA with target == ip. */
size_t l2_bpf_probe_arp(struct sock_filter *out, const uint8_t ip[4]);
size_t l2_bpf_probe_ndp(struct sock_filter *out, const uint8_t ip[16]);

/* ---- commands ----------------------------------------------------------------------------- */

enum l2_cmd_kind { L2_CMD_SET = 1, L2_CMD_ANNOUNCE, L2_CMD_PROBE, L2_CMD_STATS, L2_CMD_QUIT };

struct l2_cmd_iface {
    char name[L2_IFNAMSIZ];
    size_t n_ips;
    struct l2_ip *ips; /* malloc'd, sorted, no duplicates */
};

struct l2_cmd {
    enum l2_cmd_kind kind;
    int has_id;
    uint64_t id; /* optional "id" (integer 0..2^53-1), echoed in the answer */
    /* set */
    size_t n_ifaces;
    struct l2_cmd_iface ifaces[L2_MAX_IFACES];
    /* announce, probe */
    struct l2_ip ip;
    char iface[L2_IFNAMSIZ]; /* announce: optional (empty = every interface owning ip); probe: required */
    uint32_t count;          /* announce: frames rounds (default 1); probe: probes sent (default 1) */
    uint32_t interval_ms;    /* announce: between rounds (default 1000) */
    uint32_t timeout_ms;     /* probe */
};

/* Parses one command line. On error returns -1 and writes a message into err; cmd->has_id/id are
 * still set when the line had a valid id, so the error can be correlated. Free with l2_cmd_free. */
int l2_cmd_parse(const char *line, size_t len, struct l2_cmd *cmd, char *err, size_t errlen);
void l2_cmd_free(struct l2_cmd *cmd);
/* Linux interface-name rules (dev_valid_name): 1..15 bytes, not "." or "..", no '/', ':' or space. */
int l2_ifname_valid(const char *s);

/* ---- JSON output ------------------------------------------------------------------------- */

struct l2_str {
    char *buf;
    size_t len, cap;
    int oom;
};
void l2_str_init(struct l2_str *s);
void l2_str_free(struct l2_str *s);
void l2_str_raw(struct l2_str *s, const char *text);
void l2_str_json(struct l2_str *s, const char *text); /* a quoted, escaped JSON string */
void l2_str_u64(struct l2_str *s, uint64_t v);
void l2_str_i64(struct l2_str *s, int64_t v);

#endif
