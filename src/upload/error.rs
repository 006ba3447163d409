//! Upload errors: [`UploadError`] stops the actor from starting; [`Failure`] is one failed
//! attempt, whose message goes to `status.uploads.last_error` and says what to do.
//!
//! No message ever contains a secret: signed URLs carry only the access key id and a
//! signature, and they are never put in a message either (see `store::describe`).

use std::path::PathBuf;

use crate::catalog::CatalogError;

/// Why the upload actor could not start.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("invalid upload settings: {0}")]
    Settings(String),
    #[error(
        "upload.endpoint {endpoint:?} is not usable ({detail}); write it as \
         http(s)://host[:port] without a path"
    )]
    Endpoint { endpoint: String, detail: String },
    #[error(
        "no S3 credentials: neither upload.access_key_id + upload.secret_access_key nor \
         upload.credentials_file is set, and the environment lacks {missing}; set one of them"
    )]
    NoCredentials { missing: &'static str },
    #[error("cannot read the CA bundle {path}: {source}; check upload.ca_file")]
    CaFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the CA bundle {path} holds no usable PEM certificate; check upload.ca_file")]
    NoCa { path: PathBuf },
    #[error("cannot build the HTTPS client: {0}")]
    Client(String),
    #[error("cannot start the upload actor: {0}")]
    Catalog(#[from] CatalogError),
}

/// How far a failure reaches, which decides how the actor retries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// The store cannot be reached: probe it often (≤ 1 s) and resume as soon as it answers.
    Link,
    /// The store answers but refuses everything (credentials, bucket, 5xx): back off up to a
    /// minute, probing, without spending attempts on every job.
    Store,
    /// This object only: the job waits (exponential backoff), the others go on.
    Object,
}

/// One failed attempt, with an actionable message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    #[error(
        "cannot reach the store at {endpoint}: {detail}; uploads resume by themselves when it \
         answers"
    )]
    Unreachable { endpoint: String, detail: String },
    #[error(
        "the store took no data and gave no answer for {secs} s (stalled link or overloaded \
         store); the segment will be sent again"
    )]
    Stalled { secs: u64 },
    #[error(
        "the store rejected our signature (403 SignatureDoesNotMatch): check \
         upload.secret_access_key"
    )]
    Signature,
    #[error(
        "the store does not know our access key (403 InvalidAccessKeyId): check \
         upload.access_key_id"
    )]
    AccessKey,
    #[error(
        "the store denied access to bucket {bucket} (403 {code}: {message}): give the \
         credentials write access to it"
    )]
    AccessDenied {
        bucket: String,
        code: String,
        message: String,
    },
    #[error(
        "bucket {bucket} does not exist at {endpoint} (404 NoSuchBucket): create it or fix \
         upload.bucket"
    )]
    NoBucket { bucket: String, endpoint: String },
    #[error(
        "the store says the device clock is off {detail} ({code}); requests are now signed \
         with the store's time, but fix the device's time sync (NTP)"
    )]
    ClockSkew { detail: String, code: String },
    #[error("the store failed ({status} {code}: {message}); retrying with backoff")]
    Server {
        status: u16,
        code: String,
        message: String,
    },
    #[error("object {key} arrived damaged ({code}); it will be sent again")]
    BadDigest { key: String, code: String },
    #[error(
        "the store's answer for {key} does not match what was sent ({detail}); it will be \
         sent again"
    )]
    Mismatch { key: String, detail: String },
    #[error("the store refused {key} ({status} {code}: {message})")]
    Rejected {
        key: String,
        status: u16,
        code: String,
        message: String,
    },
    #[error(
        "cannot read segment file {path}: {detail}; the job stays queued: restore the file, \
         or delete the recording"
    )]
    LocalFile { path: String, detail: String },
}

impl Failure {
    pub fn scope(&self) -> Scope {
        match self {
            Failure::Unreachable { .. } | Failure::Stalled { .. } => Scope::Link,
            Failure::Signature
            | Failure::AccessKey
            | Failure::AccessDenied { .. }
            | Failure::NoBucket { .. }
            | Failure::ClockSkew { .. }
            | Failure::Server { .. } => Scope::Store,
            Failure::BadDigest { .. }
            | Failure::Mismatch { .. }
            | Failure::Rejected { .. }
            | Failure::LocalFile { .. } => Scope::Object,
        }
    }
}
