//! Provider keys an account admin configures: sealed with AES-256-GCM through WebCrypto under a key
//! derived from the deployment secret (`GATEWAY_KEY_SECRET`, else the session secret), stored only
//! sealed, shown again only as their last four characters, opened only to call the provider.

use domain::api::{ApiError, ErrorCode};
use domain::gateway::call::{decode_sealed, encode_sealed, sealing_key};
use domain::spend::Provider;
use js_sys::{Reflect, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{AesGcmParams, Crypto, CryptoKey, SubtleCrypto};
use worker::Env;
use worker_core::spend::StoredProvider;

use crate::auth::{AuthConfig, env_value};
use crate::http::internal;

fn subtle() -> Result<SubtleCrypto, ApiError> {
    let crypto = Reflect::get(&js_sys::global(), &JsValue::from_str("crypto"))
        .map_err(internal("crypto global"))?;
    Ok(crypto.unchecked_into::<Crypto>().subtle())
}

async fn deployment_secret(env: &Env) -> Result<Vec<u8>, ApiError> {
    if let Some(secret) = env_value(env, "GATEWAY_KEY_SECRET") {
        return Ok(secret.into_bytes());
    }
    let db = crate::store::Db::from_env(env)?;
    Ok(AuthConfig::load(env, &db).await?.signing_key()?.to_vec())
}

async fn cipher_key(env: &Env) -> Result<CryptoKey, ApiError> {
    let raw = sealing_key(&deployment_secret(env).await?);
    let usages = js_sys::Array::of2(&JsValue::from_str("encrypt"), &JsValue::from_str("decrypt"));
    let promise = subtle()?
        .import_key_with_str(
            "raw",
            &Uint8Array::from(raw.as_slice()),
            "AES-GCM",
            false,
            &usages,
        )
        .map_err(internal("importing the sealing key"))?;
    let key = JsFuture::from(promise)
        .await
        .map_err(internal("importing the sealing key"))?;
    Ok(key.unchecked_into())
}

/// Seals a provider key for storage.
pub async fn seal(env: &Env, plaintext: &str) -> Result<String, ApiError> {
    let nonce = crate::ids::random_bytes::<12>()?;
    let key = cipher_key(env).await?;
    let params = AesGcmParams::new("AES-GCM", &Uint8Array::from(nonce.as_slice()));
    let data = plaintext.as_bytes().to_vec();
    let promise = subtle()?
        .encrypt_with_object_and_u8_array(&params, &key, &data)
        .map_err(internal("sealing a key"))?;
    let sealed = JsFuture::from(promise)
        .await
        .map_err(internal("sealing a key"))?;
    let ciphertext = Uint8Array::new(&sealed).to_vec();
    Ok(encode_sealed(&nonce, &ciphertext))
}

/// Opens a sealed provider key.
async fn open(env: &Env, sealed: &str) -> Result<String, ApiError> {
    let (nonce, ciphertext) = decode_sealed(sealed).ok_or_else(ApiError::internal)?;
    let key = cipher_key(env).await?;
    let params = AesGcmParams::new("AES-GCM", &Uint8Array::from(nonce.as_slice()));
    let promise = subtle()?
        .decrypt_with_object_and_u8_array(&params, &key, &ciphertext)
        .map_err(internal("opening a key"))?;
    let opened = JsFuture::from(promise).await.map_err(|_| {
        // The deployment secret changed since the key was sealed.
        ApiError::new(
            ErrorCode::Unavailable,
            "A stored provider key can no longer be opened (the deployment secret changed); an \
             account admin must set it again.",
        )
    })?;
    String::from_utf8(Uint8Array::new(&opened).to_vec()).map_err(|_| ApiError::internal())
}

/// The account's own base URL (if it set one) and opened key for `provider`, if configured.
pub async fn account_key(
    env: &Env,
    stored: &[StoredProvider],
    provider: Provider,
) -> Result<Option<(Option<String>, String)>, ApiError> {
    let Some(entry) = stored
        .iter()
        .find(|entry| entry.provider == provider.as_str())
    else {
        return Ok(None);
    };
    let key = open(env, &entry.key_ciphertext).await?;
    Ok(Some((entry.base_url.clone(), key)))
}
