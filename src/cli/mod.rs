//! The `gitfleet` command. Thin: it parses arguments, calls the same functions the
//! controller calls, prints, and chooses the exit code.
//!
//! Exit codes: 0 success; 1 the repository is invalid or something failed; 2 (`plan`) the
//! plan is incomplete: a host could not be observed or a replica could not be placed.

mod apply;
mod pipeline;
mod plan;
mod retry;
mod router;
mod router_tls;
mod run;
mod source;
mod status;
mod validate;

use clap::{Parser, Subcommand, ValueEnum};

/// GitOps for plain Docker hosts: validate, plan and apply a repository of Compose-shaped apps.
#[derive(Debug, Parser)]
#[command(name = "gitfleet", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log format on standard error.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "GITFLEET_LOG_FORMAT")]
    log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check the repository: every problem at once, each with file:line:col.
    Validate(validate::Args),
    /// Observe every host and print what it would take to reach the repository's state.
    Plan(plan::Args),
    /// Plan, confirm, and converge the hosts to the repository's state.
    Apply(apply::Args),
    /// The controller: keep the hosts at the branch's latest good revision, from polls,
    /// webhooks, file-system notifications and Docker events; post plan previews on pull
    /// requests; write status to a status branch.
    Run(Box<run::Args>),
    /// A running controller's status in the terminal (from its /api/status).
    Status(status::Args),
    /// Ask a running controller to roll out again a revision it rolled back (a signed
    /// POST /hooks/generic), without a new commit.
    Retry(retry::Args),
    /// The router alone with a static route table from a file (benchmarks, trials).
    #[command(hide = true)]
    RouterStatic(router::Args),
}

/// Runs the command line; returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let result = match cli.command {
        Command::Validate(args) => validate::run(args),
        Command::Plan(args) => plan::run(args),
        Command::Apply(args) => apply::run(args),
        Command::Run(args) => run::run(*args),
        Command::Status(args) => status::run(args),
        Command::Retry(args) => retry::run(args),
        Command::RouterStatic(args) => router::run(args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {}", describe(&error));
            1
        }
    }
}

/// The error and its causes, joined by ": ", each cause only once: many of our errors
/// already quote their source in their own message (`cannot open repository X: <git's
/// message>`), and printing the chain too would say git's message twice.
fn describe(error: &anyhow::Error) -> String {
    let mut text = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("GITFLEET_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // Colours only for a person at a terminal: a journal or a log file gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::{Cli, Command, describe};

    /// `examples/gitfleet.service`'s ExecStart parses as a gitfleet command line.
    #[test]
    fn the_example_unit_starts_gitfleet_run() {
        let unit = include_str!("../../examples/gitfleet.service");
        let exec = unit
            .lines()
            .find_map(|l| l.strip_prefix("ExecStart="))
            .expect("the unit has an ExecStart line");
        let words = shell_words::split(exec).expect("ExecStart is a valid command line");
        assert!(words[0].ends_with("/gitfleet"), "{words:?}");
        let cli = Cli::try_parse_from(&words).unwrap_or_else(|e| panic!("{exec}: {e}"));
        assert!(matches!(cli.command, Command::Run(_)), "{cli:?}");
    }

    #[test]
    fn version_and_status_parse() {
        let version = Cli::try_parse_from(["gitfleet", "--version"]).unwrap_err();
        assert_eq!(version.kind(), clap::error::ErrorKind::DisplayVersion);
        assert!(version.to_string().contains(env!("CARGO_PKG_VERSION")));
        let cli = Cli::try_parse_from([
            "gitfleet",
            "status",
            "--server",
            "http://h:1",
            "--format",
            "json",
        ])
        .unwrap();
        assert!(matches!(cli.command, Command::Status(_)));
    }

    #[test]
    fn an_error_quoting_its_source_says_it_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("cannot open repository /x: {source}")]
        struct Quoting {
            source: std::io::Error,
        }
        let io = || std::io::Error::new(std::io::ErrorKind::NotFound, "no such directory");
        let error = anyhow::Error::new(Quoting { source: io() });
        assert_eq!(describe(&error), "cannot open repository /x: no such directory");
        let error = anyhow::Error::new(io()).context("reading fleet.yaml");
        assert_eq!(describe(&error), "reading fleet.yaml: no such directory");
    }
}
