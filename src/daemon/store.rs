//! The catalog's owner thread: SQLite calls block, so they run on one dedicated thread and
//! the async tasks talk to it through a typed job channel.
//!
//! Owns: the `Catalog` value and its thread. Must not touch: anything but the catalog.

use std::thread::JoinHandle;

use tokio::sync::oneshot;

use crate::catalog::Catalog;

type Job = Box<dyn FnOnce(&mut Catalog) + Send>;

#[derive(Debug, thiserror::Error)]
#[error("the catalog thread has stopped")]
pub struct StoreGone;

/// A cheap handle to the catalog thread; the thread ends when the last handle is dropped.
#[derive(Clone)]
pub struct Store {
    jobs: std::sync::mpsc::Sender<Job>,
}

impl Store {
    pub fn spawn(mut catalog: Catalog) -> std::io::Result<(Store, JoinHandle<()>)> {
        let (jobs, rx) = std::sync::mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("catalog".into())
            .spawn(move || {
                for job in rx {
                    job(&mut catalog);
                }
            })?;
        Ok((Store { jobs }, thread))
    }

    /// Runs `f` on the catalog thread and returns its result.
    pub async fn call<R, F>(&self, f: F) -> Result<R, StoreGone>
    where
        R: Send + 'static,
        F: FnOnce(&mut Catalog) -> R + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        self.jobs
            .send(Box::new(move |c| {
                let _ = tx.send(f(c));
            }))
            .map_err(|_| StoreGone)?;
        rx.await.map_err(|_| StoreGone)
    }
}
