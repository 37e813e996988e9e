use serde::Serialize;
use zentoria_core::{Error, Result, Role, id::new_id, time::now_ms};
use zentoria_store::repo::users::{self, UserRow};

use crate::{Actor, AuditEvent, ClientInfo, Outcome, Platform, password};

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct User {
    pub id: String,
    pub username: String,
    pub role: Role,
    pub disabled: bool,
    #[serde(with = "zentoria_core::time::rfc3339_ms")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
}

impl TryFrom<UserRow> for User {
    type Error = Error;
    fn try_from(r: UserRow) -> Result<Self> {
        Ok(User {
            role: r.role.parse()?,
            id: r.id,
            username: r.username,
            disabled: r.disabled,
            created_at: r.created_at,
        })
    }
}

pub fn validate_username(name: &str) -> Result<()> {
    let ok_len = (1..=64).contains(&name.len());
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '@'));
    if ok_len && ok_chars {
        Ok(())
    } else {
        Err(Error::invalid(
            "a username has 1 to 64 characters: letters, digits, '_', '-', '.' or '@'",
        ))
    }
}

impl Platform {
    /// Creates a user. `actor` is who asked (none for the CLI on the server's machine).
    pub async fn create_user(
        &self,
        username: &str,
        password: String,
        role: Role,
        actor: Option<Actor>,
        client: &ClientInfo,
    ) -> Result<User> {
        validate_username(username)?;
        password::validate(&password)?;
        let hash = password::hash(password).await?;
        let now = now_ms();
        let row = UserRow {
            id: new_id(),
            username: username.to_owned(),
            password_hash: hash,
            role: role.as_str().into(),
            disabled: false,
            created_at: now,
            updated_at: now,
        };
        users::insert(self.db(), &row).await.map_err(|e| match e {
            Error::Conflict(_) => Error::Conflict(format!("the username {username:?} is taken")),
            e => e,
        })?;
        let user = User::try_from(row)?;
        self.audit()
            .record(
                AuditEvent::new("user.created", Outcome::Success, client)
                    .actor(actor)
                    .resource("user", &user.id)
                    .details(serde_json::json!({"username": user.username, "role": role.as_str()})),
            )
            .await;
        Ok(user)
    }

    /// Self-service sign-up, only when the configuration allows it; new accounts are `user`s.
    pub async fn register(
        &self,
        username: &str,
        password: String,
        client: &ClientInfo,
    ) -> Result<User> {
        if !self.settings().allow_registration {
            return Err(Error::forbidden(
                "registration is disabled; an administrator can enable auth.allow_registration",
            ));
        }
        self.create_user(username, password, Role::User, None, client)
            .await
    }

    pub async fn user_by_name(&self, username: &str) -> Result<User> {
        users::by_username(self.db(), username)
            .await?
            .ok_or_else(|| Error::not_found(format!("no user named {username:?}")))
            .and_then(User::try_from)
    }

    pub async fn user_by_id(&self, id: &str) -> Result<User> {
        users::by_id(self.db(), id)
            .await?
            .ok_or_else(|| Error::not_found("no such user"))
            .and_then(User::try_from)
    }
}
