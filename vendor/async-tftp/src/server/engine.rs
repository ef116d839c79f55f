//! pxe-sidecar patch (PATCHES.md #4): the thread that runs every read
//! transfer, a current-thread tokio runtime. One thread drives all
//! transfers, so one epoll wakeup serves every socket that became readable
//! (50 clients cost no more context switches than one), and tokio's
//! edge-triggered epoll with its timer wheel adds no syscall per block:
//! async-io re-armed the socket and updated a timerfd on every wait.

use std::future::Future;
use std::io;
use std::pin::Pin;

type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

pub(crate) struct Engine {
    jobs: tokio::sync::mpsc::UnboundedSender<Job>,
}

impl Engine {
    /// Starts the thread; it ends when the engine is dropped (running
    /// transfers are dropped with it).
    pub(crate) fn start() -> io::Result<Engine> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (jobs, mut rx) = tokio::sync::mpsc::unbounded_channel::<Job>();
        std::thread::Builder::new()
            .name("tftp-transfers".into())
            .spawn(move || {
                rt.block_on(async move {
                    while let Some(job) = rx.recv().await {
                        tokio::spawn(job);
                    }
                })
            })?;
        Ok(Engine { jobs })
    }

    /// Runs `fut` on the engine's thread and waits for its result; Err says
    /// why there is none (the transfer panicked, or the engine stopped).
    pub(crate) async fn run<T, F>(&self, fut: F) -> Result<T, String>
    where
        T: Send + 'static,
        F: Future<Output = T> + Send + 'static,
    {
        use futures_lite::FutureExt;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::pin(async move {
            let result = std::panic::AssertUnwindSafe(fut).catch_unwind().await;
            let _ = tx.send(result.map_err(|p| {
                let why = p
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                format!("transfer panicked: {why}")
            }));
        });
        let stopped = || "server shutting down".to_string();
        self.jobs.send(job).map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }
}
