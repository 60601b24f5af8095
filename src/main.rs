//! `eddy`: the command-line interface of the eddy feature pipeline.
//!
//! Commands are thin: they parse arguments, open a topic backend and a
//! schema registry ([`context`]), call into the library crates, and turn the
//! outcome into output and an exit code ([`exit`]).

mod cli;
mod clickstream;
mod commands;
mod context;
mod exit;
mod progress;
mod time_arg;

use clap::Parser;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    if !matches!(cli.command, cli::Command::Registry(_)) {
        restore_sigpipe();
    }
    init_tracing(cli.global.verbose);
    match commands::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            let code = exit::code_for(&e);
            eprintln!("error: {}", exit::describe(&e));
            std::process::ExitCode::from(code as u8)
        }
    }
}

/// Rust ignores SIGPIPE, so `eddy topics consume | head` would fail with a
/// "broken pipe" error. Restore the default, as every Unix filter has it, for
/// the commands that write to stdout. The registry server keeps ignoring it:
/// a client hanging up must not kill it.
fn restore_sigpipe() {
    // SAFETY: called once at start-up, before any thread is spawned;
    // SIG_DFL is a valid disposition for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("EDDY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colours only on a terminal: logs in files and CI stay plain text.
    use std::io::IsTerminal as _;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}
