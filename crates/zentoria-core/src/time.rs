//! Time as the database stores it: milliseconds since the Unix epoch, UTC.

use ::time::OffsetDateTime;
use ::time::format_description::well_known::Rfc3339;

/// Now, in milliseconds since the Unix epoch. Read straight off the system clock: a calendar
/// date made and taken apart again cost a few hundred instructions, three times a request.
pub fn now_ms() -> i64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(since) => since.as_millis() as i64,
        // A clock set before 1970: the same arithmetic, below zero, rounded toward it.
        Err(before) => -(before.duration().as_millis() as i64),
    }
}

/// RFC 3339 text for an epoch-millisecond time, as the API shows times.
pub fn rfc3339(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// Parses RFC 3339 text into epoch milliseconds.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    OffsetDateTime::parse(s, &Rfc3339)
        .ok()
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
}

/// Parses a human duration such as `15m`, `7d` or `1h 30m`.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| format!("invalid duration {s:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn now_is_the_calendar_clocks_now_in_milliseconds() {
        let calendar = |t: OffsetDateTime| (t.unix_timestamp_nanos() / 1_000_000) as i64;
        let before = calendar(OffsetDateTime::now_utc());
        let now = now_ms();
        let after = calendar(OffsetDateTime::now_utc());
        assert!(
            before <= now && now <= after,
            "{before} <= {now} <= {after}"
        );
    }

    #[test]
    fn rfc3339_round_trips() {
        let now = now_ms();
        assert_eq!(parse_rfc3339(&rfc3339(now)), Some(now));
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("15m").unwrap().as_secs(), 900);
        assert_eq!(parse_duration("7d").unwrap().as_secs(), 7 * 86400);
        assert!(parse_duration("soon").is_err());
    }
}

/// Serde adapter: epoch milliseconds in memory, RFC 3339 text on the wire.
pub mod rfc3339_ms {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::rfc3339(*ms))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        let text = String::deserialize(d)?;
        super::parse_rfc3339(&text)
            .ok_or_else(|| serde::de::Error::custom("expected RFC 3339 time"))
    }

    /// The same for optional times.
    pub mod option {
        use serde::{Deserialize, Deserializer, Serializer};

        pub fn serialize<S: Serializer>(ms: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
            match ms {
                Some(ms) => s.serialize_some(&super::super::rfc3339(*ms)),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
            match Option::<String>::deserialize(d)? {
                Some(text) => super::super::parse_rfc3339(&text)
                    .map(Some)
                    .ok_or_else(|| serde::de::Error::custom("expected RFC 3339 time")),
                None => Ok(None),
            }
        }
    }
}
