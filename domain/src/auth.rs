//! Stateless signed tokens and API-token hashing.
//!
//! A token is `base64url(claims JSON) "." base64url(HMAC-SHA256(key, first part))`, where the key is
//! derived from the server's secret per audience, so a token minted for one purpose (an OAuth state, a
//! WebSocket ticket) can never pass as another (a session). Time comes in as an argument: this module
//! reads no clock.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// What a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Audience {
    /// A signed-in browser or CLI session.
    Session,
    /// The `state` of a GitHub OAuth round trip.
    OauthState,
    /// A short-lived ticket to open one workspace's event stream.
    WsTicket,
    /// A model gateway token: which account, workspace, run and model one caller may spend on.
    Gateway,
    /// The `state` of a GitHub App installation round trip (account and admin who started it).
    GithubInstall,
}

impl Audience {
    fn key_label(self) -> &'static str {
        match self {
            Audience::Session => "session",
            Audience::OauthState => "oauth-state",
            Audience::WsTicket => "ws-ticket",
            Audience::Gateway => "gateway",
            Audience::GithubInstall => "github-install",
        }
    }
}

/// The signed content of a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user (or, for an OAuth state, the nonce it is bound to).
    pub sub: String,
    pub aud: Audience,
    /// Issued at and expires at, in seconds since the Unix epoch.
    pub iat: i64,
    pub exp: i64,
    /// The user's session generation when the token was issued; bumping it signs out everywhere.
    #[serde(default, rename = "gen")]
    pub generation: i64,
    /// A unique id, so one session can be revoked on logout.
    pub jti: String,
    /// The workspace a ticket is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ws: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    Malformed,
    BadSignature,
    WrongAudience,
    Expired,
}

impl TokenError {
    pub fn message(self) -> &'static str {
        match self {
            TokenError::Malformed => "The token is malformed; sign in again to get a new one.",
            TokenError::BadSignature => "The token's signature is not valid; sign in again.",
            TokenError::WrongAudience => "This token is not meant for this use.",
            TokenError::Expired => "The token has expired; sign in again.",
        }
    }
}

fn audience_key(secret: &[u8], audience: Audience) -> HmacSha256 {
    let mut derive = HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length");
    derive.update(b"cat-factory token key v1:");
    derive.update(audience.key_label().as_bytes());
    let key = derive.finalize().into_bytes();
    HmacSha256::new_from_slice(&key).expect("HMAC accepts keys of any length")
}

/// Signs `claims` with the key for their audience.
pub fn sign(secret: &[u8], claims: &Claims) -> String {
    sign_payload(secret, claims.aud, claims)
}

/// Signs any serializable payload with the key for `audience`: the token format shared by sessions,
/// tickets and gateway tokens, each with its own claims type.
pub fn sign_payload<T: Serialize>(secret: &[u8], audience: Audience, payload: &T) -> String {
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(payload).expect("claims serialize"));
    let mut mac = audience_key(secret, audience);
    mac.update(payload.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{payload}.{signature}")
}

/// Verifies a token for `audience` at time `now` (seconds). The signature is checked in constant time
/// before anything in the payload is trusted.
pub fn verify(
    secret: &[u8],
    token: &str,
    audience: Audience,
    now: i64,
) -> Result<Claims, TokenError> {
    let claims: Claims = verify_payload(secret, token, audience)?;
    if claims.aud != audience {
        return Err(TokenError::WrongAudience);
    }
    if now >= claims.exp {
        return Err(TokenError::Expired);
    }
    Ok(claims)
}

/// Checks a token's signature with the key for `audience` (in constant time, before anything in
/// the payload is read) and decodes its payload. Expiry is the caller's to check: each claims type
/// names its own.
pub fn verify_payload<T: serde::de::DeserializeOwned>(
    secret: &[u8],
    token: &str,
    audience: Audience,
) -> Result<T, TokenError> {
    let (payload, signature) = token.split_once('.').ok_or(TokenError::Malformed)?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| TokenError::Malformed)?;
    let mut mac = audience_key(secret, audience);
    mac.update(payload.as_bytes());
    mac.verify_slice(&signature)
        .map_err(|_| TokenError::BadSignature)?;
    let json = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| TokenError::Malformed)?;
    serde_json::from_slice(&json).map_err(|_| TokenError::Malformed)
}

/// Personal API tokens start with this, so they are easy to recognise (and to scan for in leaks).
pub const API_TOKEN_PREFIX: &str = "cf_pat_";

/// The stored form of an API token: its SHA-256, hex. The token itself is shown once and never stored.
pub fn hash_api_token(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"test secret with enough entropy for tests";

    fn claims(aud: Audience, exp: i64) -> Claims {
        Claims {
            sub: "usr_0000000000000001".into(),
            aud,
            iat: 100,
            exp,
            generation: 3,
            jti: "j1".into(),
            ws: None,
        }
    }

    #[test]
    fn a_signed_token_verifies_until_it_expires() {
        let token = sign(SECRET, &claims(Audience::Session, 200));
        assert_eq!(
            verify(SECRET, &token, Audience::Session, 150).unwrap(),
            claims(Audience::Session, 200)
        );
        assert_eq!(
            verify(SECRET, &token, Audience::Session, 200),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn a_token_for_one_audience_does_not_pass_for_another() {
        let ticket = sign(SECRET, &claims(Audience::WsTicket, 200));
        // The key differs per audience, so the signature check fails before the claim is even read.
        assert_eq!(
            verify(SECRET, &ticket, Audience::Session, 150),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn tampering_or_another_secret_breaks_the_signature() {
        let token = sign(SECRET, &claims(Audience::Session, 200));
        let forged_payload = URL_SAFE_NO_PAD.encode(
            serde_json::to_vec(&Claims {
                generation: 99,
                ..claims(Audience::Session, 9_999)
            })
            .unwrap(),
        );
        let signature = token.split_once('.').unwrap().1;
        let forged = format!("{forged_payload}.{signature}");
        assert_eq!(
            verify(SECRET, &forged, Audience::Session, 150),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            verify(b"another secret", &token, Audience::Session, 150),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn garbage_is_malformed() {
        for token in ["", "abc", "a.b", "!!!.???"] {
            assert!(
                verify(SECRET, token, Audience::Session, 0).is_err(),
                "{token}"
            );
        }
    }

    #[test]
    fn api_token_hashes_are_stable_hex() {
        let hash = hash_api_token("cf_pat_example");
        assert_eq!(hash.len(), 64);
        assert_eq!(hash, hash_api_token("cf_pat_example"));
        assert_ne!(hash, hash_api_token("cf_pat_other"));
    }
}
