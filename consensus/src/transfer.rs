//! What a node knows of a transfer.

use halfveil_ledger::{Height, Rejection};

/// A transfer's status as this node sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransferState {
    Pending,
    Committed {
        height: Height,
        index: u32,
    },
    /// Boxed: a tracked transfer is kept for every recent submission, and most are never
    /// refused, so the map holds 16 bytes for this instead of a whole signed refusal.
    Rejected(Box<Rejection>),
    Unknown,
}

impl TransferState {
    /// Committed or refused: it never changes again.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            TransferState::Committed { .. } | TransferState::Rejected(_)
        )
    }
}
