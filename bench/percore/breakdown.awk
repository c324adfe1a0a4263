# Groups `perf report --no-children --sort sym --stdio` lines of the router core (vgate's or
# the kernel's) into where its time goes, as shares of all samples of that CPU.
#
#   perf report -i DATA --no-children --sort sym --stdio | awk -f bench/percore/breakdown.awk
#
# DATA from `vgate lab bench --perf DIR` (one file per scenario, router and run, recorded
# during the 50 % load trial) or from `PERF=... bench/percore/run.sh`. Times per packet: a
# share times the trial's length (--duration, 5 s by default) divided by the packets it
# delivered. vgate's worker busy-polls, so its "poll loop" holds its idle spin; the kernel's
# idle is "idle".
/^ +[0-9.]+%/ {
    p = $1; sub("%", "", p); s = $0
    if (s ~ /\[\.\]/) {
        if (s ~ /clock_gettime|sub_timespec|Instant/) k = "vgate: clock reads"
        else if (s ~ /WorkerState::sync|PolicyState::sync|arc_swap/) k = "vgate: configuration snapshot checks"
        else if (s ~ /fast::run|pipeline::|nat::|rewrite|l2_input|ip4_input|ip6|route::|geneve/) k = "vgate: pipeline"
        else if (s ~ /rx_burst|maintain|tx_burst|refill|reap/) k = "vgate: ring I/O"
        else if (s ~ /libc_sendto|libc_recvfrom|__poll|sendto/) k = "vgate: syscall stubs"
        else k = "vgate: poll loop (with the idle spin) and the rest"
    } else if (s ~ /\[k\]/) {
        if (s ~ /safe_halt|default_idle|cpuidle|do_idle|poll_idle|acpi_idle|cpu_startup_entry/) k = "idle"
        else if (s ~ /xsk|sock_alloc_send|sock_wfree/) k = "kernel: AF_XDP copy-mode transmit (xsk, skb accounting)"
        else if (s ~ /alloc_skb|build_skb|kmem_cache|kmalloc|kfree|__slab_free|skb_release|consume_skb|skb_defer_free|memcpy|skb_copy|skb_pp_cow|page_pool/) k = "kernel: skb allocation, copy and free"
        else if (s ~ /veth_xmit|dev_direct_xmit|dev_queue_xmit|dev_hard_start_xmit|dev_forward_skb|netif_skb_features|validate_xmit|sch_direct|__netif_rx|enqueue_to_backlog/) k = "kernel: veth transmit"
        else if (s ~ /veth_poll|veth_xdp_rcv|bpf_prog|xdp_do|net_rx_action|napi|sk_skb_reason_drop/) k = "kernel: veth NAPI and XDP (the sink's drop; the kernel router's receive)"
        else if (s ~ /ip_|nf_|ipt_|fib_|conntrack|nat|l4proto|siphash|neigh|dst_|process_backlog|netif_receive|rps|eth_type_trans|udp_|csum/) k = "kernel: IPv4 forwarding, netfilter, conntrack"
        else if (s ~ /entry_SYSCALL|do_syscall|syscall_|__x64_sys|__sys_|fdget|fput|security_socket|sock_sendmsg/) k = "kernel: system call entry and exit"
        else if (s ~ /softirq|local_bh|irq_exit|smp_call|ipi/) k = "kernel: softirq and IPI"
        else k = "kernel: other"
    } else {
        k = "other"
    }
    c[k] += p
}
END { for (k in c) printf "%5.1f %%  %s\n", c[k], k }
