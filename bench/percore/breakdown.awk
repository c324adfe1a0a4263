# Groups `perf report --no-children --sort sym --stdio` lines of the router core into where
# its time goes. Usage: perf report -i DATA --no-children --sort sym --stdio | awk -f breakdown.awk
/^ +[0-9.]+%/ {
    p = $1; sub("%", "", p); s = $0
    if (s ~ /\[\.\]/) {
        if (s ~ /clock_gettime|sub_timespec|Instant/) k = "vgate: clock reads"
        else if (s ~ /fast::run|pipeline::|nat::|rewrite|l2_input|ip4_input|route::/) k = "vgate: pipeline"
        else if (s ~ /rx_burst|maintain|tx_burst|refill|reap/) k = "vgate: ring I/O"
        else if (s ~ /libc_sendto|libc_recvfrom|__poll/) k = "vgate: syscall stubs"
        else k = "vgate: poll loop and the rest"
    } else {
        if (s ~ /xsk_generic_xmit|xsk_sendmsg|sys_sendto|sock_alloc_send|alloc_skb|sock_wfree|xsk_destruct|skb_release|kmem_cache|kmalloc|dev_direct_xmit|veth_xmit|skb_copy|memcpy|security_socket|fdget|fput|do_syscall|entry_SYSCALL|syscall_|skb_defer_free/) k = "kernel: copy-mode TX (sendto: skb, copy, veth xmit)"
        else if (s ~ /veth_poll|veth_xdp_rcv|net_rx_action|napi|bpf_prog|xdp_do|eth_type_trans|skb_pp_cow|local_bh|softirq/) k = "kernel: the sink's veth NAPI and XDP drop (in vgate's softirq)"
        else k = "kernel: other"
    }
    c[k] += p
}
END { for (k in c) printf "%5.1f %%  %s\n", c[k], k }
