//! Shared helpers for the integration tests: the real control plane and the sandbox.
#![allow(dead_code)]

pub mod cluster;
pub mod env;
pub mod fixtures;
pub mod helm;
pub mod operator;
pub mod sandbox;
