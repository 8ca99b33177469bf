//! Certificates for `--tls`: a CA made at start, a server certificate it signs
//! for 127.0.0.1, localhost and ::1, and an unrelated CA for negative tests.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::{crypto::ring, ServerConfig};
use tokio_rustls::TlsAcceptor;

pub(crate) struct TlsSetup {
    pub acceptor: TlsAcceptor,
    pub ca_file: PathBuf,
    pub wrong_ca_file: PathBuf,
}

fn err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

fn ca(name: &str) -> Result<(CertificateParams, KeyPair, String), rcgen::Error> {
    let key = KeyPair::generate()?;
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let pem = p.self_signed(&key)?.pem();
    Ok((p, key, pem))
}

pub(crate) fn setup(dir: &Path) -> io::Result<TlsSetup> {
    let (ca_params, ca_key, ca_pem) = ca("bill-emulator test CA").map_err(err)?;
    let (_, _, wrong_pem) = ca("bill-emulator unrelated CA").map_err(err)?;
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().map_err(err)?;
    let names = vec!["127.0.0.1".to_string(), "localhost".into(), "::1".into()];
    let mut p = CertificateParams::new(names).map_err(err)?;
    p.distinguished_name.push(DnType::CommonName, "localhost");
    p.use_authority_key_identifier_extension = true;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = p.signed_by(&key, &issuer).map_err(err)?;

    fs::create_dir_all(dir)?;
    let ca_file = dir.join("ca.pem");
    let wrong_ca_file = dir.join("wrong-ca.pem");
    fs::write(&ca_file, ca_pem)?;
    fs::write(&wrong_ca_file, wrong_pem)?;

    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let mut cfg = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(err)?
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], key_der)
        .map_err(err)?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsSetup { acceptor: TlsAcceptor::from(Arc::new(cfg)), ca_file, wrong_ca_file })
}
