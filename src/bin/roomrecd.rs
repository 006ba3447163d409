//! roomrecd: the recording daemon. A thin shell over `roomrec::daemon`: arguments, config,
//! logging, signals and exit codes.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use roomrec::config::{Config, ConfigError, LogConfig, LogFormat};
use roomrec::journald;
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Registry};

/// sysexits.h EX_CONFIG: systemd and operators read 78 as "fix the configuration".
const EX_CONFIG: u8 = 78;

#[derive(Parser, Debug)]
#[command(name = "roomrecd", version, about = "Meeting-room recording daemon")]
struct Args {
    /// The TOML configuration file.
    #[arg(long, value_name = "FILE", default_value = "/etc/roomrec/roomrec.toml")]
    config: PathBuf,
    /// Validate the configuration, print every problem, and exit 0 (valid) or 78 (invalid).
    #[arg(long)]
    check_config: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let config = match Config::load(&args.config) {
        Ok(config) => config,
        Err(e) => return config_failure(&args.config, &e),
    };
    if args.check_config {
        println!("{}: configuration is valid", args.config.display());
        return ExitCode::SUCCESS;
    }
    let filter = match init_logging(&config.log) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{}: log: {e}", args.config.display());
            return ExitCode::from(EX_CONFIG);
        }
    };
    match run(args.config, config, filter) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!(error = format!("{e:#}"), "roomrecd stopped on an error");
            ExitCode::FAILURE
        }
    }
}

fn config_failure(path: &Path, e: &ConfigError) -> ExitCode {
    eprintln!("{}: configuration is invalid:", path.display());
    eprintln!("{e}");
    ExitCode::from(EX_CONFIG)
}

type FilterHandle = reload::Handle<EnvFilter, Registry>;

fn init_logging(log: &LogConfig) -> Result<FilterHandle, String> {
    let filter = EnvFilter::try_new(&log.level).map_err(|e| e.to_string())?;
    let (filter, handle) = reload::Layer::new(filter);
    let registry = tracing_subscriber::registry().with(filter);
    // Colour codes only for a person at a terminal, never into the journal.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let format = match log.format {
        LogFormat::Auto if journald::stderr_is_journal() => LogFormat::Journal,
        LogFormat::Auto => LogFormat::Text,
        chosen => chosen,
    };
    match format {
        LogFormat::Journal => {
            let journal = journald::JournaldLayer::connect("roomrecd")
                .map_err(|e| format!("format = \"journal\": {}: {e}", journald::JOURNAL_SOCKET))?;
            registry.with(journal).init()
        }
        LogFormat::Json => registry
            .with(tracing_subscriber::fmt::layer().json().flatten_event(true))
            .init(),
        LogFormat::Text | LogFormat::Auto => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_target(false)
                    .with_ansi(ansi),
            )
            .init(),
    }
    Ok(handle)
}

fn run(path: PathBuf, config: Config, filter: FilterHandle) -> anyhow::Result<()> {
    // One TLS provider for the whole process (rumqttc is built without its own).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let cancel = CancellationToken::new();
        tokio::spawn(handle_signals(path, filter, cancel.clone()));
        roomrec::daemon::run(config, cancel)
            .await
            .context("roomrecd failed")
    })
}

/// SIGTERM/SIGINT stop the daemon cleanly; SIGHUP re-reads the config and applies what can
/// change without a restart (the log level); other changes are reported as needing one.
async fn handle_signals(path: PathBuf, filter: FilterHandle, cancel: CancellationToken) {
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        error!("cannot install signal handlers; stop roomrecd with SIGKILL only as a last resort");
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => reload_config(&path, &filter),
        }
    }
    info!("stop requested");
    cancel.cancel();
}

fn reload_config(path: &Path, filter: &FilterHandle) {
    roomrec::daemon::Notifier::default().reloading();
    match Config::load(path) {
        Ok(config) => match EnvFilter::try_new(&config.log.level) {
            Ok(new) => match filter.reload(new) {
                Ok(()) => {
                    info!(level = %config.log.level, "configuration reloaded; log level applied, other changes apply at the next restart")
                }
                Err(e) => warn!(error = %e, "could not apply the new log level"),
            },
            Err(e) => {
                warn!(error = %e, "log.level in the new configuration is invalid; keeping the old one")
            }
        },
        Err(e) => warn!(problems = %e, "the new configuration is invalid; keeping the running one"),
    }
    roomrec::daemon::Notifier::default().ready();
}
