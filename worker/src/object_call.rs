//! One way to ask a Durable Object something: a JSON request, a JSON answer, and a refusal that
//! comes back as the API error it is (the object answers with the error envelope). Used for the
//! run coordinator and the budget object.

use domain::api::{ApiError, ErrorCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use worker::{Headers, Method, Request, RequestInit};

/// Posts `request` to the object behind `stub` and decodes its answer. `who` names the object in
/// log lines; `unreachable` is what the person is told when it does not answer (503, retryable).
pub async fn call<T: DeserializeOwned>(
    stub: worker::Result<worker::Stub>,
    request: &impl Serialize,
    who: &str,
    unreachable: &'static str,
) -> Result<T, ApiError> {
    let outcome = async {
        let headers = Headers::new();
        headers.set("content-type", "application/json")?;
        let mut init = RequestInit::new();
        init.with_method(Method::Post)
            .with_headers(headers)
            .with_body(Some(serde_json::to_string(request)?.into()));
        let request = Request::new_with_init("https://object.internal/", &init)?;
        let mut response = stub?.fetch_with_request(request).await?;
        let status = response.status_code();
        let text = response.text().await?;
        Ok::<_, worker::Error>((status, text))
    }
    .await;
    let (status, text) = outcome.map_err(|error| {
        worker::console_error!("{who} did not answer: {error}");
        ApiError::new(ErrorCode::Unavailable, unreachable)
    })?;
    if status == 200 {
        return serde_json::from_str(&text).map_err(|error| {
            worker::console_error!("{who} answered what cannot be read: {error}");
            ApiError::internal()
        });
    }
    match serde_json::from_str::<domain::api::ErrorEnvelope>(&text) {
        Ok(envelope) => Err(envelope.error),
        Err(_) => {
            worker::console_error!("{who} answered {status}: {text}");
            Err(ApiError::internal())
        }
    }
}

/// The object's side: an API error as the envelope [`call`] turns back into the error.
pub fn error_response(error: &ApiError) -> worker::Result<worker::Response> {
    Ok(worker::Response::from_json(&error.clone().into_envelope())?.with_status(error.status()))
}

/// The object's side: the request's JSON, or the `invalid_json` response to answer with. `what`
/// names the request in the message.
pub async fn request_body<T: DeserializeOwned>(
    request: &mut Request,
    what: &str,
) -> Result<T, worker::Result<worker::Response>> {
    request.json().await.map_err(|error| {
        error_response(&ApiError::new(
            ErrorCode::InvalidJson,
            format!("{what}: {error}"),
        ))
    })
}
