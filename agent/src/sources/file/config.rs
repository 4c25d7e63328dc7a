//! Configuration of one file source (`[[agent.files]]`), with documented defaults and one
//! `validate` step that compiles the globs and patterns.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How a line is framed on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// One record per line.
    Plain,
    /// Kubernetes CRI: `<time> <stream> <P|F> <log>`; `P` parts are joined up to the `F` part.
    Cri,
    /// Docker `json-file`: `{"log":"...","stream":"...","time":"..."}`; a `log` without its
    /// final newline is joined with the next.
    Docker,
    /// Per line: Docker when it starts with `{"log"`, CRI when it parses as CRI, else plain.
    Auto,
}

/// How the message of a record is parsed into fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Parser {
    /// The message is the body; timestamp and severity are detected at its start.
    None,
    /// A JSON object: well-known keys give body, time and severity; others become attributes.
    Json,
    /// `key=value key2="quoted value"` pairs, mapped like JSON.
    Logfmt,
    /// The regex of `pattern`; its named captures are mapped like JSON keys.
    Regex,
}

/// Where to start in files that already exist at the very first start of a source (no
/// checkpoint yet). Files that appear later are always read from their beginning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StartAt {
    Beginning,
    End,
}

/// What happens to a line longer than `max_line_bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LongLines {
    /// Keep the first `max_line_bytes`, drop the rest of the line.
    Truncate,
    /// Emit it as several records of at most `max_line_bytes`.
    Split,
}

/// Multiline aggregation: exactly one of `start` or `continuation` is set.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MultilineConfig {
    /// Regex matching the first line of a record; other lines join the record before them
    /// (for logs whose records start with a timestamp).
    pub start: Option<String>,
    /// Regex matching lines that continue the record before them (Java `^\s+at `, `^Caused by:`).
    pub continuation: Option<String>,
    /// A record waiting for more lines is emitted after this long without one, in ms.
    pub timeout_ms: u64,
    /// Largest number of lines in one record; more start a new record.
    pub max_lines: usize,
}

impl Default for MultilineConfig {
    fn default() -> Self {
        Self {
            start: None,
            continuation: None,
            timeout_ms: 1000,
            max_lines: 500,
        }
    }
}

/// One file source.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileSourceConfig {
    /// Name of the source, in metrics and in its checkpoint file (`data_dir/files/<name>.json`).
    /// Empty: derived from `include`, so reordering sources keeps their checkpoints.
    pub name: String,
    /// Globs of files to read (`/var/log/pods/*/*/*.log`).
    pub include: Vec<String>,
    /// Globs of files never to read, even when included.
    pub exclude: Vec<String>,
    /// Framing of lines: `plain` (default), `cri`, `docker` or `auto`.
    pub format: Format,
    /// Parser of messages: `none` (default), `json`, `logfmt` or `regex`.
    pub parser: Parser,
    /// Regex with named captures, for `parser = "regex"`. Captures named `time`/`timestamp`,
    /// `level`/`severity` and `message`/`msg` fill those fields; others become attributes.
    pub pattern: Option<String>,
    /// Multiline aggregation (off unless set).
    pub multiline: Option<MultilineConfig>,
    /// Start of files that exist at the first start: `beginning` (default) or `end`.
    pub start_at: StartAt,
    /// How often the globs are expanded again to find new files, in ms.
    pub discovery_interval_ms: u64,
    /// Watch the include directories for files created and renamed (inotify on Linux), so
    /// a file is found, and followed through a rename, as soon as it happens rather than at
    /// the next discovery. Polling stays on as the fallback, and for file systems without
    /// events.
    pub watch: bool,
    /// How often an active file is checked for new data, in ms; idle files are checked less
    /// often, down to once per `discovery_interval_ms`.
    pub poll_interval_ms: u64,
    /// Longest line kept whole; longer lines are truncated or split (`long_lines`) and counted.
    pub max_line_bytes: usize,
    /// `truncate` (default) or `split` lines longer than `max_line_bytes`.
    pub long_lines: LongLines,
    /// Most files held open at once. Idle files beyond it are closed and reopened (after their
    /// identity is checked) when they grow; deleted files being finished stay open.
    pub max_open_files: usize,
    /// How long a file that was deleted or renamed out of the globs is still read after it
    /// stopped growing, in ms, before it is let go.
    pub rotate_wait_ms: u64,
    /// A last line without its newline is emitted once its file did not grow for this long, in
    /// ms (a writer that pauses longer in the middle of a line gets it split in two).
    pub partial_line_timeout_ms: u64,
    /// Bytes at the start of a file hashed into its identity (with its device and inode).
    pub fingerprint_bytes: usize,
    /// Tenant of the records.
    pub tenant: String,
    /// `service.name` of the records, unless the path is a Kubernetes pod log (then the
    /// container name). Empty: `unknown_service`.
    pub service: String,
    /// Extra resource attributes on every record.
    pub resource: BTreeMap<String, String>,
    /// A batch is handed to the shipper at this many records ...
    pub batch_max_records: usize,
    /// ... or this many bytes of lines ...
    pub batch_max_bytes: usize,
    /// ... or when its first record waited this long, in ms.
    pub batch_max_age_ms: u64,
    /// Batches shipped and not yet acknowledged, at most; past it the source stops reading
    /// (backpressure), so its memory stays bounded.
    pub max_inflight_batches: usize,
}

impl Default for FileSourceConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            include: Vec::new(),
            exclude: Vec::new(),
            format: Format::Plain,
            parser: Parser::None,
            pattern: None,
            multiline: None,
            start_at: StartAt::Beginning,
            discovery_interval_ms: 1000,
            watch: true,
            poll_interval_ms: 100,
            max_line_bytes: 256 * 1024,
            long_lines: LongLines::Truncate,
            max_open_files: 512,
            rotate_wait_ms: 5000,
            partial_line_timeout_ms: 5000,
            fingerprint_bytes: 1024,
            tenant: strata_schema::envelope::DEFAULT_TENANT.into(),
            service: String::new(),
            resource: BTreeMap::new(),
            batch_max_records: 8192,
            batch_max_bytes: 4 << 20,
            batch_max_age_ms: 200,
            max_inflight_batches: 4,
        }
    }
}

impl FileSourceConfig {
    /// A plain-line source for `--tail GLOB`.
    pub fn tail(globs: Vec<String>) -> Self {
        Self {
            include: globs,
            ..Self::default()
        }
    }

    /// The configured name, else one derived from the include globs.
    pub fn resolved_name(&self) -> String {
        if !self.name.is_empty() {
            return self.name.clone();
        }
        let hash = xxhash_rust::xxh3::xxh3_64(self.include.join("\n").as_bytes());
        format!("files-{:08x}", hash >> 32)
    }

    /// Checks the source; the error names what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        let name = self.resolved_name();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(format!(
                "file source name {name:?} may hold only letters, digits, '-' and '_'"
            ));
        }
        if self.include.is_empty() {
            return Err(format!("file source {name}: `include` is empty"));
        }
        for g in self.include.iter().chain(&self.exclude) {
            glob::Pattern::new(g).map_err(|e| format!("file source {name}: glob {g:?}: {e}"))?;
        }
        match (self.parser, &self.pattern) {
            (Parser::Regex, None) => {
                return Err(format!(
                    "file source {name}: parser \"regex\" needs a `pattern`"
                ));
            }
            (_, Some(p)) => {
                regex::Regex::new(p).map_err(|e| format!("file source {name}: pattern: {e}"))?;
            }
            _ => {}
        }
        if let Some(m) = &self.multiline {
            match (&m.start, &m.continuation) {
                (Some(p), None) | (None, Some(p)) => {
                    regex::Regex::new(p)
                        .map_err(|e| format!("file source {name}: multiline pattern: {e}"))?;
                }
                _ => {
                    return Err(format!(
                        "file source {name}: multiline needs exactly one of `start` or `continuation`"
                    ));
                }
            }
            if m.max_lines == 0 {
                return Err(format!(
                    "file source {name}: multiline.max_lines must be > 0"
                ));
            }
        }
        strata_schema::envelope::validate_tenant(&self.tenant)
            .map_err(|e| format!("file source {name}: tenant: {e}"))?;
        if self.max_line_bytes < 16 || self.fingerprint_bytes == 0 {
            return Err(format!(
                "file source {name}: max_line_bytes must be >= 16 and fingerprint_bytes > 0"
            ));
        }
        if self.batch_max_records == 0
            || self.batch_max_bytes == 0
            || self.max_inflight_batches == 0
        {
            return Err(format!(
                "file source {name}: batch limits and max_inflight_batches must be positive"
            ));
        }
        if self.max_open_files == 0 {
            return Err(format!(
                "file source {name}: max_open_files must be positive"
            ));
        }
        Ok(())
    }

    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms.max(1))
    }

    pub fn discovery_interval(&self) -> Duration {
        Duration::from_millis(self.discovery_interval_ms.max(1))
    }
}
