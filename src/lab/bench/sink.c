// The bench's sink: counts and drops every frame but ARP (so the router can resolve it) and
// IPv4 ICMP (the latency probe's pings, answered by the sink's kernel) in native XDP, before
// the sink's kernel stack spends anything on it. The count is the veth's own
// rx_queue_N_xdp_drops (ethtool -S).
#include <linux/bpf.h>

#define SEC(name) __attribute__((section(name), used))

SEC("xdp")
int sink(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *end = (void *)(long)ctx->data_end;
    unsigned char *eth = data;
    if (data + 14 > end)
        return XDP_DROP;
    // EtherType 0x0806: ARP goes to the stack.
    if (eth[12] == 0x08 && eth[13] == 0x06)
        return XDP_PASS;
    // IPv4 (0x0800) with protocol 1: ICMP goes to the stack.
    if (data + 34 <= end && eth[12] == 0x08 && eth[13] == 0x00 && eth[23] == 1)
        return XDP_PASS;
    return XDP_DROP;
}

char _license[] SEC("license") = "GPL";
