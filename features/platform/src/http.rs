//! An HTTP server on a thread of its own.
//!
//! The pipeline and serving loops are synchronous: they own their threads
//! and poll topics. Their HTTP endpoints (Prometheus `/metrics`, `/healthz`,
//! serving's pull API) therefore run beside them, each on one thread with
//! a single-threaded tokio runtime, rather than making the loops async.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;

/// How long a client may take to send a request's headers. Without it a
/// client that opens connections and never finishes a request holds them
/// (and a task each) forever.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

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
                    Ok(listener) => serve(listener, app, std::future::pending()).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = served {
                    tracing::error!(%bound, error = %e, "HTTP server stopped");
                }
            });
        })?;
    Ok(bound)
}

/// Serves `app` on `listener` (HTTP/1.1) until `shutdown` completes. Like
/// `axum::serve`, but each connection has a timer, so a client that does
/// not finish its headers within [`HEADER_READ_TIMEOUT`] is disconnected.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                // Out of file descriptors and the like: pass, as axum does.
                Err(e) => {
                    tracing::warn!(error = %e, "HTTP accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => return Ok(()),
        };
        let service = TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT);
            if let Err(e) = builder
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(error = %e, "HTTP connection ended");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;

    /// Regression: serving had no header-read timeout, so a client that
    /// sent half a request held its connection open for as long as it
    /// liked.
    #[test]
    fn a_client_that_never_finished_its_headers_held_the_connection_forever() {
        let app = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
        let addr = spawn("127.0.0.1:0".parse().unwrap(), "test-http", app).unwrap();
        // A whole request is answered.
        let mut whole = std::net::TcpStream::connect(addr).unwrap();
        whole
            .write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .unwrap();
        let mut answer = String::new();
        whole.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        // Half a request is cut off by the server (a read that would block
        // for longer than the timeout and then some fails the test).
        let mut half = std::net::TcpStream::connect(addr).unwrap();
        half.set_read_timeout(Some(HEADER_READ_TIMEOUT * 6))
            .unwrap();
        half.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n").unwrap();
        let mut rest = Vec::new();
        let read = half.read_to_end(&mut rest);
        assert!(read.is_ok(), "the server kept the connection: {read:?}");
    }

    /// A handler that panics (a bug, or a client library starting a runtime
    /// inside this one) loses its own request, not the server.
    #[test]
    fn a_panicking_handler_leaves_the_server_answering() {
        let app = axum::Router::new()
            .route(
                "/boom",
                axum::routing::get(|| async {
                    if std::hint::black_box(true) {
                        panic!("boom");
                    }
                    "never"
                }),
            )
            .route("/", axum::routing::get(|| async { "ok" }));
        let addr = spawn("127.0.0.1:0".parse().unwrap(), "test-http-panic", app).unwrap();
        let get = |path: &str| {
            let mut c = std::net::TcpStream::connect(addr).unwrap();
            write!(
                c,
                "GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
            )
            .unwrap();
            let mut answer = String::new();
            let _ = c.read_to_string(&mut answer);
            answer
        };
        let _ = get("/boom");
        for _ in 0..3 {
            assert!(get("/").starts_with("HTTP/1.1 200"));
        }
    }
}
