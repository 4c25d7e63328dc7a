//! The configuration file: one table per role, loaded as defaults -> TOML file -> environment.

use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use strata_agent::AgentConfig;
use strata_collector::CollectorConfig;
use strata_compactor::CompactorConfig;
use strata_query::QueryConfig;

/// The whole configuration file. Every role reads its own table; `standalone` reads all three.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The edge agent.
    pub agent: AgentConfig,
    /// The collector tier.
    pub collector: CollectorConfig,
    /// The query service.
    pub query: QueryConfig,
    /// The compactor.
    pub compactor: CompactorConfig,
}

/// Loads the configuration: defaults, then `file` (which must exist when given), then
/// `STRATA_AGENT__*`, `STRATA_COLLECTOR__*`, `STRATA_QUERY__*` and `STRATA_COMPACTOR__*` variables
/// (e.g. `STRATA_COLLECTOR__FLUSH_MAX_AGE_MS=500`).
pub fn load(file: Option<&Path>) -> anyhow::Result<Config> {
    let mut figment = Figment::from(Serialized::defaults(Config::default()));
    if let Some(path) = file {
        if !path.exists() {
            anyhow::bail!("config file {} does not exist", path.display());
        }
        figment = figment.merge(Toml::file(path));
    }
    figment = figment.merge(
        Env::prefixed("STRATA_")
            .filter(|k| {
                let k = k.as_str().to_ascii_lowercase();
                ["agent__", "collector__", "query__", "compactor__"]
                    .iter()
                    .any(|p| k.starts_with(p))
            })
            .split("__"),
    );
    Ok(figment.extract()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_parses_and_validates() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/strata.example.toml");
        let c = load(Some(&path)).unwrap();
        c.agent.validate().unwrap();
        c.collector.validate().unwrap();
        c.query.validate().unwrap();
        c.compactor.validate().unwrap();
        assert_eq!(c.agent.otlp_grpc, "0.0.0.0:4317");
        // Every compactor setting is written out in the example.
        assert_eq!(
            toml_keys(&path, "compactor"),
            serde_json::to_value(strata_compactor::CompactorConfig::default())
                .unwrap()
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect::<std::collections::BTreeSet<_>>()
        );
        assert_eq!(c.agent.files.len(), 2);
        assert!(c.agent.files[1].multiline.is_some());
    }

    #[test]
    fn kubernetes_daemonset_config_parses_and_validates() {
        let manifest = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes/agent-daemonset.yaml"),
        )
        .unwrap();
        // The ConfigMap's `strata.toml: |` block, unindented.
        let toml: String = manifest
            .lines()
            .skip_while(|l| !l.trim_start().starts_with("strata.toml: |"))
            .skip(1)
            .take_while(|l| l.is_empty() || l.starts_with("    "))
            .map(|l| format!("{}\n", l.strip_prefix("    ").unwrap_or(l)))
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("strata.toml");
        std::fs::write(&path, toml).unwrap();
        let c = load(Some(&path)).unwrap();
        c.agent.validate().unwrap();
        assert_eq!(c.agent.files.len(), 1);
        assert_eq!(c.agent.files[0].include, ["/var/log/pods/*/*/*.log"]);
    }

    /// The keys of table `[table]` (and of `[table.x]` sub-tables) in a TOML file, read as text.
    fn toml_keys(path: &Path, table: &str) -> std::collections::BTreeSet<String> {
        let text = std::fs::read_to_string(path).unwrap();
        let mut keys = std::collections::BTreeSet::new();
        let mut inside = false;
        for line in text.lines().map(str::trim) {
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                inside = name == table || name.starts_with(&format!("{table}."));
                if let Some(sub) = name.strip_prefix(&format!("{table}.")) {
                    keys.insert(sub.split('.').next().unwrap().to_string());
                }
                continue;
            }
            if inside
                && !line.starts_with('#')
                && let Some((k, _)) = line.split_once(" = ")
            {
                keys.insert(k.to_string());
            }
        }
        keys
    }

    #[test]
    fn compactor_settings_come_from_the_environment() {
        // SAFETY: no other test of this binary reads or writes this variable.
        unsafe { std::env::set_var("STRATA_COMPACTOR__DELETE_DELAY", "36h") };
        let c = load(None).unwrap();
        unsafe { std::env::remove_var("STRATA_COMPACTOR__DELETE_DELAY") };
        assert_eq!(c.compactor.delete_delay.to_string(), "36h");
    }

    #[test]
    fn example_auth_file_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/auth.example.toml");
        let c = strata_server::auth::Credentials::read(&path).unwrap();
        assert_eq!(c.len(), 3);
        assert_eq!(c.token("acme-token").unwrap().name, "acme-apps");
        assert!(c.user("grafana", "grafana-password").is_some());
    }

    #[test]
    fn example_limits_file_parses_and_shows_the_built_in_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/limits.example.toml");
        let t = strata_server::limits::Table::read(&path).unwrap();
        assert_eq!(
            t.defaults.as_ref(),
            &strata_server::limits::Limits::default()
        );
        assert_eq!(t.of("acme").max_concurrent_queries, 4);
        assert_eq!(t.of("acme").max_attribute_value_bytes, 65536);
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[agent]\nno_such_field = 1\n").unwrap();
        let err = load(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("no_such_field"), "{err}");
    }

    #[test]
    fn defaults_need_no_file() {
        let c = load(None).unwrap();
        assert_eq!(c.query.http, "0.0.0.0:3200");
        assert_eq!(c.collector.flight, "0.0.0.0:4320");
    }
}
