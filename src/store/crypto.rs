//! Key names and the sealed session.
//!
//! Names: HMAC-SHA256 under a key derived from the devKey, so a reader of Redis
//! who lacks the devKey cannot test guesses of a userName or organization.
//! Seal: XChaCha20-Poly1305 under HKDF-SHA256(devKey, password), salt = the
//! identity hash; the associated data binds the identity and the generation.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::secret::Secret;

use super::StoreError;

type HmacSha256 = Hmac<Sha256>;

const NONCE_LEN: usize = 24;
const FORMAT_V1: u8 = 1;

/// What one BILL identity is made of. The password is not part of the
/// identity (a process with a wrong password maps to the same keys and is
/// refused), but it is part of the sealing key.
pub struct IdentityParts<'a> {
    /// The BILL base URL the identity signs in at, e.g. `https://gateway.stage.bill.com/connect`.
    pub base_url: &'a str,
    /// `"v2"` or `"v3"`.
    pub api_version: &'a str,
    pub dev_key: &'a Secret,
    pub org_id: &'a str,
    pub user_name: &'a Secret,
    pub password: &'a Secret,
}

/// Derived once per session: key-name hashes and the sealing key. Holds no
/// plaintext credential; the keys are wiped on drop. `Debug` shows only the
/// identity hash, which is already public in Redis key names.
pub struct Identity {
    pub(crate) id_hash: [u8; 32],
    /// Hex of the first 16 bytes of `id_hash`: the cluster hash tag.
    pub(crate) id_tag: String,
    /// Keyed hash of (base URL, devKey): the sign-in budget and pause.
    pub(crate) dev_tag: String,
    /// Keyed hash of (base URL, devKey, organization): the in-flight semaphore.
    pub(crate) org_tag: String,
    seal_key: Zeroizing<[u8; 32]>,
    /// Key check value: proves the same (devKey, password) without revealing either.
    pub(crate) kcv: String,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Identity({})", self.id_tag)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Length-prefixed concatenation: no two field lists share an encoding.
fn lp(out: &mut Vec<u8>, field: &[u8]) {
    out.extend_from_slice(&(field.len() as u64).to_be_bytes());
    out.extend_from_slice(field);
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut msg = Zeroizing::new(Vec::new());
    for p in parts {
        lp(&mut msg, p);
    }
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(&msg);
    mac.finalize().into_bytes().into()
}

fn hkdf(salt: &[u8], ikm: &[u8], info: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut okm = Zeroizing::new([0u8; 32]);
    Hkdf::<Sha256>::new(Some(salt), ikm).expand(info, okm.as_mut()).expect("32 bytes is a valid HKDF length");
    okm
}

impl Identity {
    pub fn new(p: &IdentityParts<'_>) -> Identity {
        let base = p.base_url.trim_end_matches('/').as_bytes();
        let names_key = hkdf(b"libbill store names v1", p.dev_key.expose().as_bytes(), b"names");
        let id_hash = hmac(
            names_key.as_ref(),
            &[b"identity", base, p.api_version.as_bytes(), p.org_id.as_bytes(), p.user_name.expose().as_bytes()],
        );
        let dev = hmac(names_key.as_ref(), &[b"devkey", base]);
        let org = hmac(names_key.as_ref(), &[b"org", base, p.org_id.as_bytes()]);
        let mut ikm = Zeroizing::new(Vec::new());
        lp(&mut ikm, p.dev_key.expose().as_bytes());
        lp(&mut ikm, p.password.expose().as_bytes());
        let seal_key = hkdf(&id_hash, &ikm, b"libbill store session key v1");
        let check_key = hkdf(&id_hash, &ikm, b"libbill store key check v1");
        let kcv = hmac(check_key.as_ref(), &[b"kcv"]);
        Identity {
            id_hash,
            id_tag: hex(&id_hash[..16]),
            dev_tag: hex(&dev[..16]),
            org_tag: hex(&org[..16]),
            seal_key,
            kcv: hex(&kcv[..16]),
        }
    }

    /// The identity hash as it appears in key names (32 hex digits).
    pub fn tag(&self) -> &str {
        &self.id_tag
    }

    fn aad(&self, generation: u64) -> Vec<u8> {
        let mut aad = b"libbill-store-session-v1".to_vec();
        aad.extend_from_slice(&self.id_hash);
        aad.extend_from_slice(&generation.to_be_bytes());
        aad
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new_from_slice(self.seal_key.as_ref()).expect("a 32-byte key")
    }

    /// nonce || ciphertext of the record under this identity's key.
    pub(crate) fn seal(&self, rec: &SessionRecord) -> Result<Vec<u8>, StoreError> {
        let mut plain = Zeroizing::new(vec![FORMAT_V1]);
        plain.extend_from_slice(&rec.signed_in_at_ms.to_be_bytes());
        plain.push(rec.mfa_trusted as u8);
        lp(&mut plain, rec.session_id.expose().as_bytes());
        lp(&mut plain, rec.call_base_url.as_bytes());
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|_| StoreError::Redis("the OS random source failed".into()))?;
        let aad = self.aad(rec.generation);
        let ct = self
            .cipher()
            .encrypt(&XNonce::from(nonce), Payload { msg: &plain, aad: &aad })
            .map_err(|_| StoreError::Redis("sealing the session failed".into()))?;
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&ct);
        Ok(blob)
    }

    /// Opens a blob stored at `generation`. A wrong key or a tampered blob gives
    /// `WrongCredentials`; a blob that opens but does not parse gives `Corrupt`.
    pub(crate) fn open(&self, generation: u64, blob: &[u8]) -> Result<SessionRecord, StoreError> {
        if blob.len() < NONCE_LEN + 16 {
            return Err(StoreError::Corrupt);
        }
        let nonce: [u8; NONCE_LEN] = blob[..NONCE_LEN].try_into().map_err(|_| StoreError::Corrupt)?;
        let aad = self.aad(generation);
        let plain = Zeroizing::new(
            self.cipher()
                .decrypt(&XNonce::from(nonce), Payload { msg: &blob[NONCE_LEN..], aad: &aad })
                .map_err(|_| StoreError::WrongCredentials)?,
        );
        parse_record(&plain, generation).ok_or(StoreError::Corrupt)
    }
}

fn parse_record(p: &[u8], generation: u64) -> Option<SessionRecord> {
    fn take<'a>(p: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        if p.len() < n {
            return None;
        }
        let (a, b) = p.split_at(n);
        *p = b;
        Some(a)
    }
    fn take_lp<'a>(p: &mut &'a [u8]) -> Option<&'a [u8]> {
        let n = u64::from_be_bytes(take(p, 8)?.try_into().ok()?);
        take(p, usize::try_from(n).ok()?)
    }
    let mut p = p;
    if take(&mut p, 1)? != [FORMAT_V1] {
        return None;
    }
    let signed_in_at_ms = u64::from_be_bytes(take(&mut p, 8)?.try_into().ok()?);
    let mfa_trusted = take(&mut p, 1)?[0] != 0;
    let session_id = Secret::from_bytes(take_lp(&mut p)?)?;
    let call_base_url = String::from_utf8(take_lp(&mut p)?.to_vec()).ok()?;
    p.is_empty().then_some(SessionRecord { session_id, generation, signed_in_at_ms, call_base_url, mfa_trusted })
}

/// The shared session as the fleet sees it. Only `generation` is stored in
/// clear (the check-and-set compares it); the rest is sealed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRecord {
    /// BILL's session id. `Debug` prints `[REDACTED]`.
    pub session_id: Secret,
    /// Bumped by every publish; the store refuses one that is not higher.
    pub generation: u64,
    /// When the sign-in that made this id was sent, in the Redis server's clock
    /// (ms since the epoch; see [`super::Store::server_time_ms`]).
    pub signed_in_at_ms: u64,
    /// The base URL calls go to with this id (v2 may hand out another host).
    pub call_base_url: String,
    /// Whether the sign-in was MFA-trusted (a remembered device).
    pub mfa_trusted: bool,
}
