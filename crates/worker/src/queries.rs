//! The worker's query port (seed 004 §4.8 step 3): callers send queries
//! straight to the executor, not through the chain. One JSON-RPC method,
//! `proctor_contractQuery(query)`: the query is the hex of a borsh
//! [`SignedQuery`]; the answer is the hex of a borsh [`QueryAnswer`]. The
//! host adds the head's height and hash (which the caller checks against its
//! own node) and passes the query to its enclave; it cannot read the query,
//! the reply, or forge the enclave's statement.

use crate::{EnclaveHost, Worker};
use proctor_enclave::contracts::{ContractRequest, ContractResponse, SignedQuery};
use proctor_enclave::{Request, Response};
use proctor_primitives::codec;
use proctor_rpc::ApiClient;
use proctor_rpc::jsonrpsee::RpcModule;
use proctor_rpc::jsonrpsee::http_client::HttpClient;
use proctor_rpc::jsonrpsee::server::{ServerBuilder, ServerHandle};
use proctor_rpc::jsonrpsee::types::ErrorObjectOwned;
use std::net::SocketAddr;

/// The method's name.
pub const METHOD: &str = "proctor_contractQuery";

/// Largest query accepted, in bytes of hex.
const MAX_QUERY_HEX: usize = 256 << 10;

struct Ctx {
    host: EnclaveHost,
    client: HttpClient,
}

fn refused(code: i32, why: impl Into<String>) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(code, why.into(), None::<()>)
}

async fn answer(ctx: &Ctx, hex_query: String) -> Result<String, ErrorObjectOwned> {
    const INVALID: i32 = proctor_rpc::codes::INVALID_PARAMS;
    if hex_query.len() > MAX_QUERY_HEX {
        return Err(refused(INVALID, "query too large"));
    }
    let bytes = hex::decode(&hex_query).map_err(|e| refused(INVALID, format!("not hex: {e}")))?;
    let query: SignedQuery =
        codec::decode("query", &bytes).map_err(|e| refused(INVALID, e.to_string()))?;
    let head = ctx
        .client
        .head()
        .await
        .map_err(|e| refused(proctor_rpc::codes::INTERNAL, format!("node: {e}")))?;
    let req = Request::Contracts(Box::new(ContractRequest::Query {
        query: Box::new(query),
        height: head.height,
        block_hash: head.hash,
    }));
    match ctx.host.call(req).await {
        Ok(Response::Contracts(ContractResponse::Answer(a))) => Ok(hex::encode(codec::encode(&*a))),
        Ok(_) => Err(refused(proctor_rpc::codes::INTERNAL, "unexpected answer")),
        Err(e) => Err(refused(INVALID, e.to_string())),
    }
}

impl Worker {
    /// Serves queries on `addr` (the port's address, to register on chain
    /// with [`Worker::set_query_endpoint`]).
    pub async fn serve_queries(
        &self,
        addr: SocketAddr,
    ) -> std::io::Result<(SocketAddr, ServerHandle)> {
        let ctx = Ctx {
            host: self.host.clone(),
            client: self.client.clone(),
        };
        let mut module = RpcModule::new(ctx);
        module
            .register_async_method(METHOD, |params, ctx, _| async move {
                let (q,): (String,) = params.parse()?;
                answer(&ctx, q).await
            })
            .map_err(std::io::Error::other)?;
        let server = ServerBuilder::default().build(addr).await?;
        let local = server.local_addr()?;
        Ok((local, server.start(module)))
    }
}
