//! An account's gateway configuration (priced models, sealed provider keys), read from D1 and kept
//! in this isolate's memory for `domain::gateway::ACCOUNT_CONFIG_REUSE_MS`, so a call's path holds
//! one D1 round trip (its reservation). A change made through this isolate is seen at once
//! ([`forget`]); other isolates see it when their copy ages out. The provider keys stay sealed here:
//! they are opened per call, only to be put in the upstream request.

use std::cell::RefCell;
use std::collections::HashMap;

use domain::api::ApiError;
use domain::gateway::account_config_reusable;
use domain::ids::AccountId;
use domain::spend::CatalogModel;
use worker_core::spend::{self, StoredProvider};

use crate::auth::now_ms;
use crate::store::Db;

#[derive(Clone)]
struct AccountConfig {
    read_at_ms: i64,
    models: Vec<CatalogModel>,
    providers: Vec<StoredProvider>,
}

thread_local! {
    static CONFIGS: RefCell<HashMap<String, AccountConfig>> = RefCell::new(HashMap::new());
}

/// The account's priced models and sealed provider keys: this isolate's copy while it is fresh,
/// else read from D1.
pub async fn get(
    db: &Db,
    account: &AccountId,
) -> Result<(Vec<CatalogModel>, Vec<StoredProvider>), ApiError> {
    let now = now_ms();
    let cached = CONFIGS.with(|configs| {
        configs
            .borrow()
            .get(account.as_str())
            .filter(|config| account_config_reusable(config.read_at_ms, now))
            .cloned()
    });
    if let Some(config) = cached {
        return Ok((config.models, config.providers));
    }
    let (models, providers) = spend::gateway_config(db, account).await?;
    CONFIGS.with(|configs| {
        let mut configs = configs.borrow_mut();
        // Accounts whose copy aged out are dropped, so the map holds only the recently active ones.
        configs.retain(|_, config| account_config_reusable(config.read_at_ms, now));
        configs.insert(
            account.as_str().to_owned(),
            AccountConfig {
                read_at_ms: now,
                models: models.clone(),
                providers: providers.clone(),
            },
        );
    });
    Ok((models, providers))
}

/// Drops this isolate's copy of `account`'s configuration after an admin changed it here.
pub fn forget(account: &AccountId) {
    CONFIGS.with(|configs| configs.borrow_mut().remove(account.as_str()));
}
