//! Logins, refresh-token rotation with reuse detection, logout, and authentication of a
//! presented credential (access token or API key).

use std::sync::Arc;

use serde::Serialize;
use zentoria_core::crypto::{random_base62, sha256_hex};
use zentoria_core::{Error, Result, Role, id::new_id, time::now_ms};
use zentoria_store::repo::{sessions, users};

use crate::ratelimit::retry_after_secs;
use crate::{Actor, AuditEvent, ClientInfo, Outcome, Platform, Principal, Via, password};

const REFRESH_PREFIX: &str = "znt_rt_";

/// What a login or refresh hands back.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
}

/// What an access token's session looks like now, cached briefly.
#[derive(Debug, Clone)]
pub(crate) struct SessionState {
    live: bool,
    username: String,
    role: Role,
}

impl Platform {
    /// Checks a username and password and starts a session. Failed attempts are limited per
    /// client address and per username, and every attempt is audited.
    pub async fn login(
        &self,
        username: &str,
        password: String,
        client: &ClientInfo,
    ) -> Result<TokenPair> {
        let ip = client.ip.as_deref().unwrap_or("-");
        let user_key = username.to_lowercase();
        let limiter = &self.inner.login_failures;
        if let Err(wait) = limiter.peek("ip", ip).and(limiter.peek("user", &user_key)) {
            self.audit()
                .record(
                    AuditEvent::new("auth.login", Outcome::Denied, client)
                        .actor(Some(Actor::named(username)))
                        .details(serde_json::json!({"reason": "too many failed logins"})),
                )
                .await;
            return Err(Error::RateLimited {
                retry_after_secs: retry_after_secs(wait),
            });
        }

        let row = users::by_username(self.db(), username).await?;
        let ok = password::verify(password, row.as_ref().map(|r| r.password_hash.clone())).await?;
        let user = match row {
            Some(r) if ok && !r.disabled => r,
            found => {
                let _ = limiter.acquire("ip", ip);
                let _ = limiter.acquire("user", &user_key);
                let reason = match &found {
                    Some(r) if r.disabled => "account disabled",
                    Some(_) => "wrong password",
                    None => "unknown user",
                };
                self.audit()
                    .record(
                        AuditEvent::new("auth.login", Outcome::Failure, client)
                            .actor(Some(Actor {
                                id: found.as_ref().map(|r| r.id.clone()),
                                label: username.to_owned(),
                            }))
                            .details(serde_json::json!({ "reason": reason })),
                    )
                    .await;
                return Err(Error::unauthenticated("wrong username or password"));
            }
        };

        let family = new_id();
        let (refresh, refresh_hash) = new_refresh_token();
        let now = now_ms();
        sessions::start_family(
            self.db(),
            &family,
            &user.id,
            &new_id(),
            &refresh_hash,
            now,
            now + self.settings().refresh_token_ttl.as_millis() as i64,
        )
        .await?;
        self.audit()
            .record(
                AuditEvent::new("auth.login", Outcome::Success, client)
                    .actor(Some(Actor {
                        id: Some(user.id.clone()),
                        label: user.username.clone(),
                    }))
                    .resource("session", &family),
            )
            .await;
        self.token_pair(&user.id, &family, refresh, now)
    }

    /// Exchanges a refresh token for a new pair. The old one stops working; presenting a token
    /// that was already exchanged revokes the whole session (every token of that login).
    pub async fn refresh(&self, refresh_token: &str, client: &ClientInfo) -> Result<TokenPair> {
        let invalid = || Error::unauthenticated("the refresh token is not valid; log in again");
        if !refresh_token.starts_with(REFRESH_PREFIX) || refresh_token.len() > 128 {
            return Err(invalid());
        }
        let hash = sha256_hex(refresh_token.as_bytes());
        let Some(tok) = sessions::find_token(self.db(), &hash).await? else {
            return Err(invalid());
        };
        let now = now_ms();
        if tok.family_revoked_at.is_some() || tok.expires_at <= now {
            return Err(invalid());
        }
        let (next, next_hash) = new_refresh_token();
        let rotated = tok.rotated_at.is_none()
            && sessions::rotate(
                self.db(),
                &tok.id,
                &tok.family_id,
                &new_id(),
                &next_hash,
                now,
                now + self.settings().refresh_token_ttl.as_millis() as i64,
            )
            .await?;
        if !rotated {
            sessions::revoke_family(self.db(), &tok.family_id, "refresh token reused", now).await?;
            self.inner.session_cache.remove(&tok.family_id);
            self.audit()
                .record(
                    AuditEvent::new("auth.refresh_reuse", Outcome::Denied, client)
                        .actor(Some(Actor::user_id(&tok.user_id)))
                        .resource("session", &tok.family_id)
                        .details(serde_json::json!({
                            "reason": "an already-rotated refresh token was presented; the session was revoked"
                        })),
                )
                .await;
            return Err(Error::unauthenticated(
                "this refresh token was already used; the session has been revoked for safety, log in again",
            ));
        }
        self.token_pair(&tok.user_id, &tok.family_id, next, now)
    }

    /// Ends the session the principal's access token belongs to (or, given a refresh token,
    /// that token's session).
    pub async fn logout(
        &self,
        principal: &Principal,
        refresh_token: Option<&str>,
        client: &ClientInfo,
    ) -> Result<()> {
        let family = match (&principal.via, refresh_token) {
            (_, Some(rt)) => sessions::find_token(self.db(), &sha256_hex(rt.as_bytes()))
                .await?
                .filter(|t| t.user_id == principal.user_id)
                .map(|t| t.family_id),
            (Via::Session { session_id }, None) => Some(session_id.clone()),
            (Via::ApiKey { .. } | Via::Cli, None) => None,
        };
        let Some(family) = family else {
            return Err(Error::invalid(
                "nothing to log out: sign in with an access token, or pass the refresh_token",
            ));
        };
        sessions::revoke_family(self.db(), &family, "logout", now_ms()).await?;
        self.inner.session_cache.remove(&family);
        self.audit()
            .record(
                AuditEvent::new("auth.logout", Outcome::Success, client)
                    .actor(Some(principal.actor()))
                    .resource("session", &family),
            )
            .await;
        Ok(())
    }

    /// Turns a presented credential into a principal: an API key (`znt_…`) or an access JWT.
    pub async fn authenticate(&self, credential: &str) -> Result<Arc<Principal>> {
        if credential.starts_with(crate::keys::KEY_PREFIX_FAMILY) {
            return self.authenticate_key(credential).await;
        }
        if credential.split('.').count() == 3 {
            return self
                .authenticate_access_token(credential)
                .await
                .map(Arc::new);
        }
        Err(Error::unauthenticated(
            "unrecognised credential: send an API key (znt_…) or an access token",
        ))
    }

    async fn authenticate_access_token(&self, token: &str) -> Result<Principal> {
        let claims = self.inner.jwt.verify(token)?;
        let state = match self.inner.session_cache.get(&claims.sid) {
            Some(s) => s,
            None => {
                let live = sessions::family_revoked(self.db(), &claims.sid).await? == Some(false);
                let user = users::by_id(self.db(), &claims.sub).await?;
                let state = match user {
                    Some(u) => SessionState {
                        live: live && !u.disabled,
                        username: u.username,
                        role: u.role.parse()?,
                    },
                    None => SessionState {
                        live: false,
                        username: String::new(),
                        role: Role::Viewer,
                    },
                };
                self.inner
                    .session_cache
                    .insert(claims.sid.clone(), state.clone());
                state
            }
        };
        if !state.live {
            return Err(Error::unauthenticated(
                "this session has ended; log in again",
            ));
        }
        Ok(Principal {
            user_id: claims.sub,
            username: state.username,
            role: state.role,
            scopes: state.role.scopes(),
            via: Via::Session {
                session_id: claims.sid,
            },
            limits: Default::default(),
        })
    }

    fn token_pair(
        &self,
        user_id: &str,
        family: &str,
        refresh_token: String,
        now_ms: i64,
    ) -> Result<TokenPair> {
        let ttl = self.settings().access_token_ttl.as_secs();
        Ok(TokenPair {
            access_token: self
                .inner
                .jwt
                .issue(user_id, family, now_ms / 1000, ttl as i64)?,
            refresh_token,
            token_type: "Bearer",
            expires_in: ttl,
        })
    }
}

fn new_refresh_token() -> (String, String) {
    let token = format!("{REFRESH_PREFIX}{}", random_base62(43));
    let hash = sha256_hex(token.as_bytes());
    (token, hash)
}
