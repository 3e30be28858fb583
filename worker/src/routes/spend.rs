//! The spend cap and the model catalog over HTTP: limits, overrides, spend views, gateway tokens for
//! people, account prices, forecasts and account provider keys. The rules are `domain::spend` and
//! `domain::gateway`; the storage is `worker_core::spend` (D1) and each account's budget object
//! (`crate::budget`, ADR 27), which holds the cap.

use std::collections::HashMap;

use domain::access::AccountRole;
use domain::api::workspaces::Account;
use domain::api::{ApiError, ErrorCode, FieldProblem};
use domain::gateway::call::key_last4;
use domain::gateway::{
    CreateGatewayTokenRequest, GatewayClaims, GatewayTokenCreated, ProviderInfo,
    SetProviderRequest, mint, token_ttl,
};
use domain::ids::{AccountId, BlockId};
use domain::spend::{
    AccountSpend, BillingPeriod, Budget, CatalogListing, PriceModelRequest, Provider,
    SetLimitRequest, SpendGrouping, account_catalog, day_key, forecast, resolve_model,
};
use worker_core::spend::{self, SpendScope};

use crate::auth::{now_ms, now_seconds};
use crate::http::{HandlerResult, RequestContext, json};
use crate::ids::WorkerRuntime;
use crate::people;

fn query(context: &RequestContext) -> HashMap<String, String> {
    context.url.query_pairs().into_owned().collect()
}

/// The account named by `:id`, if the caller belongs to it (else 404, so its existence is hidden).
async fn member_account(context: &RequestContext) -> Result<Account, ApiError> {
    let account_id =
        AccountId::parse(context.param("id")).map_err(|_| ApiError::not_found("This account"))?;
    people::account_of(&context.db, &context.caller().user.id, &account_id).await
}

/// The account named by `:id`, if the caller is one of its admins.
async fn admin_account(context: &RequestContext) -> Result<Account, ApiError> {
    let account = member_account(context).await?;
    if account.role != AccountRole::Admin {
        return Err(ApiError::forbidden(
            "Only an admin of this account can change its spending, prices or provider keys.",
        ));
    }
    Ok(account)
}

fn this_period() -> BillingPeriod {
    BillingPeriod::containing(now_ms())
}

/// The account's spend: the budget as its book holds it (ADR 27), the breakdowns from D1's ledger.
async fn account_spend(
    context: &RequestContext,
    account: &AccountId,
    budget: Budget,
) -> Result<AccountSpend, ApiError> {
    spend::account_spend(&context.db, account, this_period(), budget).await
}

async fn account_spend_response(context: &RequestContext, account: &AccountId) -> HandlerResult {
    let budget = crate::budget::budget(&context.env, account, this_period()).await?;
    json(200, &account_spend(context, account, budget).await?)
}

/// `GET /models`.
pub async fn list_models(context: &RequestContext) -> HandlerResult {
    let account = match query(context).get("accountId") {
        Some(id) => {
            let id = AccountId::parse(id).map_err(|_| ApiError::not_found("This account"))?;
            Some(people::account_of(&context.db, &context.caller().user.id, &id).await?)
        }
        None => None,
    };
    let (custom, configured) = match &account {
        Some(account) => (
            spend::custom_models(&context.db, &account.id).await?,
            spend::providers(&context.db, &account.id).await?,
        ),
        None => (Vec::new(), Vec::new()),
    };
    let listings: Vec<CatalogListing> = account_catalog(custom)
        .into_iter()
        .map(|model| {
            let usable_now = crate::gateway::deployment_configured(&context.env, model.provider)
                || configured
                    .iter()
                    .any(|entry| entry.provider == model.provider.as_str());
            CatalogListing { model, usable_now }
        })
        .collect();
    json(200, &listings)
}

/// `PUT /accounts/:id/spend/limit`.
pub async fn set_limit(context: &RequestContext) -> HandlerResult {
    let account = admin_account(context).await?;
    let request: SetLimitRequest = context.json()?;
    let limit = request.limit()?;
    // D1 keeps who set it (and what a new book adopts); the book enforces it.
    spend::set_limit(
        &context.db,
        &WorkerRuntime,
        &account.id,
        limit,
        Some(&context.caller().user.id),
    )
    .await?;
    let budget = crate::budget::set_limit(&context.env, &account.id, limit, this_period()).await?;
    resume_paused_runs(context, &account.id, budget).await
}

/// Answers with the account's spend after a change to its limit and, when the budget has room
/// again (`Budget::has_headroom`, the domain's rule), resumes the account's runs paused on it
/// after the response (ADR 14). A limit that is still spent resumes nothing.
async fn resume_paused_runs(
    context: &RequestContext,
    account_id: &AccountId,
    budget: Budget,
) -> HandlerResult {
    let account_spend = account_spend(context, account_id, budget).await?;
    if !account_spend.budget.has_headroom() {
        return json(200, &account_spend);
    }
    let env = context.env.clone();
    let account_id = account_id.clone();
    context.execution.wait_until(async move {
        crate::coordinator::budget_freed(&env, &account_id).await;
    });
    json(200, &account_spend)
}

/// `GET /accounts/:id/spend`.
pub async fn get_account_spend(context: &RequestContext) -> HandlerResult {
    let account = member_account(context).await?;
    account_spend_response(context, &account.id).await
}

/// `POST /accounts/:id/spend/override`.
pub async fn grant_override(context: &RequestContext) -> HandlerResult {
    let account = admin_account(context).await?;
    spend::grant_override(
        &context.db,
        &WorkerRuntime,
        &account.id,
        this_period(),
        Some(&context.caller().user.id),
    )
    .await?;
    let budget = crate::budget::grant_override(&context.env, &account.id, this_period()).await?;
    resume_paused_runs(context, &account.id, budget).await
}

/// `GET /workspaces/:id/spend?by=block|model|run|day`.
pub async fn get_workspace_spend(context: &RequestContext) -> HandlerResult {
    let grouping = match query(context).get("by") {
        None => SpendGrouping::Block,
        Some(by) => SpendGrouping::parse(by)
            .map_err(|problem| ApiError::invalid_fields(vec![FieldProblem::new("by", problem)]))?,
    };
    let workspace = &context.workspace().workspace;
    json(
        200,
        &spend::breakdown(
            &context.db,
            SpendScope::Workspace(&workspace.id),
            this_period(),
            grouping,
        )
        .await?,
    )
}

/// `POST /workspaces/:id/gateway-tokens`.
pub async fn create_gateway_token(context: &RequestContext) -> HandlerResult {
    let request: CreateGatewayTokenRequest = context.json()?;
    let ttl = token_ttl(request.ttl_seconds).map_err(|problem| {
        ApiError::invalid_fields(vec![FieldProblem::new("ttlSeconds", problem)])
    })?;
    let workspace = &context.workspace().workspace;
    let custom = spend::custom_models(&context.db, &workspace.account_id).await?;
    if resolve_model(&request.model, &custom).is_none() {
        // A well-formed name the catalog does not hold: 404, like any id that names nothing.
        return Err(ApiError::new(
            ErrorCode::NotFound,
            "The catalog has no such model; see GET /models, or price it with PUT /accounts/:id/models/:model.",
        )
        .with_details(serde_json::json!({ "field": "model" })));
    }
    let now = now_seconds();
    let jti = crate::ids::random_hex::<8>()?;
    let claims = GatewayClaims {
        account: workspace.account_id.clone(),
        workspace: workspace.id.clone(),
        block: request.block_id,
        run: None,
        step: None,
        user: Some(context.caller().user.id.clone()),
        model: request.model.clone(),
        iat: now,
        exp: now + ttl,
        jti,
    };
    let token = mint(context.auth.signing_key()?, &claims);
    json(
        201,
        &GatewayTokenCreated {
            token,
            model: request.model,
            expires_at: claims.exp,
        },
    )
}

/// `PUT /accounts/:id/models/:model`.
pub async fn price_model(context: &RequestContext) -> HandlerResult {
    let account = admin_account(context).await?;
    let request: PriceModelRequest = context.json()?;
    let model = request.to_model(context.param("model"), &day_key(now_ms()))?;
    spend::price_model(&context.db, &WorkerRuntime, &account.id, &model).await?;
    crate::gateway::account_config::forget(&account.id);
    json(200, &model)
}

/// `GET /workspaces/:id/blocks/:blockId/forecast?pipeline=build&model=gpt-4o-mini`.
pub async fn block_forecast(context: &RequestContext) -> HandlerResult {
    BlockId::parse(context.param("blockId")).map_err(|_| ApiError::not_found("This block"))?;
    let query = query(context);
    let pipeline_key = query.get("pipeline").map_or("build", String::as_str);
    let workspace = &context.workspace().workspace;
    // A built-in key or one of the workspace's own pipelines (the board forecasts whichever a
    // person picks).
    let pipeline = worker_core::runs::get_pipeline(&context.db, &workspace.id, pipeline_key)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::NotFound,
                "This pipeline does not exist: name `build`, `quick`, or the id of one of this workspace's pipelines.",
            )
            .with_details(serde_json::json!({ "field": "pipeline" }))
        })?
        .pipeline();
    let custom = spend::custom_models(&context.db, &workspace.account_id).await?;
    let model_id = query.get("model").ok_or_else(|| {
        ApiError::invalid_fields(vec![FieldProblem::new(
            "model",
            "name the model to forecast with (see GET /models)",
        )])
    })?;
    let model = resolve_model(model_id, &custom).ok_or_else(|| {
        ApiError::new(
            ErrorCode::NotFound,
            "The catalog has no such model; see GET /models.",
        )
        .with_details(serde_json::json!({ "field": "model" }))
    })?;
    let kinds: Vec<&str> = pipeline
        .steps
        .iter()
        .map(|step| step.kind.as_str())
        .collect();
    // The ledger does not yet record a step's kind, so every step uses the documented default.
    json(200, &forecast(&model, kinds, |_| Vec::new()))
}

/// `PUT /accounts/:id/providers/:provider`.
pub async fn set_provider(context: &RequestContext) -> HandlerResult {
    let account = admin_account(context).await?;
    let provider = Provider::parse(context.param("provider"))
        .filter(|provider| *provider != Provider::WorkersAi)
        .ok_or_else(|| {
            ApiError::invalid_fields(vec![FieldProblem::new(
                "provider",
                "one of `openai_compatible`, `anthropic`",
            )])
        })?;
    let request: SetProviderRequest = context.json()?;
    request.validate()?;
    let key = request.api_key.trim();
    let sealed = crate::providers::seal(&context.env, key).await?;
    let last4 = key_last4(key);
    spend::save_provider(
        &context.db,
        &WorkerRuntime,
        &account.id,
        provider,
        request.base_url.as_deref(),
        &sealed,
        &last4,
    )
    .await?;
    crate::gateway::account_config::forget(&account.id);
    json(
        200,
        &ProviderInfo {
            provider: provider.as_str().to_owned(),
            base_url: request.base_url,
            key_last4: last4,
            updated_at: now_ms(),
        },
    )
}

/// `GET /accounts/:id/providers`.
pub async fn list_providers(context: &RequestContext) -> HandlerResult {
    let account = member_account(context).await?;
    let listed: Vec<ProviderInfo> = spend::providers(&context.db, &account.id)
        .await?
        .into_iter()
        .map(|entry| ProviderInfo {
            provider: entry.provider,
            base_url: entry.base_url,
            key_last4: entry.key_last4,
            updated_at: entry.updated_at,
        })
        .collect();
    json(200, &listed)
}
