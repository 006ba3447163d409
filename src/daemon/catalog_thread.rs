//! The catalog's owner thread: SQLite calls block, so they run on one dedicated thread and
//! the async tasks talk to it through a typed job channel.
//!
//! Owns: the `Catalog` value and its thread. Must not touch: anything but the catalog.

use std::thread::JoinHandle;

use tokio::sync::oneshot;

use crate::catalog::{Catalog, CatalogError};

type Job = Box<dyn FnOnce(&mut Catalog) + Send>;

/// Why a catalog call gave no answer: the thread is gone, or the catalog refused.
#[derive(Debug, thiserror::Error)]
pub enum CatalogCallError {
    #[error("the catalog thread has stopped")]
    Gone,
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

/// A cheap handle to the catalog thread; the thread ends when the last handle is dropped.
#[derive(Clone)]
pub struct CatalogHandle {
    jobs: std::sync::mpsc::Sender<Job>,
}

impl CatalogHandle {
    pub fn spawn(mut catalog: Catalog) -> std::io::Result<(CatalogHandle, JoinHandle<()>)> {
        let (jobs, rx) = std::sync::mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("catalog".into())
            .spawn(move || {
                for job in rx {
                    job(&mut catalog);
                }
            })?;
        Ok((CatalogHandle { jobs }, thread))
    }

    /// Runs `f` on the catalog thread and returns its result, one error for both ways a call
    /// can fail.
    pub async fn call<T, F>(&self, f: F) -> Result<T, CatalogCallError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Catalog) -> Result<T, CatalogError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        self.jobs
            .send(Box::new(move |c| {
                let _ = tx.send(f(c));
            }))
            .map_err(|_| CatalogCallError::Gone)?;
        rx.await
            .map_err(|_| CatalogCallError::Gone)?
            .map_err(Into::into)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_refusal_and_a_stopped_thread_are_told_apart() {
        let catalog = Catalog::open_in_memory().expect("in-memory catalog");
        let (handle, thread) = CatalogHandle::spawn(catalog).expect("thread");
        let next = handle.call(|c| c.next_segment_seq()).await;
        assert!(matches!(next, Ok(1)), "{next:?}");
        let refused = handle
            .call(|_| -> Result<(), CatalogError> {
                Err(CatalogError::BadRow {
                    what: "test",
                    value: String::new(),
                    detail: "refused".into(),
                })
            })
            .await;
        assert!(
            matches!(refused, Err(CatalogCallError::Catalog(_))),
            "{refused:?}"
        );
        // A job that panics takes the thread down; later calls say so instead of hanging.
        let _ = handle
            .call(|_| -> Result<(), CatalogError> { panic!("job failed") })
            .await;
        let _ = thread.join();
        let gone = handle.call(|c| c.next_segment_seq()).await;
        assert!(matches!(gone, Err(CatalogCallError::Gone)), "{gone:?}");
    }
}
