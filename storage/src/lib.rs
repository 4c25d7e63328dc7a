//! Strata's storage: everything the writers (collectors, the compactor) and the readers (the
//! query service) must agree on about files at rest, in one crate so that there is one copy.
//!
//! - [`location`]: where files live ([`Storage`]: a local directory or an S3 bucket, with its
//!   endpoint, region, credentials and addressing style from [`S3Options`]).
//! - [`layout`]: the Hive-style paths `tenant=/signal=/date=/hour=/` and the file names of
//!   collectors and of the compactor.
//! - [`format`]: the Parquet format — writer properties, the sort order, the format key and
//!   version every file declares, and the check readers make before trusting a file.
//! - [`commit`]: compaction and retention records, written create-only, that switch a
//!   partition from its inputs to its outputs in one atomic step.
//! - [`live`]: the rule that decides which files are live, and a cached resolver of the live
//!   set that the query service and the compactor read through.
//! - [`reader`]: ranged Parquet reads of one object.
//!
//! Invariants: files are immutable once written; a file's liveness is decided only by its
//! name and the commit records of its partition; no reader ever sees a row of a partition
//! twice or misses one, whatever the compactor is doing (see [`live`]).

pub mod commit;
pub mod format;
pub mod layout;
pub mod live;
pub mod location;
pub mod reader;

pub use location::{S3Options, Storage, StorageError};
