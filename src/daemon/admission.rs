//! Admission: what stands between a decoded command and the rules engine.
//!
//! Owns: the admin signature check with its nonce memory, command de-duplication (a repeated
//! id is answered with its first reply), and the catalog facts a command needs so the engine
//! decides without I/O. Must not touch: the engine, publishing, media.

use tracing::{error, info, warn};

use super::catalog_thread::{CatalogCallError, CatalogHandle};
use crate::auth::{Refusal, Verifier};
use crate::control::Envelope;
use crate::protocol::{
    Action, Actor, Command, ErrorBody, ErrorCode, Id, RecordingState, Timestamp,
};
use crate::rules::CommandContext;

/// What becomes of a decoded command.
#[derive(Debug)]
pub enum Admitted {
    /// For the engine, with the catalog facts it needs.
    Run(CommandContext),
    /// Seen before: answer with the first reply, as stored.
    Repeat(Vec<u8>),
    /// Refused before the engine (an admin command that failed its checks): answer with this,
    /// and do not remember it, so an unsigned message cannot fix the answer to an id a real
    /// admin command may use later.
    Refused(ErrorBody),
}

pub struct Admission {
    verifier: Verifier,
    catalog: CatalogHandle,
}

impl Admission {
    pub fn new(verifier: Verifier, catalog: CatalogHandle) -> Admission {
        Admission { verifier, catalog }
    }

    /// Signature checks of meeting snapshots (`auth.require_signed_meeting`).
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    /// Admits a command: admin authentication first (so an exact replay is refused as such
    /// rather than answered), then de-duplication, then the facts.
    pub async fn admit(&self, cmd: &Command, envelope: &Envelope) -> Admitted {
        if let Actor::Admin(name) = &cmd.actor {
            if let Err(error) = self.authenticate(name, envelope).await {
                warn!(command = %cmd.id, actor = %cmd.actor, action = cmd.action.name(),
                    reason = ?error.reason, detail = %error.message, "refused an admin command");
                return Admitted::Refused(error);
            }
        }
        if let Some(stored) = self.first_reply(&cmd.id.to_string()).await {
            info!(command = %cmd.id, "answered a repeated command with its first reply");
            return Admitted::Repeat(stored.into_bytes());
        }
        Admitted::Run(self.facts_for(cmd).await)
    }

    /// Checks an admin command's signature, freshness and nonce (`crate::auth`). A sender that
    /// retries signs again (new nonce, same id) and gets the first answer.
    async fn authenticate(&self, admin: &str, envelope: &Envelope) -> Result<(), ErrorBody> {
        let now = Timestamp::now();
        let verified = self
            .verifier
            .check_admin(
                admin,
                &envelope.topic,
                &envelope.payload,
                &envelope.signatures,
                now,
            )
            .map_err(forbidden)?;
        let Some(v) = verified else {
            warn!(
                admin,
                "accepted an unsigned admin command (auth.allow_unsigned_admin)"
            );
            return Ok(());
        };
        let (key_id, nonce, signed_at) = (v.key_id.clone(), v.nonce.clone(), v.signed_at);
        let claimed = self
            .catalog
            .call(move |c| c.claim_nonce(&key_id, &nonce, signed_at, now))
            .await;
        match claimed {
            Ok(true) => Ok(()),
            Ok(false) => Err(forbidden(Refusal::Replayed(v.nonce))),
            // Fail closed: without the nonce memory a replay could not be told apart.
            Err(e) => {
                error!(error = %e, "cannot record a signed command's nonce; refusing it");
                Err(ErrorBody::new(
                    ErrorCode::Internal,
                    format!(
                        "the device cannot check this signed command for replay ({}); try again",
                        cause(&e)
                    ),
                ))
            }
        }
    }

    /// The stored reply to a command id seen before. A catalog that cannot tell is not a
    /// reason to refuse: the command is handled (at worst twice, which the rules tolerate).
    async fn first_reply(&self, command_id: &str) -> Option<String> {
        let lookup = command_id.to_owned();
        match self.catalog.call(move |c| c.command_reply(&lookup)).await {
            Ok(stored) => stored,
            Err(e) => {
                warn!(command = %command_id, error = %e, "command log unreadable; handling the command anyway");
                None
            }
        }
    }

    /// Looks up the catalog facts a command needs, so the engine can decide without I/O.
    async fn facts_for(&self, cmd: &Command) -> CommandContext {
        let mut ctx = CommandContext::default();
        match facts_needed(&cmd.action) {
            FactsNeeded::Recording(rid) => {
                let rid = rid.clone();
                match self.catalog.call(move |c| c.recording(&rid)).await {
                    Ok(row) => ctx.recording = row,
                    Err(e) => {
                        warn!(command = %cmd.id, error = %e, "cannot read the recording a command names")
                    }
                }
            }
            FactsNeeded::Listing(filter) => {
                match self.catalog.call(move |c| c.recordings(filter)).await {
                    Ok(list) => ctx.listing = list,
                    Err(e) => warn!(command = %cmd.id, error = %e, "cannot list the recordings"),
                }
            }
            FactsNeeded::None => {}
        }
        ctx
    }
}

/// What a command needs from the catalog before the engine sees it.
#[derive(Debug, PartialEq, Eq)]
pub enum FactsNeeded<'a> {
    None,
    /// The row of the recording it names (it may be of an earlier meeting).
    Recording(&'a Id),
    /// The recordings, in this state or all.
    Listing(Option<RecordingState>),
}

/// The catalog facts `action` needs; the fuzz harness asks the same question.
pub fn facts_needed(action: &Action) -> FactsNeeded<'_> {
    match action {
        Action::StopConversion { recording_id }
        | Action::Finalize { recording_id }
        | Action::Share { recording_id, .. }
        | Action::Delete { recording_id } => FactsNeeded::Recording(recording_id),
        Action::ListRecordings { state } => FactsNeeded::Listing(*state),
        _ => FactsNeeded::None,
    }
}

fn forbidden(r: Refusal) -> ErrorBody {
    let mut body = ErrorBody::new(ErrorCode::Forbidden, r.to_string());
    body.reason = Some(r.reason().to_owned());
    body
}

fn cause(e: &CatalogCallError) -> &'static str {
    match e {
        CatalogCallError::Gone => "catalog unavailable",
        CatalogCallError::Catalog(_) => "catalog error",
    }
}
