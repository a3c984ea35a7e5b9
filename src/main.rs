//! The `sluice` command line. Only argument parsing, logging setup and
//! reporting live here; the work is in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use tracing_subscriber::EnvFilter;

use sluice::config::{EngineConfig, ErrorPolicy, RulesConfig};
use sluice::offline::{self, OfflineOptions};

/// mimalloc instead of glibc's malloc: the queue threads allocate and free
/// per batch (packets, Lua strings), and glibc's per-thread arenas trim and
/// refault their pages under that pattern. `examples/nfq_accept.rs`, the
/// inline benchmark's baseline, uses the same allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Inline Linux packet filter with Haka-compatible Lua rules.
#[derive(Parser, Debug)]
#[command(name = "sluice", version, about)]
struct Cli {
    /// Log level or filter (error, warn, info, debug, trace, or an EnvFilter
    /// directive such as `sluice=debug`). Also read from SLUICE_LOG.
    #[arg(short = 'v', long = "log-level", global = true, value_name = "FILTER")]
    log_level: Option<String>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Replay a capture file through the rules, writing what would pass.
    Pcap(Box<PcapArgs>),
    /// Load a rule file and report its rules, or the error with file:line.
    Check {
        /// The Lua rule file.
        rules: PathBuf,
    },
    /// Filter packets inline through NFQUEUE (root).
    Run(Box<sluice::inline::cli::RunArgs>),
    /// Print the counters of a running `sluice run`.
    Stats(sluice::inline::cli::StatsArgs),
}

/// What to do with a packet when a rule raises an error.
#[derive(ValueEnum, Clone, Copy, Debug)]
enum OnRuleError {
    /// Drop the packet (fail closed).
    Drop,
    /// Accept the packet (fail open).
    Accept,
}

#[derive(clap::Args, Debug)]
struct PcapArgs {
    /// The Lua rule file.
    rules: PathBuf,
    /// The capture to replay (pcap or pcapng).
    input: PathBuf,
    /// Write the packets that pass (and forged RSTs) to this pcap.
    #[arg(short, long, value_name = "OUTPUT.pcap")]
    output: Option<PathBuf>,
    /// Write alerts (JSON lines) to this file instead of stdout.
    #[arg(long, value_name = "FILE")]
    alerts: Option<PathBuf>,
    /// Write each TCP direction's delivered bytes into this directory.
    #[arg(long, value_name = "DIR")]
    dump_streams: Option<PathBuf>,
    /// Also write the summary as JSON to this file.
    #[arg(long, value_name = "FILE")]
    summary_json: Option<PathBuf>,
    /// Never show a progress bar.
    #[arg(long)]
    no_progress: bool,
    /// What happens to a packet whose rule raised an error.
    #[arg(long, value_enum, default_value = "drop")]
    on_rule_error: OnRuleError,
    /// Engine and rule limits.
    #[command(flatten)]
    limits: sluice::limits_args::LimitArgs,
    /// Receiver model per destination network.
    #[command(flatten)]
    receiver: sluice::tcp::receiver_policy::ReceiverArgs,
}

impl PcapArgs {
    fn configs(&self) -> (EngineConfig, RulesConfig) {
        let mut engine = EngineConfig::default();
        let mut rules = RulesConfig {
            on_error: match self.on_rule_error {
                OnRuleError::Drop => ErrorPolicy::Drop,
                OnRuleError::Accept => ErrorPolicy::Accept,
            },
            ..RulesConfig::default()
        };
        self.limits.apply(&mut engine, &mut rules);
        engine.receiver = self.receiver.table();
        (engine, rules)
    }
}

fn init_logging(level: Option<&str>) {
    let filter = match level {
        Some(l) => EnvFilter::try_new(l).ok(),
        None => EnvFilter::try_from_env("SLUICE_LOG").ok(),
    }
    .unwrap_or_else(|| EnvFilter::new("warn"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).init();
}

fn pcap(args: &PcapArgs) -> ExitCode {
    let (engine, rules_config) = args.configs();
    let opts = OfflineOptions {
        rules: args.rules.clone(),
        input: args.input.clone(),
        output: args.output.clone(),
        alerts: args.alerts.clone(),
        dump_streams: args.dump_streams.clone(),
        engine,
        rules_config,
        progress: !args.no_progress,
    };
    let summary = match offline::run(&opts) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("sluice: {e}");
            return ExitCode::from(1);
        }
    };
    eprint!("{summary}");
    if let Some(path) = &args.summary_json {
        let text = summary.to_json().to_string() + "\n";
        if let Err(e) = std::fs::write(path, text) {
            eprintln!("sluice: {}: {e}", path.display());
            return ExitCode::from(1);
        }
    }
    if summary.has_errors() {
        return ExitCode::from(3);
    }
    ExitCode::SUCCESS
}

fn check(rules: &std::path::Path) -> ExitCode {
    match offline::check_rules(rules) {
        Ok(report) => {
            let hooks = if report.events.is_empty() {
                "hooking no events".to_string()
            } else {
                format!("on events {}", report.events.join(", "))
            };
            println!("{}: {} rules, {} policies, {hooks}", rules.display(), report.rules, report.policies);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sluice: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(args: sluice::inline::cli::RunArgs, log_level: Option<String>) -> ExitCode {
    let mut opts: sluice::inline::InlineOptions = args.into();
    if let Some(l) = log_level {
        opts.log_level = l;
    }
    match sluice::inline::run(opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sluice: {e}");
            ExitCode::from(1)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Pcap(args) => {
            init_logging(cli.log_level.as_deref());
            pcap(&args)
        }
        Command::Check { rules } => {
            init_logging(cli.log_level.as_deref());
            check(&rules)
        }
        // The daemon sets up its own logging (default level info).
        Command::Run(args) => run(*args, cli.log_level),
        Command::Stats(args) => match sluice::inline::cli::stats_command(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("sluice: {e}");
                ExitCode::from(1)
            }
        },
    }
}
