//! proctor-node
