use serde::{Deserialize, Serialize};
use zentoria_core::{Error, Result, Role, Scope, Scopes};

/// Who is calling, and with what authority: the result of authentication.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Principal {
    pub user_id: String,
    pub username: String,
    pub role: Role,
    /// The scopes in force for this request: the role's for a session, the key's (bounded by
    /// the owner's role) for an API key.
    pub scopes: Scopes,
    pub via: Via,
    /// What the API key limits beyond its scopes; nothing for sessions and the CLI.
    pub limits: KeyLimits,
}

/// What an API key limits beyond its scopes: which models it may use and how many tokens it
/// may spend.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct KeyLimits {
    /// Models the key may use: `provider/model` names, aliases, or `provider/*`; none: any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub models: Option<Vec<String>>,
    /// Tokens (prompt and completion) the key may spend per calendar month (UTC); none: no
    /// limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monthly_token_budget: Option<u64>,
}

impl KeyLimits {
    /// Whether `model` (as asked for) or `resolved` (`provider/model` after aliases) is
    /// allowed.
    pub fn allows_model(&self, model: &str, resolved: &str) -> bool {
        let Some(allowed) = &self.models else {
            return true;
        };
        allowed.iter().any(|a| {
            a == model
                || a == resolved
                || a.strip_suffix('*')
                    .is_some_and(|prefix| resolved.starts_with(prefix))
        })
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Via {
    Session {
        session_id: String,
    },
    ApiKey {
        key_id: String,
    },
    /// The command line on the server's own machine, acting as a named user.
    Cli,
}

impl Principal {
    /// A user acting through the command line on the server's machine, with their role's
    /// scopes (whoever can run the binary on the data dir already holds the database).
    pub fn cli_user(user: &crate::User) -> Self {
        Principal {
            user_id: user.id.clone(),
            username: user.username.clone(),
            role: user.role,
            scopes: user.role.scopes(),
            via: Via::Cli,
            limits: KeyLimits::default(),
        }
    }

    /// Fails with `Forbidden` unless the principal holds `scope` (or `admin`).
    pub fn require(&self, scope: Scope) -> Result<()> {
        if self.scopes.allows(scope) {
            Ok(())
        } else {
            Err(Error::forbidden(format!(
                "this credential lacks the scope {scope:?} needed here",
                scope = scope.as_str()
            )))
        }
    }

    pub fn is_admin(&self) -> bool {
        self.scopes.allows(Scope::Admin)
    }

    pub fn actor(&self) -> crate::Actor {
        crate::Actor {
            id: Some(self.user_id.clone()),
            label: match &self.via {
                Via::Session { .. } => self.username.clone(),
                Via::Cli => format!("{} (command line)", self.username),
                Via::ApiKey { key_id } => format!("{} (key {key_id})", self.username),
            },
        }
    }
}

/// Where a request came from, for rate limits and the audit log.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
}

impl ClientInfo {
    /// For actions taken from the command line on the server's own machine.
    pub fn cli() -> Self {
        ClientInfo {
            ip: None,
            user_agent: Some(format!("zentoria-cli/{}", env!("CARGO_PKG_VERSION"))),
            request_id: None,
        }
    }
}
