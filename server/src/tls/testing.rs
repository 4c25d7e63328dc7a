//! Certificates for tests (feature `testing`): a CA of their own, server and client
//! certificates it signs, an expired client certificate and an untrusted self-signed one,
//! all written as PEM files into a directory.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// A certificate and its key, as PEM files.
#[derive(Debug, Clone)]
pub struct Pair {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A test CA writing its certificates into a directory.
pub struct TestPki {
    dir: PathBuf,
    /// The CA certificate (PEM).
    pub ca: PathBuf,
    issuer: Issuer<'static, KeyPair>,
}

fn params(name: &str, sans: &[&str]) -> CertificateParams {
    let mut p = CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .expect("valid names");
    p.distinguished_name.push(DnType::CommonName, name);
    p
}

impl TestPki {
    pub fn new(dir: &Path) -> Self {
        std::fs::create_dir_all(dir).expect("pki dir");
        let key = KeyPair::generate().expect("key");
        let mut p = params("Strata test CA", &[]);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = p.self_signed(&key).expect("CA");
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, cert.pem()).expect("write CA");
        Self {
            dir: dir.to_path_buf(),
            ca,
            issuer: Issuer::new(p, key),
        }
    }

    fn write(&self, name: &str, cert: &rcgen::Certificate, key: &KeyPair) -> Pair {
        let pair = Pair {
            cert: self.dir.join(format!("{name}.pem")),
            key: self.dir.join(format!("{name}-key.pem")),
        };
        std::fs::write(&pair.cert, cert.pem()).expect("write cert");
        std::fs::write(&pair.key, key.serialize_pem()).expect("write key");
        pair
    }

    /// A server certificate for `localhost` and `127.0.0.1`, signed by the CA.
    pub fn server(&self, name: &str) -> Pair {
        let key = KeyPair::generate().expect("key");
        let mut p = params(name, &["localhost", "127.0.0.1"]);
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = p.signed_by(&key, &self.issuer).expect("server cert");
        self.write(name, &cert, &key)
    }

    /// A client certificate signed by the CA.
    pub fn client(&self, name: &str) -> Pair {
        let key = KeyPair::generate().expect("key");
        let mut p = params(name, &[]);
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = p.signed_by(&key, &self.issuer).expect("client cert");
        self.write(name, &cert, &key)
    }

    /// A client certificate signed by the CA that expired in 2020.
    pub fn expired_client(&self, name: &str) -> Pair {
        let key = KeyPair::generate().expect("key");
        let mut p = params(name, &[]);
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        p.not_before = rcgen::date_time_ymd(2019, 1, 1);
        p.not_after = rcgen::date_time_ymd(2020, 1, 1);
        let cert = p.signed_by(&key, &self.issuer).expect("expired cert");
        self.write(name, &cert, &key)
    }

    /// A self-signed certificate for `localhost` and `127.0.0.1` that the CA did not sign.
    pub fn untrusted(&self, name: &str) -> Pair {
        let key = KeyPair::generate().expect("key");
        let mut p = params(name, &["localhost", "127.0.0.1"]);
        p.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = p.self_signed(&key).expect("self-signed cert");
        self.write(name, &cert, &key)
    }
}
