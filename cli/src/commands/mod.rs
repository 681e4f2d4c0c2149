//! One module per command or command group, each with its clap arguments (`...Args`, or a
//! `...Command` enum of subcommands) and an `execute` that runs it.

pub mod account;
pub mod admin;
pub mod assembly;
pub mod audit;
pub mod bench;
pub mod chain;
pub mod chaos;
pub mod config;
pub mod demo;
pub mod disclosure;
pub mod genesis;
pub mod init;
pub mod keys;
pub mod lifecycle;
pub mod node;
pub mod order;
pub mod pay;
pub mod receipt;
pub mod shell;
pub mod status;
pub mod testnet;
pub mod transfer;
pub mod wallet;
