//! The recogniser's threads, at the lowest CPU priority and never shared with capture.
//!
//! Owns: a GStreamer task pool whose every task runs on a thread of its own at nice 19, and
//! handing the recogniser pipeline's tasks to it. Must not touch: any other pipeline.
//!
//! Why a pool of our own: GStreamer's default pool takes its threads from GLib's shared pool,
//! where a thread goes back when its task ends and is then reused by any pipeline, capture's
//! included. Linux keeps a nice value per thread, and an unprivileged process can lower a
//! thread's priority but never raise it again: a pooled thread lowered for transcription
//! would later run capture at nice 19. Here each task gets a new thread that ends with it.
//! The pipeline's tasks are moved to this pool when they are created (the `stream-status`
//! create message, handled synchronously, which GStreamer documents for exactly this).

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gstreamer as gst;

/// The nice value of the recogniser's threads: the lowest priority.
const NICE: libc::c_int = 19;

mod imp {
    use super::*;

    #[derive(Default)]
    pub struct LowPriorityPool;

    #[glib::object_subclass]
    impl ObjectSubclass for LowPriorityPool {
        const NAME: &'static str = "RoomrecLowPriorityPool";
        type Type = super::LowPriorityPool;
        type ParentType = gst::TaskPool;
    }

    impl ObjectImpl for LowPriorityPool {}

    impl GstObjectImpl for LowPriorityPool {}

    impl TaskPoolImpl for LowPriorityPool {
        type Handle = Thread;

        fn push(
            &self,
            func: gst::subclass::TaskPoolFunction,
        ) -> Result<Option<Thread>, glib::Error> {
            std::thread::Builder::new()
                .name("transcribe".into())
                .spawn(move || {
                    lower_this_thread();
                    func.call();
                })
                .map(|handle| Some(Thread(handle)))
                .map_err(|e| glib::Error::new(gst::CoreError::Thread, &e.to_string()))
        }
    }

    pub struct Thread(std::thread::JoinHandle<()>);

    impl gst::TaskHandle for Thread {
        fn join(self) {
            let _ = self.0.join();
        }
    }
}

glib::wrapper! {
    /// Runs each GStreamer task on a new thread at nice 19.
    pub struct LowPriorityPool(ObjectSubclass<imp::LowPriorityPool>)
        @extends gst::TaskPool, gst::Object;
}

// SAFETY: the pool holds no state; GStreamer calls it from any thread.
unsafe impl Send for LowPriorityPool {}
unsafe impl Sync for LowPriorityPool {}

impl LowPriorityPool {
    pub fn new() -> LowPriorityPool {
        glib::Object::new()
    }

    /// Moves the task a `stream-status` create message announces to this pool.
    pub fn adopt(&self, status: &gst::message::StreamStatus) {
        if status.get().0 != gst::StreamStatusType::Create {
            return;
        }
        if let Some(task) = status
            .stream_status_object()
            .and_then(|v| v.get::<gst::Task>().ok())
        {
            task.set_pool(self);
        }
    }
}

/// Nice 19 for the calling thread only (Linux keeps a nice value per thread).
fn lower_this_thread() {
    // SAFETY: plain system calls on the calling thread's own id; no memory is shared.
    let result = unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, NICE)
    };
    if result != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "cannot lower the transcriber's priority");
    }
}

/// The nice value of the calling thread (for tests).
pub fn this_threads_nice() -> libc::c_int {
    // SAFETY: as above.
    unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) }
}
