//! argon2id password hashing, always off the async executor: one hash costs tens of
//! milliseconds of CPU, which would stall every other request on that worker thread.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use std::sync::OnceLock;
use zentoria_core::{Error, Result};

fn argon2() -> Argon2<'static> {
    // OWASP's recommended minimum for argon2id: 19 MiB, 2 passes, 1 lane.
    let params = Params::new(19 * 1024, 2, 1, None).expect("valid argon2 params");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

pub fn validate(password: &str) -> Result<()> {
    let n = password.chars().count();
    if n < 8 {
        return Err(Error::invalid(
            "the password must have at least 8 characters",
        ));
    }
    if password.len() > 1024 {
        return Err(Error::invalid("the password must have at most 1024 bytes"));
    }
    Ok(())
}

pub async fn hash(password: String) -> Result<String> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        argon2()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| Error::bug(format!("argon2 hashing failed: {e}")))
    })
    .await
    .map_err(Error::internal)?
}

/// Verifies `password` against `stored`. With no stored hash (unknown user) a dummy hash is
/// checked anyway, so the response time does not reveal which usernames exist.
pub async fn verify(password: String, stored: Option<String>) -> Result<bool> {
    tokio::task::spawn_blocking(move || {
        let dummy = dummy_hash();
        let (hash, real) = match &stored {
            Some(h) => (h.as_str(), true),
            None => (dummy, false),
        };
        let parsed = PasswordHash::new(hash)
            .map_err(|e| Error::bug(format!("stored password hash is malformed: {e}")))?;
        let ok = argon2()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        Ok(ok && real)
    })
    .await
    .map_err(Error::internal)?
}

fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let salt = SaltString::generate(&mut OsRng);
        argon2()
            .hash_password(b"zentoria-dummy-password", &salt)
            .expect("hashing a constant works")
            .to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_and_verify() {
        let h = hash("correct horse".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(
            verify("correct horse".into(), Some(h.clone()))
                .await
                .unwrap()
        );
        assert!(!verify("wrong horse!".into(), Some(h)).await.unwrap());
        assert!(!verify("anything at all".into(), None).await.unwrap());
    }

    #[test]
    fn short_passwords_are_refused() {
        assert!(validate("short").is_err());
        assert!(validate("long enough").is_ok());
    }
}
