//! A real S3-compatible server for tests: `s3s-fs` on a free loopback port, with its own
//! temporary root folder and credentials, killed on drop.
//!
//! Why s3s-fs: it checks SigV4 signatures (a wrong secret gets 403 SignatureDoesNotMatch), so
//! signing bugs fail the tests; it verifies `Content-MD5` and `x-amz-checksum-sha256` like a
//! real store; it stores plain files we can inspect; it starts in ~30 ms. Install it with
//! `scripts/install-s3s-fs`.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use roomrec::config::{Secret, UploadConfig, UploadCredentials};

use super::{free_port, wait_until};

pub const BUCKET: &str = "recordings";
pub const ACCESS_KEY: &str = "roomrec-test-key";
/// Distinctive, so a test can assert that it never shows up in logs or messages.
pub const SECRET_KEY: &str = "s3cr3t-Vx7kQ9-never-in-logs";

/// One s3s-fs process and its data.
pub struct S3Server {
    pub port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl S3Server {
    /// Starts s3s-fs with the bucket [`BUCKET`] already created.
    pub fn start() -> S3Server {
        let dir = tempfile::tempdir().expect("temp dir for s3s-fs");
        std::fs::create_dir_all(dir.path().join("data").join(BUCKET)).expect("bucket folder");
        let mut server = S3Server {
            port: 0,
            child: None,
            dir,
        };
        for _ in 0..20 {
            // Another process may take the port between probing and binding: try another.
            server.port = free_port();
            if server.launch() {
                return server;
            }
        }
        panic!("s3s-fs did not start on any free port");
    }

    /// Starts s3s-fs again on the same port and data, as after a crash. Panics if it fails.
    pub fn restart(&mut self) {
        self.kill();
        for _ in 0..50 {
            if self.launch() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("s3s-fs did not restart on port {}", self.port);
    }

    fn launch(&mut self) -> bool {
        // Appended across restarts; at debug level s3s-fs logs every object it stores, which
        // `stores_per_key` counts.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("s3s-fs.log"))
            .expect("log file");
        let child = Command::new(s3s_fs_bin())
            .env("RUST_LOG", "s3s_fs=debug,s3s=warn")
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(self.data())
            // s3s-fs logs to stdout.
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run s3s-fs ({e}); {INSTALL_HINT}"));
        self.child = Some(child);
        let port = self.port;
        let up = wait_until(Duration::from_secs(5), || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        if !up {
            self.kill();
        }
        up
    }

    /// Kills the server (SIGKILL, as a crash or a pulled cable would look to the client).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The folder s3s-fs stores buckets in.
    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Where s3s-fs keeps object `key` of [`BUCKET`].
    pub fn object_path(&self, key: &str) -> PathBuf {
        self.data().join(BUCKET).join(key)
    }

    /// Every object file under [`BUCKET`], as keys, sorted.
    pub fn keys(&self) -> Vec<String> {
        let root = self.data().join(BUCKET);
        let mut keys = Vec::new();
        collect(&root, &root, &mut keys);
        keys.sort();
        keys
    }

    /// How many times s3s-fs has stored each object (a completed PUT), by key, from its log.
    pub fn stores_per_key(&self) -> std::collections::BTreeMap<String, u32> {
        let log = std::fs::read_to_string(self.dir.path().join("s3s-fs.log")).unwrap_or_default();
        let root = format!("{}/", self.data().join(BUCKET).display());
        let mut counts = std::collections::BTreeMap::new();
        for line in log.lines() {
            let Some(rest) = line.split("write file, path: ").nth(1) else {
                continue;
            };
            let path = rest.split(", size:").next().unwrap_or(rest);
            let key = path.strip_prefix(&root).unwrap_or(path).to_owned();
            *counts.entry(key).or_insert(0) += 1;
        }
        counts
    }

    /// Every segment is in the bucket under `prefix` (named as the uploader names it,
    /// `NNNNNNNN.ts`) byte for byte, and was stored there once.
    pub fn assert_holds_once(&self, prefix: &str, segments: &[roomrec::catalog::SegmentRecord]) {
        use sha2::Digest;
        let stores = self.stores_per_key();
        for seg in segments {
            let key = format!("{prefix}{:08}.ts", seg.seq);
            let body = std::fs::read(self.object_path(&key))
                .unwrap_or_else(|e| panic!("{key} not in the bucket ({e}): {:?}", self.keys()));
            assert_eq!(
                hex::encode(sha2::Sha256::digest(&body)),
                seg.sha256,
                "{key}"
            );
            assert_eq!(stores.get(&key), Some(&1), "{key} stored once");
        }
    }

    /// The daemon's `[upload]` section for this server, with `extra` keys appended.
    pub fn upload_toml(&self, extra: &str) -> String {
        format!(
            "[upload]\nendpoint = \"{}\"\nbucket = \"{BUCKET}\"\nregion = \"us-east-1\"\n\
             path_style = true\naccess_key_id = \"{ACCESS_KEY}\"\nsecret_access_key = \"{SECRET_KEY}\"\n{extra}",
            self.endpoint()
        )
    }

    /// `[upload]` settings for this server with the right keys.
    pub fn upload_config(&self) -> UploadConfig {
        self.upload_config_with_secret(SECRET_KEY)
    }

    pub fn upload_config_with_secret(&self, secret: &str) -> UploadConfig {
        UploadConfig {
            endpoint: self.endpoint(),
            bucket: BUCKET.into(),
            region: "us-east-1".into(),
            path_style: true,
            credentials: UploadCredentials::Keys {
                access_key_id: ACCESS_KEY.into(),
                secret_access_key: Secret::new(secret),
                file: None,
            },
            ca_file: None,
            rate_cap: None,
            live_share_percent: 25,
            key_prefix: String::new(),
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn collect(root: &Path, dir: &Path, keys: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(root, &path, keys);
        } else if let Ok(rel) = path.strip_prefix(root) {
            keys.push(rel.to_string_lossy().into_owned());
        }
    }
}

const INSTALL_HINT: &str = "install it with scripts/install-s3s-fs (or: cargo install s3s-fs \
    --version 0.14.1 --locked --features binary), or point $S3S_FS at the binary";

/// `$S3S_FS`, else the installer's cache folder, else `s3s-fs` on PATH; panics with the
/// install command when none exists (a test must never skip itself silently).
pub fn s3s_fs_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("S3S_FS") {
        return PathBuf::from(p);
    }
    let tools = std::env::var_os("ROOMREC_TOOLS")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/roomrec/tools"))
        });
    if let Some(bin) = tools.map(|t| t.join("bin/s3s-fs")).filter(|b| b.exists()) {
        return bin;
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("s3s-fs"))
            .find(|p| p.exists())
    });
    on_path.unwrap_or_else(|| panic!("s3s-fs is not installed; {INSTALL_HINT}"))
}
