//! The auth file: credentials (a bearer token, or a username and password) stored hashed,
//! each with the tenants it may use and its scopes.
//!
//! ```toml
//! [[credential]]
//! token = "sha256:<lowercase hex of the token's SHA-256>"
//! tenants = ["acme"]          # or ["*"]: every tenant
//! scopes = ["write", "read"]  # write, read, admin
//!
//! [[credential]]
//! username = "grafana"
//! password = "sha256:<hex>"
//! tenants = ["acme", "shop"]
//! scopes = ["read"]
//! ```
//!
//! Invariants: no secret is kept in memory, only its hash; a file that does not parse is
//! refused whole (at start, an error; on reload, the credentials in use stay); a token or
//! username given twice is an error, not a silent override.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;
use strata_schema::envelope::validate_tenant;

use super::{Grant, Scope, Tenants};

/// A SHA-256 digest.
pub type Digest = [u8; 32];

/// The SHA-256 of `secret`.
pub fn sha256(secret: &[u8]) -> Digest {
    let d = ring::digest::digest(&ring::digest::SHA256, secret);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// `sha256:<hex>` of `secret`: what the auth file stores for it.
pub fn hash_text(secret: &str) -> String {
    format!("sha256:{}", hex::encode(sha256(secret.as_bytes())))
}

/// Equal digests, in time that does not depend on where they differ.
pub fn same(a: &Digest, b: &Digest) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn parse_hash(what: &str, text: &str) -> Result<Digest, String> {
    let Some(hex_text) = text.strip_prefix("sha256:") else {
        return Err(format!(
            "{what}: unknown hash kind (want \"sha256:<64 lowercase hex digits>\")"
        ));
    };
    if hex_text.len() != 64 || hex_text.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(format!(
            "{what}: want 64 lowercase hex digits after sha256:"
        ));
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_text, &mut out).map_err(|e| format!("{what}: not hex: {e}"))?;
    Ok(out)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileText {
    #[serde(default)]
    credential: Vec<CredentialText>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CredentialText {
    /// A name for logs (default: the username, or `token <n>`).
    name: Option<String>,
    token: Option<String>,
    username: Option<String>,
    password: Option<String>,
    tenants: Vec<String>,
    scopes: Vec<Scope>,
}

/// The credentials of one auth file, looked up by token hash or username.
#[derive(Debug, Default)]
pub struct Credentials {
    tokens: HashMap<Digest, Grant>,
    users: HashMap<String, (Digest, Grant)>,
}

impl Credentials {
    /// Parses an auth file's text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let file: FileText = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut out = Self::default();
        for (i, c) in file.credential.into_iter().enumerate() {
            let at = format!("credential {}", i + 1);
            if c.scopes.is_empty() {
                return Err(format!("{at}: scopes is empty"));
            }
            if c.tenants.is_empty() {
                return Err(format!(
                    "{at}: tenants is empty (use [\"*\"] for every tenant)"
                ));
            }
            let tenants = if c.tenants.iter().any(|t| t == "*") {
                if c.tenants.len() > 1 {
                    return Err(format!("{at}: \"*\" stands alone in tenants"));
                }
                Tenants::Any
            } else {
                for t in &c.tenants {
                    validate_tenant(t).map_err(|e| format!("{at}: tenant {t:?}: {e}"))?;
                }
                Tenants::List(c.tenants)
            };
            match (c.token, c.username, c.password) {
                (Some(token), None, None) => {
                    let digest = parse_hash(&format!("{at}: token"), &token)?;
                    let grant = Grant {
                        name: c.name.unwrap_or_else(|| format!("token {}", i + 1)),
                        tenants,
                        scopes: c.scopes,
                    };
                    if out.tokens.insert(digest, grant).is_some() {
                        return Err(format!("{at}: the same token is given twice"));
                    }
                }
                (None, Some(user), Some(password)) => {
                    let digest = parse_hash(&format!("{at}: password"), &password)?;
                    let grant = Grant {
                        name: c.name.unwrap_or_else(|| user.clone()),
                        tenants,
                        scopes: c.scopes,
                    };
                    if out.users.insert(user.clone(), (digest, grant)).is_some() {
                        return Err(format!("{at}: username {user:?} is given twice"));
                    }
                }
                _ => {
                    return Err(format!("{at}: give either token, or username and password"));
                }
            }
        }
        Ok(out)
    }

    pub fn read(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn len(&self) -> usize {
        self.tokens.len() + self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The grant of a bearer token.
    pub fn token(&self, token: &str) -> Option<&Grant> {
        self.tokens.get(&sha256(token.as_bytes()))
    }

    /// The grant of a username and password.
    pub fn user(&self, user: &str, password: &str) -> Option<&Grant> {
        let (digest, grant) = self.users.get(user)?;
        same(digest, &sha256(password.as_bytes())).then_some(grant)
    }
}
