//! Golden fixtures of the consensus encodings: a sample of every `Call`,
//! `Event` and state `Record`, a block header and a signed block, each as
//! the hex of its borsh bytes and its hash, checked in under
//! `tests/golden/`. A change to any encoding (a field added, a variant
//! reordered, a tag renamed) fails this test and shows up as a diff of those
//! files: an encoding changes only on purpose. To accept a change, run with
//! `PROCTOR_BLESS=1` and commit the new files with the change that made them.

use proctor_market::reputation::Reputation;
use proctor_market::settle::FeeSplit;
use proctor_primitives::{Address, Amount, EncryptionKey, Hash, Keypair, PublicKey};
use proctor_state::jobs::{
    Assignment, JobRecord, JobRefusal, JobSpec, JobState, MarketIndex, RefusalReason,
    RequesterUsage, ResultReport, WorkerOffer, WrappedKey, job_binding,
};
use proctor_state::*;
use proctor_state::{accounts, contracts, governance, market, oracle, registry, rewards};
use proctor_tee::Quote;
use proctor_tee::quote::SimQuote;
use std::path::PathBuf;

fn key(i: u8) -> Keypair {
    Keypair::from_secret(&[i; 32])
}
fn pk(i: u8) -> PublicKey {
    key(i).public()
}
fn addr(i: u8) -> Address {
    Address([i; 20])
}
fn h(i: u8) -> Hash {
    Hash([i; 32])
}

/// Every variant's name: exhaustive, so a new variant does not compile
/// until it has a name (and the check below wants a sample of it).
fn call_name(c: &Call) -> &'static str {
    match c {
        Call::Accounts(accounts::Call::Transfer { .. }) => "transfer",
        Call::Registry(registry::Call::RegisterEnclave { .. }) => "register_enclave",
        Call::Registry(registry::Call::DeregisterEnclave { .. }) => "deregister_enclave",
        Call::Registry(registry::Call::WithdrawStake { .. }) => "withdraw_stake",
        Call::Governance(governance::Call::UpdateMeasurements { .. }) => "update_measurements",
        Call::Market(market::Call::SetOffer { .. }) => "set_offer",
        Call::Market(market::Call::RegisterModule { .. }) => "register_module",
        Call::Market(market::Call::SubmitJob { .. }) => "submit_job",
        Call::Market(market::Call::PostKeys { .. }) => "post_keys",
        Call::Market(market::Call::SubmitResult { .. }) => "submit_result",
        Call::Market(market::Call::RefuseJob { .. }) => "refuse_job",
        Call::Market(market::Call::CancelJob { .. }) => "cancel_job",
        Call::Oracle(oracle::Call::Request { .. }) => "oracle_request",
        Call::Oracle(oracle::Call::Deliver { .. }) => "oracle_deliver",
        Call::Oracle(oracle::Call::Cancel { .. }) => "oracle_cancel",
        Call::Contracts(contracts::Call::Deploy { .. }) => "contracts_deploy",
        Call::Contracts(contracts::Call::PublishKey { .. }) => "contracts_publish_key",
        Call::Contracts(contracts::Call::RequestKey { .. }) => "contracts_request_key",
        Call::Contracts(contracts::Call::GrantKey { .. }) => "contracts_grant_key",
        Call::Contracts(contracts::Call::Command { .. }) => "contracts_command",
        Call::Contracts(contracts::Call::Receipt { .. }) => "contracts_receipt",
        Call::Contracts(contracts::Call::Checkpoint { .. }) => "contracts_checkpoint",
        Call::Contracts(contracts::Call::SetEndpoint { .. }) => "contracts_set_endpoint",
        Call::Contracts(contracts::Call::Heartbeat { .. }) => "contracts_heartbeat",
        Call::Contracts(contracts::Call::ElectGatekeeper { .. }) => "contracts_elect_gatekeeper",
        Call::Contracts(contracts::Call::RequestRoot { .. }) => "contracts_request_root",
        Call::Contracts(contracts::Call::HandOverRoot { .. }) => "contracts_hand_over_root",
        Call::Contracts(contracts::Call::ConfirmReady { .. }) => "contracts_confirm_ready",
        Call::Contracts(contracts::Call::RetireGatekeeper { .. }) => "contracts_retire_gatekeeper",
        Call::Contracts(contracts::Call::ForwardSecrecy { .. }) => "contracts_forward_secrecy",
        Call::Contracts(contracts::Call::CommitRotation { .. }) => "contracts_commit_rotation",
    }
}

fn event_name(e: &Event) -> &'static str {
    match e {
        Event::Accounts(accounts::Event::Transfer { .. }) => "transfer",
        Event::Accounts(accounts::Event::FeePaid { .. }) => "fee_paid",
        Event::Registry(registry::Event::EnclaveRegistered { .. }) => "enclave_registered",
        Event::Registry(registry::Event::EnclaveDeregistered { .. }) => "enclave_deregistered",
        Event::Registry(registry::Event::StakeWithdrawn { .. }) => "stake_withdrawn",
        Event::Governance(governance::Event::MeasurementsUpdated { .. }) => "measurements_updated",
        Event::Rewards(rewards::Event::BlockReward { .. }) => "block_reward",
        Event::Market(market::Event::OfferSet { .. }) => "offer_set",
        Event::Market(market::Event::ModuleRegistered { .. }) => "module_registered",
        Event::Market(market::Event::JobSubmitted { .. }) => "job_submitted",
        Event::Market(market::Event::JobAssigned { .. }) => "job_assigned",
        Event::Market(market::Event::JobKeysPosted { .. }) => "job_keys_posted",
        Event::Market(market::Event::JobResult { .. }) => "job_result",
        Event::Market(market::Event::JobRefused { .. }) => "job_refused",
        Event::Market(market::Event::JobRequeued { .. }) => "job_requeued",
        Event::Market(market::Event::JobEnded { .. }) => "job_ended",
        Event::Market(market::Event::JobPaid { .. }) => "job_paid",
        Event::Market(market::Event::JobFees { .. }) => "job_fees",
        Event::Market(market::Event::WorkerSlashed { .. }) => "worker_slashed",
        Event::Oracle(oracle::Event::OracleRequested { .. }) => "oracle_requested",
        Event::Oracle(oracle::Event::OracleDelivered { .. }) => "oracle_delivered",
        Event::Oracle(oracle::Event::OracleCallback { .. }) => "oracle_callback",
        Event::Oracle(oracle::Event::OracleCancelled { .. }) => "oracle_cancelled",
        Event::Oracle(oracle::Event::OracleLateDelivery { .. }) => "oracle_late_delivery",
        Event::Oracle(oracle::Event::OracleExpired { .. }) => "oracle_expired",
        Event::Contracts(e) => match e {
            contracts::Event::ContractDeployed { .. } => "contract_deployed",
            contracts::Event::ContractKeyPublished { .. } => "contract_key_published",
            contracts::Event::ContractKeyRequested { .. } => "contract_key_requested",
            contracts::Event::ContractKeyGranted { .. } => "contract_key_granted",
            contracts::Event::ContractCommand { .. } => "contract_command",
            contracts::Event::ContractApplied { .. } => "contract_applied",
            contracts::Event::ContractEmitted { .. } => "contract_emitted",
            contracts::Event::ContractEgressDropped { .. } => "contract_egress_dropped",
            contracts::Event::ContractCheckpointed { .. } => "contract_checkpointed",
            contracts::Event::ContractEndpoint { .. } => "contract_endpoint",
            contracts::Event::ContractReassigned { .. } => "contract_reassigned",
            contracts::Event::ContractHeartbeat { .. } => "contract_heartbeat",
            contracts::Event::ContractUnresponsive { .. } => "contract_unresponsive",
            contracts::Event::ContractOracleDropped { .. } => "contract_oracle_dropped",
            contracts::Event::GatekeeperElected { .. } => "gatekeeper_elected",
            contracts::Event::GatekeeperRootRequested { .. } => "gatekeeper_root_requested",
            contracts::Event::GatekeeperRootHandedOver { .. } => "gatekeeper_root_handed_over",
            contracts::Event::GatekeeperReady { .. } => "gatekeeper_ready",
            contracts::Event::GatekeeperRetired { .. } => "gatekeeper_retired",
            contracts::Event::ForwardSecrecy { .. } => "forward_secrecy",
            contracts::Event::KeyRotationStarted { .. } => "key_rotation_started",
            contracts::Event::KeyRotationCommitted { .. } => "key_rotation_committed",
            contracts::Event::KeyRotationReady { .. } => "key_rotation_ready",
            contracts::Event::KeyRotationTimedOut { .. } => "key_rotation_timed_out",
        },
    }
}

fn record_name(r: &Record) -> &'static str {
    match r {
        Record::Params(_) => "params",
        Record::Accounts(accounts::Record::Account(_)) => "account",
        Record::Registry(registry::Record::Enclave(_)) => "enclave",
        Record::Registry(registry::Record::Retired(_)) => "retired_enclave",
        Record::Governance(governance::Record::Measurements(_)) => "measurements",
        Record::Market(market::Record::Job(_)) => "job",
        Record::Market(market::Record::Offer(_)) => "offer",
        Record::Market(market::Record::Index(_)) => "market",
        Record::Market(market::Record::Module(_)) => "module",
        Record::Market(market::Record::Usage(_)) => "usage",
        Record::Oracle(oracle::Record::Request(_)) => "oracle_request",
        Record::Oracle(oracle::Record::Next(_)) => "oracle_next",
        Record::Oracle(oracle::Record::Ids(_)) => "oracle_ids",
        Record::Contracts(r) => match r {
            contracts::Record::Contract(_) => "contracts_contract",
            contracts::Record::Code(_) => "contracts_code",
            contracts::Record::Command(_) => "contracts_command",
            contracts::Record::Checkpoint(_) => "contracts_checkpoint",
            contracts::Record::Next(_) => "contracts_next",
            contracts::Record::Blob(_) => "contracts_blob",
            contracts::Record::Ids(_) => "contracts_ids",
            contracts::Record::Endpoint(_) => "contracts_endpoint",
            contracts::Record::Activity(_) => "contracts_activity",
            contracts::Record::Gatekeepers(_) => "contracts_gatekeepers",
            contracts::Record::SignedKey(_) => "contracts_signed_key",
            contracts::Record::KeyRequests(_) => "contracts_key_requests",
        },
    }
}

fn spec() -> JobSpec {
    JobSpec {
        module: h(1),
        input: h(2),
        memory_pages: 3,
        fuel: 4,
        max_price: Amount(5),
        replicas: 2,
        deadline_blocks: 6,
        retention_blocks: 7,
        output_key: [8; 32],
        args: vec!["a".into(), "bc".into()],
    }
}

fn report() -> ResultReport {
    ResultReport {
        job: 9,
        worker: pk(1),
        binding: h(3),
        module: h(1),
        input: h(2),
        output: h(4),
        instructions: 10,
        commitment: h(5),
    }
}

fn refusal() -> JobRefusal {
    JobRefusal {
        job: 9,
        worker: pk(1),
        binding: h(3),
        key: h(6),
        reason: RefusalReason::KeyDoesNotOpen,
    }
}

fn oracle_query() -> oracle::Query {
    oracle::Query::Public(oracle::Params {
        url: "https://example.org/a?b=c".into(),
        select: Some("/d/0".into()),
    })
}

fn datagram() -> oracle::Datagram {
    oracle::Datagram {
        request: 1,
        params: oracle_query().hash(),
        enclave: pk(1),
        roots: h(2),
        time_ms: 3,
        body: oracle::Body::Public(oracle::Outcome::Fetched {
            server_name: "example.org".into(),
            cert_hash: h(5),
            status: 200,
            value: oracle::Value::Json("[1,2]".into()),
        }),
    }
}

fn quote() -> Quote {
    Quote::Sim(SimQuote {
        measurement: h(7),
        report_data: [9; 64],
        root: pk(2),
        signature: key(2).sign(b"quote"),
    })
}

fn calls() -> Vec<Call> {
    vec![
        Call::Accounts(accounts::Call::Transfer {
            to: addr(1),
            amount: Amount(2),
        }),
        Call::Registry(registry::Call::RegisterEnclave {
            identity: pk(1),
            encryption_key: EncryptionKey([3; 32]),
            expires_at: 4,
            quote: quote(),
            stake: Amount(5),
        }),
        Call::Registry(registry::Call::DeregisterEnclave { identity: pk(1) }),
        Call::Registry(registry::Call::WithdrawStake { identity: pk(1) }),
        Call::Governance(governance::Call::UpdateMeasurements {
            add: vec![h(1)],
            retire: vec![h(2), h(3)],
        }),
        Call::Market(market::Call::SetOffer {
            identity: pk(1),
            price: Amount(2),
            memory_pages: 3,
            fuel: 4,
            speed: 5,
        }),
        Call::Market(market::Call::RegisterModule { module: h(1) }),
        Call::Market(market::Call::SubmitJob {
            spec: spec(),
            escrow: Amount(11),
        }),
        Call::Market(market::Call::PostKeys {
            job: 9,
            keys: vec![WrappedKey {
                worker: pk(1),
                key: vec![1, 2, 3],
            }],
        }),
        Call::Market(market::Call::SubmitResult {
            report: report(),
            signature: key(1).sign(&report().hash().0),
        }),
        Call::Market(market::Call::RefuseJob {
            refusal: refusal(),
            signature: key(1).sign(&refusal().hash().0),
        }),
        Call::Market(market::Call::CancelJob { job: 9 }),
        Call::Oracle(oracle::Call::Request {
            query: oracle::Query::Private {
                enclave: pk(1),
                sealed: vec![2, 3],
                reply_key: EncryptionKey([4; 32]),
                own: vec![5],
            },
            callback: Some(oracle::Callback {
                contract: 5,
                fee: Amount(6),
            }),
            fee: Amount(7),
            deadline_blocks: 8,
        }),
        Call::Oracle(oracle::Call::Deliver {
            datagram: datagram(),
            signature: key(1).sign(&datagram().signing_bytes(&h(9))),
        }),
        Call::Oracle(oracle::Call::Cancel { id: 1 }),
        Call::Contracts(contracts::Call::Deploy {
            code: b"\0asm\x01\0\0\0".to_vec(),
        }),
        Call::Contracts(contracts::Call::PublishKey {
            key: contract_key(),
        }),
        Call::Contracts(contracts::Call::RequestKey {
            contract: 1,
            era: 2,
            attestation: vec![1, 2],
        }),
        Call::Contracts(contracts::Call::GrantKey {
            contract: 1,
            era: 2,
            handover: vec![3, 4],
        }),
        Call::Contracts(contracts::Call::Command {
            contract: 1,
            fuel: 2,
            escrow: Amount(3),
            init: true,
            reply_to: EncryptionKey([4; 32]),
            sealed: vec![5, 6],
        }),
        Call::Contracts(contracts::Call::Receipt {
            receipt: contract_receipt(),
            signature: key(1).sign(&contract_receipt().signing_bytes(&h(9))),
        }),
        Call::Contracts(contracts::Call::Checkpoint {
            checkpoint: contract_checkpoint(),
            executor: pk(1),
            signature: key(1).sign(&contract_checkpoint().signing_bytes(&h(9))),
        }),
        Call::Contracts(contracts::Call::SetEndpoint {
            enclave: pk(1),
            url: "http://127.0.0.1:1".into(),
        }),
        Call::Contracts(contracts::Call::Heartbeat {
            enclave: pk(1),
            era: 2,
            window: 3,
            signature: key(1).sign(&contracts::heartbeat_bytes(&h(9), 2, 3)),
        }),
        Call::Contracts(contracts::Call::ElectGatekeeper { enclave: pk(1) }),
        Call::Contracts(contracts::Call::RequestRoot {
            enclave: pk(1),
            attestation: vec![1, 2],
        }),
        Call::Contracts(contracts::Call::HandOverRoot {
            to: pk(1),
            handover: vec![3, 4],
        }),
        Call::Contracts(contracts::Call::ConfirmReady {
            enclave: pk(1),
            signature: key(1).sign(&contracts::ready_bytes(&h(9), 0, &h(5))),
        }),
        Call::Contracts(contracts::Call::RetireGatekeeper { enclave: pk(1) }),
        Call::Contracts(contracts::Call::ForwardSecrecy { on: true }),
        Call::Contracts(contracts::Call::CommitRotation {
            enclave: pk(1),
            era: 2,
            commitment: h(5),
            signature: key(1).sign(&contracts::ready_bytes(&h(9), 2, &h(5))),
        }),
    ]
}

fn contract_key() -> contracts::ContractPublicKey {
    let mut k = contracts::ContractPublicKey {
        chain: h(9),
        era: 0,
        contract: 1,
        key: EncryptionKey([2; 32]),
        gatekeeper: pk(1),
        signature: proctor_primitives::Signature([0; 64]),
    };
    k.signature = key(1).sign(&k.signing_bytes());
    k
}

fn contract_receipt() -> contracts::Receipt {
    contracts::Receipt {
        contract: 1,
        seq: 2,
        code: -1,
        instructions: 3,
        reply: vec![4, 5],
        emits: vec![contracts::Emit(vec![0; 9])],
        state_hash: h(6),
        log: h(7),
        executor: pk(1),
    }
}

fn contract_checkpoint() -> contracts::Checkpoint {
    contracts::Checkpoint {
        contract: 1,
        era: 0,
        applied: 2,
        state_hash: h(3),
        log: h(7),
        ciphertext: vec![4, 5, 6],
        parts: None,
    }
}

fn events() -> Vec<Event> {
    vec![
        Event::Accounts(accounts::Event::Transfer {
            from: addr(1),
            to: addr(2),
            amount: Amount(3),
        }),
        Event::Accounts(accounts::Event::FeePaid {
            payer: addr(1),
            amount: Amount(2),
        }),
        Event::Registry(registry::Event::EnclaveRegistered {
            identity: pk(1),
            operator: addr(2),
            expires_at: 3,
            stake: Amount(4),
        }),
        Event::Registry(registry::Event::EnclaveDeregistered {
            identity: pk(1),
            unbonding_until: 2,
        }),
        Event::Registry(registry::Event::StakeWithdrawn {
            identity: pk(1),
            operator: addr(2),
            amount: Amount(3),
        }),
        Event::Governance(governance::Event::MeasurementsUpdated {
            added: vec![h(1)],
            retired: vec![],
        }),
        Event::Rewards(rewards::Event::BlockReward {
            miner: addr(1),
            reward: Amount(2),
            fees: Amount(3),
        }),
        Event::Market(market::Event::OfferSet {
            identity: pk(1),
            price: Amount(2),
        }),
        Event::Market(market::Event::ModuleRegistered {
            module: h(1),
            owner: addr(2),
        }),
        Event::Market(market::Event::JobSubmitted {
            job: 1,
            requester: addr(2),
            escrow: Amount(3),
        }),
        Event::Market(market::Event::JobAssigned {
            job: 1,
            workers: vec![pk(1), pk(2)],
            deadline: 3,
        }),
        Event::Market(market::Event::JobKeysPosted {
            job: 1,
            running: true,
        }),
        Event::Market(market::Event::JobResult {
            job: 1,
            worker: pk(2),
        }),
        Event::Market(market::Event::JobRefused {
            job: 1,
            worker: pk(2),
            reason: RefusalReason::TooLittleTime,
        }),
        Event::Market(market::Event::JobRequeued { job: 1, missing: 2 }),
        Event::Market(market::Event::JobEnded {
            job: 1,
            state: JobState::Settled,
            paid: Amount(2),
            refund: Amount(3),
        }),
        Event::Market(market::Event::JobPaid {
            job: 1,
            worker: pk(2),
            operator: addr(3),
            pay: Amount(4),
            fee_share: Amount(5),
        }),
        Event::Market(market::Event::JobFees {
            job: 1,
            app: addr(2),
            app_fee: Amount(3),
            treasury: Amount(4),
        }),
        Event::Market(market::Event::WorkerSlashed {
            identity: pk(1),
            amount: Amount(2),
            reason: "late".into(),
        }),
        Event::Oracle(oracle::Event::OracleRequested {
            id: 1,
            requester: addr(2),
            enclave: pk(3),
            query: oracle_query(),
            deadline: 4,
            fee: Amount(5),
        }),
        Event::Oracle(oracle::Event::OracleDelivered {
            id: 1,
            enclave: pk(2),
            state: oracle::RequestState::Failed,
            body: oracle::Body::Public(oracle::Outcome::Failed {
                reason: oracle::FailReason::Certificate,
                detail: "expired".into(),
            }),
            fee_paid: Amount(3),
        }),
        Event::Oracle(oracle::Event::OracleCallback {
            id: 1,
            contract: 2,
            fee: Amount(3),
        }),
        Event::Oracle(oracle::Event::OracleCancelled {
            id: 1,
            refunded: Amount(2),
        }),
        Event::Oracle(oracle::Event::OracleLateDelivery {
            id: 1,
            enclave: pk(2),
            fee_paid: Amount(3),
        }),
        Event::Oracle(oracle::Event::OracleExpired {
            id: 1,
            refunded: Amount(2),
        }),
        Event::Contracts(contracts::Event::ContractDeployed {
            id: 1,
            owner: addr(2),
            code_hash: h(3),
            executor: pk(4),
        }),
        Event::Contracts(contracts::Event::ContractKeyPublished {
            id: 1,
            key: EncryptionKey([2; 32]),
        }),
        Event::Contracts(contracts::Event::ContractKeyRequested {
            id: 1,
            era: 3,
            executor: pk(2),
        }),
        Event::Contracts(contracts::Event::ContractKeyGranted { id: 1, era: 3 }),
        Event::Contracts(contracts::Event::ContractCommand {
            id: 1,
            seq: 2,
            sender: addr(3),
        }),
        Event::Contracts(contracts::Event::ContractApplied {
            id: 1,
            seq: 2,
            code: 3,
            instructions: 4,
            paid: Amount(5),
            state_hash: h(6),
        }),
        Event::Contracts(contracts::Event::ContractEgressDropped {
            id: 1,
            seq: 2,
            to: 3,
            reason: "no key".into(),
        }),
        Event::Contracts(contracts::Event::ContractEmitted {
            id: 1,
            seq: 2,
            target: 0,
            payload: vec![3, 4],
        }),
        Event::Contracts(contracts::Event::ContractCheckpointed {
            id: 1,
            applied: 2,
            state_hash: h(3),
            parts: vec![h(4)],
            replaced: vec![h(5)],
        }),
        Event::Contracts(contracts::Event::ContractEndpoint {
            enclave: pk(1),
            url: "http://127.0.0.1:1".into(),
        }),
        Event::Contracts(contracts::Event::ContractReassigned {
            id: 1,
            from: pk(1),
            to: pk(2),
        }),
        Event::Contracts(contracts::Event::ContractHeartbeat {
            enclave: pk(1),
            era: 2,
            window: 3,
        }),
        Event::Contracts(contracts::Event::ContractUnresponsive {
            enclave: pk(1),
            era: 2,
            windows: 1,
            max: 8,
            slashed: Amount(4),
        }),
        Event::Contracts(contracts::Event::GatekeeperElected { enclave: pk(1) }),
        Event::Contracts(contracts::Event::GatekeeperRootRequested { enclave: pk(1) }),
        Event::Contracts(contracts::Event::GatekeeperRootHandedOver {
            to: pk(1),
            from: pk(2),
        }),
        Event::Contracts(contracts::Event::GatekeeperReady { enclave: pk(1) }),
        Event::Contracts(contracts::Event::GatekeeperRetired { enclave: pk(1) }),
        Event::Contracts(contracts::Event::ForwardSecrecy { on: true }),
        Event::Contracts(contracts::Event::ContractOracleDropped {
            request: 1,
            contract: 2,
            reason: "r".into(),
        }),
        Event::Contracts(contracts::Event::KeyRotationStarted {
            era: 1,
            attempt: 2,
            leader: pk(3),
            next: vec![pk(3), pk(4)],
        }),
        Event::Contracts(contracts::Event::KeyRotationCommitted {
            era: 1,
            commitment: h(2),
        }),
        Event::Contracts(contracts::Event::KeyRotationReady {
            era: 1,
            commitment: h(2),
            members: vec![pk(3)],
        }),
        Event::Contracts(contracts::Event::KeyRotationTimedOut {
            era: 1,
            attempt: 2,
            slashed: vec![pk(4)],
        }),
    ]
}

fn records() -> Vec<Record> {
    let reputation = Reputation {
        completed: 1,
        failed: 2,
        fee_ema: 3,
        deals_ema: 4,
        service_ema: 5,
    };
    let mut params = testkit::params(Some(pk(3)), h(4));
    params.market.fees = FeeSplit {
        fee_bps: 500,
        provider_bps: 4_000,
        app_bps: 2_000,
    };
    vec![
        Record::from(accounts::Record::Account(Account {
            balance: Amount(1),
            nonce: 2,
        })),
        Record::from(registry::Record::Enclave(EnclaveRecord {
            identity: pk(1),
            encryption_key: EncryptionKey([2; 32]),
            operator: addr(3),
            measurement: h(4),
            registered_at: 5,
            expires_at: 6,
            stake: Amount(7),
            unbonding_until: Some(8),
            registration_tx: Some(h(9)),
        })),
        Record::from(registry::Record::Retired(EnclaveRecord {
            identity: pk(2),
            encryption_key: EncryptionKey([3; 32]),
            operator: addr(4),
            measurement: h(5),
            registered_at: 6,
            expires_at: 7,
            stake: Amount(0),
            unbonding_until: Some(9),
            registration_tx: None,
        })),
        Record::Params(Box::new(params)),
        Record::from(governance::Record::Measurements(vec![MeasurementEntry {
            measurement: h(1),
            retired_at: Some(2),
        }])),
        Record::from(market::Record::Job(JobRecord {
            id: 9,
            requester: addr(1),
            spec: spec(),
            escrow: Amount(11),
            state: JobState::Running,
            submitted_at: 12,
            submitted_ms: 13,
            deadline: 14,
            assignments: vec![Assignment {
                worker: pk(1),
                price: Amount(2),
                speed: 3,
                assigned_at: 4,
                key: Some(vec![5]),
                keyed_at: Some(6),
                report: Some(report()),
            }],
            failed: vec![pk(2)],
            reassignments: 1,
            paid: Amount(15),
            instructions: 16,
            output: Some(h(17)),
            refund: Amount(18),
            ended_at: Some(19),
            refusal: Some(RefusalReason::ModuleRejected),
        })),
        Record::from(market::Record::Offer(WorkerOffer {
            identity: pk(1),
            price: Amount(2),
            memory_pages: 3,
            fuel: 4,
            speed: 5,
            used_memory_pages: 6,
            used_fuel: 7,
            reputation,
        })),
        Record::from(market::Record::Index(MarketIndex {
            next_job: 1,
            pending: vec![2],
            active: vec![3, 4],
            workers: vec![pk(1)],
        })),
        Record::from(market::Record::Module(addr(5))),
        Record::from(market::Record::Usage(RequesterUsage {
            memory_pages: 1,
            fuel: 2,
            reputation,
        })),
        Record::from(oracle::Record::Request(Box::new(oracle::OracleRequest {
            id: 1,
            requester: addr(2),
            query: oracle_query(),
            callback: None,
            fee: Amount(3),
            escrow: Amount(0),
            enclave: pk(4),
            created: 5,
            created_ms: 6,
            deadline: 7,
            state: oracle::RequestState::Delivered,
            datagram: Some(datagram()),
            height: Some(8),
            fee_paid: Amount(3),
            refunded: Amount(0),
            error: None,
        }))),
        Record::from(oracle::Record::Next(2)),
        Record::from(oracle::Record::Ids(oracle::Ids(vec![1, 2]))),
        Record::from(contracts::Record::Contract(Box::new(
            contracts::ContractInfo {
                id: 1,
                owner: addr(2),
                code_hash: h(3),
                code_len: 4,
                executor: pk(5),
                created: 6,
                key: Some(EncryptionKey([7; 32])),
                era: 0,
                commands: 8,
                applied: 7,
                state_hash: h(9),
                checkpoint: Some((5, 6)),
                waiting_since: Some(7),
                log: h(8),
            },
        ))),
        Record::from(contracts::Record::Code(vec![1, 2])),
        Record::from(contracts::Record::Command(Box::new(
            contracts::CommandRecord {
                contract: 1,
                seq: 2,
                era: 3,
                sender: addr(3),
                nonce: 4,
                height: 5,
                fuel: 6,
                init: false,
                oracle: true,
                reply_to: EncryptionKey([7; 32]),
                sealed: vec![8],
                escrow: Amount(0),
                receipt: Some(contract_receipt()),
                paid: Amount(9),
                refunded: Amount(10),
                log: h(1),
                payer: addr(4),
            },
        ))),
        Record::from(contracts::Record::Checkpoint(Box::new(
            contracts::Checkpoint {
                ciphertext: vec![],
                parts: Some(contracts::Parts {
                    blobs: vec![h(1), h(2)],
                    hash: h(3),
                    len: 4,
                }),
                ..contract_checkpoint()
            },
        ))),
        Record::from(contracts::Record::Next(2)),
        Record::from(contracts::Record::Blob(vec![1])),
        Record::from(contracts::Record::Ids(vec![1, 2])),
        Record::from(contracts::Record::Endpoint("http://127.0.0.1:1".into())),
        Record::from(contracts::Record::Activity([(pk(1), 0b101u8)].into())),
        Record::from(contracts::Record::SignedKey(Box::new(contract_key()))),
        Record::from(contracts::Record::Gatekeepers(Box::new(
            contracts::GatekeeperSet {
                members: vec![pk(1)],
                candidates: vec![pk(2)],
                era: 3,
                commitment: Some(h(4)),
                leaving: vec![pk(1)],
                forward_secrecy: true,
                rotation: Some(contracts::Rotation {
                    era: 4,
                    attempt: 1,
                    leader: pk(1),
                    next: vec![pk(1), pk(2)],
                    commitment: None,
                    confirmed: vec![pk(1)],
                    deadline: 5,
                }),
            },
        ))),
        Record::from(contracts::Record::KeyRequests(vec![(1, 2)])),
    ]
}

fn block() -> Block {
    let tx = Transaction {
        chain: h(1),
        signer: pk(1),
        nonce: 2,
        fee: Amount(3),
        call: Call::Accounts(accounts::Call::Transfer {
            to: addr(4),
            amount: Amount(5),
        }),
    }
    .sign(&key(1));
    let template = Template {
        parent: h(1),
        height: 2,
        timestamp: 3,
        state_root: h(4),
        tx_root: tx_root(std::slice::from_ref(&tx)),
        difficulty: 5,
        miner: addr(6),
    };
    let mut proof = PouwProof {
        enclave: pk(7),
        template: template.hash(),
        module: h(8),
        job: Some(9),
        input: h(10),
        slice: 11,
        counter: 12,
        instructions: 132,
        draw: 13,
        checker_sig: key(7).sign(&checker_message(&h(8))),
        work_sig: key(7).sign(b"replaced"),
    };
    proof.work_sig = key(7).sign(&proof.work_message(template.difficulty));
    Block {
        header: Header {
            template,
            pouw: Some(proof),
        },
        txs: vec![tx],
    }
}

/// `name  hash  hex` lines, one per sample.
fn lines<T: borsh::BorshSerialize>(items: &[(String, T)]) -> String {
    items
        .iter()
        .map(|(name, v)| {
            let bytes = borsh::to_vec(v).unwrap();
            format!("{name} {} {}\n", Hash::of(&bytes), hex::encode(&bytes))
        })
        .collect()
}

fn check(file: &str, text: &str) {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", "golden", file]
        .iter()
        .collect();
    if std::env::var_os("PROCTOR_BLESS").is_some() {
        std::fs::write(&path, text).unwrap();
        return;
    }
    let golden = std::fs::read_to_string(&path).unwrap_or_default();
    for (want, got) in golden.lines().zip(text.lines()) {
        assert_eq!(
            got.split(' ').next(),
            want.split(' ').next(),
            "{file}: samples out of order"
        );
        assert!(
            want == got,
            "{file}: the encoding of `{}` changed (rerun with PROCTOR_BLESS=1 to accept it, and commit the diff)\nwas: {want}\nnow: {got}",
            got.split(' ').next().unwrap_or("")
        );
    }
    assert_eq!(
        golden.lines().count(),
        text.lines().count(),
        "{file}: samples were added or removed (PROCTOR_BLESS=1 to accept)"
    );
}

#[test]
fn every_call_event_and_record_encodes_as_its_golden_fixture() {
    let calls: Vec<(String, Call)> = calls()
        .into_iter()
        .map(|c| (call_name(&c).to_string(), c))
        .collect();
    let events: Vec<(String, Event)> = events()
        .into_iter()
        .map(|e| (event_name(&e).to_string(), e))
        .collect();
    let records: Vec<(String, Record)> = records()
        .into_iter()
        .map(|r| (record_name(&r).to_string(), r))
        .collect();
    // One sample of each variant, no variant twice (the names are exhaustive
    // matches: a new variant needs a name, then a sample here).
    for names in [
        calls.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(),
        events.iter().map(|(n, _)| n.clone()).collect(),
        records.iter().map(|(n, _)| n.clone()).collect(),
    ] {
        let distinct: std::collections::BTreeSet<_> = names.iter().collect();
        assert_eq!(
            distinct.len(),
            names.len(),
            "a variant sampled twice: {names:?}"
        );
    }
    assert_eq!(calls.len(), 31, "a Call variant has no sample");
    assert_eq!(events.len(), 49, "an Event variant has no sample");
    assert_eq!(records.len(), 25, "a Record variant has no sample");
    check("calls.txt", &lines(&calls));
    check("events.txt", &lines(&events));
    check("records.txt", &lines(&records));
    let b = block();
    check(
        "template.txt",
        &lines(&[("template".to_string(), b.header.template.clone())]),
    );
    check(
        "header.txt",
        &lines(&[("header".to_string(), b.header.clone())]),
    );
    check(
        "signed_block.txt",
        &lines(&[("block".to_string(), b.clone())]),
    );
    // The consensus hashes and signed messages, with their domain tags.
    let tx = &b.txs[0];
    let pouw = b.header.pouw.as_ref().unwrap();
    let hashes: Vec<(String, Hash)> = [
        ("template", b.header.template.hash()),
        ("header", b.header.hash()),
        ("tx", tx.hash()),
        ("tx_leaf", tx.leaf()),
        ("tx_root", tx_root(&b.txs)),
        ("work_message", Hash::of(&pouw.work_message(5))),
        ("checker_message", Hash::of(&checker_message(&h(8)))),
        ("filler_input", Hash(filler_input(&h(1)))),
        ("job_spec", spec().hash()),
        ("job_binding", job_binding(9, &spec(), 13)),
        ("result_report", report().hash()),
        ("job_refusal", refusal().hash()),
    ]
    .into_iter()
    .map(|(n, v)| (n.to_string(), v))
    .collect();
    check("hashes.txt", &lines(&hashes));
}

/// Every transaction error code is distinct (quote errors inside
/// registration included), and none moved: clients and `docs/rpc.md`
/// depend on these numbers.
#[test]
fn transaction_error_codes_are_distinct_and_stable() {
    use proctor_tee::QuoteError as Q;
    let a = Amount(1);
    let all = [
        TxError::BadSignature,
        TxError::WrongChain {
            expected: h(1),
            got: h(2),
        },
        TxError::NonceReplayed {
            expected: 1,
            got: 0,
        },
        TxError::NonceGap {
            expected: 1,
            got: 2,
        },
        TxError::InsufficientBalance {
            needed: a,
            available: a,
        },
        TxError::FeeTooLow { min: a, got: a },
        TxError::Overflow,
        TxError::Registry(registry::Error::QuoteRejected(Q::BadSignature)),
        TxError::Registry(registry::Error::QuoteRejected(Q::SimNotAllowed)),
        TxError::Registry(registry::Error::QuoteRejected(Q::UntrustedRoot {
            found: pk(1),
            trusted: pk(2),
        })),
        TxError::Registry(registry::Error::QuoteRejected(Q::DcapNotAllowed)),
        TxError::Registry(registry::Error::QuoteRejected(Q::Malformed(String::new()))),
        TxError::Registry(registry::Error::QuoteRejected(Q::CollateralExpired(
            String::new(),
        ))),
        TxError::Registry(registry::Error::QuoteRejected(Q::DcapVerification(
            String::new(),
        ))),
        TxError::Registry(registry::Error::QuoteRejected(Q::TcbStatusNotAccepted(
            String::new(),
        ))),
        TxError::Registry(registry::Error::QuoteRejected(Q::AdvisoryRejected(
            String::new(),
        ))),
        TxError::Registry(registry::Error::QuoteRejected(Q::DebugEnclave)),
        TxError::Registry(registry::Error::MeasurementNotAllowed(h(1))),
        TxError::Registry(registry::Error::ReportDataMismatch),
        TxError::Registry(registry::Error::EnclaveOwnedByOther),
        TxError::Registry(registry::Error::InsufficientStake { min: a, got: a }),
        TxError::Registry(registry::Error::EnclaveNotFound(pk(1))),
        TxError::Registry(registry::Error::NotOperator),
        TxError::Registry(registry::Error::AlreadyUnbonding),
        TxError::Registry(registry::Error::NotDeregistered),
        TxError::Registry(registry::Error::StillUnbonding { until: 1 }),
        TxError::Governance(governance::Error::NotGovernance),
        TxError::Registry(registry::Error::BadExpiry {
            expires_at: 1,
            height: 2,
            max: 3,
        }),
        TxError::Market(market::Error::JobNotFound(1)),
        TxError::Market(market::Error::NotRequester),
        TxError::Market(market::Error::BadJob(String::new())),
        TxError::Market(market::Error::EscrowMismatch {
            expected: a,
            got: a,
        }),
        TxError::Market(market::Error::JobState {
            job: 1,
            state: JobState::Pending,
        }),
        TxError::Market(market::Error::NotAssigned(pk(1))),
        TxError::Market(market::Error::BadReport(String::new())),
        TxError::Market(market::Error::AlreadyReported),
        TxError::Market(market::Error::ModuleOwned(addr(1))),
        TxError::Market(market::Error::WorkerBusy(pk(1))),
        TxError::TooLarge { size: 1, max: 0 },
        TxError::Market(market::Error::FuelBeyondDeadline {
            fuel: 1,
            capacity: 0,
        }),
        TxError::Market(market::Error::BadRefusal(String::new())),
        TxError::Oracle(oracle::Error::NotFound(1)),
        TxError::Oracle(oracle::Error::BadRequest(String::new())),
        TxError::Oracle(oracle::Error::FeeOutOfRange { min: a, max: a }),
        TxError::Oracle(oracle::Error::NoProvider),
        TxError::Oracle(oracle::Error::NotProvider(pk(1))),
        TxError::Oracle(oracle::Error::NotRequester(1)),
        TxError::Oracle(oracle::Error::WrongState {
            id: 1,
            state: oracle::RequestState::Pending,
        }),
        TxError::Oracle(oracle::Error::UnknownEnclave(pk(1))),
        TxError::Oracle(oracle::Error::NotAssigned(pk(1))),
        TxError::Oracle(oracle::Error::BadSignature),
        TxError::Oracle(oracle::Error::ParamsMismatch),
        TxError::Oracle(oracle::Error::RootsMismatch),
        TxError::Oracle(oracle::Error::BadTime {
            from: 1,
            to: 2,
            got: 3,
        }),
        TxError::Oracle(oracle::Error::Expired { deadline: 1 }),
        TxError::Oracle(oracle::Error::BadDatagram(String::new())),
        TxError::Oracle(oracle::Error::KindMismatch),
        TxError::Oracle(oracle::Error::MeasurementRetired(pk(1))),
        TxError::Contracts(contracts::Error::NotFound(1)),
        TxError::Contracts(contracts::Error::NoGatekeeper),
        TxError::Contracts(contracts::Error::BadCode(String::new())),
        TxError::Contracts(contracts::Error::NoExecutor),
        TxError::Contracts(contracts::Error::NotGatekeeper),
        TxError::Contracts(contracts::Error::BadSignature),
        TxError::Contracts(contracts::Error::KeyPublished(1)),
        TxError::Contracts(contracts::Error::NoKey(1)),
        TxError::Contracts(contracts::Error::NotOperator(1, "executor")),
        TxError::Contracts(contracts::Error::BadCommand(String::new())),
        TxError::Contracts(contracts::Error::NotExecutor(pk(1))),
        TxError::Contracts(contracts::Error::WrongSeq {
            expected: 1,
            got: 2,
        }),
        TxError::Contracts(contracts::Error::BadReceipt(String::new())),
        TxError::Contracts(contracts::Error::BadCheckpoint(String::new())),
        TxError::Contracts(contracts::Error::BadEndpoint(String::new())),
        TxError::Contracts(contracts::Error::BadHeartbeat(String::new())),
        TxError::Contracts(contracts::Error::Gatekeepers(String::new())),
        TxError::Contracts(contracts::Error::Rotating(1)),
    ];
    let codes: Vec<i32> = all.iter().map(TxError::code).collect();
    let distinct: std::collections::BTreeSet<i32> = codes.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        codes.len(),
        "a code is used twice: {codes:?}"
    );
    // Each code lies in its module's range (the core's: the accounts').
    let module_of = |e: &TxError| match e {
        TxError::Registry(_) => "registry",
        TxError::Governance(_) => "governance",
        TxError::Market(_) => "market",
        TxError::Oracle(_) => "oracle",
        TxError::Contracts(_) => "contracts",
        _ => "accounts",
    };
    for (e, c) in all.iter().zip(&codes) {
        let m = MODULES.iter().find(|m| m.name == module_of(e)).unwrap();
        assert!(m.codes.contains(c), "{e:?} ({c}) is outside {m:?}");
    }
    // Modules' ranges and key domains never meet.
    for (i, a) in MODULES.iter().enumerate() {
        for b in &MODULES[i + 1..] {
            assert_ne!(a.key_prefix, b.key_prefix);
            assert!(
                a.codes.end() < b.codes.start() || b.codes.end() < a.codes.start(),
                "{a:?} and {b:?} share codes"
            );
        }
    }
    let text: String = all
        .iter()
        .zip(&codes)
        .map(|(e, c)| {
            // `Market(JobNotFound(1))` -> `market JobNotFound`.
            let debug = format!("{e:?}");
            let mut words = debug.split([' ', '(', '{']).filter(|w| !w.is_empty());
            let first = words.next().unwrap_or("");
            match e {
                TxError::Registry(_) | TxError::Governance(_) | TxError::Market(_) => {
                    format!("{c} {} {}\n", module_of(e), words.next().unwrap_or(""))
                }
                _ => format!("{c} core {first}\n"),
            }
        })
        .collect();
    check("tx_error_codes.txt", &text);

    // And `docs/rpc.md` lists every one (a row, or a range `A-B`).
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/rpc.md")).unwrap();
    let documented: Vec<(i32, i32)> = doc
        .lines()
        .filter_map(|l| l.strip_prefix("| "))
        .filter_map(|l| l.split(' ').next())
        .filter_map(|c| match c.split_once('-') {
            Some((a, b)) if !a.is_empty() => Some((a.parse().ok()?, b.parse().ok()?)),
            _ => c.parse().ok().map(|n| (n, n)),
        })
        .collect();
    for c in &codes {
        assert!(
            documented.iter().any(|(a, b)| a <= c && c <= b),
            "error code {c} is not in docs/rpc.md"
        );
    }
}
