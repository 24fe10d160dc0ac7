//! Primitive types shared by every proctor crate.
//!
//! Everything that appears in a block, a transaction or an attestation is built
//! from the types here, and all of them encode with [borsh] (the consensus
//! codec: one canonical byte string per value, so hashes and signatures are
//! over unambiguous bytes) and with serde (for JSON APIs, where hashes and keys
//! appear as lowercase hex and addresses in their bech32m form).
//!
//! - [`Hash`]: 32-byte BLAKE3 digests, with domain separation by tag so a hash
//!   of one kind of object can never be confused with another.
//! - [`Keypair`], [`PublicKey`], [`Signature`]: ed25519 (accounts and enclave
//!   identities). Secret keys zeroize on drop and have no serde impl, so they
//!   cannot leak through a JSON response by accident.
//! - [`Address`]: the account identifier, the first 20 bytes of a tagged hash
//!   of the public key, shown as checksummed bech32m (`prc1...`).
//! - [`Amount`]: token amounts in base units (u128), with checked arithmetic.
//! - [`merkle`]: a binary Merkle tree with inclusion proofs (transaction roots).
//!
//! This crate does no I/O and is deterministic.
#![forbid(unsafe_code)]

mod address;
mod amount;
pub mod codec;
mod hash;
mod keys;
pub mod merkle;

pub use address::{Address, AddressError};
pub use amount::Amount;
pub use hash::{Hash, HashError};
pub use keys::{EncryptionKey, KeyError, Keypair, PublicKey, Signature, verify_batch};

/// Milliseconds since the Unix epoch, as carried in block headers.
pub type Timestamp = u64;
/// A block height; genesis is height 0.
pub type Height = u64;
