//! curfew: stops preview environments outside their schedules, stops them when idle,
//! deletes them when they outlive their TTL, and reports what that saved.
//!
//! The parts, one module each (see `DESIGN.md` in the shared folder for the data flow):
//! - [`schedule`]: the time-spec language and its evaluation;
//! - [`clock`]: where "now" comes from;
//! - [`cli`]: the command line.

pub mod admin;
pub mod cli;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod events;
pub mod files;
pub mod ledger;
pub mod memory;
pub mod metrics;
pub mod notify;
pub mod platform;
pub mod policy;
pub mod reconcile;
pub mod sandbox;
pub mod schedule;
pub mod server;
pub mod simulate;
pub mod text;
pub mod ui;
pub mod wake;
