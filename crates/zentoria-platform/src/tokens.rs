//! JWT access tokens (HS256, signed with a key derived from the master key).

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use serde::{Deserialize, Serialize};
use zentoria_core::{Error, Result};

const ISSUER: &str = "zentoria";

#[derive(Debug, Serialize, Deserialize)]
pub struct AccessClaims {
    pub sub: String,
    /// The login session (refresh-token family) this token belongs to.
    pub sid: String,
    pub iss: String,
    pub iat: i64,
    pub exp: i64,
    pub typ: String,
}

pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl JwtKeys {
    pub fn new(secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.leeway = 5;
        JwtKeys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
        }
    }

    pub fn issue(&self, user_id: &str, session_id: &str, now_s: i64, ttl_s: i64) -> Result<String> {
        let claims = AccessClaims {
            sub: user_id.to_owned(),
            sid: session_id.to_owned(),
            iss: ISSUER.into(),
            iat: now_s,
            exp: now_s + ttl_s,
            typ: "access".into(),
        };
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| Error::bug(format!("cannot sign a token: {e}")))
    }

    pub fn verify(&self, token: &str) -> Result<AccessClaims> {
        let data =
            decode::<AccessClaims>(token, &self.decoding, &self.validation).map_err(|e| match e
                .kind()
            {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                    Error::unauthenticated("the access token has expired; refresh it")
                }
                _ => Error::unauthenticated("the access token is not valid"),
            })?;
        if data.claims.typ != "access" {
            return Err(Error::unauthenticated("the token is not an access token"));
        }
        Ok(data.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_verify_and_reject() {
        let keys = JwtKeys::new(&[1u8; 32]);
        let now = zentoria_core::time::now_ms() / 1000;
        let t = keys.issue("u1", "s1", now, 60).unwrap();
        let c = keys.verify(&t).unwrap();
        assert_eq!((c.sub.as_str(), c.sid.as_str()), ("u1", "s1"));
        assert!(JwtKeys::new(&[2u8; 32]).verify(&t).is_err());
        let expired = keys.issue("u1", "s1", now - 3600, 60).unwrap();
        assert!(
            keys.verify(&expired)
                .unwrap_err()
                .to_string()
                .contains("expired")
        );
        assert!(keys.verify("a.b.c").is_err());
    }
}
