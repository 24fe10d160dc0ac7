//! Plain HTTP pages beside JSON-RPC on one address: a tower layer in front
//! of jsonrpsee's server that answers some `GET` paths itself (a node's
//! explorer and `/metrics`, a worker's `/metrics`) and passes everything
//! else (JSON-RPC posts, WebSocket upgrades) on.

use jsonrpsee::core::BoxError;
use jsonrpsee::server::{HttpBody, HttpRequest, HttpResponse};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// A response on its way.
pub type PageFuture = Pin<Box<dyn Future<Output = HttpResponse> + Send + 'static>>;

/// What a [`PagesLayer`] serves: the response to `GET path`, or `None` to
/// pass the request on to JSON-RPC.
pub type Handler = Arc<dyn Fn(&str) -> Option<PageFuture> + Send + Sync>;

/// A response with `body` and its content type.
pub fn page(body: impl Into<HttpBody>, content_type: &'static str) -> HttpResponse {
    let mut res = HttpResponse::new(body.into());
    res.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    res
}

/// Prometheus' text format.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The HTTP layer: see the module doc.
#[derive(Clone)]
pub struct PagesLayer {
    handler: Handler,
}

impl PagesLayer {
    pub fn new(handler: impl Fn(&str) -> Option<PageFuture> + Send + Sync + 'static) -> Self {
        PagesLayer {
            handler: Arc::new(handler),
        }
    }
}

impl<S> tower::Layer<S> for PagesLayer {
    type Service = Pages<S>;
    fn layer(&self, inner: S) -> Pages<S> {
        Pages {
            inner,
            handler: self.handler.clone(),
        }
    }
}

/// See [`PagesLayer`].
#[derive(Clone)]
pub struct Pages<S> {
    inner: S,
    handler: Handler,
}

impl<S, B> tower::Service<HttpRequest<B>> for Pages<S>
where
    S: tower::Service<HttpRequest<B>, Response = HttpResponse>,
    S::Error: Into<BoxError> + 'static,
    S::Future: Send + 'static,
{
    type Response = HttpResponse;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, BoxError>> + Send + 'static>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: HttpRequest<B>) -> Self::Future {
        let get =
            req.method() == http::Method::GET && !req.headers().contains_key(http::header::UPGRADE);
        if get && let Some(fut) = (self.handler)(req.uri().path()) {
            return Box::pin(async move { Ok(fut.await) });
        }
        let fut = self.inner.call(req);
        Box::pin(async move { fut.await.map_err(Into::into) })
    }
}
