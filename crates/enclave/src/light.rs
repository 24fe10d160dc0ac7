//! A light client of our own chain inside the enclave (seed 004 §4.8 step
//! 1): an executor checks the commands its host feeds it against block
//! headers it verified itself, rather than taking the host's word.
//!
//! - **Anchor**: the genesis, whose hash must be the chain the enclave's
//!   contract keys are for. The enclave rebuilds the genesis state to get
//!   the genesis header (its state root and difficulty).
//! - **Headers** ([`LightClient::sync`]): each must name the previous one as
//!   parent, be one higher, later, at the difficulty the chain's rule gives
//!   ([`next_difficulty`]), and carry a proof of useful work whose
//!   attestations verify and whose draw wins ([`check_attestations`]),
//!   signed by a genuine enclave: one whose registration quote verifies
//!   under a trusted root, binds that identity to this chain, shows a
//!   measurement the genesis allows, and has not expired at that height
//!   ([`Registration`], checked once per miner). So a host cannot make up
//!   blocks: it would need genuine enclaves to win the lottery on them.
//!   A branch replaces the followed one only when it forks from a header
//!   still held and carries more total difficulty (the node's own rule).
//! - **Records**: the state root of each of the last [`WINDOW`] headers is
//!   kept; a command comes with the proof of its state record under one of
//!   them ([`CommandProof`]), which fixes every field that decides it and
//!   the command log after it.
//!
//! Not checked (the chain's full rules need its whole state): that a miner
//! is still registered (not deregistered, its measurement not withdrawn by
//! governance since the genesis), and that its winning task is an active
//! job's. The header's time against a clock: the enclave has none.

use crate::contracts::trust;
use borsh::{BorshDeserialize, BorshSerialize};
use proctor_consensus::{check_attestations, next_difficulty};
use proctor_primitives::{Address, EncryptionKey, Hash, PublicKey};
use proctor_state::smt::SmtProof;
use proctor_state::{ChainParams, Genesis, Header, State};
use proctor_tee::{Platform, Quote, verify_quote};
use std::collections::BTreeMap;

/// Headers whose state roots are kept (older commands are proven under a
/// newer root: their records stay in the state).
pub const WINDOW: u64 = 4096;

/// An enclave's registration as the chain recorded it: what its quote
/// binds (`proctor_tee::registration_report_data`).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Registration {
    pub identity: PublicKey,
    pub encryption_key: EncryptionKey,
    pub operator: Address,
    /// The hash the quote bound: the chain's, or the genesis's base hash
    /// for an enclave registered in the genesis.
    pub genesis: Hash,
    pub expires_at: u64,
    pub quote: Quote,
}

/// Checks that `r`'s quote verifies under a root this enclave trusts,
/// binds exactly these fields, and shows one of the `allowed`
/// measurements.
pub(crate) fn verify_registration(
    p: &dyn Platform,
    r: &Registration,
    allowed: &[Hash],
) -> Result<(), String> {
    let claims = verify_quote(&r.quote, &trust(p), 0).map_err(|e| {
        format!(
            "the registration quote of {} does not verify: {e}",
            r.identity
        )
    })?;
    let bound = proctor_tee::registration_report_data(
        &r.identity,
        &r.encryption_key,
        &r.operator,
        &r.genesis,
        r.expires_at,
    );
    if claims.report_data != bound {
        return Err(format!(
            "the registration quote of {} is not for these keys",
            r.identity
        ));
    }
    if !allowed.contains(&claims.measurement) {
        return Err(format!(
            "{} runs code this chain does not allow (measurement {})",
            r.identity, claims.measurement
        ));
    }
    Ok(())
}

/// A command's state record and its proof under the state root of the
/// header at `height`.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct CommandProof {
    pub height: u64,
    /// The encoded state record (`proctor_state::Record`).
    pub record: Vec<u8>,
    pub proof: SmtProof,
}

/// A header the light client verified.
#[derive(Clone, Debug)]
struct Entry {
    hash: Hash,
    state_root: Hash,
    timestamp: u64,
    difficulty: u64,
    /// Time since its parent (none for the genesis).
    interval: Option<u64>,
    /// Total difficulty from the genesis.
    total: u128,
}

/// The result of a sync.
#[derive(Debug, PartialEq, Eq)]
pub enum Synced {
    /// The tip followed now.
    Tip { height: u64, hash: Hash },
    /// Miners whose registration the host must give first.
    NeedMiners(Vec<PublicKey>),
}

/// The headers an enclave follows.
pub struct LightClient {
    chain: Hash,
    base: Hash,
    params: ChainParams,
    /// Height → header, the last [`WINDOW`] of the branch followed.
    entries: BTreeMap<u64, Entry>,
    /// Miners whose registration verified → the height it expires at.
    miners: BTreeMap<PublicKey, u64>,
}

impl LightClient {
    /// Anchored at `g`'s genesis header.
    pub fn new(g: &Genesis) -> Result<LightClient, String> {
        let state = State::genesis(g).map_err(|e| format!("the genesis does not apply: {e}"))?;
        let t = state.genesis_block(g).header;
        let entry = Entry {
            hash: t.hash(),
            state_root: t.template.state_root,
            timestamp: t.template.timestamp,
            difficulty: t.template.difficulty,
            interval: None,
            total: t.template.difficulty as u128,
        };
        Ok(LightClient {
            chain: g.hash(),
            base: g.base_hash(),
            params: g.params.clone(),
            entries: [(0, entry)].into(),
            miners: BTreeMap::new(),
        })
    }

    /// The chain (genesis hash) it follows.
    pub fn chain(&self) -> Hash {
        self.chain
    }

    /// The tip's height and hash.
    pub fn tip(&self) -> (u64, Hash) {
        let (h, e) = self.entries.last_key_value().expect("never empty");
        (*h, e.hash)
    }

    /// The contracts' era and responsiveness window of `height`.
    pub fn era_window(&self, height: u64) -> (u64, u64) {
        let e = self.params.contracts.era_blocks.max(1);
        (
            height / e,
            (height % e) * proctor_state::contracts::WINDOWS / e,
        )
    }

    /// The hash of the header followed at `height`, if still held.
    pub fn hash_at(&self, height: u64) -> Option<Hash> {
        self.entries.get(&height).map(|e| e.hash)
    }

    /// Checks and remembers miners' registrations.
    pub fn add_miners(&mut self, p: &dyn Platform, regs: &[Registration]) -> Result<(), String> {
        for r in regs {
            if r.genesis != self.chain && r.genesis != self.base {
                return Err(format!("{} is registered on another chain", r.identity));
            }
            verify_registration(p, r, &self.params.allowed_measurements)?;
            self.miners.insert(r.identity, r.expires_at);
        }
        Ok(())
    }

    /// Follows `headers` (consecutive, the first a child of a header held).
    pub fn sync(&mut self, headers: &[Header]) -> Result<Synced, String> {
        let mut unknown: Vec<PublicKey> = headers
            .iter()
            .filter_map(|h| h.pouw.as_ref().map(|p| p.enclave))
            .filter(|m| !self.miners.contains_key(m))
            .collect();
        unknown.sort();
        unknown.dedup();
        if !unknown.is_empty() {
            return Ok(Synced::NeedMiners(unknown));
        }
        let Some(first) = headers.first() else {
            let (height, hash) = self.tip();
            return Ok(Synced::Tip { height, hash });
        };
        let from = first
            .template
            .height
            .checked_sub(1)
            .ok_or("a header at height 0 (the genesis is the anchor)")?;
        let mut prev = self
            .entries
            .get(&from)
            .filter(|e| e.hash == first.template.parent)
            .cloned()
            .ok_or_else(|| {
                format!(
                    "header {} does not follow a header held",
                    first.template.height
                )
            })?;
        let mut added = Vec::with_capacity(headers.len());
        for h in headers {
            let entry = self.verify(h, &prev)?;
            added.push((h.template.height, entry.clone()));
            prev = entry;
        }
        let (tip, _) = self.tip();
        let tip_total = self.entries[&tip].total;
        if from != tip && prev.total <= tip_total {
            return Err(format!(
                "a branch from height {from} with no more total difficulty than the one followed"
            ));
        }
        self.entries.retain(|h, _| *h <= from);
        self.entries.extend(added);
        let (height, hash) = self.tip();
        let keep = height.saturating_sub(WINDOW);
        self.entries.retain(|h, _| *h > keep || *h == height);
        Ok(Synced::Tip { height, hash })
    }

    /// Checks `h` as the child of `parent`.
    fn verify(&self, h: &Header, parent: &Entry) -> Result<Entry, String> {
        let t = &h.template;
        let at = t.height;
        if t.parent != parent.hash {
            return Err(format!("header {at} does not name its parent"));
        }
        if t.timestamp <= parent.timestamp {
            return Err(format!("header {at} is not later than its parent"));
        }
        let expected = next_difficulty(&self.params, parent.difficulty, parent.interval);
        if t.difficulty != expected {
            return Err(format!(
                "header {at} has difficulty {}, the chain's rule gives {expected}",
                t.difficulty
            ));
        }
        check_attestations(h).map_err(|e| format!("header {at}: {e}"))?;
        let miner = h.pouw.as_ref().expect("checked above").enclave;
        match self.miners.get(&miner) {
            Some(&expires) if expires >= at => {}
            _ => {
                return Err(format!(
                    "header {at} is mined by {miner}, not registered then"
                ));
            }
        }
        Ok(Entry {
            hash: h.hash(),
            state_root: t.state_root,
            timestamp: t.timestamp,
            difficulty: t.difficulty,
            interval: Some(t.timestamp - parent.timestamp),
            total: parent.total + t.difficulty as u128,
        })
    }

    /// The command record of contract `contract`'s command `seq`, if `p`
    /// proves it under a header held.
    pub fn command(
        &self,
        contract: u64,
        seq: u64,
        p: &CommandProof,
    ) -> Result<proctor_state::contracts::CommandRecord, String> {
        let root = self
            .entries
            .get(&p.height)
            .map(|e| e.state_root)
            .ok_or_else(|| format!("no header held at height {}", p.height))?;
        let key = proctor_state::contracts::command_key(contract, seq);
        if !p.proof.verify(&root, &key, Some(&p.record)) {
            return Err(format!(
                "the proof of command {seq} of contract {contract} does not verify under header {}",
                p.height
            ));
        }
        match proctor_primitives::codec::decode::<proctor_state::Record>("record", &p.record) {
            Ok(proctor_state::Record::Contracts(proctor_state::contracts::Record::Command(c)))
                if c.contract == contract && c.seq == seq =>
            {
                Ok(*c)
            }
            _ => Err("the proven record is not that command".into()),
        }
    }
}
