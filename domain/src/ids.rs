//! Identifiers: a prefix that says what the id names, then 16 lowercase hex characters.
//!
//! The domain never makes randomness: the shells generate the random part and call `from_random`.
//! Parsing checks the shape so a malformed id in a path or body is a clear 4xx, not a missed lookup.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

const RANDOM_HEX_LEN: usize = 16;

macro_rules! define_id {
    ($name:ident, $prefix:literal, $what:literal) => {
        #[doc = concat!("The id of ", $what, ", such as `", $prefix, "_0123456789abcdef`.")]
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            /// Builds an id from 8 random bytes.
            pub fn from_random(bytes: [u8; 8]) -> Self {
                let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
                $name(format!("{}_{hex}", $prefix))
            }

            /// Parses an id, checking its prefix and shape.
            pub fn parse(text: &str) -> Result<Self, IdError> {
                Self::check(text)?;
                Ok($name(text.to_owned()))
            }

            /// [`Self::parse`] of a string the caller owns, kept as the id without a copy (a board
            /// snapshot decodes tens of thousands of ids).
            pub fn parse_owned(text: String) -> Result<Self, IdError> {
                Self::check(&text)?;
                Ok($name(text))
            }

            fn check(text: &str) -> Result<(), IdError> {
                let rest = text
                    .strip_prefix($prefix)
                    .and_then(|rest| rest.strip_prefix('_'))
                    .ok_or(IdError { kind: $what, expected_prefix: $prefix })?;
                let well_formed = rest.len() == RANDOM_HEX_LEN
                    && rest.bytes().all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte));
                if well_formed {
                    Ok(())
                } else {
                    Err(IdError { kind: $what, expected_prefix: $prefix })
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                $name::parse_owned(text).map_err(serde::de::Error::custom)
            }
        }

        impl JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }

            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({
                    "type": "string",
                    "pattern": concat!("^", $prefix, "_[0-9a-f]{16}$"),
                    "description": concat!("The id of ", $what)
                })
            }
        }
    };
}

define_id!(UserId, "usr", "a user");
define_id!(AccountId, "acc", "an account");
define_id!(WorkspaceId, "ws", "a workspace");
define_id!(BlockId, "blk", "a block");
define_id!(EdgeId, "edg", "a dependency edge");
define_id!(ApiTokenId, "tok", "a personal API token");
define_id!(RunId, "run", "a pipeline run");

/// An id that does not have the expected shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdError {
    pub kind: &'static str,
    pub expected_prefix: &'static str,
}

impl fmt::Display for IdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "not the id of {}: expected `{}_` followed by 16 lowercase hex characters",
            self.kind, self.expected_prefix
        )
    }
}

impl std::error::Error for IdError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_round_trip_through_parse() {
        let id = BlockId::from_random([0, 1, 2, 3, 0xaa, 0xbb, 0xcc, 0xff]);
        assert_eq!(id.as_str(), "blk_00010203aabbccff");
        assert_eq!(BlockId::parse(id.as_str()).unwrap(), id);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(serde_json::from_str::<BlockId>(&json).unwrap(), id);
    }

    #[test]
    fn malformed_ids_are_refused_with_the_expected_shape() {
        for text in [
            "",
            "blk_",
            "blk_123",
            "usr_00010203aabbccff",
            "blk_00010203AABBCCFF",
            "blk_00010203aabbccff0",
        ] {
            let error = BlockId::parse(text).unwrap_err();
            assert!(error.to_string().contains("blk_"), "{text}");
        }
    }
}
