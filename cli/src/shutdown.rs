//! Stopping cleanly on SIGTERM or Ctrl-C, for every long-running subcommand.
//!
//! Install the handlers ([`StopSignals::install`]) before telling anyone the process is
//! ready (printing an address, a bootstrap line): a signal that arrives between "ready" and
//! the handler would otherwise kill the process with the default action, uncleanly.

use anyhow::Context;

/// SIGTERM and SIGINT handlers, registered when created.
#[derive(Debug)]
pub(crate) struct StopSignals {
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
}

impl StopSignals {
    /// Registers the handlers now. Must run inside a tokio runtime context.
    pub(crate) fn install() -> anyhow::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self {
                terminate: signal(SignalKind::terminate()).context("listening for SIGTERM")?,
                interrupt: signal(SignalKind::interrupt()).context("listening for Ctrl-C")?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    /// Waits for SIGTERM or Ctrl-C.
    pub(crate) async fn wait(mut self) -> anyhow::Result<()> {
        #[cfg(unix)]
        tokio::select! {
            _ = self.terminate.recv() => {}
            _ = self.interrupt.recv() => {}
        }
        #[cfg(not(unix))]
        tokio::signal::ctrl_c()
            .await
            .context("listening for Ctrl-C")?;
        Ok(())
    }
}
