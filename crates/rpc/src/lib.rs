//! The node's JSON-RPC 2.0 API: types, the method table (one trait from which
//! jsonrpsee derives both the server and a typed client), and error codes.
//!
//! Conventions:
//! - Hashes and keys are lowercase hex, addresses bech32m (`prc1...`),
//!   amounts JSON integers in base units.
//! - Binary consensus objects (signed transactions, PoUW proofs, blobs) travel
//!   as hex of their borsh encoding, so what is signed is exactly what is sent.
//! - Every error has a stable numeric code ([`codes`]) and a message that says
//!   what was wrong; validation errors reuse the state machine's and
//!   consensus's own codes (1xxx transactions, 2xxx blocks).
//! - Methods are served over HTTP and WebSocket on the same port; WebSocket
//!   clients can subscribe to new heads (`proctor_subscribeNewHeads`).
#![forbid(unsafe_code)]

use jsonrpsee::core::{ClientError, SubscriptionResult};
use jsonrpsee::proc_macros::rpc;
use jsonrpsee::types::ErrorObjectOwned;
use proctor_primitives::{Address, Amount, Hash, Height, PublicKey, Timestamp};
use proctor_state::{EnclaveRecord, Event, Receipt};
use serde::{Deserialize, Serialize};

pub use jsonrpsee;

/// Stable error codes of the RPC layer (besides 1xxx/2xxx validation codes).
pub mod codes {
    /// A parameter could not be parsed (bad hex, bad encoding).
    pub const INVALID_PARAMS: i32 = -32602;
    /// The requested object does not exist.
    pub const NOT_FOUND: i32 = 4004;
    /// The mempool is full; retry later or pay a higher fee.
    pub const MEMPOOL_FULL: i32 = 4029;
    /// The transaction is already pending.
    pub const ALREADY_PENDING: i32 = 4009;
    /// The work template is unknown or stale (a new block arrived).
    pub const STALE_TEMPLATE: i32 = 4010;
    /// A block's parent is unknown to this node.
    pub const UNKNOWN_PARENT: i32 = 4011;
    /// A reorganization would revert blocks past the finality depth.
    pub const REORG_TOO_DEEP: i32 = 4012;
    /// A blob is larger than the node accepts.
    pub const TOO_LARGE: i32 = 4013;
    /// The node runs without peer-to-peer networking.
    pub const NO_NETWORK: i32 = 4030;
    /// The connection sent more requests than the node serves per second.
    pub const RATE_LIMITED: i32 = 4290;
    /// An `admin_*` method was called without the node's admin token.
    pub const UNAUTHORIZED: i32 = 4031;
    /// Internal error (storage); the message says more.
    pub const INTERNAL: i32 = 5000;
}

/// Builds an error object.
pub fn error(code: i32, message: impl Into<String>) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(code, message.into(), None::<()>)
}

/// `e` with its `data` naming `input` instead.
pub fn for_input(e: ErrorObjectOwned, input: &str) -> ErrorObjectOwned {
    error_in(e.code(), e.message(), input)
}

/// Builds an error object whose `data` names the input that failed:
/// `{"input": "hash"}` (a parameter's name, as in `rpc.discover`).
pub fn error_in(code: i32, message: impl Into<String>, input: &str) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(
        code,
        message.into(),
        Some(serde_json::json!({ "input": input })),
    )
}

/// Chain identity and parameters a client needs.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChainInfo {
    pub chain_id: String,
    pub genesis_hash: Hash,
    pub min_fee: Amount,
    pub block_reward: Amount,
    pub target_block_ms: u64,
    pub filler_module: Hash,
    pub registration_blocks: u64,
    /// Smallest stake a new enclave registration must lock.
    pub min_stake: Amount,
    pub finality_depth: u64,
    pub allow_sim_quotes: bool,
    /// The compute market's fees and limits (clients compute a job's escrow from them).
    pub market: proctor_state::jobs::MarketParams,
}

/// The head of the chain.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct HeadInfo {
    pub height: Height,
    pub hash: Hash,
    pub parent: Hash,
    pub timestamp: Timestamp,
    /// Root of the node's current state (equals the head block's state root).
    pub state_root: Hash,
    pub difficulty: u64,
    /// Decimal string: may exceed 2^64.
    pub total_difficulty: String,
}

/// Total supply at the head: every balance plus every locked stake.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SupplyInfo {
    pub height: Height,
    pub hash: Hash,
    pub total_supply: Amount,
}

/// A connected peer.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PeerInfo {
    /// libp2p peer id (base58).
    pub id: String,
    /// Where it listens, if known (multiaddr).
    pub address: Option<String>,
    /// Misbehaviour points; the node bans a peer at 100.
    pub points: u32,
}

/// A banned peer.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct BannedPeer {
    pub id: String,
    pub reason: String,
    /// Seconds until the ban ends; null: until an operator lifts it.
    pub seconds_left: Option<u64>,
}

/// The node's peer-to-peer view.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct NetInfo {
    pub peer_id: String,
    pub listen: Vec<String>,
    pub peers: Vec<PeerInfo>,
    pub banned: Vec<BannedPeer>,
    /// Peers whose addresses the node knows.
    pub known: usize,
    /// Blocks waiting for their parent.
    pub orphans: usize,
}

/// The proof of useful work of a block, as shown to users.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PouwInfo {
    pub enclave: PublicKey,
    pub module: Hash,
    pub difficulty: u64,
    /// Instructions the task had executed when it won.
    pub instructions: u64,
    pub slice: u64,
    pub counter: u64,
}

/// A block.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct BlockInfo {
    pub height: Height,
    pub hash: Hash,
    pub parent: Hash,
    pub timestamp: Timestamp,
    pub state_root: Hash,
    pub tx_root: Hash,
    pub difficulty: u64,
    pub miner: Address,
    pub transactions: Vec<Hash>,
    /// Absent only for the genesis block.
    pub pouw: Option<PouwInfo>,
}

/// An account.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccountInfo {
    pub address: Address,
    pub balance: Amount,
    /// Nonce of the account's next transaction (on chain).
    pub nonce: u64,
    /// Nonce to use for a new transaction, counting ones pending in the mempool.
    pub next_nonce: u64,
}

/// Where a transaction is.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum TxStatus {
    Pending {
        hash: Hash,
    },
    Included {
        hash: Hash,
        block: Hash,
        height: Height,
        fee: Amount,
        events: Vec<Event>,
    },
    /// Admitted, then found invalid when a block was built (the state changed).
    Dropped {
        hash: Hash,
        code: i32,
        reason: String,
    },
    Unknown {
        hash: Hash,
    },
}

impl TxStatus {
    pub fn from_receipt(block: Hash, r: Receipt) -> TxStatus {
        TxStatus::Included {
            hash: r.tx,
            block,
            height: r.height,
            fee: r.fee,
            events: r.events,
        }
    }
}

/// An enclave's registration with the quote it registered with, so that a
/// client can check the binding of its keys itself instead of taking the
/// node's word ([`verify_enclave_quote`]).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct EnclaveQuote {
    pub identity: PublicKey,
    pub encryption_key: proctor_primitives::EncryptionKey,
    pub operator: Address,
    pub expires_at: Height,
    /// Hex of the borsh-encoded quote (with its collateral, for DCAP).
    pub quote: String,
    /// Timestamp of the block (or genesis) that accepted the quote: the
    /// time it is verified at.
    pub quoted_at_ms: Timestamp,
    /// Registered in the genesis (its quote binds the genesis's base hash).
    pub in_genesis: bool,
}

/// Checks an enclave's registration quote against `genesis`'s trust policy
/// (its simulated attestation root or DCAP policy), at the time the chain
/// accepted it, and that the quote's report data binds exactly this
/// identity, encryption key, operator, chain and expiry. Returns the
/// encryption key it vouches for: the only key a requester should wrap a
/// job's content key to.
pub fn verify_enclave_quote(
    genesis: &proctor_state::Genesis,
    q: &EnclaveQuote,
) -> Result<proctor_primitives::EncryptionKey, String> {
    use proctor_tee::AttestationVerifier;
    let quote: proctor_tee::Quote =
        from_hex("enclave quote", &q.quote).map_err(|e| e.message().to_string())?;
    let p = &genesis.params;
    let policy = proctor_tee::TrustPolicy {
        sim_root: if p.allow_sim_quotes {
            p.sim_attestation_root
        } else {
            None
        },
        dcap: p.dcap.clone(),
    };
    let claims = policy
        .verify(&quote, q.quoted_at_ms / 1000)
        .map_err(|e| format!("enclave {}: its quote does not verify: {e}", q.identity))?;
    let chain = if q.in_genesis {
        genesis.base_hash()
    } else {
        genesis.hash()
    };
    let expected = proctor_tee::registration_report_data(
        &q.identity,
        &q.encryption_key,
        &q.operator,
        &chain,
        q.expires_at,
    );
    if claims.report_data != expected {
        return Err(format!(
            "enclave {}: its quote does not bind this encryption key, operator, chain and expiry",
            q.identity
        ));
    }
    Ok(q.encryption_key)
}

/// A contract's code and its key exchange (opaque to the chain).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ContractCode {
    #[serde(with = "proctor_primitives::codec::hex_bytes")]
    pub code: Vec<u8>,
    /// The executor's attestation, while it waits for the key.
    #[serde(default, with = "opt_hex")]
    pub key_request: Option<Vec<u8>>,
    /// The key sealed to the executor by the gatekeeper.
    #[serde(default, with = "opt_hex")]
    pub key_grant: Option<Vec<u8>>,
    /// Its command key as the gatekeeper signed it (what an emitting
    /// contract's enclave checks before sealing a message to it).
    #[serde(default)]
    pub signed_key: Option<proctor_state::contracts::ContractPublicKey>,
}

/// A command's state record and its proof under the state root of the
/// head at `height` (what an executor's light client checks).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct CommandProofInfo {
    pub height: Height,
    /// The encoded state record, hex.
    #[serde(with = "proctor_primitives::codec::hex_bytes")]
    pub record: Vec<u8>,
    pub proof: proctor_state::smt::SmtProof,
}

/// An elected gatekeeper's root key exchange.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct RootExchange {
    #[serde(default, with = "opt_hex")]
    pub request: Option<Vec<u8>>,
    #[serde(default, with = "opt_hex")]
    pub grant: Option<Vec<u8>>,
}

/// Optional bytes as optional hex.
mod opt_hex {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) => s.serialize_some(&hex::encode(b)),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|h| hex::decode(h).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// One page of a requester's jobs, newest first.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct JobsPage {
    pub jobs: Vec<proctor_state::jobs::JobRecord>,
    /// Pass as `before` for the next page; null when there are no older jobs.
    pub next: Option<u64>,
}

/// Job ids a single `jobs` call looks at, at most: a page may hold fewer
/// jobs than asked for (then `next` says where to go on), but no call scans
/// the whole market under the chain's lock.
pub const JOBS_SCAN: u64 = 10_000;

/// Work for a miner: the template to draw the lottery for.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct WorkInfo {
    /// T = H(template).
    pub template_hash: Hash,
    pub height: Height,
    pub parent: Hash,
    pub difficulty: u64,
    pub timestamp: Timestamp,
    /// Module the chain accepts as useful work (the filler task).
    pub filler_module: Hash,
    /// The whole template, hex of its borsh encoding: the enclave hashes it
    /// itself and reads the parent its filler input derives from.
    pub template: String,
}

impl WorkInfo {
    /// The template, decoded and checked against `template_hash`.
    pub fn decode_template(&self) -> Result<proctor_state::Template, String> {
        let t: proctor_state::Template =
            from_hex("template", &self.template).map_err(|e| e.message().to_string())?;
        if t.hash() != self.template_hash {
            return Err(format!(
                "the node's template hashes to {}, not {}",
                t.hash(),
                self.template_hash
            ));
        }
        Ok(t)
    }
}

pub mod openrpc;
pub mod pages;

#[rpc(server, client, namespace = "proctor")]
pub trait Api {
    /// Chain identity and parameters.
    #[method(name = "chainInfo")]
    async fn chain_info(&self) -> Result<ChainInfo, ErrorObjectOwned>;

    /// The current head.
    #[method(name = "head")]
    async fn head(&self) -> Result<HeadInfo, ErrorObjectOwned>;

    /// A canonical block by height (decimal) or hash (hex).
    /// Errors: 4004.
    #[method(name = "block")]
    async fn block(&self, id: String) -> Result<BlockInfo, ErrorObjectOwned>;

    /// An account's balance and nonces.
    #[method(name = "account")]
    async fn account(&self, address: Address) -> Result<AccountInfo, ErrorObjectOwned>;

    /// Submits a signed transaction (hex of its borsh encoding); returns its hash.
    /// Errors: 4009, 4029, 4013; and the transaction's own codes (1001-1299, docs/rpc.md).
    #[method(name = "sendTransaction")]
    async fn send_transaction(&self, tx: String) -> Result<Hash, ErrorObjectOwned>;

    /// Where a transaction is.
    /// Errors: 4004.
    #[method(name = "transaction")]
    async fn transaction(&self, hash: Hash) -> Result<TxStatus, ErrorObjectOwned>;

    /// An enclave's registration, if any.
    #[method(name = "enclave")]
    async fn enclave(&self, identity: PublicKey)
    -> Result<Option<EnclaveRecord>, ErrorObjectOwned>;

    /// An enclave's registration quote, to verify with [`verify_enclave_quote`].
    /// Errors: 4004.
    #[method(name = "enclaveQuote")]
    async fn enclave_quote(&self, identity: PublicKey) -> Result<EnclaveQuote, ErrorObjectOwned>;

    /// The chain's genesis (its hash is `chainInfo`'s `genesis_hash`).
    #[method(name = "genesis")]
    async fn genesis(&self) -> Result<proctor_state::Genesis, ErrorObjectOwned>;

    /// A content-addressed blob (task module), hex.
    /// Errors: 4004, 4013.
    #[method(name = "blob")]
    async fn blob(&self, hash: Hash) -> Result<String, ErrorObjectOwned>;

    /// Stores a blob (hex, at most 12 MiB); returns its hash.
    /// Errors: 4013.
    #[method(name = "putBlob")]
    async fn put_blob(&self, data: String) -> Result<Hash, ErrorObjectOwned>;

    /// Joins stored blobs (chunks, in order) into one blob of at most 64 MiB;
    /// returns its hash. Large uploads go as chunks (`putBlob`) and this.
    /// Errors: 4004, 4013.
    #[method(name = "composeBlob")]
    async fn compose_blob(&self, chunks: Vec<Hash>) -> Result<Hash, ErrorObjectOwned>;

    /// A blob's size in bytes.
    /// Errors: 4004.
    #[method(name = "blobSize")]
    async fn blob_size(&self, hash: Hash) -> Result<u64, ErrorObjectOwned>;

    /// Part of a blob, hex: `len` (at most 1 MiB) bytes from `offset`.
    /// Errors: 4004, 4013.
    #[method(name = "blobRange")]
    async fn blob_range(
        &self,
        hash: Hash,
        offset: u64,
        len: u64,
    ) -> Result<String, ErrorObjectOwned>;

    /// A job by id.
    /// Errors: 4004.
    #[method(name = "job")]
    async fn job(&self, id: u64) -> Result<proctor_state::jobs::JobRecord, ErrorObjectOwned>;

    /// Jobs of a requester, newest first: at most `limit` (default 100, at
    /// most 1,000) with ids below `before` (default: all), looking at no
    /// more than [`JOBS_SCAN`] ids; `next` continues the listing.
    #[method(name = "jobs")]
    async fn jobs(
        &self,
        requester: Address,
        limit: Option<u32>,
        before: Option<u64>,
    ) -> Result<JobsPage, ErrorObjectOwned>;

    /// Open jobs on the market (pending, then assigned or running), at most
    /// [`OPEN_JOBS`].
    #[method(name = "openJobs")]
    async fn open_jobs(&self) -> Result<Vec<proctor_state::jobs::JobRecord>, ErrorObjectOwned>;

    /// Jobs a worker's enclave should run now: assigned to it, key posted, not reported.
    #[method(name = "workerJobs")]
    async fn worker_jobs(
        &self,
        identity: PublicKey,
    ) -> Result<Vec<proctor_state::jobs::JobRecord>, ErrorObjectOwned>;

    /// An oracle request by id: its state, query, fee, and datagram once delivered.
    /// Errors: 4004.
    #[method(name = "oracleRequest")]
    async fn oracle_request(
        &self,
        id: u64,
    ) -> Result<proctor_state::oracle::OracleRequest, ErrorObjectOwned>;

    /// Oracle requests, newest first: at most `limit` (default 100, at most
    /// 1,000), only `requester`'s when given, looking at no more than
    /// 10,000 ids.
    #[method(name = "oracleRequests")]
    async fn oracle_requests(
        &self,
        requester: Option<Address>,
        limit: Option<u32>,
    ) -> Result<Vec<proctor_state::oracle::OracleRequest>, ErrorObjectOwned>;

    /// Oracle requests an enclave should serve now (assigned to it, pending).
    #[method(name = "oraclePending")]
    async fn oracle_pending(
        &self,
        identity: PublicKey,
    ) -> Result<Vec<proctor_state::oracle::OracleRequest>, ErrorObjectOwned>;

    /// The enclaves that serve oracle requests (a private request is sealed
    /// to one of them).
    #[method(name = "oracleProviders")]
    async fn oracle_providers(&self) -> Result<Vec<EnclaveRecord>, ErrorObjectOwned>;

    /// A confidential contract by id: owner, code hash, executor, command
    /// key, commands submitted and applied, state hash, last checkpoint.
    /// Errors: 4004.
    #[method(name = "contract")]
    async fn contract(
        &self,
        id: u64,
    ) -> Result<proctor_state::contracts::ContractInfo, ErrorObjectOwned>;

    /// Contracts, newest first: at most `limit` (default 100, at most
    /// 1,000), only those executed by `executor` when given, looking at no
    /// more than 10,000 ids.
    #[method(name = "contracts")]
    async fn contracts(
        &self,
        executor: Option<PublicKey>,
        limit: Option<u32>,
    ) -> Result<Vec<proctor_state::contracts::ContractInfo>, ErrorObjectOwned>;

    /// A contract's code and where the exchange of its key of `era` (by
    /// default the contract's current one) stands: what its executor and
    /// the gatekeepers act on. Errors: 4004.
    #[method(name = "contractCode")]
    async fn contract_code(
        &self,
        id: u64,
        era: Option<u64>,
    ) -> Result<ContractCode, ErrorObjectOwned>;

    /// Up to `count` (at most 512) canonical block headers from height
    /// `from`, each the hex of its borsh encoding (what a light client
    /// follows).
    #[method(name = "headers")]
    async fn headers(&self, from: Height, count: u32) -> Result<Vec<String>, ErrorObjectOwned>;

    /// Command `seq` of a contract as the head's state holds it, with its
    /// proof under the head's state root. Errors: 4004.
    #[method(name = "contractCommandProof")]
    async fn contract_command_proof(
        &self,
        id: u64,
        seq: u64,
    ) -> Result<CommandProofInfo, ErrorObjectOwned>;

    /// Key requests waiting for a gatekeeper's grant: `[contract, era]`
    /// pairs.
    #[method(name = "contractKeyRequests")]
    async fn contract_key_requests(&self) -> Result<Vec<(u64, u64)>, ErrorObjectOwned>;

    /// Command `seq` of a contract: sealed, with its receipt once applied.
    /// Errors: 4004.
    #[method(name = "contractCommand")]
    async fn contract_command(
        &self,
        id: u64,
        seq: u64,
    ) -> Result<proctor_state::contracts::CommandRecord, ErrorObjectOwned>;

    /// A contract's latest checkpoint (encrypted), or null.
    #[method(name = "contractCheckpoint")]
    async fn contract_checkpoint(
        &self,
        id: u64,
    ) -> Result<Option<proctor_state::contracts::Checkpoint>, ErrorObjectOwned>;

    /// Where an enclave's query port listens (its operator says, on chain),
    /// or null.
    #[method(name = "enclaveEndpoint")]
    async fn enclave_endpoint(
        &self,
        identity: PublicKey,
    ) -> Result<Option<String>, ErrorObjectOwned>;

    /// The gatekeepers (`members`, holding the root key) and the elected
    /// enclaves that do not hold it yet (`candidates`).
    #[method(name = "gatekeepers")]
    async fn gatekeepers(
        &self,
    ) -> Result<proctor_state::contracts::GatekeeperSet, ErrorObjectOwned>;

    /// An elected enclave's request for the root key and the key handed
    /// over to it (hex, opaque: enclaves check them).
    #[method(name = "rootExchange")]
    async fn root_exchange(&self, enclave: PublicKey) -> Result<RootExchange, ErrorObjectOwned>;

    /// Contracts whose command key no gatekeeper has published yet.
    #[method(name = "contractsAwaitingKey")]
    async fn contracts_awaiting_key(&self) -> Result<Vec<u64>, ErrorObjectOwned>;

    /// A worker's market offer and reputation.
    #[method(name = "offer")]
    async fn offer(
        &self,
        identity: PublicKey,
    ) -> Result<Option<proctor_state::jobs::WorkerOffer>, ErrorObjectOwned>;

    /// The template a miner should work on.
    #[method(name = "getWork")]
    async fn get_work(&self, miner: Address) -> Result<WorkInfo, ErrorObjectOwned>;

    /// Submits a winning proof (hex of its borsh encoding) for a template; returns the block hash.
    /// Errors: 4010; and block validity codes (2001-2022, docs/rpc.md).
    #[method(name = "submitWork")]
    async fn submit_work(&self, template: Hash, proof: String) -> Result<Hash, ErrorObjectOwned>;

    /// Total supply at the head.
    #[method(name = "supply")]
    async fn supply(&self) -> Result<SupplyInfo, ErrorObjectOwned>;

    /// Peers, bans and discovery state.
    /// Errors: 4030.
    #[method(name = "netInfo")]
    async fn net_info(&self) -> Result<NetInfo, ErrorObjectOwned>;

    /// New heads, as they are imported.
    #[subscription(name = "subscribeNewHeads" => "newHead", unsubscribe = "unsubscribeNewHeads", item = HeadInfo)]
    async fn subscribe_new_heads(&self) -> SubscriptionResult;
}

/// Methods that change the node rather than the chain. Each takes the
/// node's admin token first: the hex string in `admin.token` in the node's
/// directory, written when the node first starts and readable only by its
/// owner. A wrong or missing token gets [`codes::UNAUTHORIZED`].
#[rpc(server, client, namespace = "admin")]
pub trait Admin {
    /// Bans a peer (base58 id) until unbanned: its connections are closed and refused.
    /// Errors: 4031, 4030.
    #[method(name = "banPeer")]
    async fn ban_peer(
        &self,
        token: String,
        peer: String,
        reason: Option<String>,
    ) -> Result<(), ErrorObjectOwned>;

    /// Lifts a ban; returns whether the peer was banned.
    /// Errors: 4031, 4030.
    #[method(name = "unbanPeer")]
    async fn unban_peer(&self, token: String, peer: String) -> Result<bool, ErrorObjectOwned>;
}

/// Most jobs `proctor_openJobs` returns.
pub const OPEN_JOBS: usize = 1_000;

/// The file in a node's directory that holds its admin token.
pub const ADMIN_TOKEN_FILE: &str = "admin.token";

/// Hex of the borsh encoding.
pub fn to_hex<T: borsh::BorshSerialize>(v: &T) -> String {
    hex::encode(proctor_primitives::codec::encode(v))
}

/// Decodes hex of a borsh encoding, with an error that says what was wrong.
pub fn from_hex<T: borsh::BorshDeserialize>(
    what: &'static str,
    s: &str,
) -> Result<T, ErrorObjectOwned> {
    let bytes = hex::decode(s).map_err(|e| {
        error_in(
            codes::INVALID_PARAMS,
            format!("{what} is not valid hex: {e}"),
            what,
        )
    })?;
    proctor_primitives::codec::decode(what, &bytes)
        .map_err(|e| error_in(codes::INVALID_PARAMS, e.to_string(), what))
}

/// An HTTP client for `url`.
pub fn http_client(
    url: &str,
) -> Result<jsonrpsee::http_client::HttpClient, jsonrpsee::core::ClientError> {
    jsonrpsee::http_client::HttpClientBuilder::default()
        .request_timeout(std::time::Duration::from_secs(30))
        // Blobs travel as hex: room for the largest single upload (12 MiB).
        .max_request_size(32 << 20)
        .max_response_size(32 << 20)
        .build(url)
}

/// Size of the chunks blobs travel in over RPC.
pub const BLOB_CHUNK: usize = 1 << 20;

/// Uploads a blob of any size (up to the node's 64 MiB limit): in one call
/// when small, else as chunks joined on the node. Returns its hash, checked
/// against the bytes. The node joins each chunk once (so a list cannot
/// inflate storage), and chunk `i` is `BLOB_CHUNK - i` bytes long: chunks of
/// different lengths never repeat, even in a file of zeros.
pub async fn upload_blob(
    c: &jsonrpsee::http_client::HttpClient,
    bytes: &[u8],
) -> Result<Hash, ClientError> {
    upload_blob_with(c, bytes, &mut |_, _| {}).await
}

/// [`upload_blob`], calling `progress(done, total)` (bytes) after each chunk.
pub async fn upload_blob_with(
    c: &jsonrpsee::http_client::HttpClient,
    bytes: &[u8],
    progress: &mut (dyn FnMut(u64, u64) + Send),
) -> Result<Hash, ClientError> {
    let expected = Hash::of(bytes);
    let total = bytes.len() as u64;
    let h = if bytes.len() <= BLOB_CHUNK {
        c.put_blob(hex::encode(bytes)).await?
    } else {
        let mut chunks = Vec::new();
        let mut rest = bytes;
        while !rest.is_empty() {
            let len = (BLOB_CHUNK - chunks.len()).min(rest.len());
            let (part, tail) = rest.split_at(len);
            chunks.push(c.put_blob(hex::encode(part)).await?);
            rest = tail;
            progress(total - rest.len() as u64, total);
        }
        c.compose_blob(chunks).await?
    };
    if h != expected {
        return Err(ClientError::Custom(format!(
            "the node stored the blob under {h}, not its hash {expected}"
        )));
    }
    Ok(h)
}

/// Downloads a blob of any size in 1 MiB ranges, checked against its hash.
pub async fn download_blob(
    c: &jsonrpsee::http_client::HttpClient,
    hash: Hash,
) -> Result<Vec<u8>, ClientError> {
    download_blob_with(c, hash, &mut |_, _| {}).await
}

/// [`download_blob`], calling `progress(done, total)` (bytes) after each range.
pub async fn download_blob_with(
    c: &jsonrpsee::http_client::HttpClient,
    hash: Hash,
    progress: &mut (dyn FnMut(u64, u64) + Send),
) -> Result<Vec<u8>, ClientError> {
    let size = c.blob_size(hash).await?;
    let mut out = Vec::with_capacity(size as usize);
    while (out.len() as u64) < size {
        let part = c
            .blob_range(hash, out.len() as u64, BLOB_CHUNK as u64)
            .await?;
        let bytes = hex::decode(part)
            .map_err(|e| ClientError::Custom(format!("blob range is not hex: {e}")))?;
        if bytes.is_empty() {
            break;
        }
        out.extend_from_slice(&bytes);
        progress(out.len() as u64, size);
    }
    if Hash::of(&out) != hash {
        return Err(ClientError::Custom(format!(
            "blob {hash} arrived corrupted or incomplete"
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proctor_state::{GenesisEnclave, testkit};
    use proctor_tee::sim::{SimAttestationRoot, SimPlatform, sim_measurement};
    use proctor_tee::{Platform, registration_report_data};

    fn platform(name: &str, root: u8) -> SimPlatform {
        let dir = std::env::temp_dir().join(format!("proctor-rpc-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        SimPlatform::open(&dir, SimAttestationRoot::from_secret(&[root; 32])).unwrap()
    }

    /// What an honest node serves for a genesis enclave and for one that
    /// registered by transaction, and a node that lies about any part of it:
    /// the encryption key (its own, to read the job), the operator, the
    /// expiry, the enclave's root (a simulated enclave it made up), or
    /// where the quote came from. Only the honest answers give a key.
    #[test]
    fn a_client_wraps_keys_only_to_what_the_quote_vouches_for() {
        let ks = testkit::keys(2);
        let root = SimAttestationRoot::from_secret(&[5; 32]).public();
        let params = testkit::params(Some(root), sim_measurement());
        let mut g = testkit::genesis(&ks, 1_000, params);
        let (first, later) = (platform("first", 5), platform("later", 5));
        let operator = ks[0].public().address();
        let quote_for = |p: &SimPlatform, chain: &Hash, expires_at| {
            let rd = registration_report_data(
                &p.identity(),
                &p.encryption_key(),
                &operator,
                chain,
                expires_at,
            );
            p.quote(&rd).unwrap()
        };
        g.enclaves = vec![GenesisEnclave {
            operator,
            identity: first.identity(),
            encryption_key: first.encryption_key(),
            expires_at: 100,
            quote: quote_for(&first, &g.base_hash(), 100),
            stake: Amount::ZERO,
        }];
        let served = |p: &SimPlatform, chain: &Hash, in_genesis| EnclaveQuote {
            identity: p.identity(),
            encryption_key: p.encryption_key(),
            operator,
            expires_at: 100,
            quote: to_hex(&quote_for(p, chain, 100)),
            quoted_at_ms: g.timestamp,
            in_genesis,
        };
        let genesis_enclave = served(&first, &g.base_hash(), true);
        let registered = served(&later, &g.hash(), false);
        for honest in [&genesis_enclave, &registered] {
            assert_eq!(
                verify_enclave_quote(&g, honest),
                Ok(honest.encryption_key),
                "{}",
                honest.identity
            );
        }

        let node_key = proctor_primitives::EncryptionKey([66; 32]);
        let made_up = platform("made-up", 9);
        let lies: Vec<(&str, EnclaveQuote)> = vec![
            (
                "encryption key",
                EnclaveQuote {
                    encryption_key: node_key,
                    ..registered.clone()
                },
            ),
            (
                "operator",
                EnclaveQuote {
                    operator: ks[1].public().address(),
                    ..registered.clone()
                },
            ),
            (
                "expiry",
                EnclaveQuote {
                    expires_at: 101,
                    ..registered.clone()
                },
            ),
            (
                "origin",
                EnclaveQuote {
                    in_genesis: true,
                    ..registered.clone()
                },
            ),
            ("root", served(&made_up, &g.hash(), false)),
            (
                "quote",
                EnclaveQuote {
                    quote: "00".into(),
                    ..registered.clone()
                },
            ),
        ];
        for (what, lie) in lies {
            assert!(
                verify_enclave_quote(&g, &lie).is_err(),
                "a lie about the {what} passed"
            );
        }
        // A chain that does not accept simulated quotes accepts none of them.
        let mut strict = g.clone();
        strict.params.allow_sim_quotes = false;
        assert!(verify_enclave_quote(&strict, &registered).is_err());
    }
}
