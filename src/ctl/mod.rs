//! `roomrecctl`: the admin and demo command line for a roomrec device, over MQTT 5.
//!
//! Owns: the command-line interface (clap types, so the binary stays a thin `main`), resolving
//! it into a validated context, and the exit-code contract:
//!
//! | code | meaning |
//! | --- | --- |
//! | 0 | done |
//! | 1 | the device answered with an error (or the output could not be written) |
//! | 2 | usage or bad input (clap's own errors use 2 as well) |
//! | 3 | the device did not answer in time |
//! | 4 | the broker is unreachable, refused us, or dropped the connection |
//! | 5 | `watermark read`: the file or stream carries no audio watermark |
//!
//! Submodules: `broker` (the MQTT session), `commands` (one function a subcommand), `render`
//! (readable text). Everything that talks to the device uses the types in `crate::protocol`.

mod broker;
mod commands;
mod render;

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

pub use broker::BrokerUrl;

use crate::protocol::{Id, ACTIONS};

/// Command-line interface of `roomrecctl`.
#[derive(Debug, Parser)]
#[command(
    name = "roomrecctl",
    version,
    about = "Inspect and drive a roomrec meeting-room recorder over MQTT",
    after_help = "Exit codes: 0 ok, 1 the device answered with an error, 2 usage or bad input, \
                  3 the device did not answer in time, 4 the MQTT broker is unreachable, \
                  5 no audio watermark (watermark read)."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: CtlCommand,
}

/// Options valid before or after the subcommand.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Broker URL: mqtt://host[:port] or mqtts://host[:port] (TLS; needs --ca).
    #[arg(
        long,
        global = true,
        value_name = "URL",
        default_value = "mqtt://127.0.0.1:1883"
    )]
    pub broker: String,
    /// CA certificate (PEM) that signed the broker's certificate, for mqtts://.
    #[arg(long, global = true, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// Client certificate chain (PEM), for brokers that require one; needs --key.
    #[arg(long, global = true, value_name = "FILE", requires = "key")]
    pub cert: Option<PathBuf>,
    /// Private key (PEM) of --cert.
    #[arg(long, global = true, value_name = "FILE", requires = "cert")]
    pub key: Option<PathBuf>,
    /// MQTT user name.
    #[arg(long, global = true)]
    pub username: Option<String>,
    /// File holding the MQTT password (first line), so it never shows in the process list.
    #[arg(long, global = true, value_name = "FILE", requires = "username")]
    pub password_file: Option<PathBuf>,
    /// Device id: topics are under roomrec/v1/<ID> [default: room-101].
    #[arg(long, global = true, value_name = "ID", conflicts_with = "prefix")]
    pub device: Option<String>,
    /// Topic prefix, for a device configured with its own mqtt.topic_prefix.
    #[arg(long, global = true, value_name = "P")]
    pub prefix: Option<String>,
    /// Ed25519 signing key (from `roomrecctl key gen`): signs commands (required for admin:<name>
    /// actors) and meeting snapshots. The device checks it against its auth.admin_keys.
    #[arg(long, global = true, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    /// Machine output: one JSON document per line on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    /// How long to wait for the broker and for the device's answer.
    #[arg(long, global = true, value_name = "SECONDS", default_value = "5", value_parser = parse_seconds)]
    pub timeout: Duration,
}

#[derive(Debug, Subcommand)]
pub enum CtlCommand {
    /// Show the device's retained status and recording state.
    Status,
    /// Print state changes and events as they happen (until Ctrl-C, --count or --for).
    Watch {
        /// Stop after this many messages.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        count: Option<u64>,
        /// Stop after this long.
        #[arg(long = "for", value_name = "SECONDS", value_parser = parse_seconds)]
        duration: Option<Duration>,
    },
    /// Send a command and print the device's reply.
    ///
    /// FIELD=VALUE pairs become fields of the command; VALUE is taken as JSON when it parses
    /// (shared=true, muted=false, n=3), otherwise as a string (kind=cloud). Quote to force a
    /// string: recording_id='"123"'.
    Send {
        /// The action, for example start, stop, mute, status, list_recordings.
        #[arg(value_parser = clap::builder::PossibleValuesParser::new(ACTIONS))]
        action: String,
        /// Who the command is issued for: a participant id, or admin:<name>.
        #[arg(long = "as", value_name = "ACTOR")]
        actor: String,
        /// Command id [default: a random ctl-… id]; reusing one gets the first answer again.
        #[arg(long)]
        id: Option<String>,
        /// Command fields, as FIELD=VALUE.
        #[arg(value_name = "FIELD=VALUE")]
        fields: Vec<String>,
    },
    /// Publish or clear the retained meeting snapshot (what the meeting service does).
    Meeting {
        #[command(subcommand)]
        action: MeetingCommand,
    },
    /// Publish the retained Rooms licence.
    Licence {
        #[command(subcommand)]
        action: LicenceCommand,
    },
    /// Manage Ed25519 signing keys for admin commands.
    Key {
        #[command(subcommand)]
        action: KeyCommand,
    },
    /// Read the audio watermark of a recording (no device or broker needed).
    Watermark {
        #[command(subcommand)]
        action: WatermarkCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum WatermarkCommand {
    /// Print the 48-bit id the audio watermark of FILE_OR_URL carries, or "no watermark"
    /// (exit code 5). Reads an MP4, an MPEG-TS segment or an HLS playlist (with the segments
    /// it lists), as a local path or an http(s) URL; looks at its first 10 minutes.
    Read {
        #[arg(value_name = "FILE_OR_URL")]
        source: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Write a new private key to FILE (mode 0600) and print the public key for the device's
    /// config (auth.admin_keys).
    Gen {
        /// Where to write the private key; an existing file is kept unless --force.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Overwrite FILE if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Write a new random 32-byte segment key to FILE (64 hex digits, mode 0600), for the
    /// device's storage.segment_key_file (encryption at rest).
    Segment {
        /// Where to write the key; an existing file is kept unless --force (replacing the
        /// key makes segments encrypted with the old one unreadable).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Overwrite FILE if it exists.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum MeetingCommand {
    /// Validate FILE as a meeting snapshot and publish it retained ("-" reads stdin).
    Set { file: PathBuf },
    /// Publish an empty retained message: no meeting.
    Clear,
}

#[derive(Debug, Subcommand)]
pub enum LicenceCommand {
    /// Publish {"kind": KIND, "valid_until": TIME} retained.
    Set {
        /// RFC 3339 time, for example 2027-03-01T00:00:00Z.
        #[arg(long, value_name = "RFC3339")]
        valid_until: String,
        #[arg(long, default_value = "rooms")]
        kind: String,
    },
}

/// Why a run failed; `exit_code` maps each to the documented exit status.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// Bad arguments or input files, found before anything is sent.
    #[error("{0}")]
    Usage(String),
    /// The device answered the command with an error.
    #[error("error {code}: {message}")]
    Device { code: String, message: String },
    /// The device did not answer within the timeout.
    #[error("{0}")]
    NoAnswer(String),
    /// The first connection attempt failed.
    #[error("cannot reach the MQTT broker at {url}: {reason}; {hint}")]
    Unreachable {
        url: String,
        reason: String,
        hint: String,
    },
    /// The broker refused a subscription or message, or dropped the connection.
    #[error("{0}")]
    Broker(String),
    /// Writing to stdout failed (a closed pipe is not an error: see `run_with`).
    #[error("cannot write the output: {0}")]
    Output(#[source] io::Error),
    /// The async runtime could not start.
    #[error("cannot start: {0}")]
    Runtime(#[source] io::Error),
    /// `watermark read` found no audio watermark.
    #[error("{0}")]
    NoWatermark(String),
}

impl CtlError {
    pub fn exit_code(&self) -> i32 {
        match self {
            CtlError::Device { .. } | CtlError::Output(_) | CtlError::Runtime(_) => 1,
            CtlError::Usage(_) => 2,
            CtlError::NoAnswer(_) => 3,
            CtlError::Unreachable { .. } | CtlError::Broker(_) => 4,
            CtlError::NoWatermark(_) => 5,
        }
    }
}

/// Runs one command, writing its output to stdout.
pub fn run(cli: Cli) -> Result<(), CtlError> {
    let stdout = io::stdout();
    let mut out = stdout.lock();
    run_with(cli, &mut out)
}

/// Runs one command, writing its output to `out`.
pub fn run_with(cli: Cli, out: &mut dyn Write) -> Result<(), CtlError> {
    // One thread is plenty for one connection, and keeps the CLI's footprint small.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(CtlError::Runtime)?;
    let result = runtime.block_on(async {
        let ctx = Context::resolve(&cli.global)?;
        commands::dispatch(&ctx, cli.command, out).await
    });
    match result {
        // `roomrecctl watch | head -3`: the reader has all it wanted.
        Err(CtlError::Output(e)) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// The validated global options.
pub(crate) struct Context {
    pub connect: broker::ConnectSpec,
    /// Topic prefix without a trailing '/'.
    pub prefix: String,
    /// "device room-101", or "the device at <prefix>" when --prefix was given.
    pub target: String,
    pub json: bool,
    pub timeout: Duration,
    /// From --key-file: signs what is sent.
    pub signer: Option<crate::auth::SecretKey>,
}

impl Context {
    fn resolve(g: &GlobalArgs) -> Result<Context, CtlError> {
        let url = BrokerUrl::parse(&g.broker).map_err(CtlError::Usage)?;
        let tls = if url.tls {
            let ca = g.ca.as_deref().ok_or_else(|| {
                CtlError::Usage(format!(
                    "{url} uses TLS: give the broker's CA certificate with --ca FILE"
                ))
            })?;
            let client = match (&g.cert, &g.key) {
                (Some(cert), Some(key)) => {
                    Some((read_file(cert, "--cert")?, read_file(key, "--key")?))
                }
                _ => None,
            };
            Some(broker::TlsFiles {
                ca: read_file(ca, "--ca")?,
                client,
            })
        } else {
            if g.ca.is_some() || g.cert.is_some() {
                return Err(CtlError::Usage(format!(
                    "--ca, --cert and --key need a TLS broker URL (mqtts://), not {url}"
                )));
            }
            None
        };
        let credentials = match &g.username {
            None => None,
            Some(user) => {
                let password = match &g.password_file {
                    Some(p) => {
                        let bytes = read_file(p, "--password-file")?;
                        let text = String::from_utf8(bytes).map_err(|_| {
                            CtlError::Usage(format!("{} is not UTF-8 text", p.display()))
                        })?;
                        // Files usually end with a newline that is not part of the password.
                        text.lines().next().unwrap_or("").to_owned()
                    }
                    None => String::new(),
                };
                Some((user.clone(), password))
            }
        };
        let (prefix, target) = match (&g.prefix, &g.device) {
            (Some(p), _) => {
                let p = validate_prefix(p)?;
                let target = format!("the device at {p}");
                (p, target)
            }
            (None, device) => {
                let device = device.as_deref().unwrap_or("room-101");
                let id = Id::parse(device)
                    .map_err(|e| CtlError::Usage(format!("--device {device:?} {e}")))?;
                (format!("roomrec/v1/{id}"), format!("device {id}"))
            }
        };
        let signer =
            match &g.key_file {
                None => None,
                Some(path) => {
                    let bytes = read_file(path, "--key-file")?;
                    let text = String::from_utf8(bytes).map_err(|_| {
                        CtlError::Usage(format!("--key-file {} is not UTF-8 text", path.display()))
                    })?;
                    Some(crate::auth::SecretKey::parse_file(&text).map_err(|e| {
                        CtlError::Usage(format!("--key-file {}: {e}", path.display()))
                    })?)
                }
            };
        Ok(Context {
            signer,
            connect: broker::ConnectSpec {
                url,
                tls,
                credentials,
                timeout: g.timeout,
            },
            prefix,
            target,
            json: g.json,
            timeout: g.timeout,
        })
    }

    pub fn topic(&self, leaf: &str) -> String {
        format!("{}/{leaf}", self.prefix)
    }
}

fn validate_prefix(p: &str) -> Result<String, CtlError> {
    let trimmed = p.trim_end_matches('/');
    if trimmed.is_empty() || trimmed.contains(['+', '#', '\0']) {
        return Err(CtlError::Usage(format!(
            "--prefix {p:?} must be a topic without wildcards (+, #), like roomrec/v1/room-101"
        )));
    }
    Ok(trimmed.to_owned())
}

fn read_file(path: &Path, option: &str) -> Result<Vec<u8>, CtlError> {
    std::fs::read(path)
        .map_err(|e| CtlError::Usage(format!("cannot read {option} {}: {e}", path.display())))
}

/// Parses a positive number of seconds ("5", "0.5").
fn parse_seconds(s: &str) -> Result<Duration, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 86_400.0 => Ok(Duration::from_secs_f64(v)),
        _ => Err(format!(
            "{s:?} is not a number of seconds between 0 and 86400"
        )),
    }
}

/// `5 s`, `0.5 s`: for messages.
pub(crate) fn seconds(d: Duration) -> String {
    format!("{} s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("roomrecctl").chain(args.iter().copied()))
    }

    #[test]
    fn globals_work_after_the_subcommand() {
        let cli = parse(&["status", "--device", "room-7", "--json", "--timeout", "0.5"]).unwrap();
        let ctx = Context::resolve(&cli.global).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ctx.prefix, "roomrec/v1/room-7");
        assert_eq!(ctx.target, "device room-7");
        assert!(ctx.json);
        assert_eq!(seconds(ctx.timeout), "0.5 s");
        assert_eq!(ctx.topic("cmd"), "roomrec/v1/room-7/cmd");
    }

    #[test]
    fn defaults() {
        let cli = parse(&["status"]).unwrap();
        let ctx = Context::resolve(&cli.global).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ctx.prefix, "roomrec/v1/room-101");
        assert_eq!(ctx.connect.url.to_string(), "mqtt://127.0.0.1:1883");
        assert_eq!(seconds(ctx.timeout), "5 s");
    }

    #[test]
    fn bad_globals_are_usage_errors() {
        for (args, needle) in [
            (&["--device", "a/b", "status"][..], "--device"),
            (&["--prefix", "x/#", "status"][..], "wildcards"),
            (&["--broker", "mqtts://h", "status"][..], "--ca"),
            (&["--ca", "/nonexistent", "status"][..], "mqtts://"),
        ] {
            let cli = parse(args).unwrap();
            let e = Context::resolve(&cli.global).err().expect("an error");
            assert_eq!(e.exit_code(), 2, "{args:?}");
            assert!(e.to_string().contains(needle), "{args:?}: {e}");
        }
        assert!(parse(&["--timeout", "0", "status"]).is_err());
        assert!(parse(&["--device", "a", "--prefix", "p", "status"]).is_err());
        assert!(parse(&["send", "fly", "--as", "u-1"]).is_err());
        assert!(parse(&["--cert", "c", "status"]).is_err());
    }
}
