//! Bodies the proxy sends, downstream and upstream: whole (`full`, `empty`) or streamed through
//! a bounded channel by the stream driver. A streamed body that ends without its end marker was
//! cut short (the stream was reset): hyper must see an error, not a clean end, or it would
//! finish a chunked message the client then takes for complete.
//!
//! Bodies the proxy reads (`InBody`): a hyper connection's, or a tower service's (the embedded
//! layer's caller and inner service) — an enum, so the hyper path pays no boxing per frame.

use bytes::Bytes;
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use std::pin::Pin;
use std::task::{Context, Poll};

/// A body was cut short: the stream it belonged to was reset.
#[derive(Debug, thiserror::Error)]
#[error("the stream was reset before its body ended")]
pub(crate) struct BodyAborted;

/// Every body the proxy writes, to a client or to an upstream.
pub(crate) type OutBody = BoxBody<Bytes, BodyAborted>;

/// A whole body.
pub(crate) fn full(bytes: Bytes) -> OutBody {
    http_body_util::Full::new(bytes)
        .map_err(|never| match never {})
        .boxed()
}

/// A whole body whose size is not announced (sent chunked over HTTP/1.1, as a body that
/// streamed through would be).
pub(crate) fn unsized_full(bytes: Bytes) -> OutBody {
    Unsized(Some(bytes)).boxed()
}

/// One data frame with no size hint.
struct Unsized(Option<Bytes>);

impl Body for Unsized {
    type Data = Bytes;
    type Error = BodyAborted;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyAborted>>> {
        Poll::Ready(self.0.take().map(|data| Ok(Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_none()
    }
}

/// No body at all (`end_of_stream` with the headers).
pub(crate) fn empty() -> OutBody {
    http_body_util::Empty::new()
        .map_err(|never| match never {})
        .boxed()
}

/// Any infallible body.
pub(crate) fn infallible<B>(body: B) -> OutBody
where
    B: Body<Data = Bytes, Error = std::convert::Infallible> + Send + Sync + 'static,
{
    body.map_err(|never| match never {}).boxed()
}

/// What the driver puts in a streamed body.
pub(crate) enum Item {
    Frame(Frame<Bytes>),
    /// The body ended normally (after the last data or the trailers).
    End,
}

/// The sending half of a streamed body.
pub(crate) type Sender = tokio::sync::mpsc::Sender<Item>;

/// How many frames may wait between the driver and hyper before the driver stops pulling
/// from the other side (flow control).
const DEPTH: usize = 8;

/// A body fed by the stream driver.
pub(crate) struct Streamed {
    items: tokio::sync::mpsc::Receiver<Item>,
    ended: bool,
}

/// A streamed body and the sender that feeds it.
pub(crate) fn channel() -> (Sender, Streamed) {
    let (sender, items) = tokio::sync::mpsc::channel(DEPTH);
    (
        sender,
        Streamed {
            items,
            ended: false,
        },
    )
}

impl Body for Streamed {
    type Data = Bytes;
    type Error = BodyAborted;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyAborted>>> {
        if self.ended {
            return Poll::Ready(None);
        }
        match self.items.poll_recv(cx) {
            Poll::Ready(Some(Item::Frame(frame))) => Poll::Ready(Some(Ok(frame))),
            Poll::Ready(Some(Item::End)) => {
                self.ended = true;
                Poll::Ready(None)
            }
            Poll::Ready(None) => {
                self.ended = true;
                Poll::Ready(Some(Err(BodyAborted)))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended
    }
}

/// Any error a body the proxy reads may end with.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A body the proxy reads: a client's request or an upstream's response.
pub(crate) enum InBody {
    /// From a hyper connection (`pwx run`'s listeners and clusters).
    Hyper(hyper::body::Incoming),
    /// From a tower service (the embedded layer): its caller's request or its inner service's
    /// response.
    Boxed(http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>),
}

impl Body for InBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            InBody::Hyper(body) => Pin::new(body)
                .poll_frame(cx)
                .map(|frame| frame.map(|f| f.map_err(BoxError::from))),
            InBody::Boxed(body) => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            InBody::Hyper(body) => body.is_end_stream(),
            InBody::Boxed(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self {
            InBody::Hyper(body) => body.size_hint(),
            InBody::Boxed(body) => body.size_hint(),
        }
    }
}
