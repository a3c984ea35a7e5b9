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
        /// A variable for the rules, NAME=VALUE (repeatable; NAME a Lua identifier).
        #[arg(long = "var", value_name = "NAME=VALUE", value_parser = sluice::config::parse_var)]
        vars: Vec<(String, String)>,
    },
    /// Filter packets inline through NFQUEUE (root).
    Run(Box<sluice::inline::cli::RunArgs>),
    /// Print the counters of a running `sluice run`.
    Stats(sluice::inline::cli::StatsArgs),
}

/// `sluice pcap`'s exit status when a rule raised an error (after every
/// output was written), unless `--allow-rule-errors`.
const EXIT_RULE_ERRORS: u8 = 4;

/// What to do with a packet when a rule raises an error.
#[derive(ValueEnum, Clone, Copy, Debug)]
enum OnRuleError {
    /// Drop the packet (fail closed).
    Drop,
    /// Accept the packet (fail open).
    Accept,
}

/// `--checksums` values.
#[derive(ValueEnum, Clone, Copy, Debug)]
enum Checksums {
    /// Verify, except what hosts left to NIC offload (found by reading the capture first).
    Auto,
    /// Verify every checksum.
    Verify,
    /// Verify no checksum.
    Ignore,
}

#[derive(clap::Args, Debug)]
struct PcapArgs {
    /// The Lua rule file.
    rules: PathBuf,
    /// The capture to replay (pcap or pcapng; `-`: standard input).
    input: PathBuf,
    /// Write the packets that pass (and forged RSTs) to this pcap.
    #[arg(short, long, value_name = "OUTPUT.pcap", value_parser = output_path)]
    output: Option<PathBuf>,
    /// Write alerts (JSON lines) to this file instead of stdout (`-`: stdout).
    #[arg(long, value_name = "FILE")]
    alerts: Option<PathBuf>,
    /// Write each TCP direction's delivered bytes into this directory.
    #[arg(long, value_name = "DIR")]
    dump_streams: Option<PathBuf>,
    /// Also write the summary as JSON to this file (`-`: stdout, with --alerts FILE).
    #[arg(long, value_name = "FILE")]
    summary_json: Option<PathBuf>,
    /// Never show a progress bar.
    #[arg(long)]
    no_progress: bool,
    /// What happens to a packet whose rule raised an error.
    #[arg(long, value_enum, default_value = "drop")]
    on_rule_error: OnRuleError,
    /// Analyse the capture as a tap saw it: TCP data delivered when
    /// acknowledged, capture loss reported as gaps, nothing dropped for TCP
    /// validity checks, connections picked up midstream.
    #[arg(long)]
    passive: bool,
    /// Checksums: auto finds the hosts whose NIC was left to fill them in
    /// (offload) and verifies every other host's; verify checks all; ignore none.
    #[arg(long, value_enum, value_name = "MODE", conflicts_with = "no_verify_checksums")]
    checksums: Option<Checksums>,
    /// Worker threads, each with its own engine and Lua state; flows are
    /// sharded over them and every output is the same as with 1 (default:
    /// the number of CPUs). Rule globals are per worker.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    workers: Option<u16>,
    /// Exit with status 0 even if a rule raised an error (default: status 4).
    #[arg(long)]
    allow_rule_errors: bool,
    /// A variable for the rules, NAME=VALUE (repeatable; NAME a Lua identifier).
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = sluice::config::parse_var)]
    vars: Vec<(String, String)>,
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
            vars: self.vars.clone(),
            ..RulesConfig::default()
        };
        self.limits.apply(&mut engine, &mut rules);
        engine.passive = self.passive;
        engine.receiver = self.receiver.table();
        (engine, rules)
    }
}

/// The offline commands' log filter when none is given: warnings, and the
/// rules' own `haka.log` lines from info up (sluice's info stays quiet).
const OFFLINE_LOG_FILTER: &str = "warn,sluice::rules=info";

fn init_logging(level: Option<&str>) {
    let filter = match level {
        Some(l) => EnvFilter::try_new(l).ok(),
        None => EnvFilter::try_from_env("SLUICE_LOG").ok(),
    }
    .unwrap_or_else(|| EnvFilter::new(OFFLINE_LOG_FILTER));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(offline::OrderedStderr)
        .with_target(false)
        .init();
}

fn pcap(args: &PcapArgs) -> ExitCode {
    let alerts = sluice::alert::alerts_file(args.alerts.clone());
    let summary_to_stdout = args.summary_json.as_deref().is_some_and(|p| p.as_os_str() == "-");
    if summary_to_stdout && alerts.is_none() {
        eprintln!("sluice: --summary-json - writes to standard output, where alerts go by default: give --alerts FILE");
        return ExitCode::from(2);
    }
    let (engine, rules_config) = args.configs();
    let opts = OfflineOptions {
        rules: args.rules.clone(),
        input: args.input.clone(),
        output: args.output.clone(),
        alerts,
        dump_streams: args.dump_streams.clone(),
        engine,
        rules_config,
        progress: !args.no_progress,
        // `--no-verify-checksums` (shared with `sluice run`) is `ignore`.
        checksums: match args.checksums {
            None | Some(Checksums::Auto) => offline::ChecksumMode::Auto,
            Some(Checksums::Verify) => offline::ChecksumMode::Verify,
            Some(Checksums::Ignore) => offline::ChecksumMode::Ignore,
        },
        workers: match args.workers {
            Some(n) => usize::from(n),
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        },
    };
    let (summary, damage) = match offline::run(&opts) {
        Ok(s) => (s, None),
        Err(offline::OfflineError::Damaged { error, summary }) => (*summary, Some(error)),
        Err(e) => {
            eprintln!("sluice: {e}");
            return ExitCode::from(1);
        }
    };
    eprint!("{summary}");
    if let Some(path) = &args.summary_json {
        let text = summary.to_json().to_string() + "\n";
        let written = if summary_to_stdout {
            std::io::Write::write_all(&mut std::io::stdout().lock(), text.as_bytes())
        } else {
            std::fs::write(path, text)
        };
        if let Err(e) = written {
            eprintln!("sluice: {}: {e}", path.display());
            return ExitCode::from(1);
        }
    }
    if let Some(e) = damage {
        eprintln!("sluice: {e}");
        return ExitCode::from(1);
    }
    if summary.has_errors() {
        return ExitCode::from(3);
    }
    if summary.rule_errors > 0 && !args.allow_rule_errors {
        eprintln!(
            "sluice: {} rule errors (exit status {EXIT_RULE_ERRORS}; --allow-rule-errors for 0)",
            summary.rule_errors
        );
        return ExitCode::from(EXIT_RULE_ERRORS);
    }
    ExitCode::SUCCESS
}

fn check(rules: &std::path::Path, vars: Vec<(String, String)>) -> ExitCode {
    let cfg = RulesConfig { vars, ..RulesConfig::default() };
    match offline::check_rules(rules, &cfg) {
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
        Command::Check { rules, vars } => {
            init_logging(cli.log_level.as_deref());
            check(&rules, vars)
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

/// `-o`'s file. `-` is refused rather than taken as a file of that name:
/// it reads as standard output (as `-` reads as standard input for the
/// capture), where alerts and the rules' `print` already go.
fn output_path(arg: &str) -> Result<PathBuf, String> {
    if arg == "-" {
        return Err("the output pcap cannot go to standard output (alerts and the rules' print() \
                    write there): give a file name (./- for a file named -)"
            .into());
    }
    Ok(PathBuf::from(arg))
}
