//! A TCP proxy in front of the test S3 server that misbehaves on demand, for the faults a
//! real store or link shows and s3s-fs cannot: every request answered 503, connections held
//! open in silence, or every other connection dropped.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    Pass = 0,
    /// Every request gets `503 ServiceUnavailable` (a 5xx storm).
    Http503 = 1,
    /// Connections are accepted and never answered (a store that stops answering).
    Silent = 2,
    /// Every other connection is closed at once, starting with the first, and the others after
    /// half a second (a flapping link).
    DropEveryOther = 3,
}

/// The proxy; a new connection gets the fault set at the moment it is accepted.
pub struct FaultyLink {
    pub port: u16,
    mode: Arc<AtomicU8>,
    accepted: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultyLink {
    pub async fn start(upstream: u16, fault: Fault) -> FaultyLink {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy port");
        let port = listener.local_addr().expect("proxy address").port();
        let mode = Arc::new(AtomicU8::new(fault as u8));
        let accepted = Arc::new(AtomicU64::new(0));
        let (current, count) = (mode.clone(), accepted.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let n = count.fetch_add(1, Ordering::SeqCst) + 1;
                let fault = current.load(Ordering::SeqCst);
                tokio::spawn(serve(client, upstream, fault, n));
            }
        });
        FaultyLink {
            port,
            mode,
            accepted,
            task,
        }
    }

    pub fn set(&self, fault: Fault) {
        self.mode.store(fault as u8, Ordering::SeqCst);
    }

    /// Connections accepted so far (with `DropEveryOther`, half of them were dropped).
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::SeqCst)
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for FaultyLink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(mut client: TcpStream, upstream: u16, fault: u8, accepted: u64) {
    match fault {
        1 => answer_503(&mut client).await,
        2 => tokio::time::sleep(Duration::from_secs(600)).await,
        // The first connection is dropped, so the flapping is never skipped by one kept-alive
        // connection; the ones that pass are cut after half a second, mid-transfer or not.
        3 if accepted % 2 == 1 => drop(client),
        3 => {
            if let Ok(mut up) = TcpStream::connect(("127.0.0.1", upstream)).await {
                let copy = tokio::io::copy_bidirectional(&mut client, &mut up);
                let _ = tokio::time::timeout(Duration::from_millis(500), copy).await;
            }
        }
        _ => {
            if let Ok(mut up) = TcpStream::connect(("127.0.0.1", upstream)).await {
                let _ = tokio::io::copy_bidirectional(&mut client, &mut up).await;
            }
        }
    }
}

async fn answer_503(client: &mut TcpStream) {
    let mut head = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match client.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let body =
        "<Error><Code>ServiceUnavailable</Code><Message>injected by the test</Message></Error>";
    let reply = format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = client.write_all(reply.as_bytes()).await;
}
