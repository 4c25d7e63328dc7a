//! The envelope that accompanies every batch from agent to collector (e.g. as Arrow Flight
//! `app_metadata`), and tenant id validation.
//!
//! Wire format: the prost message [`Envelope`] (fields 1..=5 below). Invariants: a decoded
//! envelope (via [`Envelope::decode_bytes`]) always names a known signal, carries
//! `format_version == ENVELOPE_FORMAT_VERSION`, and a tenant valid per [`validate_tenant`]
//! (tenants end up in storage paths, so they are restricted to `[A-Za-z0-9_-]{1,64}`).

use crate::error::{Error, Result};
use crate::signal::Signal;

/// Current (and only supported) envelope format version.
pub const ENVELOPE_FORMAT_VERSION: u32 = 1;

/// Tenant used when none is configured.
pub const DEFAULT_TENANT: &str = "default";

/// Metadata sent with each batch from an agent.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Envelope {
    /// Stable id of the sending agent.
    #[prost(string, tag = "1")]
    pub agent_id: String,
    /// Per-agent monotonically increasing batch sequence number (for dedup / acks).
    #[prost(uint64, tag = "2")]
    pub sequence: u64,
    /// Signal name, as [`Signal::as_str`].
    #[prost(string, tag = "3")]
    pub signal: String,
    /// Tenant id.
    #[prost(string, tag = "4")]
    pub tenant: String,
    /// Envelope / batch layout version.
    #[prost(uint32, tag = "5")]
    pub format_version: u32,
}

impl Envelope {
    /// A current-version envelope.
    pub fn new(
        agent_id: impl Into<String>,
        sequence: u64,
        signal: Signal,
        tenant: impl Into<String>,
    ) -> Self {
        Self {
            agent_id: agent_id.into(),
            sequence,
            signal: signal.as_str().to_owned(),
            tenant: tenant.into(),
            format_version: ENVELOPE_FORMAT_VERSION,
        }
    }

    /// Protobuf encoding.
    pub fn encode_to_vec(&self) -> Vec<u8> {
        prost::Message::encode_to_vec(self)
    }

    /// Decode and validate (known signal, supported version, valid tenant).
    pub fn decode_bytes(bytes: &[u8]) -> Result<Envelope> {
        let envelope: Envelope = prost::Message::decode(bytes).map_err(|source| Error::Decode {
            what: "Envelope".to_owned(),
            source,
        })?;
        if envelope.format_version != ENVELOPE_FORMAT_VERSION {
            return Err(Error::UnsupportedFormatVersion {
                version: envelope.format_version,
                supported: ENVELOPE_FORMAT_VERSION,
            });
        }
        envelope.signal()?;
        validate_tenant(&envelope.tenant)?;
        Ok(envelope)
    }

    /// The parsed signal.
    pub fn signal(&self) -> Result<Signal> {
        self.signal.parse()
    }
}

/// Accepts 1..=64 characters of `[A-Za-z0-9_-]`.
pub fn validate_tenant(tenant: &str) -> Result<()> {
    let ok = (1..=64).contains(&tenant.len())
        && tenant
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidTenant {
            tenant: tenant.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let e = Envelope::new("agent-1", 42, Signal::Metrics, DEFAULT_TENANT);
        let decoded = Envelope::decode_bytes(&e.encode_to_vec()).expect("valid envelope");
        assert_eq!(decoded, e);
        assert_eq!(decoded.signal().expect("signal"), Signal::Metrics);
        assert_eq!(decoded.format_version, ENVELOPE_FORMAT_VERSION);
    }

    #[test]
    fn rejects_invalid_envelopes() {
        let mut e = Envelope::new("a", 1, Signal::Logs, "t1");
        e.signal = "profiles".into();
        assert!(matches!(
            Envelope::decode_bytes(&e.encode_to_vec()),
            Err(Error::UnknownSignal { .. })
        ));

        let mut e = Envelope::new("a", 1, Signal::Logs, "t1");
        e.format_version = 2;
        assert!(matches!(
            Envelope::decode_bytes(&e.encode_to_vec()),
            Err(Error::UnsupportedFormatVersion { version: 2, .. })
        ));
        e.format_version = 0;
        assert!(Envelope::decode_bytes(&e.encode_to_vec()).is_err());

        let e = Envelope::new("a", 1, Signal::Logs, "../etc");
        assert!(matches!(
            Envelope::decode_bytes(&e.encode_to_vec()),
            Err(Error::InvalidTenant { .. })
        ));

        assert!(matches!(
            Envelope::decode_bytes(&[0xff, 0xff, 0xff]),
            Err(Error::Decode { .. })
        ));
    }

    #[test]
    fn tenant_validation() {
        for ok in ["default", "a", "Team_1-prod", &"x".repeat(64)] {
            assert!(validate_tenant(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a/b", "a b", "..", "tenant.x", "é", &"x".repeat(65)] {
            assert!(validate_tenant(bad).is_err(), "{bad}");
        }
    }
}
