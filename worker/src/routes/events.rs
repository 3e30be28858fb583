//! The live event stream: tickets, and the WebSocket upgrade that hands the socket to the hub.

use domain::access::Permission;
use domain::api::{ApiError, FieldProblem};
use domain::auth::{self as tokens, Audience, Claims};
use domain::ids::{UserId, WorkspaceId};
use domain::stream::{
    EventTicket, TICKET_TTL_SECONDS, check_ticket_first_use, check_ticket_holder, ticket_use_key,
};
use worker::Request;

use crate::access::load_access;
use crate::auth::now_seconds;
use crate::http::{HandlerResult, RequestContext, internal, json};
use crate::hub;
use crate::people;

/// `POST /workspaces/:id/events/ticket`: a short-lived ticket bound to the caller and this workspace.
/// Browsers cannot set headers on a WebSocket, so the stream authenticates with this instead of the
/// bearer token (which therefore never appears in a URL).
/// The ticket carries the user's session generation: signing out everywhere bumps it, which kills
/// every ticket minted before, used or not.
pub async fn ticket(context: &RequestContext) -> HandlerResult {
    let now = now_seconds();
    let (_, generation) = people::stream_holder(&context.db, &context.caller().user.id)
        .await?
        .ok_or_else(|| ApiError::unauthorized("The account behind this token no longer exists."))?;
    let claims = Claims {
        sub: context.caller().user.id.to_string(),
        aud: Audience::WsTicket,
        iat: now,
        exp: now + TICKET_TTL_SECONDS,
        generation,
        jti: crate::ids::random_hex::<8>()?,
        ws: Some(context.workspace().workspace.id.to_string()),
    };
    let ticket = tokens::sign(context.auth.signing_key()?, &claims);
    json(
        200,
        &EventTicket {
            ticket,
            expires_at: claims.exp,
        },
    )
}

/// `GET /workspaces/:id/events?ticket&since&clientId` (WebSocket upgrade).
pub async fn open(request: &Request, context: &RequestContext) -> HandlerResult {
    let upgrade = request
        .headers()
        .get("upgrade")
        .ok()
        .flatten()
        .unwrap_or_default();
    if !upgrade.eq_ignore_ascii_case("websocket") {
        return Err(ApiError::upgrade_required(
            "This is a WebSocket endpoint: connect with `Upgrade: websocket`.",
        ));
    }
    let key = context.auth.signing_key()?;
    let query: std::collections::HashMap<String, String> =
        context.url.query_pairs().into_owned().collect();
    let ticket = query.get("ticket").ok_or_else(|| {
        ApiError::unauthorized(
            "Pass a ticket from POST /workspaces/{id}/events/ticket as `?ticket=`.",
        )
    })?;
    let claims =
        tokens::verify(key, ticket, Audience::WsTicket, now_seconds()).map_err(|error| {
            ApiError::unauthorized(format!("{} Get a fresh ticket.", error.message()))
        })?;
    let hidden = || ApiError::not_found("This workspace");
    let workspace_id = WorkspaceId::parse(context.param("id")).map_err(|_| hidden())?;
    if claims.ws.as_deref() != Some(workspace_id.as_str()) {
        return Err(ApiError::unauthorized(
            "This ticket was issued for another workspace.",
        ));
    }
    let user_id = UserId::parse(&claims.sub)
        .map_err(|_| ApiError::unauthorized("The ticket names no user."))?;
    // Access is checked again now, not only when the ticket was issued.
    let access = load_access(&context.db, &workspace_id, &user_id)
        .await?
        .ok_or_else(hidden)?;
    if !access
        .role
        .is_some_and(|role| role.allows(Permission::Read))
    {
        return Err(hidden());
    }
    let since = match query.get("since") {
        None => None,
        Some(text) => Some(
            text.parse::<i64>()
                .ok()
                .filter(|since| *since >= 0)
                .ok_or_else(|| {
                    ApiError::invalid_fields(vec![FieldProblem::new(
                        "since",
                        "must be a sequence number (0 or more)",
                    )])
                })?,
        ),
    };
    let client_id = query
        .get("clientId")
        .filter(|id| !id.is_empty() && id.len() <= 64)
        .map(String::as_str);
    let holder = people::stream_holder(&context.db, &user_id).await?;
    check_ticket_holder(
        claims.generation,
        holder.as_ref().map(|(_, generation)| *generation),
    )?;
    // Single use: the ticket's id joins the revoked tokens until it would have expired anyway, so a
    // ticket copied from a log or a URL opens nothing.
    let first_use =
        people::claim_single_use(&context.db, &ticket_use_key(&claims.jti), claims.exp).await?;
    check_ticket_first_use(first_use)?;
    let login = holder.map(|(login, _)| login).unwrap_or_default();
    hub::connect(
        &context.env,
        workspace_id.as_str(),
        user_id.as_str(),
        &login,
        client_id,
        since,
    )
    .await
    .map_err(internal("opening the hub socket"))
}
