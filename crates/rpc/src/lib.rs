//! proctor-rpc
