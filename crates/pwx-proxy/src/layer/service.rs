//! The tower side: `FilterLayer` wraps a service in `FilterService`, whose future hands the
//! request to a filter worker, calls the inner service when the filtered request comes back,
//! and returns the response the filters finally produced.

use super::ClientAddr;
use super::builder::FilterChain;
use super::error::BodyError;
use super::feed::Job;
use super::upstream::{InnerUpstream, Outbound};
use crate::body::{BoxError, InBody, OutBody};
use crate::stream::StreamReset;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::oneshot;

/// Wraps services in [`FilterService`]: `Router::new()….layer(chain.layer())`.
#[derive(Clone)]
pub struct FilterLayer {
    pub(crate) chain: FilterChain,
}

impl<S> tower_layer::Layer<S> for FilterLayer {
    type Service = FilterService<S>;

    fn layer(&self, inner: S) -> FilterService<S> {
        FilterService {
            inner,
            chain: self.chain.clone(),
        }
    }
}

/// A service behind the filter chain: every request runs through the filters, then `inner` (the
/// chain's upstream), then the response filters.
///
/// Its error type is `Infallible` (axum requires it): what Envoy would send as a local reply
/// arrives as a response, and a stream Envoy would reset arrives as a `503` whose body fails at
/// once (the server then aborts the response, as a reset stream is seen by the client).
#[derive(Clone)]
pub struct FilterService<S> {
    inner: S,
    chain: FilterChain,
}

impl<S, ReqBody, ResBody> tower_service::Service<http::Request<ReqBody>> for FilterService<S>
where
    S: tower_service::Service<http::Request<FilteredBody>, Response = http::Response<ResBody>>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    ReqBody: Body<Data = Bytes> + Send + 'static,
    ReqBody::Error: Into<BoxError>,
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = http::Response<FilteredBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    /// Always ready: the inner service's readiness is awaited when (and if) the filters let
    /// the request through to it.
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        Box::pin(exchange(self.chain.clone(), self.inner.clone(), request))
    }
}

/// One request through the chain and, if the filters let it through, the inner service.
async fn exchange<S, ReqBody, ResBody>(
    chain: FilterChain,
    inner: S,
    request: http::Request<ReqBody>,
) -> Result<http::Response<FilteredBody>, Infallible>
where
    S: tower_service::Service<http::Request<FilteredBody>, Response = http::Response<ResBody>>,
    S::Error: Into<BoxError>,
    ReqBody: Body<Data = Bytes> + Send + 'static,
    ReqBody::Error: Into<BoxError>,
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    let (mut parts, body) = request.into_parts();
    // The extensions stay here and go on to the inner service's request (axum's state,
    // `ConnectInfo`, …); the filters never see them.
    let extensions = std::mem::take(&mut parts.extensions);
    let client = extensions.get::<ClientAddr>().copied();
    let version = parts.version;
    let request = http::Request::from_parts(
        parts,
        InBody::Boxed(body.map_err(Into::into).boxed_unsync()),
    );
    let (outbound, mut filtered) = oneshot::channel();
    let (done, mut finished) = oneshot::channel();
    let job = Job {
        request,
        peer: client.map(|c| c.remote),
        local: client.and_then(|c| c.local),
        inner: InnerUpstream { outbound, version },
        done,
    };
    if !chain.submit(job) {
        return Ok(reset_response("the filter chain has stopped".into()));
    }
    // Until the filters let the request through (or answer it themselves)…
    let filtered = tokio::select! {
        biased;
        result = &mut finished => return Ok(finish(result)),
        filtered = &mut filtered => filtered,
    };
    // …then while the inner service works (a local reply meanwhile, e.g. the route timeout,
    // drops the call as Envoy resets the upstream request).
    if let Ok(filtered) = filtered {
        tokio::select! {
            biased;
            result = &mut finished => return Ok(finish(result)),
            () = call_inner(inner, filtered, extensions) => {}
        }
    }
    Ok(finish(finished.await))
}

/// Calls the inner service with the filtered request and hands its answer to the worker.
async fn call_inner<S, ResBody>(mut inner: S, filtered: Outbound, extensions: http::Extensions)
where
    S: tower_service::Service<http::Request<FilteredBody>, Response = http::Response<ResBody>>,
    S::Error: Into<BoxError>,
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    let Outbound {
        mut request,
        answer,
    } = filtered;
    *request.extensions_mut() = extensions;
    let result = async {
        std::future::poll_fn(|cx| inner.poll_ready(cx))
            .await
            .map_err(Into::into)?;
        inner.call(request).await.map_err(Into::into)
    }
    .await;
    let _ =
        answer.send(result.map(|response| response.map(|b| b.map_err(Into::into).boxed_unsync())));
}

/// The tower response for what the worker ended the stream with.
fn finish(
    result: Result<Result<http::Response<OutBody>, StreamReset>, oneshot::error::RecvError>,
) -> http::Response<FilteredBody> {
    match result {
        Ok(Ok(response)) => response.map(FilteredBody::new),
        Ok(Err(reset)) => reset_response(reset.to_string()),
        Err(_) => reset_response("the filter chain stopped during the request".into()),
    }
}

/// A reset stream as a tower response: its body fails on the first read.
fn reset_response(reason: String) -> http::Response<FilteredBody> {
    let mut response = http::Response::new(FilteredBody {
        inner: Inner::Reset(Some(reason)),
    });
    *response.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
    response
}

/// A body that went through the filters: the inner service's request body, and the response
/// body the filter chain produced.
pub struct FilteredBody {
    inner: Inner,
}

enum Inner {
    Body(OutBody),
    /// A reset stream: the reason, until the body is read.
    Reset(Option<String>),
}

impl FilteredBody {
    pub(crate) fn new(body: OutBody) -> Self {
        FilteredBody {
            inner: Inner::Body(body),
        }
    }
}

impl std::fmt::Debug for FilteredBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FilteredBody").finish_non_exhaustive()
    }
}

impl Body for FilteredBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match &mut self.get_mut().inner {
            Inner::Body(body) => Pin::new(body).poll_frame(cx).map(|frame| {
                frame.map(|f| {
                    f.map_err(|e| BodyError {
                        reason: e.to_string(),
                    })
                })
            }),
            Inner::Reset(reason) => {
                Poll::Ready(reason.take().map(|reason| Err(BodyError { reason })))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Body(body) => body.is_end_stream(),
            Inner::Reset(reason) => reason.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Body(body) => body.size_hint(),
            Inner::Reset(_) => SizeHint::default(),
        }
    }
}
