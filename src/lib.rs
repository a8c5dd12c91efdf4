//! fastconnect-operator: orders Oracle FastConnect Layer 2 connections through Console Connect
//! from `FastConnectConnection` resources.
//!
//! Layers, each with its own error type: [`consoleconnect`] (the API client), [`crd`] (the
//! resource), [`controller`] (the reconciler), [`leader`] (Lease election), [`metrics`],
//! [`telemetry`] and [`config`].

pub mod config;
/// The Console Connect client, a crate of its own (no Kubernetes in it); re-exported so that
/// the operator and its tests name it as before.
pub use consoleconnect;
pub mod controller;
pub mod crd;
pub mod leader;
pub mod metrics;
pub mod server;
pub mod telemetry;

pub use controller::{Context, Error};
