//! Streamed calls: the upstream body passes through to the client as it arrives, each chunk fed to
//! a [`StreamMeter`] (and translated when the caller speaks the other dialect). When the stream
//! ends, dies, or the client goes away (the response stream is dropped), what the meter saw is sent
//! through a one-shot channel to a settlement running in `wait_until`, so the call is settled in
//! every case. A stream that dies before the provider's final event ends, for the client, with a
//! clean error event in its dialect rather than a hang or a truncated answer.

use std::pin::Pin;
use std::task::{Context, Poll};

use domain::gateway::meter::{SseSplitter, StreamMeter};
use domain::gateway::stream::StreamTranslator;
use domain::spend::{CallStatus, TokenUsage};
use futures_channel::oneshot;
use futures_util::Stream;
use worker::{ByteStream, Env, Response};

use super::{Delivery, Prepared, settle, sse_headers, upstream};
use crate::http::{HandlerResult, internal};

/// What a finished (or abandoned) stream used.
struct StreamReport {
    usage: TokenUsage,
    status: CallStatus,
}

/// The upstream body, metered (and translated) on its way to the client.
struct MeteredStream {
    upstream: Pin<Box<ByteStream>>,
    meter: StreamMeter,
    /// When the caller speaks the other dialect: the events, re-framed in the caller's.
    translation: Option<(SseSplitter, StreamTranslator)>,
    bound: domain::spend::CallBound,
    error_event: Box<dyn Fn(&str) -> String>,
    report: Option<oneshot::Sender<StreamReport>>,
    ended: bool,
}

impl MeteredStream {
    fn send_report(&mut self) {
        let Some(sender) = self.report.take() else {
            return;
        };
        let status = if self.meter.upstream_error().is_some() {
            CallStatus::UpstreamError
        } else if self.meter.finished() {
            CallStatus::Completed
        } else {
            CallStatus::StreamDied
        };
        let _ = sender.send(StreamReport {
            usage: self.meter.usage_seen(&self.bound),
            status,
        });
    }

    fn pass_on(&mut self, chunk: &[u8]) -> Vec<u8> {
        match &mut self.translation {
            None => chunk.to_vec(),
            Some((splitter, translator)) => splitter
                .push(chunk)
                .iter()
                .map(|event| translator.translate(event))
                .collect::<String>()
                .into_bytes(),
        }
    }

    /// The end of the stream: an error event if the provider never finished, and the report.
    fn end(&mut self) -> Option<Vec<u8>> {
        self.ended = true;
        let tail = if self.meter.finished() || self.meter.upstream_error().is_some() {
            None
        } else {
            Some(
                (self.error_event)(
                    "The model provider's stream ended before the answer was complete; \
                     the call was settled from what arrived.",
                )
                .into_bytes(),
            )
        };
        self.send_report();
        tail
    }
}

impl Stream for MeteredStream {
    type Item = Result<Vec<u8>, worker::Error>;

    fn poll_next(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if this.ended {
                return Poll::Ready(None);
            }
            match this.upstream.as_mut().poll_next(context) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(chunk))) => {
                    this.meter.push(&chunk);
                    let out = this.pass_on(&chunk);
                    if !out.is_empty() {
                        return Poll::Ready(Some(Ok(out)));
                    }
                }
                // A connection that broke and a body that ended early both end here.
                Poll::Ready(Some(Err(_))) | Poll::Ready(None) => {
                    return Poll::Ready(this.end().map(Ok));
                }
            }
        }
    }
}

impl Drop for MeteredStream {
    /// The client went away mid-stream: settle from what was seen so far.
    fn drop(&mut self) {
        self.send_report();
    }
}

/// Forwards a streamed call and returns the streaming response; settlement follows in
/// `wait_until`.
pub async fn forward(env: &Env, execution: &worker::Context, prepared: Prepared) -> HandlerResult {
    let Prepared {
        planned,
        endpoint,
        reservation,
        started_ms,
    } = prepared;
    let upstream_body = match upstream::send_streamed(&endpoint, &planned).await {
        Ok(body) => body,
        Err(error) => {
            settle(
                env,
                Delivery::Now(env),
                &planned,
                &reservation,
                TokenUsage::default(),
                CallStatus::UpstreamError,
                started_ms,
            )
            .await;
            return Err(error);
        }
    };
    drop(endpoint);
    let (sender, receiver) = oneshot::channel();
    let stamp = planned.stamp(reservation.id.as_str(), started_ms);
    let translation =
        StreamTranslator::between(planned.upstream_dialect, planned.caller_dialect, stamp)
            .map(|translator| (SseSplitter::new(), translator));
    let error_planned = planned.clone();
    let metered = MeteredStream {
        upstream: Box::pin(upstream_body),
        meter: StreamMeter::new(planned.upstream_dialect),
        translation,
        bound: planned.bound,
        error_event: Box::new(move |message| error_planned.stream_error_event(message)),
        report: Some(sender),
        ended: false,
    };
    let settle_env = env.clone();
    execution.wait_until(async move {
        let report = receiver.await.unwrap_or(StreamReport {
            // The stream was dropped without a report: impossible (Drop reports), but settle as
            // the bound rather than lose the call.
            usage: TokenUsage {
                input_tokens: planned.bound.max_input_tokens,
                output_tokens: planned.bound.max_output_tokens,
            },
            status: CallStatus::StreamDied,
        });
        settle(
            &settle_env,
            Delivery::Now(&settle_env),
            &planned,
            &reservation,
            report.usage,
            report.status,
            started_ms,
        )
        .await;
    });
    let response = Response::from_stream(metered).map_err(internal("streaming response"))?;
    Ok(response.with_headers(sse_headers()))
}
