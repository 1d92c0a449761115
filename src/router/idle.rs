//! Bodies that may not go silent: a body (the client's request body on its way to a replica,
//! or a replica's response on its way to the client) that yields no frame for the body idle
//! timeout ends with an error, so a slow or stalled peer cannot hold a connection, an
//! in-flight count or a draining replica for longer than that.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};

use super::proxy::BoxError;

/// How long a body may go without a frame. The timer is only made once the body has to
/// wait (most small bodies never do), and moved on only when it is polled again after
/// progress.
struct IdleTimer {
    timeout: Duration,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Frames came since the timer was last set.
    moved: bool,
}

impl IdleTimer {
    fn new(timeout: Duration) -> Self {
        IdleTimer { timeout, sleep: None, moved: false }
    }

    fn progressed(&mut self) {
        self.moved = true;
    }

    /// Whether the body has waited the whole timeout (registers for the wake-up if not).
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        let sleep = match &mut self.sleep {
            Some(sleep) => {
                if self.moved {
                    sleep.as_mut().reset(tokio::time::Instant::now() + self.timeout);
                }
                sleep
            }
            None => self.sleep.insert(Box::pin(tokio::time::sleep(self.timeout))),
        };
        self.moved = false;
        sleep.as_mut().poll(cx).is_ready()
    }
}

/// Which body: it names the silent side in the error.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Side {
    /// A client's request body streamed to a replica: the replica sees the request cut
    /// short, and the client gets the router's answer instead of an open-ended wait.
    Request,
    /// A replica's response body: the client sees the response cut short; the replica stays
    /// in rotation.
    Response,
}

/// A body ended with an error when its sender sends nothing for the timeout.
pub(crate) struct IdleBody<B> {
    inner: B,
    idle: IdleTimer,
    side: Side,
}

impl<B> IdleBody<B> {
    pub(crate) fn new(inner: B, timeout: Duration, side: Side) -> Self {
        IdleBody { inner, idle: IdleTimer::new(timeout), side }
    }
}

impl<B> Body for IdleBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.idle.progressed();
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(error))) => Poll::Ready(Some(Err(error.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                if this.idle.expired(cx) {
                    let after = this.idle.timeout;
                    let silent = match this.side {
                        Side::Request => "the client sent no byte of the request body",
                        Side::Response => "the replica sent no byte of the response body",
                    };
                    return Poll::Ready(Some(Err(format!("{silent} for {after:?}").into())));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use http_body_util::StreamBody;

    #[tokio::test(start_paused = true)]
    async fn a_body_that_goes_silent_ends_after_the_timeout_and_one_that_flows_does_not() {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BoxError>>(4);
        let stream = tokio_stream_from(rx);
        let mut body =
            IdleBody::new(StreamBody::new(stream), Duration::from_secs(10), Side::Request);
        // Frames 6 s apart: each resets the timer, so 18 s in all is fine.
        let feeder = tokio::spawn(async move {
            for _ in 0..3 {
                tokio::time::sleep(Duration::from_secs(6)).await;
                tx.send(Ok(Frame::data(Bytes::from_static(b"x")))).await.unwrap();
            }
            // Then silence, the sender kept open.
            tokio::time::sleep(Duration::from_secs(3600)).await;
            drop(tx);
        });
        let started = tokio::time::Instant::now();
        for _ in 0..3 {
            let frame = body.frame().await.expect("a frame").expect("data");
            assert_eq!(frame.into_data().unwrap(), Bytes::from_static(b"x"));
        }
        let error = body.frame().await.expect("an error, not the end").unwrap_err();
        let took = started.elapsed();
        assert!(error.to_string().contains("no byte of the request body for 10s"), "{error}");
        assert_eq!(took, Duration::from_secs(28), "18 s of frames, then the 10 s timeout");
        feeder.abort();
    }

    /// An mpsc receiver as a stream (tokio-stream is not a dependency).
    fn tokio_stream_from<T>(
        mut rx: tokio::sync::mpsc::Receiver<T>,
    ) -> impl futures_util::Stream<Item = T> + Unpin {
        Box::pin(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)))
    }
}
