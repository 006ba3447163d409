//! Test fixtures shared by the integration tests: a real mosquitto broker on a free loopback
//! port, and helpers to wait for things without fixed sleeps.
#![allow(dead_code)]

pub mod device;
pub mod faulty;
pub mod ffprobe;
pub mod media;
pub mod ocr;
pub mod records;
pub mod s3;
pub mod speech;
pub mod tls;

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A mosquitto process owned by one test; killed on drop.
pub struct Broker {
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Broker {
    /// Starts mosquitto on 127.0.0.1 and a free port, with `extra` appended to its config.
    pub fn start_with(extra: &str) -> Broker {
        Broker::launch("", extra, None)
    }

    /// Like `start_with`, with each listener's own settings (`per_listener_settings`, which
    /// mosquitto wants before any listener): the first listener stays plain and anonymous.
    pub fn start_per_listener(extra: &str) -> Broker {
        Broker::launch("per_listener_settings true\n", extra, None)
    }

    /// Starts a new mosquitto on `port` (after `kill`), as a broker restart would.
    pub fn restart_on(port: u16) -> Broker {
        Broker::launch("", "", Some(port))
    }

    fn launch(prelude: &str, extra: &str, fixed_port: Option<u16>) -> Broker {
        let dir = tempfile::tempdir().expect("temp dir for mosquitto");
        let conf = dir.path().join("mosquitto.conf");
        for _ in 0..20 {
            let port = fixed_port.unwrap_or_else(free_port);
            let mut f = std::fs::File::create(&conf).expect("mosquitto.conf");
            // `user root` keeps mosquitto from dropping to a user that cannot read the temp dir.
            writeln!(
                f,
                "{prelude}listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nuser root\n{extra}"
            )
            .expect("write mosquitto.conf");
            let mut child = Command::new(mosquitto_bin())
                .arg("-c")
                .arg(&conf)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("mosquitto must be installed (apt-get install mosquitto)");
            let up = wait_until(Duration::from_secs(5), || {
                TcpStream::connect(("127.0.0.1", port)).is_ok()
            });
            if up {
                return Broker {
                    port,
                    child,
                    _dir: dir,
                };
            }
            // Another process took the port between probing and binding (or, for a restart,
            // the old socket is still closing): try again.
            let _ = child.kill();
            let _ = child.wait();
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("mosquitto did not start on any free port");
    }

    pub fn start() -> Broker {
        Broker::start_with("")
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// Kills the broker (as a crash would) and returns its port, for restart tests.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

fn mosquitto_bin() -> PathBuf {
    for p in ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    PathBuf::from("mosquitto")
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A plain HTTP server (Python's `http.server`) on a free loopback port, serving the files
/// under a folder read-only, as a public bucket or a CDN in front of the store serves
/// recordings; killed on drop.
pub struct HttpFolder {
    pub port: u16,
    child: Child,
}

impl HttpFolder {
    pub fn serve(root: &Path) -> HttpFolder {
        for _ in 0..20 {
            let port = free_port();
            let mut child = Command::new("python3")
                .args(["-m", "http.server", "--bind", "127.0.0.1", "--directory"])
                .arg(root)
                .arg(port.to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("python3 runs");
            if wait_until(Duration::from_secs(10), || {
                TcpStream::connect(("127.0.0.1", port)).is_ok()
            }) {
                return HttpFolder { port, child };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("python3 -m http.server did not start on any free port");
    }

    /// The URL of `relative` under the folder.
    pub fn url(&self, relative: &str) -> String {
        format!("http://127.0.0.1:{}/{relative}", self.port)
    }
}

impl Drop for HttpFolder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `f` until it returns true or `limit` passes; returns whether it became true.
pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}
