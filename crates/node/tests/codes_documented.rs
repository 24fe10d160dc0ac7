//! Every error code the node can answer with is listed in `docs/rpc.md`:
//! the RPC layer's (`proctor_rpc::codes`) and block validity's
//! (`ConsensusError::code`), read from their sources so a new code cannot
//! be forgotten. (Transaction codes are checked by `state`'s golden test.)

const DOC: &str = include_str!("../../../docs/rpc.md");
const RPC_SOURCE: &str = include_str!("../../rpc/src/lib.rs");
const CONSENSUS_SOURCE: &str = include_str!("../../consensus/src/rules.rs");

/// The codes and ranges of the doc's table rows (`| 4004 |`, `| 2001-2022 |`).
fn documented() -> Vec<(i32, i32)> {
    DOC.lines()
        .filter_map(|l| l.strip_prefix("| "))
        .filter_map(|l| l.split(' ').next())
        .filter_map(|c| match c.split_once('-') {
            Some((a, b)) if !a.is_empty() => Some((a.parse().ok()?, b.parse().ok()?)),
            _ => c.parse().ok().map(|n| (n, n)),
        })
        .collect()
}

/// `pub const NAME: i32 = N;` inside `pub mod codes`.
fn rpc_codes() -> Vec<i32> {
    let start = RPC_SOURCE
        .find("pub mod codes {")
        .expect("the codes module");
    let body = &RPC_SOURCE[start..];
    let body = &body[..body.find("\n}").expect("its end")];
    body.lines()
        .filter_map(|l| l.trim().strip_prefix("pub const "))
        .filter_map(|l| l.split("= ").nth(1)?.trim_end_matches(';').parse().ok())
        .collect()
}

/// The right-hand sides `=> 2xxx,` of `ConsensusError::code`.
fn consensus_codes() -> Vec<i32> {
    let start = CONSENSUS_SOURCE
        .find("pub fn code(&self) -> i32")
        .expect("code()");
    CONSENSUS_SOURCE[start..]
        .lines()
        .take_while(|l| !l.starts_with("    }"))
        .filter_map(|l| l.split("=> ").nth(1)?.trim_end_matches(',').parse().ok())
        .collect()
}

#[test]
fn every_rpc_and_block_error_code_is_in_the_docs() {
    let doc = documented();
    let (rpc, consensus) = (rpc_codes(), consensus_codes());
    assert!(rpc.len() >= 12, "read the RPC codes: {rpc:?}");
    assert!(consensus.len() >= 22, "read the block codes: {consensus:?}");
    for c in rpc.iter().chain(&consensus) {
        assert!(
            doc.iter().any(|(a, b)| a <= c && c <= b),
            "error code {c} is not in docs/rpc.md"
        );
    }
    // And the doc lists nothing the code lost (outside the transaction
    // codes, which `state` checks): every 2xxx-5xxx row is a live code.
    for (a, b) in doc.iter().filter(|(a, _)| *a >= 2000) {
        assert!(
            rpc.iter().chain(&consensus).any(|c| a <= c && c <= b),
            "docs/rpc.md lists {a}-{b}, which no code answers"
        );
    }
}
