//! The S3 client: signs requests with `rusty-s3` (SigV4 query signing, no I/O of its own) and
//! sends them with `reqwest` over rustls + ring.
//!
//! Owns: the HTTP client and its TLS roots, the credentials (only the library sees the
//! secret), the clock offset learned from the store, and the meaning of the store's answers
//! ([`Failure`]). Must not touch: the catalog, the queue's policy (the actor decides when to
//! retry), media.
//!
//! Integrity: every PUT carries `Content-MD5` (which every S3-compatible store checks) and
//! `x-amz-checksum-sha256` (checked by stores that know it), both signed; the answer's ETag
//! must be the MD5 we computed, and its SHA-256 checksum, when given, ours. The segment's
//! SHA-256 is also stored as `x-amz-meta-sha256`, so a later HEAD can tell an object that is
//! already there, complete and right, from a stale or half-written one.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use reqwest::header::{HeaderMap, CONTENT_LENGTH, CONTENT_TYPE, DATE, ETAG};
use reqwest::{Response, StatusCode};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};
use tokio::io::AsyncReadExt;
use tokio::time::Instant;
use tracing::{debug, warn};

use super::error::{Failure, UploadError};
use super::limiter::Limiter;
use crate::config::{UploadConfig, UploadCredentials};

/// Where the CA bundle lives when no `upload.ca_file` is configured (Debian, Yocto).
const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
/// How long a signed URL stays valid: long enough for a slow upload to start, short enough
/// that a leaked URL is soon useless.
const SIGNED_FOR: Duration = Duration::from_secs(900);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Read and send files in chunks of this size (the limiter's unit).
const CHUNK: usize = 64 * 1024;
/// Skew below this is left alone: signatures tolerate 15 minutes.
const SKEW_IGNORED_S: i64 = 60;
/// A probe gives up after this: a SYN lost in an outage is retried by the kernel only after
/// 1 s, then 3 s; a fresh probe is quicker than waiting for that.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// The prefix listed by the reachability probe; nothing need exist under it.
const PROBE_NAME: &str = ".roomrec-probe";

/// What a HEAD tells about an object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreObject {
    pub bytes: u64,
    /// Without quotes.
    pub etag: Option<String>,
    /// `x-amz-meta-sha256`, as we stored it.
    pub meta_sha256: Option<String>,
}

/// A segment file ready to send: its checksums, computed from the file just now.
#[derive(Clone, Debug)]
pub struct FileToSend {
    pub path: PathBuf,
    /// The content itself when it was decrypted to memory (an encrypted segment); `None`:
    /// read from `path`.
    pub data: Option<Bytes>,
    pub bytes: u64,
    pub md5: [u8; 16],
    pub sha256: [u8; 32],
}

/// One S3-compatible bucket. Cheap to share (`Arc`); requests may run in parallel.
#[derive(Debug)]
pub struct Store {
    client: reqwest::Client,
    bucket: Bucket,
    credentials: Credentials,
    endpoint: String,
    /// Seconds added to the wall clock when signing: configured offset + learned skew.
    offset_s: AtomicI64,
    stall: Duration,
}

impl Store {
    /// A client for the bucket in `config`. Reads credentials (file contents were read by
    /// config; the environment here) and the CA bundle now, so mistakes show at start.
    pub fn new(
        config: &UploadConfig,
        clock_offset_s: i64,
        stall: Duration,
    ) -> Result<Store, UploadError> {
        let endpoint_url = parse_endpoint(&config.endpoint)?;
        let style = match config.path_style {
            true => UrlStyle::Path,
            false => UrlStyle::VirtualHost,
        };
        let bucket = Bucket::new(
            endpoint_url,
            style,
            config.bucket.clone(),
            config.region.clone(),
        )
        .map_err(|e| UploadError::Endpoint {
            endpoint: config.endpoint.clone(),
            detail: e.to_string(),
        })?;
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(tls_config(config)?)
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .build()
            .map_err(|e| UploadError::Client(e.to_string()))?;
        Ok(Store {
            client,
            bucket,
            credentials: credentials(&config.credentials)?,
            endpoint: config.endpoint.clone(),
            offset_s: AtomicI64::new(clock_offset_s),
            stall,
        })
    }

    pub fn bucket_name(&self) -> &str {
        self.bucket.name()
    }

    /// The unsigned URL of an object, e.g. for `recording_ready`'s location.
    pub fn object_url(&self, key: &str) -> String {
        self.bucket
            .object_url(key)
            .map(String::from)
            .unwrap_or_else(|_| format!("s3://{}/{key}", self.bucket.name()))
    }

    /// A GET URL for `key` valid for `valid_for`: lets a player fetch one object unsigned.
    pub fn presigned_get(&self, key: &str, valid_for: Duration) -> String {
        let action = self.bucket.get_object(Some(&self.credentials), key);
        self.sign(&action, valid_for).to_string()
    }

    /// Is the store reachable, does the bucket exist, and does the store accept our
    /// signature? A one-key listing under `key_prefix`: unlike a GET or HEAD of an object it
    /// tells a missing bucket from a missing object, and its error answers have a body. A
    /// 403 AccessDenied (credentials that may write but not list) counts as reachable: the
    /// uploads themselves will tell.
    pub async fn probe(&self, key_prefix: &str) -> Result<(), Failure> {
        let mut action = self.bucket.list_objects_v2(Some(&self.credentials));
        action.with_prefix(format!("{key_prefix}{PROBE_NAME}"));
        action.with_max_keys(1);
        let url = self.sign(&action, SIGNED_FOR);
        let request = self.client.get(url).timeout(PROBE_TIMEOUT.min(self.stall));
        let response = request.send().await.map_err(|e| self.unreachable(&e))?;
        if response.status().is_success() {
            return Ok(());
        }
        match self.failure(self.bucket.name(), response).await {
            Failure::AccessDenied { .. } => Ok(()),
            f => Err(f),
        }
    }

    /// What the store has under `key`, or `None`.
    pub async fn head(&self, key: &str) -> Result<Option<StoreObject>, Failure> {
        let action = self.bucket.head_object(Some(&self.credentials), key);
        let url = self.sign(&action, SIGNED_FOR);
        let response = self.send_small(self.client.head(url)).await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !response.status().is_success() {
            return Err(self.failure(key, response).await);
        }
        let headers = response.headers();
        Ok(Some(StoreObject {
            bytes: header(headers, CONTENT_LENGTH.as_str())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            etag: header(headers, ETAG.as_str()).map(unquote),
            meta_sha256: header(headers, "x-amz-meta-sha256").map(str::to_owned),
        }))
    }

    /// Sends `file` to `key`, paced by `limiter`; returns the verified ETag.
    pub async fn put_file(
        &self,
        key: &str,
        file: &FileToSend,
        limiter: Arc<Limiter>,
    ) -> Result<String, Failure> {
        let mut action = self.bucket.put_object(Some(&self.credentials), key);
        let md5_b64 = b64(&file.md5);
        let sha_b64 = b64(&file.sha256);
        let sha_hex = hex::encode(file.sha256);
        let content_type = super::manifest::content_type(key);
        let headers = action.headers_mut();
        headers.insert("content-md5", md5_b64.clone());
        headers.insert("x-amz-checksum-sha256", sha_b64.clone());
        headers.insert("x-amz-meta-sha256", sha_hex.clone());
        headers.insert("content-type", content_type);
        let url = self.sign(&action, SIGNED_FOR);
        let progress = Arc::new(Progress::new());
        let body = match &file.data {
            // Same pacing as a file: through the limiter chunk by chunk.
            Some(data) => {
                reqwest::Body::wrap_stream(memory_stream(data.clone(), limiter, progress.clone()))
            }
            None => {
                let source = tokio::fs::File::open(&file.path)
                    .await
                    .map_err(|e| local_failure(&file.path, e))?;
                reqwest::Body::wrap_stream(file_stream(source, limiter, progress.clone()))
            }
        };
        let request = self
            .client
            .put(url)
            .header("content-md5", md5_b64)
            .header("x-amz-checksum-sha256", &sha_b64)
            .header("x-amz-meta-sha256", sha_hex)
            .header(CONTENT_TYPE, content_type)
            .header(CONTENT_LENGTH, file.bytes)
            .body(body);
        let response = tokio::select! {
            r = request.send() => r.map_err(|e| self.unreachable(&e))?,
            () = progress.stalled(self.stall) => return Err(self.stalled()),
        };
        self.check_put(key, response, &hex::encode(file.md5), Some(&sha_b64))
            .await
    }

    /// Sends a small object from memory (manifests); returns the verified ETag.
    pub async fn put_bytes(&self, key: &str, body: Vec<u8>) -> Result<String, Failure> {
        use md5::Digest as _;
        let md5 = md5::Md5::digest(&body);
        let mut action = self.bucket.put_object(Some(&self.credentials), key);
        let md5_b64 = b64(&md5);
        let content_type = super::manifest::content_type(key);
        action.headers_mut().insert("content-md5", md5_b64.clone());
        action.headers_mut().insert("content-type", content_type);
        let url = self.sign(&action, SIGNED_FOR);
        let request = self
            .client
            .put(url)
            .header("content-md5", md5_b64)
            .header(CONTENT_TYPE, content_type)
            // reqwest sends no Content-Length for an empty body; S3 requires one.
            .header(CONTENT_LENGTH, body.len())
            .body(body);
        let response = self.send_small(request).await?;
        self.check_put(key, response, &hex::encode(md5), None).await
    }

    /// The whole object (tests, and reading a manifest back).
    pub async fn get_bytes(&self, key: &str) -> Result<Option<Vec<u8>>, Failure> {
        let action = self.bucket.get_object(Some(&self.credentials), key);
        let url = self.sign(&action, SIGNED_FOR);
        let response = self.send_small(self.client.get(url)).await?;
        if response.status() == StatusCode::NOT_FOUND && !self.is_no_bucket(&response) {
            return Ok(None);
        }
        if !response.status().is_success() {
            return Err(self.failure(key, response).await);
        }
        let body = response.bytes().await.map_err(|e| self.unreachable(&e))?;
        Ok(Some(body.to_vec()))
    }

    /// Removes `key`; true if the store said it deleted something (S3 answers 204 either
    /// way, so this is true unless the store says 404).
    pub async fn delete(&self, key: &str) -> Result<bool, Failure> {
        let action = self.bucket.delete_object(Some(&self.credentials), key);
        let url = self.sign(&action, SIGNED_FOR);
        let response = self.send_small(self.client.delete(url)).await?;
        match response.status() {
            StatusCode::NOT_FOUND if !self.is_no_bucket(&response) => Ok(false),
            s if s.is_success() => Ok(true),
            _ => Err(self.failure(key, response).await),
        }
    }

    /// Creates the bucket (tests and the benchmark; the device never creates buckets).
    pub async fn create_bucket(&self) -> Result<(), Failure> {
        let action = self.bucket.create_bucket(&self.credentials);
        let url = self.sign(&action, SIGNED_FOR);
        let response = self
            .send_small(self.client.put(url).header(CONTENT_LENGTH, 0))
            .await?;
        if response.status().is_success() {
            return Ok(());
        }
        Err(self.failure(self.bucket.name(), response).await)
    }

    // -----------------------------------------------------------------------------------------

    fn sign<'a>(&self, action: &impl S3Action<'a>, valid_for: Duration) -> url::Url {
        let now = jiff::Timestamp::now();
        let offset = jiff::SignedDuration::from_secs(self.offset_s.load(Ordering::Relaxed));
        let at = now.checked_add(offset).unwrap_or(now);
        action.sign_with_time(valid_for, &at)
    }

    /// Sends a request without a streamed body, bounded by the stall timeout.
    async fn send_small(&self, request: reqwest::RequestBuilder) -> Result<Response, Failure> {
        request
            .timeout(self.stall)
            .send()
            .await
            .map_err(|e| self.unreachable(&e))
    }

    async fn check_put(
        &self,
        key: &str,
        response: Response,
        md5_hex: &str,
        sha_b64: Option<&str>,
    ) -> Result<String, Failure> {
        if !response.status().is_success() {
            return Err(self.failure(key, response).await);
        }
        let headers = response.headers();
        let etag = header(headers, ETAG.as_str())
            .map(unquote)
            .unwrap_or_default();
        let mismatch = |detail: String| Failure::Mismatch {
            key: key.to_owned(),
            detail,
        };
        if !etag.eq_ignore_ascii_case(md5_hex) {
            return Err(mismatch(format!("ETag {etag:?}, expected MD5 {md5_hex}")));
        }
        let answered = header(headers, "x-amz-checksum-sha256");
        if let (Some(theirs), Some(ours)) = (answered, sha_b64) {
            if theirs != ours {
                return Err(mismatch(format!("SHA-256 {theirs}, expected {ours}")));
            }
        }
        debug!(key, etag = %etag, "object stored and verified");
        Ok(etag)
    }

    fn is_no_bucket(&self, response: &Response) -> bool {
        // Without a body to read (HEAD), a 404 is taken as "no such object"; the probe at
        // start and after failures uses GET, which tells the two apart.
        header(response.headers(), "x-amz-error-code") == Some("NoSuchBucket")
    }

    /// Turns an error answer into a [`Failure`], learning the clock offset on a skew error.
    async fn failure(&self, key: &str, response: Response) -> Failure {
        let status = response.status();
        let date = header(response.headers(), DATE.as_str()).map(str::to_owned);
        let body = response.text().await.unwrap_or_default();
        let code = xml_field(&body, "Code").unwrap_or_else(|| status_code_name(status));
        let message = xml_field(&body, "Message").unwrap_or_default();
        warn!(key, status = status.as_u16(), code = %code, message = %message, "store refused a request");
        let skewed = code == "RequestTimeTooSkewed"
            || code == "RequestExpired"
            || (code == "AccessDenied" && message.contains("expired"));
        if skewed {
            let offset = date.as_deref().and_then(|d| self.learn_offset(d));
            let detail = match offset {
                Some(s) => format!("by {s} s"),
                None => "by an amount its answer did not tell".to_owned(),
            };
            return Failure::ClockSkew { detail, code };
        }
        classify(status, code, message, key, self)
    }

    /// Sets the signing offset from the store's `Date` header; returns how far our signing
    /// clock was off, if that matters.
    fn learn_offset(&self, date: &str) -> Option<i64> {
        let theirs = jiff::fmt::rfc2822::parse(date)
            .ok()?
            .timestamp()
            .as_second();
        let now = jiff::Timestamp::now().as_second();
        let signing = now + self.offset_s.load(Ordering::Relaxed);
        let off_by = signing - theirs;
        if off_by.abs() < SKEW_IGNORED_S {
            return None;
        }
        self.offset_s.store(theirs - now, Ordering::Relaxed);
        warn!(
            off_by_s = off_by,
            "device clock differs from the store's; signing with the store's time"
        );
        Some(off_by)
    }

    fn unreachable(&self, e: &reqwest::Error) -> Failure {
        if e.is_timeout() {
            return self.stalled();
        }
        Failure::Unreachable {
            endpoint: self.endpoint.clone(),
            detail: describe(e),
        }
    }

    fn stalled(&self) -> Failure {
        Failure::Stalled {
            secs: self.stall.as_secs(),
        }
    }
}

fn classify(
    status: StatusCode,
    code: String,
    message: String,
    key: &str,
    store: &Store,
) -> Failure {
    match (status.as_u16(), code.as_str()) {
        (_, "SignatureDoesNotMatch") => Failure::Signature,
        (_, "InvalidAccessKeyId") => Failure::AccessKey,
        (_, "NoSuchBucket") => Failure::NoBucket {
            bucket: store.bucket.name().to_owned(),
            endpoint: store.endpoint.clone(),
        },
        (_, "BadDigest" | "InvalidDigest" | "IncompleteBody" | "XAmzContentChecksumMismatch") => {
            Failure::BadDigest {
                key: key.to_owned(),
                code,
            }
        }
        (403, _) => Failure::AccessDenied {
            bucket: store.bucket.name().to_owned(),
            code,
            message,
        },
        (s, _) if s >= 500 || s == 429 || code == "SlowDown" => Failure::Server {
            status: s,
            code,
            message,
        },
        (s, _) => Failure::Rejected {
            key: key.to_owned(),
            status: s,
            code,
            message,
        },
    }
}

/// A reqwest error without the URL: signed URLs must not reach logs or status messages
/// (they carry a signature that works for 15 minutes).
fn describe(e: &reqwest::Error) -> String {
    let mut text = if e.is_connect() {
        "connection failed"
    } else if e.is_timeout() {
        "timed out"
    } else if e.is_body() {
        "sending the body failed"
    } else {
        "request failed"
    }
    .to_owned();
    // The sources are hyper's and the OS's errors, which do not contain the URL.
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn status_code_name(status: StatusCode) -> String {
    status
        .canonical_reason()
        .map(|r| r.replace(' ', ""))
        .unwrap_or_else(|| status.as_u16().to_string())
}

fn xml_field(body: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = body.find(&open)? + open.len();
    let end = body[start..].find(&close)? + start;
    Some(body[start..end].trim().chars().take(300).collect())
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn unquote(v: &str) -> String {
    v.trim()
        .trim_start_matches("W/")
        .trim_matches('"')
        .to_owned()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn local_failure(path: &Path, e: std::io::Error) -> Failure {
    Failure::LocalFile {
        path: path.display().to_string(),
        detail: e.to_string(),
    }
}

fn parse_endpoint(endpoint: &str) -> Result<url::Url, UploadError> {
    let bad = |detail: String| UploadError::Endpoint {
        endpoint: endpoint.to_owned(),
        detail,
    };
    let url = url::Url::parse(endpoint).map_err(|e| bad(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad(format!(
            "scheme {:?} is not http or https",
            url.scheme()
        )));
    }
    if url.path() != "/" || url.query().is_some() || !url.username().is_empty() {
        return Err(bad("it has a path, query or user name".into()));
    }
    Ok(url)
}

fn credentials(c: &UploadCredentials) -> Result<Credentials, UploadError> {
    match c {
        UploadCredentials::Keys {
            access_key_id,
            secret_access_key,
            ..
        } => Ok(Credentials::new(
            access_key_id.clone(),
            secret_access_key.expose().to_owned(),
        )),
        UploadCredentials::Environment => {
            let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
            let key = var("AWS_ACCESS_KEY_ID").ok_or(UploadError::NoCredentials {
                missing: "AWS_ACCESS_KEY_ID",
            })?;
            let secret = var("AWS_SECRET_ACCESS_KEY").ok_or(UploadError::NoCredentials {
                missing: "AWS_SECRET_ACCESS_KEY",
            })?;
            Ok(match var("AWS_SESSION_TOKEN") {
                Some(token) => Credentials::new_with_token(key, secret, token),
                None => Credentials::new(key, secret),
            })
        }
    }
}

/// rustls with the ring provider (no aws-lc in the tree) trusting `upload.ca_file`, or the
/// system bundle. The bundle is required only for `https://` endpoints.
fn tls_config(config: &UploadConfig) -> Result<rustls::ClientConfig, UploadError> {
    let https = config.endpoint.starts_with("https://");
    let mut roots = rustls::RootCertStore::empty();
    let path = config
        .ca_file
        .clone()
        .unwrap_or_else(|| PathBuf::from(SYSTEM_CA_BUNDLE));
    match std::fs::read(&path) {
        Ok(pem) => {
            let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
                .filter_map(Result::ok)
                .collect();
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 && https {
                return Err(UploadError::NoCa { path });
            }
        }
        Err(source) if https => return Err(UploadError::CaFile { path, source }),
        Err(_) => {}
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| UploadError::Client(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tls)
}

/// When the body last moved, shared between the body stream and the stall watchdog.
struct Progress {
    start: Instant,
    last_ms: AtomicU64,
}

impl Progress {
    fn new() -> Progress {
        Progress {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// Resolves once nothing moved for `limit`: the body was not taken, or, after the last
    /// byte, no answer came.
    async fn stalled(&self, limit: Duration) {
        let tick = (limit / 4).max(Duration::from_millis(50));
        loop {
            tokio::time::sleep(tick).await;
            let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            if self.start.elapsed().saturating_sub(last) >= limit {
                return;
            }
        }
    }
}

/// The file as a stream of chunks, each paid for at the limiter before it is handed on.
/// `data` in [`CHUNK`] pieces, each after the limiter allows it.
fn memory_stream(
    data: Bytes,
    limiter: Arc<Limiter>,
    progress: Arc<Progress>,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    futures_util::stream::try_unfold(data, move |mut rest| {
        let limiter = limiter.clone();
        let progress = progress.clone();
        async move {
            if rest.is_empty() {
                return Ok(None);
            }
            let piece = rest.split_to(rest.len().min(CHUNK));
            limiter.take(piece.len()).await;
            progress.touch();
            Ok(Some((piece, rest)))
        }
    })
}

fn file_stream(
    file: tokio::fs::File,
    limiter: Arc<Limiter>,
    progress: Arc<Progress>,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    futures_util::stream::try_unfold(file, move |mut file| {
        let limiter = limiter.clone();
        let progress = progress.clone();
        async move {
            let mut buf = vec![0u8; CHUNK];
            let n = file.read(&mut buf).await?;
            if n == 0 {
                return Ok(None);
            }
            buf.truncate(n);
            limiter.take(n).await;
            progress.touch();
            Ok(Some((Bytes::from(buf), file)))
        }
    })
}
