//! Names the failing input of requests that jsonrpsee's own typed parsing
//! refuses (a malformed hash, a missing parameter): its `-32602` answer
//! carries only serde's message, so this middleware rewrites it to the
//! node's convention, `data: {"input": NAME, "reason": ...}` with NAME as
//! `rpc.discover` lists the parameter.

use jsonrpsee::server::middleware::rpc::{
    Batch, MethodResponse, Notification, Request, RpcServiceT,
};
use proctor_rpc::codes;
use proctor_rpc::openrpc::{Method, failing_input};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

/// Params longer than this are not kept for the rewrite (a blob upload's
/// megabytes of hex): their errors keep jsonrpsee's plain answer rather
/// than every large request paying for a copy.
const KEEP_PARAMS: usize = 64 << 10;

/// The middleware: see the module doc.
#[derive(Clone)]
pub struct NameInputs<S> {
    pub service: S,
    /// Every documented method, by name.
    pub methods: Arc<BTreeMap<String, Method>>,
}

/// The methods of the API, by name, for [`NameInputs`].
pub fn method_table() -> Arc<BTreeMap<String, Method>> {
    Arc::new(
        proctor_rpc::openrpc::methods()
            .into_iter()
            .map(|m| (m.name.clone(), m))
            .collect(),
    )
}

/// `res` with its `data` naming the input, when it is an invalid-params
/// error whose `data` does not already.
fn name_input(res: MethodResponse, method: Option<&Method>, req: &RequestParts) -> MethodResponse {
    if res.as_error_code() != Some(codes::INVALID_PARAMS) {
        return res;
    }
    let Ok(body) = serde_json::from_str::<Value>(res.as_json().get()) else {
        return res;
    };
    let err = &body["error"];
    if err["data"].is_object() {
        return res;
    }
    if req.too_long {
        return res;
    }
    let Some(input) = method.and_then(|m| failing_input(m, req.params.as_deref())) else {
        return res;
    };
    let reason = match &err["data"] {
        Value::String(s) => s.clone(),
        _ => err["message"].as_str().unwrap_or_default().to_string(),
    };
    let message = format!("invalid {input}: {reason}");
    MethodResponse::error(
        req.id.clone(),
        jsonrpsee::types::ErrorObjectOwned::owned(
            codes::INVALID_PARAMS,
            message,
            Some(json!({ "input": input, "reason": reason })),
        ),
    )
}

/// What of a request the rewrite needs, kept past the call.
struct RequestParts {
    id: jsonrpsee::types::Id<'static>,
    params: Option<String>,
    /// The params were longer than [`KEEP_PARAMS`] and not kept.
    too_long: bool,
}

impl<S> RpcServiceT for NameInputs<S>
where
    S: crate::rpc::Inner,
{
    type MethodResponse = MethodResponse;
    type BatchResponse = MethodResponse;
    type NotificationResponse = MethodResponse;

    fn call<'a>(&self, req: Request<'a>) -> impl Future<Output = MethodResponse> + Send + 'a {
        let raw = req.params.as_ref().map(|p| p.get());
        let too_long = raw.is_some_and(|p| p.len() > KEEP_PARAMS);
        let parts = RequestParts {
            id: req.id().into_owned(),
            params: raw.filter(|_| !too_long).map(str::to_string),
            too_long,
        };
        let method = self.methods.get(req.method_name()).cloned();
        let service = self.service.clone();
        async move {
            let res = service.call(req).await;
            name_input(res, method.as_ref(), &parts)
        }
    }

    fn batch<'a>(&self, batch: Batch<'a>) -> impl Future<Output = MethodResponse> + Send + 'a {
        self.service.batch(batch)
    }

    fn notification<'a>(
        &self,
        n: Notification<'a>,
    ) -> impl Future<Output = MethodResponse> + Send + 'a {
        self.service.notification(n)
    }
}
