//! Reloading settings from files: a file counts as changed when its modification time or
//! length changed since it was last read; changes are polled every [`POLL`], and SIGHUP
//! forces a reload. TLS certificates and the auth file reload this way.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

/// How often files are looked at for a change.
pub const POLL: Duration = Duration::from_secs(5);

type Stamp = Option<(SystemTime, u64)>;

fn stamp(path: &Path) -> Stamp {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// The files a setting is read from and how they looked when last read.
#[derive(Debug)]
pub struct Watched {
    files: Vec<PathBuf>,
    stamps: Mutex<Vec<Stamp>>,
}

impl Watched {
    /// Takes the files' stamps now (call before reading them).
    pub fn new(files: Vec<PathBuf>) -> Self {
        let stamps = files.iter().map(|f| stamp(f)).collect();
        Self {
            files,
            stamps: Mutex::new(stamps),
        }
    }

    /// True (once) when a file changed since the last call or since [`Watched::new`].
    pub fn changed(&self) -> bool {
        let now: Vec<Stamp> = self.files.iter().map(|f| stamp(f)).collect();
        let mut stamps = self.stamps.lock().unwrap_or_else(|p| p.into_inner());
        if *stamps == now {
            return false;
        }
        *stamps = now;
        true
    }
}

/// Calls `reload(forced)` every [`POLL`] (`false`) and on every SIGHUP (`true`) until
/// `shutdown`.
pub fn spawn(shutdown: CancellationToken, reload: impl Fn(bool) + Send + 'static) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        let mut hup = hangup();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => reload(false),
                _ = next_hangup(&mut hup) => reload(true),
            }
        }
    });
}

#[cfg(unix)]
type Hangup = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangup = Option<()>;

#[cfg(unix)]
fn hangup() -> Hangup {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()
}

#[cfg(not(unix))]
fn hangup() -> Hangup {
    None
}

/// Resolves on the next SIGHUP; never where there are no signals.
async fn next_hangup(hup: &mut Hangup) {
    #[cfg(unix)]
    if let Some(s) = hup
        && s.recv().await.is_some()
    {
        return;
    }
    let _ = hup;
    std::future::pending::<()>().await
}
