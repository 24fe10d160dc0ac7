//! proctor-cli
