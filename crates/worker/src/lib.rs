//! proctor-worker
