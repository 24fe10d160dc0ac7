//! The block explorer: static files (plain HTML, CSS and a JavaScript
//! module, in `crates/node/explorer/`, no build step) compiled into the
//! binary and served at `/` of the RPC address when the node runs with
//! `--explorer` (a devnet's nodes do). The page reads the chain through the
//! same JSON-RPC methods as any client, over HTTP, and follows new heads
//! over the WebSocket subscription: latest blocks with the enclave that won
//! each and its PoUW proof, and pages for a block, a transaction, an
//! account, a job (state, workers, hashes: never plaintext, which the chain
//! does not hold) and an enclave (measurement, expiry, stake, offer).

const INDEX: &str = include_str!("../explorer/index.html");
const APP: &str = include_str!("../explorer/app.js");
const STYLE: &str = include_str!("../explorer/style.css");

/// The explorer's file at `path`, with its content type.
pub fn file(path: &str) -> Option<(&'static str, &'static str)> {
    match path {
        "/" | "/index.html" => Some((INDEX, "text/html; charset=utf-8")),
        "/app.js" => Some((APP, "text/javascript; charset=utf-8")),
        "/style.css" => Some((STYLE, "text/css; charset=utf-8")),
        _ => None,
    }
}
