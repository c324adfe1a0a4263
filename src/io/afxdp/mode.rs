//! What a port asks for (XDP attach mode, zero-copy) and what it really got.

use std::fmt;
use std::str::FromStr;

/// Requested XDP attach mode (config `xdp_mode = "auto" | "native" | "generic"`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum XdpMode {
    /// Native (driver) mode, falling back to generic when the driver refuses it.
    #[default]
    Auto,
    /// Native (driver) mode only (`XDP_FLAGS_DRV_MODE`).
    Native,
    /// Generic (skb) mode only (`XDP_FLAGS_SKB_MODE`): works on every interface, slowest.
    Generic,
}

/// Requested zero-copy behaviour (config `zero_copy = "auto" | "on" | "off"`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ZeroCopy {
    /// Zero-copy when the driver supports it, copy mode otherwise.
    #[default]
    Auto,
    /// Zero-copy or fail (`XDP_ZEROCOPY`).
    On,
    /// Copy mode (`XDP_COPY`).
    Off,
}

/// The XDP mode the interface really runs the socket's redirect program in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachedMode {
    Native,
    Generic,
}

/// Why a socket runs in copy mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CopyReason {
    /// `zero_copy = "off"`.
    Config,
    /// The driver has no AF_XDP zero-copy support (the kernel fell back to copy).
    Unsupported,
    /// Generic XDP always copies.
    GenericXdp,
    /// The UMEM's first socket fixed copy mode; sockets sharing a UMEM inherit its mode.
    SharedUmem,
}

/// Where a port is bound and in which modes; `Display` gives the start-up summary line, e.g.
/// `iface ext0 queue 0, xdp native, copy mode (zero-copy unsupported by driver)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attachment {
    pub ifname: String,
    pub queue_id: u32,
    pub xdp: AttachedMode,
    pub zero_copy: bool,
    /// Set exactly when `zero_copy` is false.
    pub copy_reason: Option<CopyReason>,
    /// errno of the native attempt when `XdpMode::Auto` fell back to generic.
    pub native_errno: Option<i32>,
    /// Preferred busy polling: not asked for, on, or refused (why).
    pub busy_poll: BusyPollState,
    /// Copy mode: frames one `sendto` may transmit (`XDP_MAX_TX_SKB_BUDGET`, Linux 6.17),
    /// or why the kernel's default of 32 stays. `None` in zero-copy mode.
    pub tx_budget: Option<Result<u32, String>>,
}

/// Whether a socket busy-polls its queue ([`super::BusyPoll`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BusyPollState {
    Off,
    On(super::BusyPoll),
    Refused(String),
}

impl FromStr for XdpMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(XdpMode::Auto),
            "native" => Ok(XdpMode::Native),
            "generic" => Ok(XdpMode::Generic),
            _ => Err(format!(
                "invalid xdp_mode {s:?}: expected \"auto\", \"native\" or \"generic\""
            )),
        }
    }
}

impl FromStr for ZeroCopy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(ZeroCopy::Auto),
            "on" => Ok(ZeroCopy::On),
            "off" => Ok(ZeroCopy::Off),
            _ => Err(format!(
                "invalid zero_copy {s:?}: expected \"auto\", \"on\" or \"off\""
            )),
        }
    }
}

impl fmt::Display for XdpMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            XdpMode::Auto => "auto",
            XdpMode::Native => "native",
            XdpMode::Generic => "generic",
        })
    }
}

impl fmt::Display for ZeroCopy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ZeroCopy::Auto => "auto",
            ZeroCopy::On => "on",
            ZeroCopy::Off => "off",
        })
    }
}

impl fmt::Display for AttachedMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AttachedMode::Native => "native",
            AttachedMode::Generic => "generic",
        })
    }
}

impl fmt::Display for CopyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CopyReason::Config => "zero-copy off by config",
            CopyReason::Unsupported => "zero-copy unsupported by driver",
            CopyReason::GenericXdp => "generic XDP cannot do zero-copy",
            CopyReason::SharedUmem => "inherited from the shared UMEM",
        })
    }
}

impl fmt::Display for Attachment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "iface {} queue {}, xdp {}",
            self.ifname, self.queue_id, self.xdp
        )?;
        if let Some(errno) = self.native_errno {
            write!(f, " (native refused: {})", super::error::strerror(errno))?;
        }
        match (self.zero_copy, self.copy_reason) {
            (true, _) => f.write_str(", zero-copy")?,
            (false, Some(r)) => write!(f, ", copy mode ({r})")?,
            (false, None) => f.write_str(", copy mode")?,
        }
        match &self.tx_budget {
            None => {}
            Some(Ok(n)) => write!(f, ", {n} frames per transmit kick")?,
            Some(Err(why)) => write!(f, ", 32 frames per transmit kick (kernel default: {why})")?,
        }
        match &self.busy_poll {
            BusyPollState::Off => Ok(()),
            BusyPollState::On(b) => write!(
                f,
                ", preferred busy polling ({} us, budget {})",
                b.usecs, b.budget
            ),
            BusyPollState::Refused(why) => write!(f, ", busy polling refused ({why})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_config_strings() {
        assert_eq!("auto".parse::<XdpMode>(), Ok(XdpMode::Auto));
        assert_eq!("native".parse::<XdpMode>(), Ok(XdpMode::Native));
        assert_eq!("generic".parse::<XdpMode>(), Ok(XdpMode::Generic));
        assert!("drv".parse::<XdpMode>().unwrap_err().contains("\"drv\""));
        assert_eq!("auto".parse::<ZeroCopy>(), Ok(ZeroCopy::Auto));
        assert_eq!("on".parse::<ZeroCopy>(), Ok(ZeroCopy::On));
        assert_eq!("off".parse::<ZeroCopy>(), Ok(ZeroCopy::Off));
        assert!("yes".parse::<ZeroCopy>().is_err());
        for m in [XdpMode::Auto, XdpMode::Native, XdpMode::Generic] {
            assert_eq!(m.to_string().parse::<XdpMode>(), Ok(m));
        }
        for z in [ZeroCopy::Auto, ZeroCopy::On, ZeroCopy::Off] {
            assert_eq!(z.to_string().parse::<ZeroCopy>(), Ok(z));
        }
    }

    #[test]
    fn summary_line() {
        let mut a = Attachment {
            ifname: "ext0".into(),
            queue_id: 0,
            xdp: AttachedMode::Native,
            zero_copy: false,
            copy_reason: Some(CopyReason::Unsupported),
            native_errno: None,
            busy_poll: BusyPollState::Off,
            tx_budget: None,
        };
        assert_eq!(
            a.to_string(),
            "iface ext0 queue 0, xdp native, copy mode (zero-copy unsupported by driver)"
        );
        a.tx_budget = Some(Ok(2048));
        assert_eq!(
            a.to_string(),
            "iface ext0 queue 0, xdp native, copy mode (zero-copy unsupported by driver), \
             2048 frames per transmit kick"
        );
        a.tx_budget = Some(Err("XDP_MAX_TX_SKB_BUDGET: Protocol not available".into()));
        assert!(a.to_string().ends_with(
            ", 32 frames per transmit kick (kernel default: XDP_MAX_TX_SKB_BUDGET: Protocol not \
             available)"
        ));
        a.tx_budget = None;
        a.xdp = AttachedMode::Generic;
        a.native_errno = Some(libc::EOPNOTSUPP);
        a.copy_reason = Some(CopyReason::GenericXdp);
        assert_eq!(
            a.to_string(),
            "iface ext0 queue 0, xdp generic (native refused: Operation not supported), \
             copy mode (generic XDP cannot do zero-copy)"
        );
        a.xdp = AttachedMode::Native;
        a.native_errno = None;
        a.zero_copy = true;
        a.copy_reason = None;
        assert_eq!(a.to_string(), "iface ext0 queue 0, xdp native, zero-copy");
        a.busy_poll = BusyPollState::On(super::super::BusyPoll {
            usecs: 20,
            budget: 64,
        });
        assert_eq!(
            a.to_string(),
            "iface ext0 queue 0, xdp native, zero-copy, preferred busy polling (20 us, budget 64)"
        );
        a.busy_poll = BusyPollState::Refused("SO_BUSY_POLL: Operation not permitted".into());
        assert!(
            a.to_string()
                .ends_with(", busy polling refused (SO_BUSY_POLL: Operation not permitted)")
        );
    }
}
