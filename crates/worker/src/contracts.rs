//! The worker's duties for confidential contracts (seed 004 §4.4-4.9),
//! polled with its job checks. The host only moves data between the chain
//! and its enclave: keys, plaintext and state never leave the enclave.
//!
//! - As the chain's **gatekeeper** (its enclave holds the root key, restored
//!   from the sealed blob the devnet or operator gives): publish the command
//!   key of every contract awaiting one, and grant the contract key to each
//!   executor that asked for it with its attestation (the enclave checks the
//!   attestation; the chain checks who posts).
//! - In a **key rotation** (seed 004 §4.7): as its leader, have the enclave
//!   generate the era's root key, post the commitment, and hand the key to
//!   each member of the next set that asks; as a member, ask, take it and
//!   confirm. A gatekeeper left out of the set once the rotation is ready
//!   has its enclave destroy the root keys, and removes the sealed blob.
//! - As a contract's **executor**: keep the enclave's light client of the
//!   chain up with the head (headers, and the registrations of miners it
//!   has not seen), give each command with the proof of its state record;
//!   ask for the key of each era it needs
//!   with its attestation (the checkpoint's, each command's, the current
//!   one), accept the grant, load the code (and the latest checkpoint),
//!   apply the commands in chain order and post each signed receipt, and
//!   post a signed checkpoint every `checkpoint_every` commands and once
//!   under each new era's key. Receipts not in a block after a while are
//!   posted again. A restarted executor replays from the latest checkpoint
//!   and posts receipts only past what the chain has.

use crate::{Error, Result, Worker};
use proctor_enclave::contracts::{
    CommandProof, ContractRequest, ContractResponse, Handover, PeerAttestation, Registration,
    TargetKey,
};
use proctor_enclave::{Request, Response};
use proctor_primitives::{Hash, PublicKey, Signature, codec};
use proctor_rpc::ApiClient;
use proctor_state::Call;
use proctor_state::contracts::{Call as ContractCall, Checkpoint, ContractInfo, Parts, Receipt};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// Most commands one poll applies per contract.
const COMMANDS_PER_POLL: u64 = 64;
/// A receipt not in a block after this long is posted again.
const RESEND_AFTER: Duration = Duration::from_secs(20);
/// The size of the blobs a large checkpoint is stored in.
const PART_BYTES: usize = 32 << 20;
/// Headers the light client is given at once, and batches per sync.
const LIGHT_BATCH: u32 = 256;
const LIGHT_BATCHES: usize = 64;

/// What the worker has done for contracts (host memory only: none of it is
/// secret).
#[derive(Default)]
pub(crate) struct Duties {
    /// The chain's genesis hash, gatekeeper, checkpoint interval and era
    /// length, read once.
    chain: Option<(Hash, Option<PublicKey>, u64, u64)>,
    /// The largest checkpoint a transaction carries (larger ones go as
    /// blobs).
    max_checkpoint: u64,
    /// Eras whose root key this enclave asked for.
    root_requested: Sent<u64>,
    /// Elected enclaves this gatekeeper handed the root key to.
    roots_handed: Sent<(PublicKey, u64)>,
    /// The last (era, window) a heartbeat was sent for.
    heartbeat: Option<(u64, u64)>,
    /// The root key's sealed blob, until the enclave has restored it.
    root_key: Option<Vec<u8>>,
    /// Where the sealed root key is kept (read at start, written when one
    /// is received).
    root_key_file: Option<std::path::PathBuf>,
    /// Whether the enclave holds root keys (restored or received).
    holds_root: bool,
    /// Rotations (era, attempt) whose key this leader committed to.
    committed: Sent<(u64, u32)>,
    published: Sent<(u64, u64)>,
    /// (contract, era) keys granted.
    granted: Sent<(u64, u64)>,
    requested: Sent<(u64, u64)>,
    /// (contract, era) keys the enclave accepted.
    accepted: BTreeSet<(u64, u64)>,
    /// Contract → commands its loaded state has applied.
    loaded: BTreeMap<u64, u64>,
    /// Receipts posted and not yet in a block.
    unconfirmed: BTreeMap<(u64, u64), (Receipt, Signature, Instant)>,
    /// Contract → the position and era of the last checkpoint posted.
    checkpointed: BTreeMap<u64, (u64, u64)>,
    /// Whether governance chose forward secrecy, as of the last poll.
    forward_secrecy: bool,
    /// The era below which the enclave's root keys were destroyed.
    forgot_root_below: u64,
    /// Contract → the era below which its keys were destroyed.
    forgot: BTreeMap<u64, u64>,
    /// The height the enclave's light client follows (none: not started).
    light: Option<u64>,
    /// The query port's URL to register on chain, and when it was last sent.
    endpoint: Option<(String, Option<Instant>)>,
}

/// Postings sent, by what they are about: one is sent again only when the
/// chain still shows it missing after [`RESEND_AFTER`] (a transaction
/// dropped, or lost with a node).
struct Sent<K>(BTreeMap<K, Instant>);

impl<K> Default for Sent<K> {
    fn default() -> Self {
        Sent(BTreeMap::new())
    }
}

impl<K: Ord> Sent<K> {
    /// Whether `k` was sent less than [`RESEND_AFTER`] ago.
    fn recent(&self, k: &K) -> bool {
        self.0.get(k).is_some_and(|at| at.elapsed() < RESEND_AFTER)
    }

    /// Whether to send `k` now (marking it sent).
    fn due(&mut self, k: K) -> bool {
        match self.0.get(&k) {
            Some(at) if at.elapsed() < RESEND_AFTER => false,
            _ => {
                self.0.insert(k, Instant::now());
                true
            }
        }
    }
}

impl Duties {
    pub(crate) fn set_root_key_file(&mut self, path: std::path::PathBuf) -> std::io::Result<()> {
        match std::fs::read(&path) {
            Ok(sealed) => self.root_key = Some(sealed),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        self.root_key_file = Some(path);
        Ok(())
    }
}

impl Worker {
    /// Registers `url` (this worker's [`Worker::serve_queries`] port) on
    /// chain as its enclave's query endpoint, at the next poll.
    pub fn set_query_endpoint(&mut self, url: String) {
        self.contracts.endpoint = Some((url, None));
    }

    /// Where this worker keeps its enclave's root key, sealed (a
    /// gatekeeper's): restored and bound to the chain at the next poll if
    /// the file exists, written when the enclave receives one.
    pub fn set_root_key_file(&mut self, path: std::path::PathBuf) -> std::io::Result<()> {
        self.contracts.set_root_key_file(path)
    }

    async fn contracts_call(&mut self, req: ContractRequest) -> Result<ContractResponse> {
        match self.host.call(Request::Contracts(Box::new(req))).await? {
            Response::Contracts(r) => Ok(r),
            _ => Err(Error::Enclave("unexpected answer about contracts".into())),
        }
    }

    /// One poll of the contract duties.
    pub(crate) async fn serve_contracts(&mut self) -> Result<()> {
        let (chain, _genesis_gatekeeper, every, era_blocks) = match self.contracts.chain {
            Some(c) => c,
            None => {
                let g = self.client.genesis().await?;
                let p = &g.params.contracts;
                let c = (
                    g.hash(),
                    p.gatekeeper.as_ref().map(|k| k.identity),
                    p.checkpoint_every,
                    p.era_blocks,
                );
                self.contracts.chain = Some(c);
                self.contracts.max_checkpoint = p.max_checkpoint_bytes;
                c
            }
        };
        let me = self.info.identity;
        let set = self.client.gatekeepers().await?;
        let gatekeeper = set.members.contains(&me);
        if gatekeeper {
            self.restore_root(chain).await?;
        }
        match &set.rotation {
            // A key rotation: its leader generates and hands out the key;
            // the others take it like an elected enclave joining.
            Some(r) if r.leader == me => self.lead_rotation(r).await?,
            Some(r) if r.next.contains(&me) && !r.confirmed.contains(&me) => {
                self.join_gatekeepers(chain, me, r.era).await?
            }
            None if set.candidates.contains(&me) => {
                self.join_gatekeepers(chain, me, set.era).await?
            }
            _ => {}
        }
        // Out of the set once a rotation is done: destroy the root keys
        // (seed 004 §4.7 step 4).
        if !gatekeeper
            && set.rotation.is_none()
            && !set.candidates.contains(&me)
            && self.contracts.holds_root
        {
            self.contracts_call(ContractRequest::Retire).await?;
            if let Some(f) = &self.contracts.root_key_file {
                std::fs::remove_file(f)
                    .map_err(|e| Error::Enclave(format!("removing the sealed root key: {e}")))?;
            }
            self.contracts.holds_root = false;
            tracing::info!("gatekeeper: retired, root keys destroyed");
        }
        if let Some((url, sent)) = self.contracts.endpoint.clone()
            && sent.is_none_or(|t| t.elapsed() > RESEND_AFTER)
            && self.client.enclave_endpoint(me).await?.as_deref() != Some(url.as_str())
        {
            self.send_call(Call::Contracts(ContractCall::SetEndpoint {
                enclave: me,
                url: url.clone(),
            }))
            .await?;
            self.contracts.endpoint = Some((url, Some(Instant::now())));
        }
        self.contracts.forward_secrecy = set.forward_secrecy;
        if gatekeeper
            && set.forward_secrecy
            && set.rotation.is_none()
            && set.era > self.contracts.forgot_root_below
        {
            self.forget_past_roots(set.era).await?;
        }
        // Contract keys wait while a rotation is under way.
        if gatekeeper && set.rotation.is_none() {
            self.serve_as_gatekeeper(set.era).await?;
            for c in set.candidates {
                self.hand_over_root(c, set.era).await?;
            }
        }
        let mine = self.client.contracts(Some(me), Some(1_000)).await?;
        if (gatekeeper || !mine.is_empty())
            && let Err(e) = self.heartbeat(chain, era_blocks).await
        {
            tracing::warn!("heartbeat not sent: {e}");
        }
        // An executor's light client keeps up with the head, so queries
        // name a block it verified.
        if !mine.is_empty() {
            let head = self.client.head().await?.height;
            if let Err(e) = self.light_sync(head).await {
                tracing::warn!("light client: {e}");
            }
        }
        for c in mine.into_iter().filter(|c| c.key.is_some()) {
            if let Err(e) = self.execute(chain, every, &c).await {
                tracing::warn!(contract = c.id, "cannot execute the contract: {e}");
            }
        }
        Ok(())
    }

    /// Restores the root key from its sealed blob, once.
    async fn restore_root(&mut self, chain: Hash) -> Result<()> {
        if let Some(sealed) = self.contracts.root_key.take() {
            self.contracts_call(ContractRequest::Restore { sealed })
                .await?;
            self.contracts_call(ContractRequest::Bind { chain }).await?;
            self.contracts.holds_root = true;
            tracing::info!("gatekeeper: root key restored");
        }
        Ok(())
    }

    /// Keeps the sealed root keys where a restart finds them.
    fn keep_root(&mut self, sealed: Vec<u8>) -> Result<()> {
        if let Some(f) = &self.contracts.root_key_file {
            std::fs::write(f, sealed)
                .map_err(|e| Error::Enclave(format!("keeping the sealed root key: {e}")))?;
        }
        self.contracts.holds_root = true;
        Ok(())
    }

    /// The rotation's leader: generate the era's root key and commit to
    /// it, then hand it to each member that asked.
    async fn lead_rotation(&mut self, r: &proctor_state::contracts::Rotation) -> Result<()> {
        if r.commitment.is_none() {
            if !self.contracts.committed.due((r.era, r.attempt)) {
                return Ok(());
            }
            let ContractResponse::Root {
                commitment, sealed, ..
            } = self
                .contracts_call(ContractRequest::Rotate { era: r.era })
                .await?
            else {
                return Err(Error::Enclave("no rotated key".into()));
            };
            self.keep_root(sealed)?;
            let ContractResponse::Ready(signature) =
                self.contracts_call(ContractRequest::Ready).await?
            else {
                return Err(Error::Enclave("no readiness".into()));
            };
            self.send_call(Call::Contracts(ContractCall::CommitRotation {
                enclave: self.info.identity,
                era: r.era,
                commitment,
                signature,
            }))
            .await?;
            tracing::info!(
                era = r.era,
                attempt = r.attempt,
                "gatekeeper: rotation key committed"
            );
            return Ok(());
        }
        for m in r.next.iter().filter(|m| !r.confirmed.contains(m)) {
            self.hand_over_root(*m, r.era).await?;
        }
        Ok(())
    }

    /// Once per window of the era, a heartbeat signed by the enclave (the
    /// responsiveness rule counts windows with any side effect).
    async fn heartbeat(&mut self, chain: Hash, era_blocks: u64) -> Result<()> {
        let next = self.client.head().await?.height + 1;
        let (era, window) = (
            next / era_blocks,
            (next % era_blocks) * proctor_state::contracts::WINDOWS / era_blocks,
        );
        if self.contracts.heartbeat == Some((era, window)) {
            return Ok(());
        }
        // The enclave signs only for the window its light client is in.
        self.light_sync(next - 1).await?;
        let ContractResponse::Heartbeat(signature) = self
            .contracts_call(ContractRequest::Heartbeat { chain, era, window })
            .await?
        else {
            return Err(Error::Enclave("no heartbeat".into()));
        };
        self.send_call(Call::Contracts(ContractCall::Heartbeat {
            enclave: self.info.identity,
            era,
            window,
            signature,
        }))
        .await?;
        self.contracts.heartbeat = Some((era, window));
        Ok(())
    }

    /// An elected enclave, or a member of a rotation's next set: ask for
    /// the root key of `era`, take it, confirm.
    async fn join_gatekeepers(&mut self, chain: Hash, me: PublicKey, era: u64) -> Result<()> {
        let x = self.client.root_exchange(me).await?;
        if let Some(grant) = x.grant {
            let h: Handover =
                codec::decode("handover", &grant).map_err(|e| Error::Enclave(e.to_string()))?;
            let ContractResponse::Root { sealed, .. } = self
                .contracts_call(ContractRequest::Receive(Box::new(h)))
                .await?
            else {
                return Err(Error::Enclave("root key not received".into()));
            };
            self.keep_root(sealed)?;
            let ContractResponse::Ready(signature) =
                self.contracts_call(ContractRequest::Ready).await?
            else {
                return Err(Error::Enclave("no readiness".into()));
            };
            self.send_call(Call::Contracts(ContractCall::ConfirmReady {
                enclave: me,
                signature,
            }))
            .await?;
            tracing::info!("gatekeeper: root key received, readiness confirmed");
        } else if x.request.is_none() && self.contracts.root_requested.due(era) {
            let ContractResponse::Attested(att) = self
                .contracts_call(ContractRequest::Attest { chain })
                .await?
            else {
                return Err(Error::Enclave("no attestation".into()));
            };
            self.send_call(Call::Contracts(ContractCall::RequestRoot {
                enclave: me,
                attestation: codec::encode(&att),
            }))
            .await?;
        }
        Ok(())
    }

    /// A gatekeeper (or a rotation's leader): hand the root key of `era`
    /// to enclave `to` once it asked.
    async fn hand_over_root(&mut self, to: PublicKey, era: u64) -> Result<()> {
        let x = self.client.root_exchange(to).await?;
        let (Some(att), None) = (x.request, x.grant) else {
            return Ok(());
        };
        if !self.contracts.roots_handed.due((to, era)) {
            return Ok(());
        }
        let to_att: PeerAttestation =
            codec::decode("attestation", &att).map_err(|e| Error::Enclave(e.to_string()))?;
        let ContractResponse::Handover(h) = self
            .contracts_call(ContractRequest::HandOver { to: to_att })
            .await?
        else {
            return Err(Error::Enclave("no handover".into()));
        };
        self.send_call(Call::Contracts(ContractCall::HandOverRoot {
            to,
            handover: codec::encode(&*h),
        }))
        .await?;
        tracing::info!(%to, "gatekeeper: root key handed over");
        Ok(())
    }

    /// Applies `command` to contract `id`, giving the enclave the keys of
    /// the contracts it emits to (from the chain, with their gatekeepers'
    /// registration quotes) when it asks for them.
    async fn apply(
        &mut self,
        id: u64,
        seq: u64,
        command: proctor_state::contracts::CommandInput,
    ) -> Result<(Receipt, Signature)> {
        let (mut keys, mut unknown) = (Vec::new(), Vec::new());
        let proof = self.command_proof(id, seq).await?;
        for _ in 0..3 {
            let req = ContractRequest::Apply {
                contract: id,
                command: command.clone(),
                keys: keys.clone(),
                unknown: unknown.clone(),
                proof: Some(proof.clone()),
            };
            match self.contracts_call(req).await? {
                ContractResponse::Applied { receipt, signature } => {
                    return Ok((receipt, signature));
                }
                ContractResponse::NeedKeys { targets } => {
                    for t in targets {
                        match self.target_key(t).await? {
                            Some(k) => keys.push(k),
                            None => unknown.push(t),
                        }
                    }
                }
                _ => return Err(Error::Enclave("command not applied".into())),
            }
        }
        Err(Error::Enclave("the enclave keeps asking for keys".into()))
    }

    /// Contract `t`'s signed key and its signer's registration, if any.
    async fn target_key(&mut self, t: u64) -> Result<Option<TargetKey>> {
        let Ok(code) = self.client.contract_code(t, None).await else {
            return Ok(None);
        };
        let Some(key) = code.signed_key else {
            return Ok(None);
        };
        let signer = self.registration_of(key.gatekeeper).await?;
        Ok(Some(TargetKey { key, signer }))
    }

    /// An enclave's registration as the chain keeps it (its quote and what
    /// the quote binds).
    async fn registration_of(&mut self, identity: PublicKey) -> Result<Registration> {
        let q = self.client.enclave_quote(identity).await?;
        let genesis = match q.in_genesis {
            true => self.client.genesis().await?.base_hash(),
            false => self.contracts.chain.map_or(Hash::ZERO, |c| c.0),
        };
        let quote = proctor_rpc::from_hex("quote", &q.quote)
            .map_err(|e| Error::Enclave(e.message().to_string()))?;
        Ok(Registration {
            identity,
            encryption_key: q.encryption_key,
            operator: q.operator,
            genesis,
            expires_at: q.expires_at,
            quote,
        })
    }

    /// Has the enclave's light client follow the chain up to `height` at
    /// least (started from the genesis the first time): headers in
    /// batches, with the registrations of miners it has not seen.
    async fn light_sync(&mut self, height: u64) -> Result<()> {
        let mut at = match self.contracts.light {
            Some(h) => h,
            None => {
                let genesis = Box::new(self.client.genesis().await?);
                let ContractResponse::Synced { height, .. } = self
                    .contracts_call(ContractRequest::LightInit { genesis })
                    .await?
                else {
                    return Err(Error::Enclave("no light client".into()));
                };
                self.contracts.light = Some(height);
                height
            }
        };
        let mut miners = Vec::new();
        for _ in 0..LIGHT_BATCHES {
            if at >= height {
                return Ok(());
            }
            let headers = self
                .client
                .headers(at + 1, LIGHT_BATCH)
                .await?
                .iter()
                .map(|h| proctor_rpc::from_hex::<proctor_state::Header>("header", h))
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| Error::Enclave(e.message().to_string()))?;
            if headers.is_empty() {
                break;
            }
            let req = ContractRequest::LightSync {
                headers,
                miners: std::mem::take(&mut miners),
            };
            match self.contracts_call(req).await {
                Ok(ContractResponse::Synced { height, .. }) => {
                    at = height;
                    self.contracts.light = Some(height);
                }
                Ok(ContractResponse::NeedMiners { miners: ids }) => {
                    for id in ids {
                        miners.push(self.registration_of(id).await?);
                    }
                }
                Ok(_) => return Err(Error::Enclave("the light client did not sync".into())),
                // The node switched branches: feed the new one from below
                // the fork.
                Err(e) if at > 0 => {
                    tracing::warn!(
                        at,
                        "light client: {e}; going back to follow the node's branch"
                    );
                    at = at.saturating_sub(LIGHT_BATCH as u64 / 4);
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::Enclave(format!(
            "the light client is at {at}, not yet at {height}"
        )))
    }

    /// Command `seq` of contract `id` with its proof, the light client
    /// synced to the proof's header.
    async fn command_proof(&mut self, id: u64, seq: u64) -> Result<CommandProof> {
        let p = self.client.contract_command_proof(id, seq).await?;
        self.light_sync(p.height).await?;
        Ok(CommandProof {
            height: p.height,
            record: p.record,
            proof: p.proof,
        })
    }

    /// A gatekeeper: publish the command key of `era` of each contract
    /// awaiting one, and grant each key an executor asked for.
    async fn serve_as_gatekeeper(&mut self, era: u64) -> Result<()> {
        // One contract's failure (another gatekeeper was first, a full
        // mempool) does not hold up the others: each is tried again later.
        for id in self.client.contracts_awaiting_key().await? {
            if !self.contracts.published.due((id, era)) {
                continue;
            }
            let ContractResponse::PublicKey(key) = self
                .contracts_call(ContractRequest::PublicKey { contract: id, era })
                .await?
            else {
                return Err(Error::Enclave("no public key".into()));
            };
            match self
                .send_call(Call::Contracts(ContractCall::PublishKey { key }))
                .await
            {
                Ok(_) => tracing::info!(contract = id, era, "gatekeeper: command key published"),
                Err(e) => tracing::debug!(contract = id, "command key not published: {e}"),
            }
        }
        for (id, era) in self.client.contract_key_requests().await? {
            if self.contracts.granted.recent(&(id, era)) {
                continue;
            }
            let code = self.client.contract_code(id, Some(era)).await?;
            let (Some(att), None) = (code.key_request, code.key_grant) else {
                continue;
            };
            if !self.contracts.granted.due((id, era)) {
                continue;
            }
            let to: PeerAttestation = match codec::decode("attestation", &att) {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(contract = id, "a key request that does not decode: {e}");
                    continue;
                }
            };
            let handover = match self
                .contracts_call(ContractRequest::Grant {
                    contract: id,
                    era,
                    to,
                })
                .await
            {
                Ok(ContractResponse::Handover(h)) => codec::encode(&*h),
                Ok(_) => return Err(Error::Enclave("no handover".into())),
                Err(e) => {
                    tracing::warn!(contract = id, "key not granted: {e}");
                    continue;
                }
            };
            match self
                .send_call(Call::Contracts(ContractCall::GrantKey {
                    contract: id,
                    era,
                    handover,
                }))
                .await
            {
                Ok(_) => tracing::info!(contract = id, era, "gatekeeper: contract key granted"),
                Err(e) => tracing::debug!(contract = id, "contract key not granted: {e}"),
            }
        }
        Ok(())
    }

    /// Whether the enclave holds contract `id`'s key of `era`: accepts it
    /// once granted, asks for it (with the enclave's attestation) if
    /// nobody has.
    async fn has_key(&mut self, chain: Hash, id: u64, era: u64) -> Result<bool> {
        if self.contracts.accepted.contains(&(id, era)) {
            return Ok(true);
        }
        let code = self.client.contract_code(id, Some(era)).await?;
        if let Some(grant) = code.key_grant {
            let h: Handover =
                codec::decode("handover", &grant).map_err(|e| Error::Enclave(e.to_string()))?;
            self.contracts_call(ContractRequest::Accept(Box::new(h)))
                .await?;
            self.contracts.accepted.insert((id, era));
            tracing::info!(contract = id, era, "executor: contract key accepted");
            return Ok(true);
        }
        if code.key_request.is_none() && self.contracts.requested.due((id, era)) {
            let ContractResponse::Attested(att) = self
                .contracts_call(ContractRequest::Attest { chain })
                .await?
            else {
                return Err(Error::Enclave("no attestation".into()));
            };
            self.send_call(Call::Contracts(ContractCall::RequestKey {
                contract: id,
                era,
                attestation: codec::encode(&att),
            }))
            .await?;
        }
        Ok(false)
    }

    /// Forward secrecy, as a gatekeeper: destroy the root keys of eras no
    /// contract's latest checkpoint needs any more (before `era`, the one
    /// in force, and before the oldest era of a checkpoint still in use).
    async fn forget_past_roots(&mut self, era: u64) -> Result<()> {
        let mut floor = era;
        for c in self.client.contracts(None, Some(1_000)).await? {
            if c.applied > 0 {
                let cp = self.client.contract_checkpoint(c.id).await?;
                floor = floor.min(cp.map_or(0, |cp| cp.era));
            }
        }
        if floor <= self.contracts.forgot_root_below {
            return Ok(());
        }
        let ContractResponse::Root { sealed, .. } = self
            .contracts_call(ContractRequest::Forget { before: floor })
            .await?
        else {
            return Err(Error::Enclave("no root key after forgetting".into()));
        };
        self.keep_root(sealed)?;
        self.contracts.forgot_root_below = floor;
        tracing::info!(
            before = floor,
            "gatekeeper: root keys of past eras destroyed"
        );
        Ok(())
    }

    /// A checkpoint too large for a transaction: its ciphertext stored as
    /// blobs of at most [`PART_BYTES`], the checkpoint naming them (the
    /// enclave's signature covers the whole ciphertext's hash either way).
    async fn store_parts(&self, mut cp: Checkpoint) -> Result<Checkpoint> {
        if cp.ciphertext.len() as u64 <= self.contracts.max_checkpoint {
            return Ok(cp);
        }
        let mut blobs = Vec::new();
        for part in cp.ciphertext.chunks(PART_BYTES) {
            blobs.push(proctor_rpc::upload_blob(&self.client, part).await?);
        }
        cp.parts = Some(Parts {
            blobs,
            hash: Hash::of(&cp.ciphertext),
            len: cp.ciphertext.len() as u64,
        });
        cp.ciphertext = vec![];
        Ok(cp)
    }

    /// A checkpoint in blobs, with its ciphertext fetched and checked.
    async fn fetch_parts(&self, mut cp: Checkpoint) -> Result<Checkpoint> {
        let Some(parts) = cp.parts.take() else {
            return Ok(cp);
        };
        let mut ciphertext = Vec::with_capacity(parts.len.min(1 << 30) as usize);
        for h in &parts.blobs {
            ciphertext.extend(proctor_rpc::download_blob(&self.client, *h).await?);
            if ciphertext.len() as u64 > parts.len {
                break;
            }
        }
        if ciphertext.len() as u64 != parts.len || Hash::of(&ciphertext) != parts.hash {
            return Err(Error::Enclave(
                "the checkpoint's blobs do not make up its ciphertext".into(),
            ));
        }
        cp.ciphertext = ciphertext;
        Ok(cp)
    }

    async fn execute(&mut self, chain: Hash, every: u64, c: &ContractInfo) -> Result<()> {
        let id = c.id;
        if !self.contracts.loaded.contains_key(&id) {
            let checkpoint = match self.client.contract_checkpoint(id).await? {
                Some(cp) if cp.parts.is_some() => match self.fetch_parts(cp).await {
                    Ok(cp) => Some(cp),
                    // Every command stays on chain: the state can always
                    // be rebuilt from the start.
                    Err(e) => {
                        tracing::warn!(
                            contract = id,
                            "the checkpoint's blobs are unavailable ({e}): replaying from the start"
                        );
                        None
                    }
                },
                cp => cp,
            };
            let era = checkpoint.as_ref().map_or(c.era, |cp| cp.era);
            if !self.has_key(chain, id, era).await? {
                return Ok(());
            }
            let code = self.client.contract_code(id, None).await?.code;
            let proof = match checkpoint.as_ref().map(|c| c.applied) {
                Some(n) if n > 0 => Some(self.command_proof(id, n).await?),
                _ => None,
            };
            let ContractResponse::Loaded { applied, .. } = self
                .contracts_call(ContractRequest::Load {
                    contract: id,
                    code,
                    checkpoint,
                    proof,
                })
                .await?
            else {
                return Err(Error::Enclave("contract not loaded".into()));
            };
            self.contracts.loaded.insert(id, applied);
            self.contracts.checkpointed.insert(id, (applied, era));
        }
        // Receipts now in a block are confirmed; late ones go out again.
        self.contracts
            .unconfirmed
            .retain(|(cid, seq), _| *cid != id || *seq > c.applied);
        let late: Vec<_> = self
            .contracts
            .unconfirmed
            .iter_mut()
            .filter(|((cid, _), (_, _, at))| *cid == id && at.elapsed() > RESEND_AFTER)
            .map(|(_, (r, s, at))| {
                *at = Instant::now();
                (r.clone(), *s)
            })
            .collect();
        for (receipt, signature) in late {
            self.send_call(Call::Contracts(ContractCall::Receipt {
                receipt,
                signature,
            }))
            .await?;
        }
        let mut applied = self.contracts.loaded[&id];
        let until = c.commands.min(applied + COMMANDS_PER_POLL);
        while applied < until {
            let seq = applied + 1;
            let cmd = self.client.contract_command(id, seq).await?;
            // Sealed under its era's key: wait for it.
            if !self.has_key(chain, id, cmd.era).await? {
                break;
            }
            let (receipt, signature) = self.apply(id, seq, cmd.input()).await?;
            applied = seq;
            self.contracts.loaded.insert(id, applied);
            // A replay after a restart: the chain has this receipt already.
            if seq > c.applied {
                self.send_call(Call::Contracts(ContractCall::Receipt {
                    receipt: receipt.clone(),
                    signature,
                }))
                .await?;
                self.contracts
                    .unconfirmed
                    .insert((id, seq), (receipt, signature, Instant::now()));
            }
        }
        // Every `every` commands, and once under each new era's key.
        let (last, last_era) = self
            .contracts
            .checkpointed
            .get(&id)
            .copied()
            .unwrap_or((0, 0));
        let due = applied >= last + every || (last_era < c.era && applied > 0);
        if applied == c.applied && due && self.has_key(chain, id, c.era).await? {
            let ContractResponse::Checkpoint {
                checkpoint,
                signature,
            } = self
                .contracts_call(ContractRequest::Checkpoint { contract: id })
                .await?
            else {
                return Err(Error::Enclave("no checkpoint".into()));
            };
            let era = checkpoint.era;
            let checkpoint = self.store_parts(checkpoint).await?;
            self.send_call(Call::Contracts(ContractCall::Checkpoint {
                checkpoint,
                executor: self.info.identity,
                signature,
            }))
            .await?;
            self.contracts.checkpointed.insert(id, (applied, era));
            tracing::info!(contract = id, applied, era, "executor: checkpoint posted");
        }
        // Forward secrecy, as an executor: once the chain holds a
        // checkpoint under the current era's key, the past keys go.
        let forgot = self.contracts.forgot.get(&id).copied().unwrap_or(0);
        if self.contracts.forward_secrecy
            && forgot < c.era
            && self.contracts.checkpointed.get(&id).map(|x| x.1) == Some(c.era)
            && self
                .client
                .contract_checkpoint(id)
                .await?
                .is_some_and(|cp| cp.era == c.era)
        {
            self.contracts_call(ContractRequest::ForgetContract {
                contract: id,
                before: c.era,
            })
            .await?;
            self.contracts
                .accepted
                .retain(|(i, e)| *i != id || *e >= c.era);
            self.contracts.forgot.insert(id, c.era);
            tracing::info!(
                contract = id,
                before = c.era,
                "executor: past keys destroyed"
            );
        }
        Ok(())
    }
}
