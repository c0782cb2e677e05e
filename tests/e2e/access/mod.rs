//! Owners and access with authentication on: every route refuses what it must, owners see only
//! their own jobs and files, quotas hold under races, revocation reaches every replica.

mod isolation;
mod keys;
mod matrix;
mod quotas;
mod revocation;
