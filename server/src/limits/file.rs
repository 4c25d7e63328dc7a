//! The overrides file: `[defaults]` and `[tenants.<name>]` tables of [`Limits`] fields.
//!
//! ```toml
//! [defaults]
//! ingest_rows_per_second = 50000
//! max_active_series = 100000
//!
//! [tenants.acme]
//! ingest_rows_per_second = 5000     # acme's other limits are the defaults above
//! ```
//!
//! Invariants: a tenant's table is laid over `[defaults]` field by field, which are laid over
//! the built-in [`Limits::default`]; a file with an unknown field, a bad value or a bad tenant
//! name is refused whole.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;

use super::Limits;

/// The limits of every tenant the file names, and of all others.
#[derive(Debug, Clone, Default)]
pub struct Table {
    pub defaults: Arc<Limits>,
    pub tenants: HashMap<String, Arc<Limits>>,
}

impl Table {
    /// The limits of `tenant`.
    pub fn of(&self, tenant: &str) -> &Arc<Limits> {
        self.tenants.get(tenant).unwrap_or(&self.defaults)
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            #[serde(default)]
            defaults: toml::Table,
            #[serde(default)]
            tenants: toml::Table,
        }
        let raw: Raw = toml::from_str(text).map_err(|e| e.to_string())?;
        let resolve = |table: toml::Table, what: &str| -> Result<Limits, String> {
            let limits = Limits::deserialize(toml::Value::Table(table))
                .map_err(|e| format!("{what}: {e}"))?;
            limits.validate().map_err(|e| format!("{what}: {e}"))?;
            Ok(limits)
        };
        let defaults = resolve(raw.defaults.clone(), "[defaults]")?;
        let mut tenants = HashMap::new();
        for (name, value) in raw.tenants {
            let what = format!("[tenants.{name}]");
            strata_schema::envelope::validate_tenant(&name).map_err(|e| format!("{what}: {e}"))?;
            let toml::Value::Table(own) = value else {
                return Err(format!("{what} must be a table"));
            };
            let mut merged = raw.defaults.clone();
            merged.extend(own);
            tenants.insert(name, Arc::new(resolve(merged, &what)?));
        }
        Ok(Self {
            defaults: Arc::new(defaults),
            tenants,
        })
    }

    pub fn read(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }
}
