// vgate's XDP program for a port with a `host_address`: the node's kernel keeps that one
// address on the same interface (VPP linux-cp's idea, without a TAP). ARP for it and IPv4 to
// it go to the kernel stack (XDP_PASS: BGP, BFD, SSH); every other frame goes to vgate's
// AF_XDP socket on the receiving queue.
//
// Fate-sharing: host frames pass only while vgate has a socket on the queue. When vgate
// dies, the kernel removes its sockets from `xsks_map`, this program then drops everything,
// and the node's BGP and BFD sessions go down with its data plane: upstream routers
// withdraw its routes instead of sending traffic into a dead forwarder.
//
// Built by build.rs with `clang -target bpf -g -O2`; BTF-defined maps, no libbpf headers.
#include <linux/bpf.h>

#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
static long (*bpf_redirect_map)(void *map, __u64 key, __u64 flags) = (void *)51;

struct {
    __uint(type, BPF_MAP_TYPE_XSKMAP);
    __uint(max_entries, 64);
    __type(key, __u32);
    __type(value, __u32);
} xsks_map SEC(".maps");

// Key 0: the host address in network byte order; 0 passes nothing.
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u32);
} host_addr SEC(".maps");

static __attribute__((always_inline)) int for_host(void *data, void *end, __u32 host)
{
    unsigned char *eth = data;
    if (data + 14 > end)
        return 0;
    // ARP (0x0806), Ethernet/IPv4: the target address at offset 24 of the ARP packet.
    if (eth[12] == 0x08 && eth[13] == 0x06) {
        if (data + 14 + 28 > end)
            return 0;
        return *(__u32 *)(eth + 14 + 24) == host;
    }
    // IPv4 (0x0800): the destination address at offset 16 of the header.
    if (eth[12] == 0x08 && eth[13] == 0x00) {
        if (data + 14 + 20 > end)
            return 0;
        return *(__u32 *)(eth + 14 + 16) == host;
    }
    return 0;
}

SEC("xdp")
int vgate_host(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *end = (void *)(long)ctx->data_end;
    __u32 queue = ctx->rx_queue_index;
    __u32 zero = 0;
    __u32 *host = bpf_map_lookup_elem(&host_addr, &zero);
    if (host && *host && for_host(data, end, *host)) {
        if (!bpf_map_lookup_elem(&xsks_map, &queue))
            return XDP_DROP;
        return XDP_PASS;
    }
    return bpf_redirect_map(&xsks_map, queue, XDP_DROP);
}

char _license[] SEC("license") = "GPL";
