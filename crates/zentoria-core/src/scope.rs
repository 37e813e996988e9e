//! Scopes and roles: the fixed vocabulary of what a caller may do.
//!
//! A scope names a capability; `admin` implies every other scope. A role is a user's standing
//! and maps to the scopes its sessions carry. API keys carry an explicit subset of their
//! creator's scopes, never more.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! scopes {
    ($( $variant:ident => $name:literal : $doc:literal ),+ $(,)?) => {
        /// One capability a caller may hold.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum Scope {
            $( #[doc = $doc] $variant ),+
        }

        impl Scope {
            /// Every scope, in documentation order.
            pub const ALL: &'static [Scope] = &[$(Scope::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $(Scope::$variant => $name),+ }
            }

            pub fn description(self) -> &'static str {
                match self { $(Scope::$variant => $doc),+ }
            }
        }

        impl FromStr for Scope {
            type Err = crate::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s.trim() {
                    $($name => Ok(Scope::$variant),)+
                    other => Err(crate::Error::invalid(format!(
                        "unknown scope {other:?}; known scopes: {}",
                        Scope::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                    ))),
                }
            }
        }
    };
}

scopes! {
    Admin => "admin": "Everything, including other users' keys and the audit log; implies every other scope.",
    KeysManage => "keys:manage": "Create, list and revoke one's own API keys.",
    FilesRead => "files:read": "List, search and download files.",
    FilesWrite => "files:write": "Upload, change and delete files.",
    Chat => "chat": "Chat with models, directly or through the OpenAI-compatible API.",
    AiCommand => "ai:command": "Run natural-language AI commands that use tools.",
    Agents => "agents": "Manage and run agents, tasks and crews.",
    Workflows => "workflows": "Manage and run workflows.",
    Deploy => "deploy": "Manage projects, services and deployments.",
    AuditRead => "audit:read": "Read the audit log.",
    Mcp => "mcp": "Use the MCP server and gateway.",
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of scopes, as a bit set.
#[derive(Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Scopes(u32);

impl Scopes {
    pub const fn empty() -> Self {
        Scopes(0)
    }

    pub fn only(scope: Scope) -> Self {
        Scopes(1 << scope as u8)
    }

    pub fn from_iter_of(scopes: impl IntoIterator<Item = Scope>) -> Self {
        let mut set = Scopes::empty();
        for s in scopes {
            set.insert(s);
        }
        set
    }

    pub fn insert(&mut self, scope: Scope) {
        self.0 |= 1 << scope as u8;
    }

    /// The scopes written in the set, without expanding `admin`.
    pub fn contains_literal(self, scope: Scope) -> bool {
        self.0 & (1 << scope as u8) != 0
    }

    /// Whether a holder of this set may do what `scope` guards; `admin` implies all.
    pub fn allows(self, scope: Scope) -> bool {
        self.contains_literal(Scope::Admin) || self.contains_literal(scope)
    }

    /// Whether every scope of `other` is allowed by this set.
    pub fn covers(self, other: Scopes) -> bool {
        other.iter().all(|s| self.allows(s))
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL
            .iter()
            .copied()
            .filter(move |s| self.contains_literal(*s))
    }

    /// Parses a comma- or space-separated list, rejecting unknown names.
    pub fn parse_list(s: &str) -> crate::Result<Self> {
        let mut set = Scopes::empty();
        for part in s.split([',', ' ']).filter(|p| !p.trim().is_empty()) {
            set.insert(part.parse()?);
        }
        Ok(set)
    }

    /// The canonical text form, as stored: names joined by commas.
    pub fn to_list(self) -> String {
        self.iter().map(Scope::as_str).collect::<Vec<_>>().join(",")
    }
}

impl fmt::Debug for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.iter().map(Scope::as_str))
            .finish()
    }
}

impl Serialize for Scopes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter().map(Scope::as_str))
    }
}

impl<'de> Deserialize<'de> for Scopes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let names = Vec::<String>::deserialize(d)?;
        let mut set = Scopes::empty();
        for n in names {
            set.insert(n.parse().map_err(serde::de::Error::custom)?);
        }
        Ok(set)
    }
}

/// A user's standing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    User,
    Viewer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::User => "user",
            Role::Viewer => "viewer",
        }
    }

    /// The scopes a signed-in user of this role holds.
    pub fn scopes(self) -> Scopes {
        use Scope::*;
        match self {
            Role::Admin => Scopes::only(Admin),
            Role::User => Scopes::from_iter_of([
                KeysManage, FilesRead, FilesWrite, Chat, AiCommand, Agents, Workflows, Deploy, Mcp,
            ]),
            Role::Viewer => Scopes::from_iter_of([FilesRead]),
        }
    }
}

impl FromStr for Role {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "admin" => Ok(Role::Admin),
            "user" => Ok(Role::User),
            "viewer" => Ok(Role::Viewer),
            other => Err(crate::Error::invalid(format!(
                "unknown role {other:?}; roles are admin, user, viewer"
            ))),
        }
    }
}

impl utoipa::PartialSchema for Scopes {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
        ArrayBuilder::new()
            .items(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(Scope::ALL.iter().map(|s| s.as_str()))),
            )
            .description(Some("Scopes; `admin` implies every other."))
            .into()
    }
}

impl utoipa::ToSchema for Scopes {}

impl utoipa::PartialSchema for Role {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(["admin", "user", "viewer"]))
            .into()
    }
}

impl utoipa::ToSchema for Role {}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn admin_implies_everything() {
        let admin = Scopes::only(Scope::Admin);
        assert!(Scope::ALL.iter().all(|s| admin.allows(*s)));
        let user = Role::User.scopes();
        assert!(!user.allows(Scope::Admin));
        assert!(!user.allows(Scope::AuditRead));
        assert!(admin.covers(user));
        assert!(!user.covers(admin));
    }

    #[test]
    fn unknown_scope_is_rejected_with_the_list() {
        let err = Scopes::parse_list("chat,root").unwrap_err();
        assert!(err.to_string().contains("keys:manage"));
    }

    proptest! {
        #[test]
        fn list_round_trips(bits in 0u32..(1 << Scope::ALL.len())) {
            let set = Scopes(bits);
            prop_assert_eq!(Scopes::parse_list(&set.to_list()).unwrap(), set);
        }

        #[test]
        fn parse_never_panics(s in ".{0,64}") {
            let _ = Scopes::parse_list(&s);
        }
    }
}
