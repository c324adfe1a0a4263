//! AF_XDP ports on veth pairs between network namespaces, against real kernel peers.
//!
//! Root only: every test prints why and returns when not root, when the kernel has no AF_XDP,
//! or when `ip` is missing. Each test builds its own namespaces and veths, named after the
//! process id, and a guard deletes them (and so the veths inside) also when the test fails.
//! Peers inject and capture with AF_PACKET sockets bound to an experimental ethertype, so
//! unrelated kernel traffic never enters the assertions.

mod common;

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Command;
use std::time::{Duration, Instant};

use vgate::io::afxdp::{
    AttachedMode, BusyPoll, BusyPollState, CopyReason, Umem, UmemConfig, XdpMode, XskConfig,
    XskError, XskPort, ZeroCopy, detach_xdp, raise_memlock, xdp_attached,
};
use vgate::io::{Desc, FramePool, Port, RX_HEADROOM};

/// IEEE 802 local experimental ethertype 1.
const ETHERTYPE: u16 = 0x88b5;
const NFRAMES: u32 = 4096;
const FILL: u32 = 1024;
const WAIT: Duration = Duration::from_secs(5);

macro_rules! require_root_and_af_xdp {
    () => {
        let _ = env_logger::builder().is_test(true).try_init();
        if let Some(why) = common::af_xdp_skip_reason() {
            common::skip(&why);
            return;
        }
    };
}

fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A network namespace deleted on drop (with every interface in it).
struct Netns {
    name: String,
}

impl Netns {
    fn new(tag: &str) -> Netns {
        let name = format!("vgx{}{tag}", std::process::id());
        ip(&["netns", "add", &name]);
        let ns = Netns { name };
        // No IPv6: keeps router solicitations and MLD reports off the links.
        ip(&[
            "netns",
            "exec",
            &ns.name,
            "sysctl",
            "-qw",
            "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv6.conf.default.disable_ipv6=1",
        ]);
        ns
    }

    /// `ip -n NS link show dev IF` output.
    fn link_show(&self, ifname: &str) -> String {
        ip(&["-n", &self.name, "link", "show", "dev", ifname])
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// A veth pair `a` (in `ns_a`, MAC `mac_a`) <-> `b` (in `ns_b`), both up.
fn veth(ns_a: &Netns, a: &str, mac_a: [u8; 6], ns_b: &Netns, b: &str, mac_b: [u8; 6], queues: u32) {
    let q = queues.to_string();
    let (ma, mb) = (mac_str(mac_a), mac_str(mac_b));
    ip(&[
        "link",
        "add",
        a,
        "netns",
        &ns_a.name,
        "address",
        &ma,
        "numtxqueues",
        &q,
        "numrxqueues",
        &q,
        "type",
        "veth",
        "peer",
        "name",
        b,
        "netns",
        &ns_b.name,
        "address",
        &mb,
        "numtxqueues",
        &q,
        "numrxqueues",
        &q,
    ]);
    ip(&["-n", &ns_a.name, "link", "set", a, "up"]);
    ip(&["-n", &ns_b.name, "link", "set", b, "up"]);
}

fn mac_str(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The current thread joins network namespace `name`.
fn enter(name: &str) {
    let f = File::open(format!("/run/netns/{name}")).expect("open netns");
    // SAFETY: valid namespace fd; affects only the calling thread.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns {name}: {}", std::io::Error::last_os_error());
}

/// Run `f` on a fresh thread inside namespace `ns` (never on the harness's thread, whose
/// namespace must not change).
fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        match s
            .spawn(|| {
                enter(ns);
                f()
            })
            .join()
        {
            Ok(v) => v,
            Err(p) => std::panic::resume_unwind(p),
        }
    })
}

/// An AF_PACKET socket on `ifname` in `ns` for our ethertype: sends raw frames out of the
/// interface and receives only frames arriving on it.
fn packet_socket(ns: &Netns, ifname: &str) -> OwnedFd {
    let ifname = ifname.to_string();
    in_netns(&ns.name, || {
        let proto = ETHERTYPE.to_be();
        // SAFETY: plain syscalls with valid arguments.
        unsafe {
            let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, proto as i32);
            assert!(
                fd >= 0,
                "AF_PACKET socket: {}",
                std::io::Error::last_os_error()
            );
            let fd = OwnedFd::from_raw_fd(fd);
            let cname = std::ffi::CString::new(ifname.clone()).unwrap();
            let idx = libc::if_nametoindex(cname.as_ptr());
            assert_ne!(idx, 0, "no interface {ifname}");
            let mut sll: libc::sockaddr_ll = std::mem::zeroed();
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_protocol = proto;
            sll.sll_ifindex = idx as i32;
            let rc = libc::bind(
                fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            );
            assert_eq!(rc, 0, "bind AF_PACKET: {}", std::io::Error::last_os_error());
            fd
        }
    })
}

fn send_frame(fd: &OwnedFd, frame: &[u8]) {
    // SAFETY: valid buffer.
    let n = unsafe { libc::send(fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
    assert_eq!(
        n,
        frame.len() as isize,
        "send: {}",
        std::io::Error::last_os_error()
    );
}

/// Receive up to `count` frames, waiting at most `WAIT` in total; fewer on timeout.
fn recv_frames(fd: &OwnedFd, count: usize) -> Vec<Vec<u8>> {
    let deadline = Instant::now() + WAIT;
    let mut got = Vec::new();
    let mut buf = vec![0u8; 9000];
    while got.len() < count {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut pfd, 1, left.as_millis().max(1) as i32) };
        loop {
            // SAFETY: valid buffer.
            let n = unsafe {
                libc::recv(
                    fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if n < 0 {
                break;
            }
            got.push(buf[..n as usize].to_vec());
        }
    }
    got
}

/// Nothing arrives within `d`.
fn assert_quiet(fd: &OwnedFd, d: Duration) {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let n = unsafe { libc::poll(&mut pfd, 1, d.as_millis() as i32) };
    assert_eq!(n, 0, "unexpected frame");
}

/// Our test frame: Ethernet header with our ethertype, then a numbered payload of `len - 14`
/// bytes.
/// One veth pair for one test: the router end `r` (MAC_R1) in namespace `router`, the peer
/// end `p` (MAC_P1) in `peer` with a packet socket on it. Namespaces and veths go on drop.
struct Pair {
    router: Netns,
    /// Held for its drop, which deletes the peer's namespace and with it the pair.
    _peer: Netns,
    r: String,
    peer_sock: OwnedFd,
}

fn pair(n: u8) -> Pair {
    let router = Netns::new(&format!("r{n}"));
    let peer = Netns::new(&format!("p{n}"));
    let (r, p) = (
        format!("x{}r{n}", std::process::id()),
        format!("x{}p{n}", std::process::id()),
    );
    veth(&router, &r, MAC_R1, &peer, &p, MAC_P1, 1);
    let peer_sock = packet_socket(&peer, &p);
    Pair {
        router,
        _peer: peer,
        r,
        peer_sock,
    }
}

fn frame(dst: [u8; 6], src: [u8; 6], seq: u8, len: usize) -> Vec<u8> {
    let mut f = Vec::with_capacity(len);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ETHERTYPE.to_be_bytes());
    f.extend_from_slice(b"vgate-afxdp");
    while f.len() < len {
        f.push(seq.wrapping_add(f.len() as u8));
    }
    f[14 + 11] = seq;
    f
}

fn is_ours(b: &[u8]) -> bool {
    b.len() >= 25 && b[12..14] == ETHERTYPE.to_be_bytes() && &b[14..25] == b"vgate-afxdp"
}

fn new_umem() -> (Umem, FramePool) {
    umem_of(NFRAMES, FILL)
}

/// A UMEM of `nframes` default-sized frames whose sockets get `comp_size`-entry completion
/// rings.
fn umem_of(nframes: u32, comp_size: u32) -> (Umem, FramePool) {
    raise_memlock().expect("raise RLIMIT_MEMLOCK");
    Umem::new(UmemConfig {
        nframes,
        fill_size: FILL,
        comp_size,
        ..UmemConfig::default()
    })
    .expect("create UMEM")
}

fn port_cfg(ifname: &str, queue: u32) -> XskConfig {
    XskConfig {
        rx_size: 512,
        tx_size: 512,
        ..XskConfig::new(ifname, queue)
    }
}

/// A pool smaller than the fill ring runs dry: the port receives what its frames hold, the
/// next packet finds the fill ring empty (the kernel counts it), and once frames come back
/// to the pool the next `maintain` puts them on the fill ring, so receiving resumes. (An
/// empty poll otherwise reads no fill ring index: only a dry pool makes `maintain` refill.)
#[test]
fn a_dry_pool_refills_when_frames_come_back() {
    require_root_and_af_xdp!();
    const FEW: u32 = 16;
    let link = pair(5);
    in_netns(&link.router.name, || {
        let (_umem, mut pool) = umem_of(FEW, FILL);
        let mut port = XskPort::open(&_umem, &mut pool, &port_cfg(&link.r, 0)).expect("open");
        assert_eq!(pool.free_count(), 0, "every frame on the fill ring");
        for i in 0..FEW {
            send_frame(&link.peer_sock, &frame(MAC_R1, MAC_P1, i as u8, 100));
        }
        let held = receive(&mut port, &mut pool, FEW as usize);
        assert_eq!(held.len(), FEW as usize, "one packet per frame");

        let empty_before = port.stats().expect("stats").rx_fill_ring_empty_descs;
        send_frame(&link.peer_sock, &frame(MAC_R1, MAC_P1, 0xee, 100));
        assert!(
            receive(&mut port, &mut pool, 1).is_empty(),
            "nothing received without frames"
        );
        assert_eq!(
            port.stats().expect("stats").rx_fill_ring_empty_descs,
            empty_before + 1,
            "the kernel counted the packet it had no frame for"
        );

        for d in held {
            pool.free(d);
        }
        port.maintain(&mut pool);
        assert_eq!(pool.free_count(), 0, "maintain refilled from the pool");
        assert_eq!(port.frames_in_kernel(), FEW);
        for i in 0..4u8 {
            send_frame(&link.peer_sock, &frame(MAC_R1, MAC_P1, 0xf0 + i, 100));
        }
        let got = receive(&mut port, &mut pool, 4);
        assert_eq!(got.len(), 4, "receiving resumed");
        for (i, d) in got.iter().enumerate() {
            assert_eq!(pool.bytes(d)[25], 0xf0 + i as u8);
            pool.free(*d);
        }
        port.close(&mut pool);
        assert_eq!(pool.free_count(), FEW as usize, "close returns every frame");
    });
}

/// 2 KiB frames (`dataplane.frame_size = 2048`) on a real socket: the kernel registers the
/// smaller chunks, packets arrive at RX_HEADROOM into frames at odd 2 KiB offsets too, byte
/// for byte, and full-size frames go out. Then the same over hugepages: with too few
/// reserved the UMEM is refused with the sysctl to set; with enough it works the same.
#[test]
fn two_kib_frames_and_hugepages() {
    require_root_and_af_xdp!();
    let link = pair(6);
    let small = |hugepages: bool| UmemConfig {
        nframes: NFRAMES,
        frame_size: 2048,
        hugepages,
        fill_size: FILL,
        comp_size: FILL,
    };
    let exchange = |umem: &Umem, pool: &mut FramePool| {
        let mut port = XskPort::open(umem, pool, &port_cfg(&link.r, 0)).expect("open");
        let sent: Vec<Vec<u8>> = (0..8u8).map(|i| frame(MAC_R1, MAC_P1, i, 1514)).collect();
        for f in &sent {
            send_frame(&link.peer_sock, f);
        }
        let got = receive(&mut port, pool, sent.len());
        assert_eq!(got.len(), sent.len());
        assert!(
            got.iter().any(|d| d.addr & 2048 != 0),
            "odd 2 KiB frames used"
        );
        for (d, f) in got.iter().zip(&sent) {
            assert_eq!(pool.headroom(d), RX_HEADROOM);
            assert_eq!(pool.bytes(d), &f[..]);
        }
        let back: Vec<Desc> = got.iter().take(2).copied().collect();
        for d in &got[2..] {
            pool.free(*d);
        }
        let res = port.tx_burst(pool, &back);
        assert_eq!((res.sent, res.dropped), (2, 0));
        let mut captured = Vec::new();
        let deadline = Instant::now() + WAIT;
        while captured.len() < 2 && Instant::now() < deadline {
            port.maintain(pool);
            captured.extend(recv_frames_nowait(&link.peer_sock));
        }
        assert_eq!(
            captured,
            sent[..2].to_vec(),
            "1514-byte frames out of 2 KiB frames"
        );
        let st = port.stats().expect("XDP_STATISTICS");
        assert_eq!((st.rx_dropped, st.tx_invalid_descs), (0, 0));
        port.close(pool);
        assert_eq!(pool.free_count(), NFRAMES as usize);
    };
    in_netns(&link.router.name, || {
        raise_memlock().expect("raise RLIMIT_MEMLOCK");
        let (umem, mut pool) = Umem::new(small(false)).expect("UMEM of 2 KiB frames");
        assert_eq!(pool.frame_size(), 2048);
        assert_eq!(umem.mapped_bytes(), NFRAMES as usize * 2048);
        exchange(&umem, &mut pool);
    });

    let page = vgate::io::afxdp::hugepage_size();
    let meminfo = |key: &str| -> usize {
        std::fs::read_to_string("/proc/meminfo")
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix(key)?.trim().parse().ok())
            .unwrap()
    };
    // More frames than the free hugepages hold: refused, naming the sysctl.
    let free = meminfo("HugePages_Free:");
    let too_many = UmemConfig {
        nframes: ((free + 1) * page / 2048) as u32,
        ..small(true)
    };
    match Umem::new(too_many) {
        Err(e @ XskError::Hugepages { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("vm.nr_hugepages"), "{msg}");
            assert!(msg.contains("dataplane.hugepages = false"), "{msg}");
        }
        Err(e) => panic!("expected the hugepages error, got {e}"),
        Ok(_) => panic!("{free} free hugepages held more than they can"),
    }

    // Reserve what 4096 frames of 2 KiB need, and put the reservation back after.
    let need = (NFRAMES as usize * 2048).div_ceil(page);
    let sysctl = "/proc/sys/vm/nr_hugepages";
    let before: usize = std::fs::read_to_string(sysctl)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    std::fs::write(sysctl, (before + need).to_string()).unwrap();
    struct Restore(&'static str, usize);
    impl Drop for Restore {
        fn drop(&mut self) {
            let _ = std::fs::write(self.0, self.1.to_string());
        }
    }
    let _restore = Restore(sysctl, before);
    if meminfo("HugePages_Free:") < need {
        common::skip("the kernel could not reserve the hugepages (fragmented memory)");
        return;
    }
    in_netns(&link.router.name, || {
        let (umem, mut pool) = Umem::new(small(true)).expect("UMEM in hugepages");
        assert_eq!(umem.mapped_bytes() % page, 0, "whole hugepages");
        exchange(&umem, &mut pool);
    });
}

/// Preferred busy polling needs the NAPI id the kernel marks a socket with when packets
/// arrive: with one, the port keeps busy polling an empty ring with `recvfrom`; without one
/// (veth's XDP queues on Linux 6.18) busy polling cannot reach the queue, so after the
/// first packet the port stops making those system calls and says why.
#[test]
fn busy_polling_follows_the_queues_napi_id() {
    require_root_and_af_xdp!();
    let link = pair(7);
    in_netns(&link.router.name, || {
        let (umem, mut pool) = new_umem();
        let cfg = XskConfig {
            busy_poll: Some(BusyPoll {
                usecs: 20,
                budget: 64,
            }),
            ..port_cfg(&link.r, 0)
        };
        let mut port = XskPort::open(&umem, &mut pool, &cfg).expect("open");
        if let BusyPollState::Refused(why) = &port.attachment().busy_poll {
            common::skip(&format!("busy polling refused at open: {why}"));
            return;
        }
        send_frame(&link.peer_sock, &frame(MAC_R1, MAC_P1, 1, 100));
        for d in receive(&mut port, &mut pool, 1) {
            pool.free(d);
        }
        let fd = port.poll_fd().expect("socket fd");
        let mut id: libc::c_int = -1;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: an int buffer of the length given, on the port's socket.
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                56,
                (&mut id as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        assert_eq!(rc, 0, "SO_INCOMING_NAPI_ID");
        let before = port.wakeups().rx_wakeups;
        let mut none = [Desc::default(); 8];
        for _ in 0..10 {
            assert_eq!(port.rx_burst(&mut pool, &mut none), 0);
        }
        let made = port.wakeups().rx_wakeups - before;
        eprintln!("NAPI id {id}: {}", port.attachment());
        if id == 0 {
            match &port.attachment().busy_poll {
                BusyPollState::Refused(why) => assert!(why.contains("no NAPI id"), "{why}"),
                other => panic!("busy polling left {other:?} without a NAPI id"),
            }
            assert_eq!(made, 0, "no recvfrom that cannot busy-poll");
        } else {
            assert!(matches!(port.attachment().busy_poll, BusyPollState::On(_)));
            assert_eq!(made, 10, "one busy-polling recvfrom per empty poll");
        }
        port.close(&mut pool);
    });
}

/// Transmit bursts with no `maintain` between them fill the completion ring: the kernel
/// then sends nothing and a kick fails with EAGAIN. A burst that finds the TX ring full
/// takes the completions before it kicks, so every frame goes out, in order.
#[test]
fn a_full_completion_ring_is_reaped_before_the_kick() {
    require_root_and_af_xdp!();
    const RING: u32 = 32;
    let link = pair(8);
    in_netns(&link.router.name, || {
        let (umem, mut pool) = umem_of(NFRAMES, RING);
        let cfg = XskConfig {
            tx_size: RING,
            ..port_cfg(&link.r, 0)
        };
        let mut port = XskPort::open(&umem, &mut pool, &cfg).expect("open");
        let sent: Vec<Vec<u8>> = (0..3 * RING)
            .map(|i| frame(MAC_P1, MAC_R1, i as u8, 100))
            .collect();
        for burst in sent.chunks(RING as usize) {
            let descs: Vec<Desc> = burst.iter().map(|f| pool.alloc_with(f).unwrap()).collect();
            let res = port.tx_burst(&mut pool, &descs);
            assert_eq!(
                (res.sent, res.dropped),
                (RING as usize, 0),
                "{}",
                port.attachment()
            );
        }
        let mut captured = Vec::new();
        let deadline = Instant::now() + WAIT;
        while captured.len() < sent.len() && Instant::now() < deadline {
            port.maintain(&mut pool);
            captured.extend(
                recv_frames_nowait(&link.peer_sock)
                    .into_iter()
                    .filter(|f| is_ours(f)),
            );
        }
        assert_eq!(captured, sent, "every frame on the peer, in order");
        port.close(&mut pool);
        assert_eq!(pool.free_count(), NFRAMES as usize, "every frame back");
    });
}

/// Poll `port` until `count` frames of ours arrived (others are freed); returns them.
fn receive(port: &mut XskPort, pool: &mut FramePool, count: usize) -> Vec<Desc> {
    let deadline = Instant::now() + WAIT;
    let mut got = Vec::new();
    let mut burst = [Desc::default(); 64];
    while got.len() < count && Instant::now() < deadline {
        port.maintain(pool);
        let n = port.rx_burst(pool, &mut burst);
        for d in &burst[..n] {
            if is_ours(pool.bytes(d)) {
                got.push(*d);
            } else {
                pool.free(*d);
            }
        }
        if n == 0 {
            std::thread::sleep(Duration::from_micros(100));
        }
    }
    got
}

/// Run `maintain` on every port until every transmitted frame completed: the pool then holds
/// every frame but those parked in the fill rings.
fn settle(ports: &mut [&mut XskPort], pool: &mut FramePool) {
    let deadline = Instant::now() + WAIT;
    let parked = ports.len() * FILL as usize;
    while Instant::now() < deadline {
        for p in ports.iter_mut() {
            p.maintain(pool);
        }
        if pool.free_count() + parked == NFRAMES as usize {
            break;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    for p in ports.iter() {
        assert_eq!(p.frames_in_kernel(), FILL, "{}", p.attachment());
    }
    assert_eq!(
        pool.free_count() + parked,
        NFRAMES as usize,
        "frames leaked"
    );
}

const MAC_R1: [u8; 6] = [0x02, 0, 0, 0, 0x01, 0x01];
const MAC_P1: [u8; 6] = [0x02, 0, 0, 0, 0x01, 0x02];
const MAC_R2: [u8; 6] = [0x02, 0, 0, 0, 0x02, 0x01];
const MAC_P2: [u8; 6] = [0x02, 0, 0, 0, 0x02, 0x02];

/// One veth pair: the XSK receives what the peer sends, byte for byte at RX_HEADROOM into its
/// frame, and what it transmits comes out at the peer; dropping it leaves no XDP program.
/// The pool keeps the UMEM mapping alive: dropped first, the `Umem` leaves a pool whose
/// frames are still there to write and read (before, this read unmapped memory).
#[test]
fn a_pool_outlives_its_umem() {
    require_root_and_af_xdp!();
    let (umem, mut pool) = new_umem();
    drop(umem);
    let data: Vec<u8> = (0..=255).collect();
    let d = pool.alloc_with(&data).expect("a free frame");
    assert_eq!(pool.bytes(&d), &data[..]);
    pool.free(d);
    assert_eq!(pool.free_count(), pool.nframes());
}

#[test]
fn receive_and_transmit_on_one_veth() {
    require_root_and_af_xdp!();
    let router = Netns::new("r1");
    let peer = Netns::new("p1");
    let (r, p) = (
        format!("x{}r1", std::process::id()),
        format!("x{}p1", std::process::id()),
    );
    veth(&router, &r, MAC_R1, &peer, &p, MAC_P1, 1);
    let peer_sock = packet_socket(&peer, &p);
    let ifname = r.clone();
    let link_before_drop = in_netns(&router.name, || {
        let (umem, mut pool) = new_umem();
        let mut port = XskPort::open(&umem, &mut pool, &port_cfg(&ifname, 0)).expect("open");
        eprintln!("port: {}", port.attachment());
        // veth has native XDP and no AF_XDP zero-copy.
        assert_eq!(port.mode(), (AttachedMode::Native, false));
        assert_eq!(port.attachment().copy_reason, Some(CopyReason::Unsupported));
        assert_eq!(umem.sockets(), 1);
        assert_eq!(port.frames_in_kernel(), FILL);
        assert_eq!(xdp_attached(&ifname).unwrap(), Some(AttachedMode::Native));

        let sent: Vec<Vec<u8>> = [60usize, 64, 333, 1000, 1514, 60, 128, 1500]
            .iter()
            .enumerate()
            .map(|(i, &len)| frame(MAC_R1, MAC_P1, i as u8, len))
            .collect();
        for f in &sent {
            send_frame(&peer_sock, f);
        }
        let got = receive(&mut port, &mut pool, sent.len());
        assert_eq!(got.len(), sent.len(), "frames received by the XSK");
        for (d, f) in got.iter().zip(&sent) {
            assert_eq!(pool.headroom(d), RX_HEADROOM, "packet offset in its frame");
            assert_eq!(pool.bytes(d), &f[..]);
            pool.free(*d);
        }

        // Transmit two frames built in the pool.
        let out = [
            frame(MAC_P1, MAC_R1, 0xa0, 90),
            frame(MAC_P1, MAC_R1, 0xa1, 1514),
        ];
        let descs: Vec<Desc> = out.iter().map(|f| pool.alloc_with(f).unwrap()).collect();
        let res = port.tx_burst(&mut pool, &descs);
        assert_eq!((res.sent, res.dropped), (2, 0));
        let mut captured = Vec::new();
        let deadline = Instant::now() + WAIT;
        while captured.len() < out.len() && Instant::now() < deadline {
            port.maintain(&mut pool);
            captured.extend(recv_frames_nowait(&peer_sock));
        }
        assert_eq!(captured, out.to_vec(), "frames on the peer");

        // A descriptor crossing its frame end is refused, not handed to the kernel (which
        // would never complete it).
        let mut bad = pool.alloc().unwrap();
        bad.addr += 4000 - RX_HEADROOM as u64;
        bad.len = 200;
        let res = port.tx_burst(&mut pool, &[bad]);
        assert_eq!((res.sent, res.dropped), (0, 1));

        settle(&mut [&mut port], &mut pool);
        let st = port.stats().expect("XDP_STATISTICS");
        assert_eq!(st.rx_invalid_descs, 0);
        assert_eq!(st.tx_invalid_descs, 0);
        assert_eq!(st.rx_dropped, 0);
        assert_eq!(port.wakeup_errors(), 0);

        let shown = Command::new("ip")
            .args(["link", "show", "dev", &ifname])
            .output()
            .unwrap();
        port.close(&mut pool);
        assert_eq!(umem.sockets(), 0);
        assert_eq!(
            pool.free_count(),
            NFRAMES as usize,
            "close returns every frame"
        );
        assert_eq!(xdp_attached(&ifname).unwrap(), None);
        String::from_utf8_lossy(&shown.stdout).into_owned()
    });
    assert!(
        link_before_drop.contains("prog/xdp "),
        "XDP program attached while the port is open: {link_before_drop}"
    );
    let shown = router.link_show(&r);
    assert!(!shown.contains("xdp"), "XDP left attached: {shown}");
    assert_quiet(&peer_sock, Duration::from_millis(50));
}

fn recv_frames_nowait(fd: &OwnedFd) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = vec![0u8; 9000];
    loop {
        // SAFETY: valid buffer.
        let n = unsafe {
            libc::recv(
                fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            return got;
        }
        got.push(buf[..n as usize].to_vec());
    }
}

/// Receive on `from`, swap the MAC addresses in place and transmit the same descriptors on
/// `to`; with `prepend`, first grow each packet by that header in front (in the headroom).
fn forward(
    from: &mut XskPort,
    to: &mut XskPort,
    pool: &mut FramePool,
    count: usize,
    prepend: Option<&[u8]>,
) -> Vec<u64> {
    let got = receive(from, pool, count);
    assert_eq!(got.len(), count, "frames received on {}", from.attachment());
    let mut out = Vec::new();
    for mut d in got {
        let b = pool.bytes_mut(&d);
        let mut dst = [0u8; 6];
        dst.copy_from_slice(&b[..6]);
        b.copy_within(6..12, 0);
        b[6..12].copy_from_slice(&dst);
        if let Some(h) = prepend {
            assert!(pool.push_front(&mut d, h.len()));
            pool.bytes_mut(&d)[..h.len()].copy_from_slice(h);
        }
        out.push(d);
    }
    let addrs = out.iter().map(|d| d.addr).collect();
    let res = to.tx_burst(pool, &out);
    assert_eq!((res.sent, res.dropped), (count, 0));
    // Poll until every frame completed, as a worker does: a copy-mode kick sends a bounded
    // batch (32 frames on kernels without XDP_MAX_TX_SKB_BUDGET) and `maintain` kicks again.
    let deadline = Instant::now() + WAIT;
    while to.frames_in_kernel() != FILL && Instant::now() < deadline {
        to.maintain(pool);
    }
    assert_eq!(to.frames_in_kernel(), FILL, "transmissions completed");
    addrs
}

fn swapped(f: &[u8]) -> Vec<u8> {
    let mut v = f.to_vec();
    v[..6].copy_from_slice(&f[6..12]);
    v[6..12].copy_from_slice(&f[..6]);
    v
}

/// Two veth pairs, two XSKs on one UMEM in the router namespace: frames from side 1 come out
/// of side 2 byte for byte (and back), forwarded by descriptor without a copy, also after
/// growing them in the headroom; no frame is lost and no XDP program is left behind.
#[test]
fn forward_between_two_veths_on_a_shared_umem() {
    require_root_and_af_xdp!();
    let pid = std::process::id();
    let router = Netns::new("fr");
    let side1 = Netns::new("fa");
    let side2 = Netns::new("fb");
    let (ra, pa, rb, pb) = (
        format!("x{pid}ra"),
        format!("x{pid}pa"),
        format!("x{pid}rb"),
        format!("x{pid}pb"),
    );
    veth(&router, &ra, MAC_R1, &side1, &pa, MAC_P1, 1);
    veth(&router, &rb, MAC_R2, &side2, &pb, MAC_P2, 1);
    let sock1 = packet_socket(&side1, &pa);
    let sock2 = packet_socket(&side2, &pb);
    let (ra2, rb2) = (ra.clone(), rb.clone());
    in_netns(&router.name, || {
        let (umem, mut pool) = new_umem();
        let mut p1 = XskPort::open(&umem, &mut pool, &port_cfg(&ra2, 0)).expect("open side 1");
        let mut p2 = XskPort::open(&umem, &mut pool, &port_cfg(&rb2, 0)).expect("open side 2");
        eprintln!("port 1: {}\nport 2: {}", p1.attachment(), p2.attachment());
        assert_eq!(umem.sockets(), 2);
        assert_eq!(p1.mode(), (AttachedMode::Native, false));
        assert_eq!(p2.mode(), (AttachedMode::Native, false));
        assert_eq!(p2.attachment().copy_reason, Some(CopyReason::SharedUmem));
        // Each socket has its own fill ring, filled from the one pool.
        assert_eq!(pool.free_count(), (NFRAMES - 2 * FILL) as usize);

        // Side 1 -> side 2, a burst larger than one copy-mode kick.
        let sent: Vec<Vec<u8>> = (0..100u8)
            .map(|i| frame(MAC_R1, MAC_P1, i, 60 + (i as usize * 37) % 1455))
            .collect();
        for f in &sent {
            send_frame(&sock1, f);
        }
        let before = pool.free_count();
        let addrs = forward(&mut p1, &mut p2, &mut pool, sent.len(), None);
        // p1 refilled its fill ring from the pool and p2 gave the same number back on
        // completion: forwarding itself took no frame.
        assert_eq!(pool.free_count(), before);
        assert!(addrs.iter().all(|a| a % 4096 == RX_HEADROOM as u64));
        let got = recv_frames(&sock2, sent.len());
        let want: Vec<Vec<u8>> = sent.iter().map(|f| swapped(f)).collect();
        assert_eq!(got.len(), want.len(), "frames on side 2");
        assert_eq!(got, want);

        // Side 2 -> side 1 over the other socket's fill ring.
        let back: Vec<Vec<u8>> = (0..10u8)
            .map(|i| frame(MAC_R2, MAC_P2, 0x40 + i, 200))
            .collect();
        for f in &back {
            send_frame(&sock2, f);
        }
        forward(&mut p2, &mut p1, &mut pool, back.len(), None);
        let got = recv_frames(&sock1, back.len());
        assert_eq!(got, back.iter().map(|f| swapped(f)).collect::<Vec<_>>());

        // Grow by a 50-byte header in place (Geneve-sized) before transmitting.
        let mut hdr = [0u8; 50];
        hdr[..6].copy_from_slice(&MAC_P2);
        hdr[6..12].copy_from_slice(&MAC_R2);
        hdr[12..14].copy_from_slice(&ETHERTYPE.to_be_bytes());
        hdr[14..25].copy_from_slice(b"vgate-afxdp");
        for (i, b) in hdr[25..].iter_mut().enumerate() {
            *b = 0xe0 + i as u8;
        }
        let grown: Vec<Vec<u8>> = (0..4u8)
            .map(|i| frame(MAC_R1, MAC_P1, 0x80 + i, 100 + 400 * i as usize))
            .collect();
        for f in &grown {
            send_frame(&sock1, f);
        }
        let addrs = forward(&mut p1, &mut p2, &mut pool, grown.len(), Some(&hdr));
        assert!(addrs.iter().all(|a| a % 4096 == (RX_HEADROOM - 50) as u64));
        let got = recv_frames(&sock2, grown.len());
        let want: Vec<Vec<u8>> = grown
            .iter()
            .map(|f| [&hdr[..], &swapped(f)].concat())
            .collect();
        assert_eq!(got, want);

        settle(&mut [&mut p1, &mut p2], &mut pool);
        for p in [&p1, &p2] {
            let st = p.stats().unwrap();
            assert_eq!(
                (st.rx_dropped, st.rx_invalid_descs, st.tx_invalid_descs),
                (0, 0, 0)
            );
            assert_eq!(p.wakeup_errors(), 0);
        }
        drop(p1);
        drop(p2);
        assert_eq!(umem.sockets(), 0);
        for ifname in [&ra2, &rb2] {
            assert_eq!(xdp_attached(ifname).unwrap(), None, "{ifname}");
        }
    });
    for ifname in [&ra, &rb] {
        let shown = router.link_show(ifname);
        assert!(!shown.contains("xdp"), "XDP left attached: {shown}");
    }
    assert_quiet(&sock1, Duration::from_millis(20));
    assert_quiet(&sock2, Duration::from_millis(20));
}

/// Two queues of one veth on one UMEM share the interface's redirect program, which goes away
/// with the last socket; errors name the interface and say why.
#[test]
fn queues_modes_and_errors() {
    require_root_and_af_xdp!();
    let pid = std::process::id();
    let router = Netns::new("qr");
    let peer = Netns::new("qp");
    let (r, p) = (format!("x{pid}qr"), format!("x{pid}qp"));
    let (g, gp) = (format!("x{pid}gr"), format!("x{pid}gp"));
    veth(&router, &r, MAC_R1, &peer, &p, MAC_P1, 2);
    veth(&router, &g, MAC_R2, &peer, &gp, MAC_P2, 1);
    // Jumbo MTU: more than veth's native XDP takes for a program without multi-buffer
    // support, so native attach fails and auto falls back to generic.
    let (j, jp) = (format!("x{pid}jr"), format!("x{pid}jp"));
    veth(&router, &j, MAC_R1, &peer, &jp, MAC_P1, 1);
    ip(&["-n", &router.name, "link", "set", &j, "mtu", "9000"]);
    ip(&["-n", &peer.name, "link", "set", &jp, "mtu", "9000"]);
    let peer_sock = packet_socket(&peer, &p);
    let gpeer_sock = packet_socket(&peer, &gp);
    let (r2, g2) = (r.clone(), g.clone());
    in_netns(&router.name, || {
        let (umem, mut pool) = new_umem();
        let mut q0 = XskPort::open(&umem, &mut pool, &port_cfg(&r2, 0)).expect("queue 0");
        let mut q1 = XskPort::open(&umem, &mut pool, &port_cfg(&r2, 1)).expect("queue 1");
        assert_eq!(q1.mode(), (AttachedMode::Native, false));

        // The peer's kernel picks the queue; together the two sockets see every frame.
        let sent: Vec<Vec<u8>> = (0..20u8).map(|i| frame(MAC_R1, MAC_P1, i, 80)).collect();
        for f in &sent {
            send_frame(&peer_sock, f);
        }
        let deadline = Instant::now() + WAIT;
        let mut got = Vec::new();
        let mut burst = [Desc::default(); 64];
        while got.len() < sent.len() && Instant::now() < deadline {
            for q in [&mut q0, &mut q1] {
                q.maintain(&mut pool);
                let n = q.rx_burst(&mut pool, &mut burst);
                for d in &burst[..n] {
                    if is_ours(pool.bytes(d)) {
                        got.push(pool.bytes(d).to_vec());
                    }
                    pool.free(*d);
                }
            }
        }
        got.sort();
        let mut want = sent.clone();
        want.sort();
        assert_eq!(got, want);

        // Errors.
        let e = XskPort::open(&umem, &mut pool, &port_cfg(&r2, 1)).unwrap_err();
        assert!(matches!(e, XskError::QueueTaken { .. }), "{e}");
        assert_eq!(
            e.to_string(),
            format!("{r2} queue 1: this UMEM already has a socket on that queue")
        );
        let e = XskPort::open(&umem, &mut pool, &port_cfg(&r2, 2)).unwrap_err();
        assert!(e.to_string().starts_with(&format!("{r2} queue 2: ")), "{e}");
        assert_eq!(e.errno(), Some(libc::EINVAL), "{e}");
        let e = XskPort::open(&umem, &mut pool, &port_cfg("nosuch0", 0)).unwrap_err();
        assert_eq!(
            e,
            XskError::NoSuchInterface {
                ifname: "nosuch0".into()
            }
        );
        let (other, mut other_pool) = new_umem();
        let e = XskPort::open(&other, &mut other_pool, &port_cfg(&r2, 0)).unwrap_err();
        assert_eq!(e.errno(), Some(libc::EBUSY), "{e}");
        assert!(e.to_string().contains(&r2), "{e}");
        let e = XskPort::open(&umem, &mut other_pool, &port_cfg(&r2, 1)).unwrap_err();
        assert!(matches!(e, XskError::InvalidConfig { .. }), "{e}");
        // Zero-copy: a socket sharing a copy-mode UMEM cannot have it; veth cannot either.
        let mut zc = port_cfg(&g2, 0);
        zc.zero_copy = ZeroCopy::On;
        let e = XskPort::open(&umem, &mut pool, &zc).unwrap_err();
        assert_eq!(
            e,
            XskError::ZeroCopyMismatch {
                ifname: g2.clone(),
                queue_id: 0,
                wanted: true
            }
        );
        let e = XskPort::open(&other, &mut other_pool, &zc).unwrap_err();
        eprintln!("zero-copy on veth: {e}");
        assert!(e.to_string().starts_with(&format!("{g2} queue 0: ")), "{e}");
        assert!(matches!(e, XskError::Socket { .. }), "{e}");
        // The failed attempt left nothing attached, and the UMEM recovers from it.
        assert_eq!(xdp_attached(&g2).unwrap(), None);
        let mut off = port_cfg(&g2, 0);
        off.zero_copy = ZeroCopy::Off;
        let p = XskPort::open(&other, &mut other_pool, &off).expect("copy mode after failure");
        assert_eq!(p.attachment().copy_reason, Some(CopyReason::Config));
        drop(p);
        // The UMEM's first socket holds its queue until the UMEM goes: with its pool, which
        // keeps it alive.
        drop(other);
        drop(other_pool);

        // Forced generic mode on the other veth, on the same UMEM.
        let mut gen_cfg = port_cfg(&g2, 0);
        gen_cfg.xdp_mode = XdpMode::Generic;
        let mut gen_port = XskPort::open(&umem, &mut pool, &gen_cfg).expect("generic");
        assert_eq!(gen_port.mode(), (AttachedMode::Generic, false));
        assert_eq!(xdp_attached(&g2).unwrap(), Some(AttachedMode::Generic));
        let f = frame(MAC_R2, MAC_P2, 7, 300);
        send_frame(&gpeer_sock, &f);
        let got = receive(&mut gen_port, &mut pool, 1);
        assert_eq!(got.len(), 1);
        assert_eq!(pool.bytes(&got[0]), &f[..]);
        pool.free(got[0]);

        // Native refused (jumbo MTU): forced native fails and says why, auto falls back.
        let mut native = port_cfg(&j, 0);
        native.xdp_mode = XdpMode::Native;
        let e = XskPort::open(&umem, &mut pool, &native).unwrap_err();
        eprintln!("native on jumbo veth: {e}");
        assert!(e.to_string().starts_with(&format!("{j} queue 0: ")), "{e}");
        assert_eq!(xdp_attached(&j).unwrap(), None);
        let auto = XskPort::open(&umem, &mut pool, &port_cfg(&j, 0)).expect("auto fallback");
        eprintln!("auto on jumbo veth: {}", auto.attachment());
        assert_eq!(auto.mode(), (AttachedMode::Generic, false));
        assert_eq!(auto.attachment().native_errno, e.errno());
        assert_eq!(auto.attachment().copy_reason, Some(CopyReason::GenericXdp));
        drop(auto);
        assert_eq!(xdp_attached(&j).unwrap(), None);

        // One socket gone: the program stays for the other queue.
        drop(q0);
        assert_eq!(xdp_attached(&r2).unwrap(), Some(AttachedMode::Native));
        drop(q1);
        assert_eq!(xdp_attached(&r2).unwrap(), None);
        drop(gen_port);
        assert_eq!(xdp_attached(&g2).unwrap(), None);
        assert_eq!(umem.sockets(), 0);

        // The UMEM's first queue stays bound to its fd while another socket lives.
        let first = XskPort::open(&umem, &mut pool, &port_cfg(&r2, 0)).expect("first");
        let second = XskPort::open(&umem, &mut pool, &port_cfg(&r2, 1)).expect("second");
        drop(first);
        let e = XskPort::open(&umem, &mut pool, &port_cfg(&r2, 0)).unwrap_err();
        assert!(matches!(e, XskError::QueueTaken { queue_id: 0, .. }), "{e}");
        drop(second);

        // The UMEM takes new sockets after all were closed.
        let again = XskPort::open(&umem, &mut pool, &port_cfg(&r2, 0)).expect("reopen");
        assert_eq!(again.mode(), (AttachedMode::Native, false));
        drop(again);

        // A port that is never closed (a crash) leaves its program; detach_xdp removes it.
        let leaked = XskPort::open(&umem, &mut pool, &port_cfg(&r2, 1)).expect("open");
        std::mem::forget(leaked);
        assert_eq!(xdp_attached(&r2).unwrap(), Some(AttachedMode::Native));
        assert_eq!(detach_xdp(&r2), Ok(true));
        assert_eq!(xdp_attached(&r2).unwrap(), None);
        assert_eq!(detach_xdp(&r2), Ok(false));
    });
    for ifname in [&r, &g, &j] {
        let shown = router.link_show(ifname);
        assert!(!shown.contains("xdp"), "XDP left attached: {shown}");
    }
}
