//! The provider instances by name: those of the configuration file, and those managed through
//! the API (`/api/v1/providers`), which win over a configured one of the same name. API keys of
//! managed providers are sealed with the master key in the database, bound to the provider's
//! name, and never shown again.
//!
//! Every process keeps its instances in memory (a read lock per request); a change made here
//! applies at once, one made by another process on the same database within `watch`'s period.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use zentoria_core::crypto::MasterKey;
use zentoria_core::time::now_ms;
use zentoria_core::{Error, Result, Scope};
use zentoria_platform::{AuditEvent, AuditLog, ClientInfo, Outcome, Principal};
use zentoria_providers::{BreakerState, ClientConfig, Provider, ProviderKind, ProviderOptions};
use zentoria_store::Db;
use zentoria_store::repo::providers::{self as repo, ProviderRow};

use crate::{Ai, ProviderSettings};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The configuration file or environment.
    Config,
    /// `/api/v1/providers`.
    Api,
}

struct Entry {
    settings: ProviderSettings,
    source: Source,
    provider: Arc<Provider>,
    created_at: Option<i64>,
    updated_at: Option<i64>,
}

struct Store {
    db: Db,
    key: MasterKey,
    audit: AuditLog,
}

pub(crate) struct Registry {
    options: ProviderOptions,
    configured: Vec<ProviderSettings>,
    live: RwLock<BTreeMap<String, Entry>>,
    store: OnceLock<Store>,
}

fn build(settings: &ProviderSettings, options: &ProviderOptions) -> Result<Provider> {
    let mut config = ClientConfig::new()
        .with_name(settings.name.clone())
        .with_options(options.clone());
    if let Some(url) = settings.base_url.clone().filter(|u| !u.trim().is_empty()) {
        config = config.with_base_url(url);
    }
    if let Some(key) = settings.api_key.clone().filter(|k| !k.is_empty()) {
        config = config.with_api_key(key);
    }
    Provider::new(settings.kind, config)
        .map_err(|e| Error::invalid(format!("provider {}: {e}", settings.name)))
}

fn aad(name: &str) -> Vec<u8> {
    format!("ai_provider:{name}").into_bytes()
}

impl Registry {
    pub(crate) fn new(
        configured: Vec<ProviderSettings>,
        options: ProviderOptions,
    ) -> Result<Registry> {
        let mut seen = std::collections::BTreeSet::new();
        for p in &configured {
            if !seen.insert(p.name.clone()) {
                return Err(Error::invalid(format!(
                    "provider {:?} is configured twice",
                    p.name
                )));
            }
        }
        let registry = Registry {
            options,
            configured,
            live: RwLock::new(BTreeMap::new()),
            store: OnceLock::new(),
        };
        registry.rebuild(Vec::new())?;
        Ok(registry)
    }

    pub(crate) fn get(&self, name: &str) -> Option<Arc<Provider>> {
        self.live
            .read()
            .expect("providers lock")
            .get(name)
            .map(|e| e.provider.clone())
    }

    pub(crate) fn names(&self) -> Vec<String> {
        self.live
            .read()
            .expect("providers lock")
            .keys()
            .cloned()
            .collect()
    }

    pub(crate) fn all(&self) -> Vec<(String, Arc<Provider>)> {
        self.live
            .read()
            .expect("providers lock")
            .iter()
            .map(|(n, e)| (n.clone(), e.provider.clone()))
            .collect()
    }

    /// Recomputes the instances from the configured ones and `managed` (decrypted rows),
    /// keeping the instances — and their circuit breakers — whose settings did not change.
    fn rebuild(&self, managed: Vec<(ProviderSettings, i64, i64)>) -> Result<()> {
        let mut wanted: BTreeMap<String, (ProviderSettings, Source, Option<i64>, Option<i64>)> =
            self.configured
                .iter()
                .map(|s| (s.name.clone(), (s.clone(), Source::Config, None, None)))
                .collect();
        for (s, created, updated) in managed {
            wanted.insert(
                s.name.clone(),
                (s, Source::Api, Some(created), Some(updated)),
            );
        }
        let mut live = self.live.write().expect("providers lock");
        let mut next = BTreeMap::new();
        for (name, (settings, source, created_at, updated_at)) in wanted {
            let provider = match live.remove(&name) {
                Some(old) if old.settings == settings => old.provider,
                _ => match build(&settings, &self.options) {
                    Ok(p) => Arc::new(p),
                    Err(e) if source == Source::Api => {
                        // A stored provider that no longer builds must not take the rest down.
                        tracing::warn!(provider = %name, error = %e, "skipping a stored provider");
                        continue;
                    }
                    Err(e) => return Err(e),
                },
            };
            next.insert(
                name,
                Entry {
                    settings,
                    source,
                    provider,
                    created_at,
                    updated_at,
                },
            );
        }
        *live = next;
        Ok(())
    }

    fn store(&self) -> Result<&Store> {
        self.store.get().ok_or_else(|| {
            Error::Unavailable("providers cannot be managed: no database is attached".into())
        })
    }

    async fn reload(&self) -> Result<()> {
        let store = self.store()?;
        let mut managed = Vec::new();
        for row in repo::all(&store.db).await? {
            let kind = match row.kind.parse::<ProviderKind>() {
                Ok(k) => k,
                Err(e) => {
                    tracing::warn!(provider = %row.name, error = %e, "skipping a stored provider");
                    continue;
                }
            };
            let api_key = match &row.api_key {
                Some(sealed) => match store.key.open(sealed, &aad(&row.name)) {
                    Ok(k) => Some(String::from_utf8(k).map_err(Error::internal)?),
                    Err(_) => {
                        tracing::warn!(provider = %row.name, "a stored provider's key does not decrypt under this master key; skipping it");
                        continue;
                    }
                },
                None => None,
            };
            managed.push((
                ProviderSettings {
                    name: row.name.clone(),
                    kind,
                    base_url: Some(row.base_url.clone()).filter(|u| !u.is_empty()),
                    api_key,
                },
                row.created_at,
                row.updated_at,
            ));
        }
        self.rebuild(managed)
    }
}

/// A provider as the API shows it: never its key.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ProviderView {
    pub name: String,
    /// `ollama`, `openai` or `anthropic`.
    pub kind: String,
    /// None: the kind's default address.
    pub base_url: Option<String>,
    pub has_api_key: bool,
    pub source: Source,
    /// `closed` (calls go through), `open` (failing fast) or `half_open`.
    pub breaker: String,
    #[serde(with = "zentoria_core::time::rfc3339_ms::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub created_at: Option<i64>,
    #[serde(with = "zentoria_core::time::rfc3339_ms::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub updated_at: Option<i64>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProvider {
    /// How its models are addressed: `name/model`. Letters, digits, `-` and `_`.
    pub name: String,
    /// `ollama`, `openai` (any OpenAI-compatible server) or `anthropic`.
    pub kind: String,
    pub base_url: Option<String>,
    /// Stored encrypted; never shown again.
    pub api_key: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProviderPatch {
    pub kind: Option<String>,
    /// `""`: the kind's default address.
    pub base_url: Option<String>,
    /// `""` removes the key.
    pub api_key: Option<String>,
}

fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 40
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "a provider name is 1 to 40 letters, digits, - or _, starting with a letter or digit",
        ))
    }
}

fn view(name: &str, e: &Entry) -> ProviderView {
    ProviderView {
        name: name.to_owned(),
        kind: e.settings.kind.as_str().to_owned(),
        base_url: e.settings.base_url.clone(),
        has_api_key: e.settings.api_key.as_deref().is_some_and(|k| !k.is_empty()),
        source: e.source,
        breaker: match e.provider.breaker_state() {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
        .to_owned(),
        created_at: e.created_at,
        updated_at: e.updated_at,
    }
}

impl Ai {
    /// Lets providers be managed through the API, stored in `db` with keys sealed by `key`,
    /// and loads the stored ones.
    pub async fn attach_store(&self, db: Db, key: MasterKey, audit: AuditLog) -> Result<()> {
        if self.registry.store.set(Store { db, key, audit }).is_err() {
            return Err(Error::bug("a provider store is attached already"));
        }
        self.registry.reload().await
    }

    /// Picks up providers changed by other processes on the same database, every `every`.
    pub fn watch_providers(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let registry = Arc::downgrade(&self.registry);
        tokio::spawn(async move {
            let mut last = None;
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(r) = registry.upgrade() else { return };
                let Ok(store) = r.store() else { return };
                match repo::mark(&store.db).await {
                    Ok(mark) => {
                        if last.is_some_and(|l| l != mark)
                            && let Err(e) = r.reload().await
                        {
                            tracing::warn!(error = ?e, "cannot reload providers");
                        }
                        last = Some(mark);
                    }
                    Err(e) => tracing::warn!(error = ?e, "cannot check for provider changes"),
                }
            }
        })
    }

    pub fn providers(&self, p: &Principal) -> Result<Vec<ProviderView>> {
        p.require(Scope::Admin)?;
        let live = self.registry.live.read().expect("providers lock");
        Ok(live.iter().map(|(n, e)| view(n, e)).collect())
    }

    pub async fn create_provider(
        &self,
        p: &Principal,
        client: &ClientInfo,
        req: NewProvider,
    ) -> Result<ProviderView> {
        p.require(Scope::Admin)?;
        let store = self.registry.store()?;
        let name = req.name.trim().to_owned();
        check_name(&name)?;
        if repo::get(&store.db, &name).await?.is_some() {
            return Err(Error::Conflict(format!(
                "a provider named {name:?} is managed here already; change it with PATCH"
            )));
        }
        let now = now_ms();
        let row = self.checked_row(store, &name, &req.kind, req.base_url, req.api_key, now, now)?;
        repo::insert(&store.db, &row).await?;
        self.changed(p, client, "provider.created", &name, &row)
            .await?;
        self.provider_view(&name)
    }

    pub async fn update_provider(
        &self,
        p: &Principal,
        client: &ClientInfo,
        name: &str,
        patch: ProviderPatch,
    ) -> Result<ProviderView> {
        p.require(Scope::Admin)?;
        let store = self.registry.store()?;
        let old = repo::get(&store.db, name)
            .await?
            .ok_or_else(|| self.not_managed(name))?;
        let api_key = match patch.api_key {
            Some(k) => Some(k),
            None => match &old.api_key {
                Some(sealed) => Some(
                    String::from_utf8(store.key.open(sealed, &aad(name))?)
                        .map_err(Error::internal)?,
                ),
                None => None,
            },
        };
        let row = self.checked_row(
            store,
            name,
            patch.kind.as_deref().unwrap_or(&old.kind),
            Some(patch.base_url.unwrap_or(old.base_url)),
            api_key,
            old.created_at,
            now_ms().max(old.updated_at + 1),
        )?;
        repo::update(&store.db, &row).await?;
        self.changed(p, client, "provider.updated", name, &row)
            .await?;
        self.provider_view(name)
    }

    pub async fn delete_provider(
        &self,
        p: &Principal,
        client: &ClientInfo,
        name: &str,
    ) -> Result<()> {
        p.require(Scope::Admin)?;
        let store = self.registry.store()?;
        if !repo::delete(&store.db, name).await? {
            return Err(self.not_managed(name));
        }
        self.registry.reload().await?;
        store
            .audit
            .record(
                AuditEvent::new("provider.deleted", Outcome::Success, client)
                    .actor(Some(p.actor()))
                    .resource("provider", name),
            )
            .await;
        Ok(())
    }

    fn not_managed(&self, name: &str) -> Error {
        if self.registry.configured.iter().any(|c| c.name == name) {
            Error::Conflict(format!(
                "the provider {name:?} comes from the configuration file; change it there, or \
                 create one of the same name here to override it"
            ))
        } else {
            Error::not_found(format!("no provider {name:?} is managed here"))
        }
    }

    fn provider_view(&self, name: &str) -> Result<ProviderView> {
        let live = self.registry.live.read().expect("providers lock");
        live.get(name)
            .map(|e| view(name, e))
            .ok_or_else(|| Error::bug("a stored provider did not load"))
    }

    /// Validates by building the client, and seals the key.
    #[allow(clippy::too_many_arguments)]
    fn checked_row(
        &self,
        store: &Store,
        name: &str,
        kind: &str,
        base_url: Option<String>,
        api_key: Option<String>,
        created_at: i64,
        updated_at: i64,
    ) -> Result<ProviderRow> {
        let kind: ProviderKind = kind.parse().map_err(|e: String| Error::invalid(e))?;
        let base_url = base_url.map(|u| u.trim().to_owned()).unwrap_or_default();
        let api_key = api_key.filter(|k| !k.is_empty());
        if api_key.as_ref().is_some_and(|k| k.len() > 4096) {
            return Err(Error::invalid("api_key is at most 4096 bytes"));
        }
        build(
            &ProviderSettings {
                name: name.to_owned(),
                kind,
                base_url: Some(base_url.clone()).filter(|u| !u.is_empty()),
                api_key: api_key.clone(),
            },
            &self.registry.options,
        )?;
        Ok(ProviderRow {
            name: name.to_owned(),
            kind: kind.as_str().to_owned(),
            base_url,
            api_key: api_key.map(|k| store.key.seal(k.as_bytes(), &aad(name))),
            created_at,
            updated_at,
        })
    }

    async fn changed(
        &self,
        p: &Principal,
        client: &ClientInfo,
        action: &str,
        name: &str,
        row: &ProviderRow,
    ) -> Result<()> {
        self.registry.reload().await?;
        let store = self.registry.store()?;
        store
            .audit
            .record(
                AuditEvent::new(action, Outcome::Success, client)
                    .actor(Some(p.actor()))
                    .resource("provider", name)
                    .details(serde_json::json!({
                        "kind": row.kind, "base_url": row.base_url, "has_api_key": row.api_key.is_some()
                    })),
            )
            .await;
        Ok(())
    }
}
