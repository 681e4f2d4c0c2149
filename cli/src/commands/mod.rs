//! One module per command group.

pub mod genesis;
pub mod testnet;
pub mod wallet;
