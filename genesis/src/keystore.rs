//! Password-encrypted files: signing keys, disclosure key shares, requester keys, wallets.
//!
//! A file is JSON: a header (format version, what the file holds, the public key if any, the
//! Argon2id parameters and salt, the XChaCha20-Poly1305 nonce) and the ciphertext. The key is
//! Argon2id(password, salt); the AEAD's associated data is the canonical header, so no header
//! field can be changed without the file failing to open. Files are created with mode 0600
//! and never overwritten. Secrets are zeroized after use.
//!
//! libp2p node keys are the exception, as in CometBFT and Substrate: plaintext, 0600, since a
//! node must start unattended and the key only names the node on the network.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand_core::{OsRng, RngCore};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use zeroize::Zeroizing;

/// The file format this build writes and reads.
pub const KEYSTORE_VERSION: u8 = 1;
/// Any encrypted file larger than this is refused before parsing (wallets included).
pub const KEYSTORE_BYTES_MAX: u64 = 16 * 1024 * 1024;

#[derive(Debug, Error)]
pub enum KeystoreError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} already exists; refusing to overwrite a key or wallet")]
    Exists { path: String },
    #[error("{path} is not a halfveil key file: {reason}")]
    Malformed { path: String, reason: String },
    #[error("{path} holds a {found}, expected a {expected}")]
    WrongKind {
        path: String,
        found: String,
        expected: String,
    },
    #[error("cannot open {path}: wrong password, or the file is corrupted")]
    Decrypt { path: String },
    #[error(
        "{path}: the decrypted key does not match the public key in the file (corrupted file)"
    )]
    PublicKeyMismatch { path: String },
    #[error("{path} is {bytes} bytes, larger than the limit")]
    TooLarge { path: String, bytes: u64 },
    #[error("key derivation failed: {reason}")]
    Kdf { reason: String },
}

/// What an encrypted file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileKind {
    /// The IM's Ed25519 block-signing key.
    ValidatorKey,
    /// A holder's share of the threshold disclosure key (an auditor's or the IM's).
    DisclosureShare,
    /// A holder's secrets between the rounds of a disclosure key ceremony.
    DkgState,
    /// A bank's Ed25519 attestation key.
    AttestationKey,
    /// An auditor's Ed25519 key.
    AuditorKey,
    /// A disclosure requester's X25519 key.
    RequesterKey,
    /// A payer's wallet.
    Wallet,
}

impl FileKind {
    pub fn describe(self) -> &'static str {
        match self {
            FileKind::ValidatorKey => "validator key",
            FileKind::DisclosureShare => "disclosure key share",
            FileKind::DkgState => "key ceremony state",
            FileKind::AttestationKey => "attestation key",
            FileKind::AuditorKey => "auditor key",
            FileKind::RequesterKey => "requester key",
            FileKind::Wallet => "wallet",
        }
    }
}

/// Argon2id cost.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KdfParams {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl KdfParams {
    /// OWASP's Argon2id recommendation (m = 64 MiB... here 64 MiB, t = 3, p = 1): about a
    /// quarter of a second on this machine.
    pub const DEFAULT: KdfParams = KdfParams {
        memory_kib: 64 * 1024,
        iterations: 3,
        parallelism: 1,
    };
    /// The floor accepted when reading: cheaper files are refused as misconfigured.
    pub const MIN: KdfParams = KdfParams {
        memory_kib: 19 * 1024,
        iterations: 2,
        parallelism: 1,
    };

    fn check(&self) -> Result<(), String> {
        let memory_ok = (Self::MIN.memory_kib..=1024 * 1024).contains(&self.memory_kib);
        let iterations_ok = (Self::MIN.iterations..=16).contains(&self.iterations);
        let parallelism_ok = (1..=8).contains(&self.parallelism);
        if memory_ok && iterations_ok && parallelism_ok {
            Ok(())
        } else {
            Err(format!(
                "argon2id parameters {self:?} outside the accepted range (memory 19 MiB..1 GiB, iterations 2..16, parallelism 1..8)"
            ))
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KdfSection {
    algorithm: String,
    memory_kib: u32,
    iterations: u32,
    parallelism: u32,
    salt: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CipherSection {
    algorithm: String,
    nonce: String,
}

/// Everything but the ciphertext; bound into the AEAD as associated data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    version: u8,
    kind: FileKind,
    /// Hex public key for key files; empty for wallets.
    public_key: String,
    kdf: KdfSection,
    cipher: CipherSection,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EncryptedFile {
    header: Header,
    ciphertext: String,
}

const KDF_ALGORITHM: &str = "argon2id";
const CIPHER_ALGORITHM: &str = "xchacha20poly1305";

fn derive_key(
    password: &SecretString,
    salt: &[u8],
    params: &KdfParams,
) -> Result<Zeroizing<[u8; 32]>, KeystoreError> {
    let kdf_error = |error: argon2::Error| KeystoreError::Kdf {
        reason: error.to_string(),
    };
    let argon = Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Params::new(
            params.memory_kib,
            params.iterations,
            params.parallelism,
            Some(32),
        )
        .map_err(kdf_error)?,
    );
    let mut key = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(password.expose_secret().as_bytes(), salt, key.as_mut())
        .map_err(kdf_error)?;
    Ok(key)
}

fn header_aad(header: &Header) -> Vec<u8> {
    // Serializing a plain struct to JSON cannot fail.
    serde_json::to_vec(header).unwrap_or_default()
}

/// Encrypts `plaintext` into the text of an encrypted file.
pub fn seal(
    kind: FileKind,
    public_key: &str,
    plaintext: &[u8],
    password: &SecretString,
    params: KdfParams,
) -> Result<String, KeystoreError> {
    let mut salt = [0u8; 16];
    let mut nonce = [0u8; 24];
    OsRng.fill_bytes(&mut salt);
    OsRng.fill_bytes(&mut nonce);
    let key = derive_key(password, &salt, &params)?;
    let header = Header {
        version: KEYSTORE_VERSION,
        kind,
        public_key: public_key.to_owned(),
        kdf: KdfSection {
            algorithm: KDF_ALGORITHM.into(),
            memory_kib: params.memory_kib,
            iterations: params.iterations,
            parallelism: params.parallelism,
            salt: hex::encode(salt),
        },
        cipher: CipherSection {
            algorithm: CIPHER_ALGORITHM.into(),
            nonce: hex::encode(nonce),
        },
    };
    let aad = header_aad(&header);
    let cipher = XChaCha20Poly1305::new(key.as_ref().into());
    let ciphertext = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: &aad,
            },
        )
        .map_err(|_| KeystoreError::Kdf {
            reason: "encryption failed".into(),
        })?;
    let file = EncryptedFile {
        header,
        ciphertext: hex::encode(ciphertext),
    };
    let mut text = serde_json::to_string_pretty(&file).unwrap_or_default();
    text.push('\n');
    Ok(text)
}

/// What [`open`] returns: the plaintext and the public key the header names.
#[derive(Debug)]
pub struct Opened {
    pub plaintext: Zeroizing<Vec<u8>>,
    pub public_key: String,
}

/// An encrypted file parsed and checked, not yet decrypted: what [`open`] feeds to the KDF.
/// Parsing runs no KDF, so it is safe on any bytes (the fuzz target `key_file` runs it).
#[derive(Debug)]
pub struct ParsedFile {
    header: Header,
    /// The Argon2id parameters, checked to lie in the accepted range.
    pub params: KdfParams,
    /// 16 to 64 bytes.
    pub salt: Vec<u8>,
    pub nonce: [u8; 24],
    pub ciphertext: Vec<u8>,
}

impl ParsedFile {
    /// The public key the header names (hex; empty for wallets).
    pub fn public_key(&self) -> &str {
        &self.header.public_key
    }

    pub fn kind(&self) -> FileKind {
        self.header.kind
    }
}

/// Parses and checks the text of an encrypted file holding `expected`, everything [`open`]
/// does before the key derivation; `path` only names it in errors.
pub fn parse(path: &str, text: &[u8], expected: FileKind) -> Result<ParsedFile, KeystoreError> {
    let malformed = |reason: String| KeystoreError::Malformed {
        path: path.to_owned(),
        reason,
    };
    let file: EncryptedFile =
        serde_json::from_slice(text).map_err(|error| malformed(error.to_string()))?;
    let header = file.header;
    if header.version != KEYSTORE_VERSION {
        return Err(malformed(format!("unsupported version {}", header.version)));
    }
    if header.kind != expected {
        return Err(KeystoreError::WrongKind {
            path: path.to_owned(),
            found: header.kind.describe().into(),
            expected: expected.describe().into(),
        });
    }
    if header.kdf.algorithm != KDF_ALGORITHM || header.cipher.algorithm != CIPHER_ALGORITHM {
        return Err(malformed("unsupported kdf or cipher".into()));
    }
    let params = KdfParams {
        memory_kib: header.kdf.memory_kib,
        iterations: header.kdf.iterations,
        parallelism: header.kdf.parallelism,
    };
    params.check().map_err(malformed)?;
    let salt =
        hex::decode(&header.kdf.salt).map_err(|_| malformed("kdf.salt is not hex".into()))?;
    if !(16..=64).contains(&salt.len()) {
        return Err(malformed("kdf.salt must be 16 to 64 bytes".into()));
    }
    let mut nonce = [0u8; 24];
    hex::decode_to_slice(&header.cipher.nonce, &mut nonce)
        .map_err(|_| malformed("cipher.nonce must be 24 bytes of hex".into()))?;
    let ciphertext =
        hex::decode(&file.ciphertext).map_err(|_| malformed("ciphertext is not hex".into()))?;
    Ok(ParsedFile {
        header,
        params,
        salt,
        nonce,
        ciphertext,
    })
}

/// Decrypts the text of an encrypted file; `path` only names it in errors.
pub fn open(
    path: &str,
    text: &[u8],
    expected: FileKind,
    password: &SecretString,
) -> Result<Opened, KeystoreError> {
    let parsed = parse(path, text, expected)?;
    let key = derive_key(password, &parsed.salt, &parsed.params)?;
    let cipher = XChaCha20Poly1305::new(key.as_ref().into());
    let aad = header_aad(&parsed.header);
    let plaintext = cipher
        .decrypt(
            XNonce::from_slice(&parsed.nonce),
            Payload {
                msg: &parsed.ciphertext,
                aad: &aad,
            },
        )
        .map_err(|_| KeystoreError::Decrypt {
            path: path.to_owned(),
        })?;
    Ok(Opened {
        plaintext: Zeroizing::new(plaintext),
        public_key: parsed.header.public_key,
    })
}

/// Reads a file of at most [`KEYSTORE_BYTES_MAX`] bytes.
pub fn read_bounded(path: &Path) -> Result<Vec<u8>, KeystoreError> {
    let read_error = |source| KeystoreError::Read {
        path: path.display().to_string(),
        source,
    };
    let bytes = std::fs::metadata(path).map_err(read_error)?.len();
    if bytes > KEYSTORE_BYTES_MAX {
        return Err(KeystoreError::TooLarge {
            path: path.display().to_string(),
            bytes,
        });
    }
    std::fs::read(path).map_err(read_error)
}

/// Creates `path` with mode 0600, refusing to overwrite.
pub fn write_new_private(path: &Path, contents: &[u8]) -> Result<(), KeystoreError> {
    let display = path.display().to_string();
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::AlreadyExists {
            KeystoreError::Exists {
                path: display.clone(),
            }
        } else {
            KeystoreError::Write {
                path: display.clone(),
                source,
            }
        }
    })?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(|source| KeystoreError::Write {
            path: display,
            source,
        })
}

/// Replaces `path` atomically (temp file, fsync, rename), mode 0600: for files that change,
/// like a wallet's nonce counters.
pub fn replace_private(path: &Path, contents: &[u8]) -> Result<(), KeystoreError> {
    let display = path.display().to_string();
    let write_error = |source| KeystoreError::Write {
        path: display.clone(),
        source,
    };
    let temporary = path.with_extension("tmp");
    let _ = std::fs::remove_file(&temporary);
    write_new_private(&temporary, contents)?;
    std::fs::rename(&temporary, path).map_err(write_error)?;
    if let Some(parent) = path.parent() {
        if let Ok(directory) = std::fs::File::open(parent) {
            let _ = directory.sync_all();
        }
    }
    Ok(())
}

/// Writes a 32-byte secret (a signing key, a disclosure key share, a requester key) as an encrypted key file.
pub fn write_key_file(
    path: &Path,
    kind: FileKind,
    secret: &[u8; 32],
    public_key: &[u8; 32],
    password: &SecretString,
    params: KdfParams,
) -> Result<(), KeystoreError> {
    let text = seal(kind, &hex::encode(public_key), secret, password, params)?;
    write_new_private(path, text.as_bytes())
}

/// Reads an encrypted key file and returns its 32-byte secret and the public key named in
/// its header. The caller checks that the secret derives that public key
/// ([`check_public`]).
pub fn read_key_file(
    path: &Path,
    kind: FileKind,
    password: &SecretString,
) -> Result<(Zeroizing<[u8; 32]>, [u8; 32]), KeystoreError> {
    let display = path.display().to_string();
    let text = read_bounded(path)?;
    let opened = open(&display, &text, kind, password)?;
    let mut secret = Zeroizing::new([0u8; 32]);
    if opened.plaintext.len() != 32 {
        return Err(KeystoreError::Malformed {
            path: display,
            reason: "secret is not 32 bytes".into(),
        });
    }
    secret.copy_from_slice(&opened.plaintext);
    let mut public = [0u8; 32];
    hex::decode_to_slice(&opened.public_key, &mut public).map_err(|_| {
        KeystoreError::Malformed {
            path: display,
            reason: "public_key must be 32 bytes of hex".into(),
        }
    })?;
    Ok((secret, public))
}

/// Fails unless `derived` (from the decrypted secret) equals `in_file`.
pub fn check_public(
    path: &Path,
    derived: &[u8; 32],
    in_file: &[u8; 32],
) -> Result<(), KeystoreError> {
    if derived != in_file {
        return Err(KeystoreError::PublicKeyMismatch {
            path: path.display().to_string(),
        });
    }
    Ok(())
}

/// Reads an Ed25519 signing key file of `kind`, checking the public key.
pub fn read_signing_key(
    path: &Path,
    kind: FileKind,
    password: &SecretString,
) -> Result<halfveil_ledger::crypto::SigningKey, KeystoreError> {
    let (secret, public) = read_key_file(path, kind, password)?;
    let key = halfveil_ledger::crypto::SigningKey::from_bytes(&secret);
    check_public(path, &key.verifying_key().to_bytes(), &public)?;
    Ok(key)
}

/// Writes a holder's share of the disclosure key as an encrypted key file; its public key is
/// the holder's public share, which genesis lists.
pub fn write_disclosure_share(
    path: &Path,
    share: &halfveil_ledger::threshold::HolderSecret,
    password: &SecretString,
    params: KdfParams,
) -> Result<(), KeystoreError> {
    let public = share.public().map_err(|error| KeystoreError::Malformed {
        path: path.display().to_string(),
        reason: error.to_string(),
    })?;
    write_key_file(
        path,
        FileKind::DisclosureShare,
        &share.to_bytes(),
        &public.0,
        password,
        params,
    )
}

/// Reads a holder's share of `key` (genesis's disclosure key), checking it is one of its
/// holders' and that the file's public key is that share's.
pub fn read_disclosure_share(
    path: &Path,
    password: &SecretString,
    key: &halfveil_ledger::threshold::DisclosureKey,
) -> Result<halfveil_ledger::threshold::HolderSecret, KeystoreError> {
    let (secret, public) = read_key_file(path, FileKind::DisclosureShare, password)?;
    let share =
        halfveil_ledger::threshold::HolderSecret::for_key(key, &secret).map_err(|error| {
            KeystoreError::Malformed {
                path: path.display().to_string(),
                reason: format!(
                    "{error} (a share of another chain's key, or of an older refresh?)"
                ),
            }
        })?;
    let derived = share
        .public()
        .map_err(|_| KeystoreError::PublicKeyMismatch {
            path: path.display().to_string(),
        })?;
    check_public(path, &derived.0, &public)?;
    Ok(share)
}

/// Reads an X25519 key file (a requester's), checking the public key.
pub fn read_x25519_key(
    path: &Path,
    kind: FileKind,
    password: &SecretString,
) -> Result<halfveil_ledger::crypto::X25519Secret, KeystoreError> {
    let (secret, public) = read_key_file(path, kind, password)?;
    let key = halfveil_ledger::crypto::X25519Secret::from_bytes(*secret);
    let derived = key
        .public_key()
        .map_err(|_| KeystoreError::PublicKeyMismatch {
            path: path.display().to_string(),
        })?;
    check_public(path, &derived.0, &public)?;
    Ok(key)
}

/// The plaintext libp2p node key file (`node_key.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeKeyFile {
    #[serde(rename = "type")]
    key_type: String,
    secret_key: String,
    peer_id: String,
}

/// Makes a new libp2p node key and writes it to `path` (0600, never overwritten).
pub fn write_new_node_key(path: &Path) -> Result<libp2p_identity::Keypair, KeystoreError> {
    let keypair = libp2p_identity::Keypair::generate_ed25519();
    write_node_key(path, &keypair)?;
    Ok(keypair)
}

/// Writes a libp2p ed25519 node key to `path` (0600, never overwritten).
pub fn write_node_key(
    path: &Path,
    keypair: &libp2p_identity::Keypair,
) -> Result<(), KeystoreError> {
    let secret = keypair
        .clone()
        .try_into_ed25519()
        .map_err(|_| KeystoreError::Kdf {
            reason: "not an ed25519 key".into(),
        })?
        .secret();
    let file = NodeKeyFile {
        key_type: "ed25519".into(),
        secret_key: hex::encode(secret.as_ref()),
        peer_id: keypair.public().to_peer_id().to_string(),
    };
    let mut text = Zeroizing::new(serde_json::to_string_pretty(&file).unwrap_or_default());
    text.push('\n');
    write_new_private(path, text.as_bytes())
}

/// Reads a libp2p node key, checking it matches the peer id it records.
pub fn read_node_key(path: &Path) -> Result<libp2p_identity::Keypair, KeystoreError> {
    let text = read_bounded(path)?;
    parse_node_key(&path.display().to_string(), &text)
}

/// Parses the text of a node key file, checking the key matches the peer id it records;
/// `path` only names it in errors.
pub fn parse_node_key(path: &str, text: &[u8]) -> Result<libp2p_identity::Keypair, KeystoreError> {
    let malformed = |reason: &str| KeystoreError::Malformed {
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    let file: NodeKeyFile =
        serde_json::from_slice(text).map_err(|error| malformed(&error.to_string()))?;
    if file.key_type != "ed25519" {
        return Err(malformed("type must be ed25519"));
    }
    let mut secret = Zeroizing::new(
        hex::decode(&file.secret_key).map_err(|_| malformed("secret_key is not hex"))?,
    );
    let keypair = libp2p_identity::Keypair::ed25519_from_bytes(secret.as_mut_slice())
        .map_err(|_| malformed("secret_key is not a 32-byte ed25519 secret"))?;
    if keypair.public().to_peer_id().to_string() != file.peer_id {
        return Err(malformed("peer_id does not match secret_key"));
    }
    Ok(keypair)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn password(text: &str) -> SecretString {
        SecretString::from(text.to_owned())
    }

    #[test]
    fn key_file_roundtrip_and_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("validator_key.json");
        let key = halfveil_ledger::crypto::SigningKey::from_bytes(&[7u8; 32]);
        let public = key.verifying_key().to_bytes();
        write_key_file(
            &path,
            FileKind::ValidatorKey,
            &key.to_bytes(),
            &public,
            &password("pw"),
            KdfParams::MIN,
        )
        .unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let read = read_signing_key(&path, FileKind::ValidatorKey, &password("pw")).unwrap();
        assert_eq!(read.to_bytes(), key.to_bytes());
        assert!(matches!(
            read_signing_key(&path, FileKind::ValidatorKey, &password("wrong")),
            Err(KeystoreError::Decrypt { .. })
        ));
        assert!(matches!(
            read_signing_key(&path, FileKind::AuditorKey, &password("pw")),
            Err(KeystoreError::WrongKind { .. })
        ));
        let again = write_key_file(
            &path,
            FileKind::ValidatorKey,
            &key.to_bytes(),
            &public,
            &password("pw"),
            KdfParams::MIN,
        );
        assert!(matches!(again, Err(KeystoreError::Exists { .. })));
    }

    #[test]
    fn a_changed_header_or_ciphertext_does_not_open() {
        let text = seal(
            FileKind::Wallet,
            "",
            b"secret things",
            &password("pw"),
            KdfParams::MIN,
        )
        .unwrap();
        assert_eq!(
            &*open("w", text.as_bytes(), FileKind::Wallet, &password("pw"))
                .unwrap()
                .plaintext,
            b"secret things"
        );
        // Flip each hex digit of the ciphertext and nonce fields in turn: none opens.
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        let ciphertext = value["ciphertext"].as_str().unwrap().to_owned();
        let mut changed = ciphertext.clone().into_bytes();
        changed[10] = if changed[10] == b'0' { b'1' } else { b'0' };
        let tampered = text.replace(&ciphertext, std::str::from_utf8(&changed).unwrap());
        assert!(matches!(
            open("w", tampered.as_bytes(), FileKind::Wallet, &password("pw")),
            Err(KeystoreError::Decrypt { .. })
        ));
        let relabelled = text.replace("\"public_key\": \"\"", "\"public_key\": \"00\"");
        assert!(open(
            "w",
            relabelled.as_bytes(),
            FileKind::Wallet,
            &password("pw")
        )
        .is_err());
        assert!(matches!(
            open("w", b"{not json", FileKind::Wallet, &password("pw")),
            Err(KeystoreError::Malformed { .. })
        ));
    }

    #[test]
    fn too_cheap_kdf_is_refused() {
        let cheap = KdfParams {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        };
        let text = seal(FileKind::Wallet, "", b"x", &password("pw"), cheap).unwrap();
        assert!(matches!(
            open("w", text.as_bytes(), FileKind::Wallet, &password("pw")),
            Err(KeystoreError::Malformed { .. })
        ));
    }

    #[test]
    fn node_key_roundtrip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node_key.json");
        let keypair = write_new_node_key(&path).unwrap();
        let read = read_node_key(&path).unwrap();
        assert_eq!(read.public().to_peer_id(), keypair.public().to_peer_id());
    }
}
