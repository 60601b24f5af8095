//! An HTTP server on a thread of its own.
//!
//! The pipeline and serving loops are synchronous: they own their threads
//! and poll topics. Their HTTP endpoints (Prometheus `/metrics`, `/healthz`,
//! serving's pull API) therefore run beside them, each on one thread with
//! a single-threaded tokio runtime, rather than making the loops async.

use std::net::SocketAddr;

/// Binds `addr` (port 0 picks a free one) and serves `app` from a thread
/// named `thread` until the process ends. Returns the bound address; a
/// failure to bind is returned, not logged, so the caller can name it.
pub fn spawn(addr: SocketAddr, thread: &str, app: axum::Router) -> std::io::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind(addr)
        .map_err(|e| std::io::Error::new(e.kind(), format!("binding HTTP to {addr}: {e}")))?;
    listener.set_nonblocking(true)?;
    let bound = listener.local_addr()?;
    std::thread::Builder::new()
        .name(thread.into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!(%bound, error = %e, "HTTP server: no runtime");
                    return;
                }
            };
            runtime.block_on(async move {
                let served = match tokio::net::TcpListener::from_std(listener) {
                    Ok(listener) => axum::serve(listener, app).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = served {
                    tracing::error!(%bound, error = %e, "HTTP server stopped");
                }
            });
        })?;
    Ok(bound)
}
