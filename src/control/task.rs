//! A control-plane thread that runs until asked to stop, and finishes its own stopping work
//! (a priority-0 advert, a withdrawal) before [`Task::stop`] returns.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

pub struct Task {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Task {
    /// Run `body` on a thread named `name`; it must return soon after its flag is set.
    pub fn spawn(
        name: &str,
        body: impl FnOnce(&AtomicBool) + Send + 'static,
    ) -> std::io::Result<Task> {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || body(&s))?;
        Ok(Task {
            stop,
            thread: Some(thread),
        })
    }

    /// Ask the thread to stop and wait until it has.
    pub fn stop(mut self) {
        self.join();
    }

    fn join(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        self.join();
    }
}
