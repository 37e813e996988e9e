//! Crypto helpers: the master key that encrypts secrets at rest, AES-256-GCM sealing,
//! SHA-256 digests, constant-time comparison and random tokens.

use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use rand::RngCore;
use rand::rngs::OsRng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::{Error, Result};

const NONCE_LEN: usize = 12;
const KEY_FILE: &str = "master.key";

/// The 32-byte key that encrypts every secret Zentoria stores, and from which the signing keys
/// are derived. Its bytes never leave this type except through derivation.
#[derive(Clone)]
pub struct MasterKey {
    cipher: Aes256Gcm,
    bytes: [u8; 32],
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        MasterKey {
            cipher: Aes256Gcm::new(&bytes.into()),
            bytes,
        }
    }

    /// Decodes the base64 text form (`ZENTORIA_MASTER_KEY`).
    pub fn from_base64(text: &str) -> Result<Self> {
        let raw = B64
            .decode(text.trim())
            .map_err(|_| Error::invalid("the master key must be base64 of 32 bytes"))?;
        let bytes: [u8; 32] = raw
            .try_into()
            .map_err(|_| Error::invalid("the master key must be base64 of exactly 32 bytes"))?;
        Ok(Self::from_bytes(bytes))
    }

    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        OsRng.fill_bytes(&mut bytes);
        Self::from_bytes(bytes)
    }

    /// Loads `master.key` from the data dir, creating it with mode 0600 on first start.
    /// Returns the key and whether it was just created.
    pub fn load_or_create(data_dir: &Path) -> Result<(Self, bool)> {
        let path = data_dir.join(KEY_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok((Self::from_base64(&text)?, false)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::generate();
                write_private(&path, B64.encode(key.bytes).as_bytes()).map_err(|e| {
                    Error::internal(format!("cannot write {}: {e}", path.display()))
                })?;
                Ok((key, true))
            }
            Err(e) => Err(Error::internal(format!(
                "cannot read {}: {e}",
                path.display()
            ))),
        }
    }

    /// Derives an independent 32-byte key for one purpose (e.g. `"jwt"`), so one secret
    /// serves every use without reusing key material.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.bytes).expect("any key length");
        mac.update(b"zentoria/derive/v1/");
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Encrypts with AES-256-GCM under a random nonce; `aad` binds the ciphertext to its
    /// context (e.g. the row id) so it cannot be moved elsewhere. Output: nonce ‖ ciphertext.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);
        let ct = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .expect("AES-GCM encryption cannot fail for in-memory buffers");
        let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out
    }

    /// Decrypts what [`seal`](Self::seal) produced with the same `aad`.
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        if sealed.len() < NONCE_LEN + 16 {
            return Err(Error::bug("sealed value is too short"));
        }
        let (nonce, ct) = sealed.split_at(NONCE_LEN);
        self.cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad })
            .map_err(|_| Error::bug("sealed value does not decrypt under this master key"))
    }
}

fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(contents)?;
    f.sync_all()
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(sha256(data))
}

/// Compares secrets (or their digests) without leaking where they differ.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A random token of `len` base62 characters (≈5.95 bits each), drawn from the OS.
pub fn random_base62(len: usize) -> String {
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        OsRng.fill_bytes(&mut buf);
        // Rejection sampling keeps the distribution uniform: 248 = 4 * 62.
        for &b in buf.iter().filter(|&&b| b < 248) {
            if out.len() == len {
                break;
            }
            out.push(BASE62[(b % 62) as usize] as char);
        }
    }
    out
}

pub fn base64_encode(data: &[u8]) -> String {
    B64.encode(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_aad_binding() {
        let key = MasterKey::generate();
        let sealed = key.seal(b"secret", b"row-1");
        assert_eq!(key.open(&sealed, b"row-1").unwrap(), b"secret");
        assert!(key.open(&sealed, b"row-2").is_err());
        assert!(MasterKey::generate().open(&sealed, b"row-1").is_err());
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(key.open(&tampered, b"row-1").is_err());
    }

    #[test]
    fn master_key_file_is_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let (k1, created) = MasterKey::load_or_create(dir.path()).unwrap();
        assert!(created);
        let (k2, created) = MasterKey::load_or_create(dir.path()).unwrap();
        assert!(!created);
        assert_eq!(k1.derive("x"), k2.derive("x"));
        assert_ne!(k1.derive("x"), k1.derive("y"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn bad_master_keys_are_rejected() {
        assert!(MasterKey::from_base64("not base64!").is_err());
        assert!(MasterKey::from_base64(&B64.encode([0u8; 16])).is_err());
        assert!(MasterKey::from_base64(&B64.encode([7u8; 32])).is_ok());
    }

    #[test]
    fn random_tokens_have_the_asked_length_and_alphabet() {
        let t = random_base62(43);
        assert_eq!(t.len(), 43);
        assert!(t.bytes().all(|b| BASE62.contains(&b)));
        assert_ne!(random_base62(43), t);
    }

    #[test]
    fn ct_eq_compares() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
    }
}
