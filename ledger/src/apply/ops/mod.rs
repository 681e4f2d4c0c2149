//! One file per op: the rules each kind of op must follow, in the order they are checked.

mod close_account;
mod disclosure;
mod issue;
mod open_account;
mod rotate_key;
mod transfer;
