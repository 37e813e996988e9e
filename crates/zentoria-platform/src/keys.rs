//! API keys: `znt_live_sk_<43 base62 characters>` (≈256 bits from the OS), shown once, stored
//! as a SHA-256 digest, scoped, optionally expiring, revocable at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use serde::{Deserialize, Serialize};
use zentoria_core::crypto::{ct_eq, random_base62, sha256, sha256_hex};
use zentoria_core::{Error, Result, Role, Scopes, id::new_id, time::now_ms};
use zentoria_store::repo::keys::{self, ApiKeyRow, NewKey};

use crate::{AuditEvent, ClientInfo, Outcome, Platform, Principal, User, Via};

pub(crate) const KEY_PREFIX_FAMILY: &str = "znt_";
const KEY_PREFIX: &str = "znt_live_sk_";
const KEY_RANDOM_CHARS: usize = 43;

/// A verified key as kept in memory: its principal, ready to hand out without copying.
#[derive(Debug)]
pub(crate) struct CachedKey {
    principal: Arc<Principal>,
    expires_at: Option<i64>,
    /// When last use was last written to the database (epoch ms).
    touched_at: AtomicI64,
}

/// What a caller asks for when creating a key.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct NewKeyRequest {
    pub name: String,
    pub scopes: Scopes,
    /// Lifetime from now, e.g. `30d`; none means the key does not expire.
    #[serde(default)]
    pub expires_in: Option<String>,
    /// Models and monthly tokens the key may use (AI gateway and chat).
    #[serde(flatten)]
    pub limits: crate::KeyLimits,
}

/// A key as listed: everything but the secret.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ApiKeyInfo {
    pub id: String,
    pub user_id: String,
    pub name: String,
    /// The first characters of the key, to recognise it by.
    pub prefix: String,
    pub scopes: Scopes,
    #[serde(with = "zentoria_core::time::rfc3339_ms")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    #[serde(with = "zentoria_core::time::rfc3339_ms::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<i64>,
    #[serde(with = "zentoria_core::time::rfc3339_ms::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_used_at: Option<i64>,
    #[serde(with = "zentoria_core::time::rfc3339_ms::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<i64>,
    #[serde(flatten)]
    pub limits: crate::KeyLimits,
}

/// A key just created: the only time its secret is shown.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CreatedKey {
    pub key: String,
    #[serde(flatten)]
    #[schema(inline)]
    pub info: ApiKeyInfo,
}

impl TryFrom<ApiKeyRow> for ApiKeyInfo {
    type Error = Error;
    fn try_from(r: ApiKeyRow) -> Result<Self> {
        Ok(ApiKeyInfo {
            scopes: Scopes::parse_list(&r.scopes)?,
            id: r.id,
            user_id: r.user_id,
            name: r.name,
            prefix: r.prefix,
            created_at: r.created_at,
            expires_at: r.expires_at,
            last_used_at: r.last_used_at,
            revoked_at: r.revoked_at,
            limits: limits_of(r.models.as_deref(), r.monthly_token_budget)?,
        })
    }
}

impl Platform {
    /// Creates a key for `owner`. `granter` is the authority of whoever asks: the key may not
    /// carry a scope the granter lacks, nor one the owner's role lacks.
    pub async fn create_key(
        &self,
        owner: &User,
        granter: Scopes,
        req: NewKeyRequest,
        actor: Option<crate::Actor>,
        client: &ClientInfo,
    ) -> Result<CreatedKey> {
        let name = req.name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(Error::invalid("a key name has 1 to 100 characters"));
        }
        if req.scopes.is_empty() {
            return Err(Error::invalid("a key needs at least one scope"));
        }
        if let Some(missing) = req.scopes.iter().find(|s| !granter.allows(*s)) {
            self.audit()
                .record(
                    AuditEvent::new("key.create", Outcome::Denied, client)
                        .actor(actor.clone())
                        .details(serde_json::json!({"reason": "scope not held", "scope": missing.as_str()})),
                )
                .await;
            return Err(Error::forbidden(format!(
                "you cannot grant the scope {:?}: you do not hold it",
                missing.as_str()
            )));
        }
        if let Some(missing) = req.scopes.iter().find(|s| !owner.role.scopes().allows(*s)) {
            return Err(Error::forbidden(format!(
                "the user {:?} (role {}) cannot hold the scope {:?}",
                owner.username,
                owner.role.as_str(),
                missing.as_str()
            )));
        }
        let now = now_ms();
        let expires_at = match &req.expires_in {
            Some(d) => {
                let d = zentoria_core::time::parse_duration(d).map_err(Error::invalid)?;
                if d.is_zero() {
                    return Err(Error::invalid("expires_in must be longer than zero"));
                }
                Some(now.saturating_add(d.as_millis().min(i64::MAX as u128) as i64))
            }
            None => None,
        };
        let limits = check_limits(req.limits)?;
        let models = limits
            .models
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(Error::internal)?;
        let secret = random_base62(KEY_RANDOM_CHARS);
        let key = format!("{KEY_PREFIX}{secret}");
        let prefix = format!("{KEY_PREFIX}{}", &secret[..6]);
        let id = new_id();
        let scopes = req.scopes.to_list();
        keys::insert(
            self.db(),
            &NewKey {
                id: &id,
                user_id: &owner.id,
                name,
                prefix: &prefix,
                key_hash: &sha256_hex(key.as_bytes()),
                scopes: &scopes,
                created_at: now,
                expires_at,
                models: models.as_deref(),
                monthly_token_budget: limits
                    .monthly_token_budget
                    .map(|b| b.min(i64::MAX as u64) as i64),
            },
        )
        .await?;
        self.audit()
            .record(
                AuditEvent::new("key.created", Outcome::Success, client)
                    .actor(actor)
                    .resource("api_key", &id)
                    .details(serde_json::json!({
                        "name": name, "owner": owner.username, "scopes": scopes, "expires_at": expires_at,
                        "models": limits.models, "monthly_token_budget": limits.monthly_token_budget,
                    })),
            )
            .await;
        self.events()
            .publish(
                zentoria_events::NewEvent::new(
                    "key.created",
                    Some(zentoria_core::Scope::KeysManage),
                    serde_json::json!({"id": id, "name": name, "scopes": scopes}),
                )
                .owner(Some(owner.id.clone())),
            )
            .await;
        Ok(CreatedKey {
            key,
            info: ApiKeyInfo {
                id,
                user_id: owner.id.clone(),
                name: name.to_owned(),
                prefix,
                scopes: req.scopes,
                created_at: now,
                expires_at,
                last_used_at: None,
                revoked_at: None,
                limits,
            },
        })
    }

    /// Keys visible to the principal: their own, or everyone's for an admin asking for all.
    pub async fn list_keys(&self, principal: &Principal, all: bool) -> Result<Vec<ApiKeyInfo>> {
        let scope = if all && principal.is_admin() {
            None
        } else if all {
            return Err(Error::forbidden("only an admin can list every user's keys"));
        } else {
            Some(principal.user_id.as_str())
        };
        self.list_keys_of(scope).await
    }

    /// Keys of one user, or of everyone (the CLI on the server's machine).
    pub async fn list_keys_of(&self, user_id: Option<&str>) -> Result<Vec<ApiKeyInfo>> {
        keys::list(self.db(), user_id)
            .await?
            .into_iter()
            .map(ApiKeyInfo::try_from)
            .collect()
    }

    /// Revokes a key. A principal may revoke their own keys; an admin any. `None` is the CLI.
    pub async fn revoke_key(
        &self,
        principal: Option<&Principal>,
        key_id: &str,
        client: &ClientInfo,
    ) -> Result<()> {
        let not_found = || Error::not_found(format!("no API key with id {key_id:?}"));
        if !zentoria_core::id::is_valid_id(key_id) {
            return Err(not_found());
        }
        let (row, key_hash) = keys::by_id(self.db(), key_id)
            .await?
            .ok_or_else(not_found)?;
        if let Some(p) = principal
            && row.user_id != p.user_id
            && !p.is_admin()
        {
            return Err(not_found());
        }
        let newly = keys::revoke(self.db(), key_id, now_ms()).await?;
        // Drop it from memory at once, whatever the database said.
        if let Some(digest) = hex::decode(&key_hash)
            .ok()
            .and_then(|d| <[u8; 32]>::try_from(d).ok())
        {
            self.inner.key_cache.remove(&digest);
        }
        if newly {
            self.events()
                .publish(
                    zentoria_events::NewEvent::new(
                        "key.revoked",
                        Some(zentoria_core::Scope::KeysManage),
                        serde_json::json!({"id": key_id, "name": row.name}),
                    )
                    .owner(Some(row.user_id.clone())),
                )
                .await;
            self.audit()
                .record(
                    AuditEvent::new("key.revoked", Outcome::Success, client)
                        .actor(principal.map(Principal::actor))
                        .resource("api_key", key_id)
                        .details(serde_json::json!({"name": row.name})),
                )
                .await;
        }
        Ok(())
    }

    pub(crate) async fn authenticate_key(&self, key: &str) -> Result<Arc<Principal>> {
        let invalid = || Error::unauthenticated("the API key is not valid");
        if !key.starts_with(KEY_PREFIX) || key.len() != KEY_PREFIX.len() + KEY_RANDOM_CHARS {
            return Err(invalid());
        }
        let digest = sha256(key.as_bytes());
        let cached = match self.inner.key_cache.get(&digest) {
            Some(c) => c,
            None => {
                let hash = hex::encode(digest);
                let row = keys::by_hash(self.db(), &hash).await?.ok_or_else(invalid)?;
                if !ct_eq(row.key_hash.as_bytes(), hash.as_bytes())
                    || row.revoked_at.is_some()
                    || row.disabled
                {
                    return Err(invalid());
                }
                let role: Role = row.role.parse()?;
                let granted = Scopes::parse_list(&row.scopes)?;
                // A key never outranks its owner, even after the owner's role changes.
                let scopes =
                    Scopes::from_iter_of(granted.iter().filter(|s| role.scopes().allows(*s)));
                let c = Arc::new(CachedKey {
                    principal: Arc::new(Principal {
                        user_id: row.user_id,
                        username: row.username,
                        role,
                        scopes,
                        via: Via::ApiKey { key_id: row.id },
                        limits: limits_of(row.models.as_deref(), row.monthly_token_budget)?,
                    }),
                    expires_at: row.expires_at,
                    touched_at: AtomicI64::new(0),
                });
                self.inner.key_cache.insert(digest, c.clone());
                c
            }
        };
        let now = now_ms();
        if cached.expires_at.is_some_and(|at| at <= now) {
            return Err(Error::unauthenticated("the API key has expired"));
        }
        self.note_key_use(&cached, now);
        Ok(cached.principal.clone())
    }

    /// Records last use off the request path, at most once a minute per key.
    fn note_key_use(&self, key: &CachedKey, now: i64) {
        let last = key.touched_at.load(Ordering::Relaxed);
        if now - last < 60_000
            || key
                .touched_at
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let Via::ApiKey { key_id } = &key.principal.via else {
            return;
        };
        let db = self.db().clone();
        let id = key_id.clone();
        tokio::spawn(async move {
            if let Err(e) = keys::touch(&db, &id, now).await {
                tracing::warn!(error = %e, "could not record API key use");
            }
        });
    }
}

/// A key's limits as stored.
fn limits_of(models: Option<&str>, budget: Option<i64>) -> Result<crate::KeyLimits> {
    Ok(crate::KeyLimits {
        models: models
            .map(serde_json::from_str)
            .transpose()
            .map_err(Error::internal)?,
        monthly_token_budget: budget.map(|b| b.max(0) as u64),
    })
}

/// Tidies and checks the limits asked for a new key.
fn check_limits(mut l: crate::KeyLimits) -> Result<crate::KeyLimits> {
    if let Some(models) = &mut l.models {
        for m in models.iter_mut() {
            *m = m.trim().to_owned();
            if m.is_empty() || m.len() > 200 {
                return Err(Error::invalid(
                    "each entry of models is a model name or pattern of 1 to 200 characters",
                ));
            }
            if m.contains('*') && !(m.ends_with("/*") && m.matches('*').count() == 1) {
                return Err(Error::invalid(format!(
                    "{m:?}: a pattern is a provider followed by /*, like openai/*"
                )));
            }
        }
        if models.is_empty() || models.len() > 100 {
            return Err(Error::invalid(
                "models lists 1 to 100 models (leave it out for any)",
            ));
        }
    }
    if l.monthly_token_budget == Some(0) {
        return Err(Error::invalid(
            "monthly_token_budget must be above 0 (leave it out for no limit)",
        ));
    }
    Ok(l)
}
