//! Per-connection request rate limit for the JSON-RPC server.
//!
//! Every connection (an HTTP keep-alive connection or a WebSocket) gets its
//! own token bucket: `rate` requests per second, bursts up to one second's
//! worth. A batch costs one token per entry. A request over the limit is
//! answered at once with [`codes::RATE_LIMITED`] instead of being queued, so a
//! flooding client costs the node a refusal, not a chain lock. (The number
//! of connections is bounded by the server itself.)

use jsonrpsee::server::middleware::rpc::{
    Batch, BatchEntry, BatchEntryErr, MethodResponse, Notification, Request, RpcServiceT,
};
use jsonrpsee::types::{ErrorObjectOwned, Id};
use proctor_rpc::{codes, error};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// A token bucket, in millionths of a request (integer arithmetic).
struct Bucket {
    micro_tokens: u64,
    last: Instant,
}

/// The middleware: wraps one connection's RPC service.
#[derive(Clone)]
pub struct RateLimit<S> {
    service: S,
    /// Requests per second (and the burst).
    rate: u64,
    bucket: Arc<Mutex<Bucket>>,
}

impl<S> RateLimit<S> {
    /// A fresh, full bucket for a new connection.
    pub fn new(service: S, rate: u32) -> Self {
        let rate = u64::from(rate.max(1));
        RateLimit {
            service,
            rate,
            bucket: Arc::new(Mutex::new(Bucket {
                micro_tokens: rate * 1_000_000,
                last: Instant::now(),
            })),
        }
    }

    /// Takes `n` tokens if the bucket holds them.
    fn take(&self, n: usize) -> bool {
        let mut b = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let elapsed_us = now
            .duration_since(b.last)
            .as_micros()
            .min(u128::from(u64::MAX)) as u64;
        b.last = now;
        let cap = self.rate * 1_000_000;
        b.micro_tokens = b
            .micro_tokens
            .saturating_add(elapsed_us.saturating_mul(self.rate))
            .min(cap);
        let cost = (n as u64).saturating_mul(1_000_000);
        if b.micro_tokens >= cost {
            b.micro_tokens -= cost;
            true
        } else {
            false
        }
    }

    fn refusal(&self) -> ErrorObjectOwned {
        error(
            codes::RATE_LIMITED,
            format!(
                "rate limited: this node serves at most {} requests per second per connection",
                self.rate
            ),
        )
    }
}

impl<S> RpcServiceT for RateLimit<S>
where
    S: crate::rpc::Inner,
{
    type MethodResponse = MethodResponse;
    type BatchResponse = MethodResponse;
    type NotificationResponse = MethodResponse;

    fn call<'a>(&self, req: Request<'a>) -> impl Future<Output = MethodResponse> + Send + 'a {
        let refused =
            (!self.take(1)).then(|| MethodResponse::error(req.id().into_owned(), self.refusal()));
        let service = self.service.clone();
        async move {
            match refused {
                Some(r) => r,
                None => service.call(req).await,
            }
        }
    }

    /// A batch over the budget is refused whole: each call in it gets the
    /// refusal under its own id (and notifications are dropped).
    fn batch<'a>(&self, batch: Batch<'a>) -> impl Future<Output = MethodResponse> + Send + 'a {
        let batch = if self.take(batch.len().max(1)) {
            batch
        } else {
            let refusal = self.refusal();
            Batch::from(
                batch
                    .into_iter()
                    .filter_map(|entry| match entry {
                        Ok(BatchEntry::Call(req)) => {
                            Some(Err(BatchEntryErr::new(req.id, refusal.clone())))
                        }
                        Ok(BatchEntry::Notification(_)) => None,
                        Err(e) => Some(Err(e)),
                    })
                    .collect(),
            )
        };
        self.service.batch(batch)
    }

    fn notification<'a>(
        &self,
        n: Notification<'a>,
    ) -> impl Future<Output = MethodResponse> + Send + 'a {
        let refused = (!self.take(1)).then(|| MethodResponse::error(Id::Null, self.refusal()));
        let service = self.service.clone();
        async move {
            match refused {
                Some(r) => r,
                None => service.notification(n).await,
            }
        }
    }
}
