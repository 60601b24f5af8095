//! `eddy registry serve`

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use eddy_features::registry::server;
use eddy_features::registry::store::SchemaStore;

use crate::context::Context;

/// Serves the registry until Ctrl-C or SIGTERM. The first line on stdout is
/// `listening on http://ADDR`, so scripts (and tests) can use port 0.
pub fn serve(ctx: Context, listen: SocketAddr, topic: &str) -> anyhow::Result<()> {
    let store = Arc::new(
        SchemaStore::open(ctx.backend.clone(), topic).context("opening the schema store")?,
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener =
            tokio::net::TcpListener::bind(listen).await.with_context(|| format!("binding the registry to {listen}"))?;
        let addr = listener.local_addr()?;
        // The handlers exist before the address is announced: a signal
        // right after it stops the registry rather than kill it.
        let stopped = shutdown_signal();
        println!("listening on http://{addr}");
        use std::io::Write as _;
        std::io::stdout().flush()?;
        eprintln!("eddy schema registry on http://{addr}, schemas in topic `{topic}` ({} backend); Ctrl-C stops it", ctx.backend.kind());
        server::serve(store, listener, stopped).await?;
        eprintln!("registry stopped");
        anyhow::Ok(())
    })
}

/// Resolves on Ctrl-C or SIGTERM; the handlers are installed when it is
/// called, not when it is first polled.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    async move {
        tokio::select! {
            _ = int.recv() => {},
            _ = term.recv() => {},
        }
    }
}
