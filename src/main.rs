//! The `vgate` command: run | check | show | pktgen | lab.

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "vgate", version, about = "Userspace AF_XDP gateway router")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the appliance: attach to every [[port]] interface and forward until SIGTERM.
    Run {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Validate a configuration file (the interfaces need not exist on this host).
    Check { file: PathBuf },
    /// Print tables from a running vgate's HTTP API.
    Show {
        what: ShowWhat,
        /// Address of the HTTP API.
        #[arg(long, default_value = "127.0.0.1:9477")]
        api: String,
        /// Bearer token, when the API requires one (also read from VGATE_TOKEN).
        #[arg(long, env = "VGATE_TOKEN")]
        token: Option<String>,
        /// Print the raw JSON.
        #[arg(long)]
        json: bool,
    },
    /// Generate traffic over AF_XDP and measure rate, loss, reordering and latency.
    Pktgen(Box<vgate::pktgen::PktgenArgs>),
    /// Build the veth/netns demo topology on this machine and run traffic through vgate, or
    /// benchmark vgate against the Linux kernel on it.
    Lab {
        #[command(subcommand)]
        action: LabAction,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum ShowWhat {
    Routes,
    Neighbors,
    Fips,
    Sessions,
    Stats,
    Status,
    /// Tenant networks: IPv4 and IPv6 subnets and gateways, router advertisements, policy.
    Networks,
    /// VRRP groups: state, priority, master.
    Ha,
    /// BGP sessions and announcements (asked of BIRD).
    Bgp,
}

#[derive(Subcommand)]
enum LabAction {
    /// Build the topology and start vgate in it; it keeps running until `vgate lab down`.
    Up {
        /// Configuration for vgate inside the lab.
        #[arg(long, default_value = "conf/lab.toml")]
        config: PathBuf,
    },
    /// Remove the topology and everything running in it.
    Down,
    /// Build the topology, run ping and a TCP transfer through vgate, tear it down.
    Demo {
        /// Configuration for vgate inside the lab.
        #[arg(long, default_value = "conf/lab.toml")]
        config: PathBuf,
    },
    /// The same offered load through vgate and through the Linux kernel, per scenario.
    Bench(Box<vgate::lab::bench::BenchArgs>),
}

fn main() -> ExitCode {
    // One logfmt line per event (ts, level, target, msg): greppable and parseable by log
    // shippers; the level filter follows RUST_LOG (default info).
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format(|buf, rec| {
            use std::io::Write;
            writeln!(
                buf,
                "ts={} level={} target={} msg={:?}",
                buf.timestamp_millis(),
                rec.level().as_str().to_lowercase(),
                rec.target(),
                rec.args().to_string()
            )
        })
        .init();
    let cli = Cli::parse();
    let code = match cli.cmd {
        Cmd::Run { config } => vgate::run::run(&config),
        Cmd::Check { file } => check(&file),
        Cmd::Show {
            what,
            api,
            token,
            json,
        } => vgate::show::show(
            match what {
                ShowWhat::Routes => "routes",
                ShowWhat::Neighbors => "neighbors",
                ShowWhat::Fips => "fips",
                ShowWhat::Sessions => "sessions",
                ShowWhat::Stats => "stats",
                ShowWhat::Status => "status",
                ShowWhat::Networks => "networks",
                ShowWhat::Ha => "ha",
                ShowWhat::Bgp => "bgp",
            },
            &api,
            token.as_deref(),
            json,
        ),
        Cmd::Pktgen(args) => vgate::pktgen::cli(*args),
        Cmd::Lab { action } => match action {
            LabAction::Up { config } => vgate::lab::cli("up", &config),
            LabAction::Down => vgate::lab::cli("down", std::path::Path::new("")),
            LabAction::Demo { config } => vgate::lab::cli("demo", &config),
            LabAction::Bench(args) => vgate::lab::bench::cli(&args),
        },
    };
    ExitCode::from(code as u8)
}

fn check(file: &std::path::Path) -> i32 {
    // Permissions belong to this host, not to the file's contents: warn, and let the exit
    // status speak for the configuration (`vgate run` refuses such a file).
    for w in vgate::control::config::unsafe_permissions(file) {
        eprintln!("{}: warning: {w} (vgate run refuses it)", file.display());
    }
    match vgate::control::config::Config::load(file) {
        Ok(c) => {
            println!(
                "{}: OK ({} port(s), {} route(s), {} network(s), {} floating IP(s){})",
                file.display(),
                c.ports.len(),
                c.routes.len() + c.routes6.len(),
                c.networks.len(),
                c.floating_ips.len(),
                if c.vrrp.is_empty() {
                    String::new()
                } else {
                    format!(", {} VRRP group(s)", c.vrrp.len())
                }
            );
            0
        }
        Err(errs) => {
            eprintln!("{}: {} error(s)", file.display(), errs.0.len());
            for e in &errs.0 {
                eprintln!("  {e}");
            }
            1
        }
    }
}
