//! One module per command group.

pub mod account;
pub mod admin;
pub mod audit;
pub mod bench;
pub mod chain;
pub mod chaos;
pub mod demo;
pub mod genesis;
pub mod node;
pub mod pay;
pub mod testnet;
pub mod wallet;
