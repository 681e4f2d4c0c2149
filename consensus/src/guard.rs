//! The validator never signs two blocks at one height: it signs only above the height it
//! last persisted as signed (SPEC section 5, CometBFT's `priv_validator_state`).

use halfveil_ledger::Height;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("refusing to sign height {height}: already signed up to {last_signed}")]
pub struct AlreadySigned {
    pub height: Height,
    pub last_signed: Height,
}

/// The last height signed, as loaded from the store at start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignGuard {
    last_signed: Height,
}

impl SignGuard {
    pub fn new(last_signed: Height) -> SignGuard {
        SignGuard { last_signed }
    }

    /// Allows `height` if it is above every height signed before; the caller persists it with
    /// the block before the signature leaves the node, then calls [`SignGuard::signed`].
    pub fn check(&self, height: Height) -> Result<(), AlreadySigned> {
        if height <= self.last_signed {
            return Err(AlreadySigned {
                height,
                last_signed: self.last_signed,
            });
        }
        Ok(())
    }

    pub fn signed(&mut self, height: Height) {
        self.last_signed = self.last_signed.max(height);
    }

    pub fn last_signed(&self) -> Height {
        self.last_signed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_the_same_height_twice() {
        let mut guard = SignGuard::new(Height(4));
        assert!(guard.check(Height(4)).is_err());
        assert!(guard.check(Height(3)).is_err());
        assert!(guard.check(Height(5)).is_ok());
        guard.signed(Height(5));
        assert_eq!(
            guard.check(Height(5)),
            Err(AlreadySigned {
                height: Height(5),
                last_signed: Height(5)
            })
        );
    }
}
