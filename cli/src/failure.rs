//! What a command returns when it fails: a message for a person and an exit code for a
//! script (0 ok, 1 error, 2 usage, 3 verification failed, 4 node unreachable, 5 payment
//! refused).

use std::fmt;

/// An exit code with a meaning scripts can branch on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitKind {
    /// Anything that went wrong that is not one of the others.
    Error = 1,
    /// The command line is wrong (clap uses 2 as well).
    Usage = 2,
    /// What was checked does not verify: a genesis, a receipt, a chain; or a node's config
    /// or home that does not fit its genesis.
    Verification = 3,
    /// The node could not be reached (RPC commands).
    Unreachable = 4,
    /// The network refused the payment (signed refusal: frozen, insufficient, ...).
    Refused = 5,
}

/// A failed command: what failed and what to do.
#[derive(Debug)]
pub struct Failure {
    pub kind: ExitKind,
    pub message: String,
}

impl Failure {
    pub fn error(message: impl Into<String>) -> Failure {
        Failure {
            kind: ExitKind::Error,
            message: message.into(),
        }
    }

    pub fn usage(message: impl Into<String>) -> Failure {
        Failure {
            kind: ExitKind::Usage,
            message: message.into(),
        }
    }

    pub fn verification(message: impl Into<String>) -> Failure {
        Failure {
            kind: ExitKind::Verification,
            message: message.into(),
        }
    }

    pub fn unreachable(message: impl Into<String>) -> Failure {
        Failure {
            kind: ExitKind::Unreachable,
            message: message.into(),
        }
    }

    pub fn refused(message: impl Into<String>) -> Failure {
        Failure {
            kind: ExitKind::Refused,
            message: message.into(),
        }
    }

    /// The same failure with a hint appended (`message; hint`).
    pub fn context(self, hint: impl fmt::Display) -> Failure {
        Failure {
            kind: self.kind,
            message: format!("{}; {hint}", self.message),
        }
    }

    pub fn code(&self) -> u8 {
        self.kind as u8
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.message)
    }
}

macro_rules! failure_from {
    ($($error:ty),* $(,)?) => {
        $(impl From<$error> for Failure {
            fn from(error: $error) -> Failure {
                Failure::error(error.to_string())
            }
        })*
    };
}

failure_from!(
    halfveil_genesis::keystore::KeystoreError,
    halfveil_genesis::GenesisError,
    halfveil_ledger::CryptoError,
    halfveil_ledger::CodecError,
    halfveil_ledger::threshold::ThresholdError,
    halfveil_store::StoreError,
    std::io::Error,
);

/// A config that does not load: 3 when its content is wrong (an unknown key, a bad value,
/// too large), 1 when it cannot be read or written.
impl From<halfveil_node::config::ConfigError> for Failure {
    fn from(error: halfveil_node::config::ConfigError) -> Failure {
        use halfveil_node::config::ConfigError;
        match error {
            ConfigError::Invalid { .. } | ConfigError::TooLarge { .. } => {
                Failure::verification(error.to_string())
            }
            ConfigError::Read { .. } | ConfigError::Write { .. } => {
                Failure::error(error.to_string())
            }
        }
    }
}

/// A node that cannot start: 3 when a file of its home does not fit (config, genesis, a key
/// genesis does not name, a data folder of another node, an address that does not parse),
/// so a supervisor need not restart it; 1 otherwise.
impl From<halfveil_node::run::StartError> for Failure {
    fn from(error: halfveil_node::run::StartError) -> Failure {
        use halfveil_node::run::StartError as E;
        match error {
            E::Config(config) => Failure::from(config),
            E::Genesis { .. }
            | E::NotInGenesis { .. }
            | E::NotGenesisValidatorKey { .. }
            | E::NotGenesisBankKey { .. }
            | E::OtherOwner { .. }
            | E::P2pListen { .. }
            | E::P2pPeer { .. } => Failure::verification(error.to_string()),
            other => Failure::error(other.to_string()),
        }
    }
}

/// The result of every command.
pub type CommandResult = Result<(), Failure>;
