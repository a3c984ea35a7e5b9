//! The `sluice` command line.
// MERGE: minimal main with only `run` and `stats` (inline branch); the lead's
// main.rs adds `pcap` and `check` and keeps these two arms.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "sluice", version, about = "Inline Linux packet filter with Haka-compatible Lua rules")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Filter packets inline through NFQUEUE.
    Run(sluice::inline::cli::RunArgs),
    /// Print the counters of a running `sluice run`.
    Stats(sluice::inline::cli::StatsArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(a) => sluice::inline::run(a.into()).map_err(|e| e.to_string()),
        Command::Stats(a) => sluice::inline::cli::stats_command(a),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sluice: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
