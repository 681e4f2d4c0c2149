//! What nodes say to each other over request-response, and its codec.
//!
//! Every message is one postcard value, read strictly (size-bounded, no trailing bytes,
//! canonical) from a stream that the sender closes after writing. Protocol and topic names
//! carry the genesis hash, so nodes of two chains never talk.

use std::io;

use futures::prelude::*;
use halfveil_ledger::{
    codec, AccountId, Amount, BankId, BatchAttestation, Block, CodecError, Hash32, Height, Op,
    OpenAccount, RejectCode, Rejection, TransactionRequest,
};
use libp2p::StreamProtocol;
use serde::{Deserialize, Serialize};

/// The largest request or response on the wire (a sync response of several blocks).
pub const MESSAGE_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Most transfers in one forwarded or approval batch (the bank's machine makes them).
pub const BATCH_TRANSFERS_MAX: usize = halfveil_consensus::bank::BATCH_TRANSFERS_MAX;
/// Most blocks in one sync response.
pub const SYNC_BLOCKS_MAX: u64 = 64;

/// A bank forwards transfers it accepted, with one payer-ok attestation over their ids.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ForwardBatch {
    pub requests: Vec<TransactionRequest>,
    pub attestation: BatchAttestation,
}

/// A bank relays an account opening: the op, signed by holder and bank, with the encrypted
/// identity record neither of them nor the IM can read.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OpenAccountRequest {
    pub op: OpenAccount,
    /// The identity key beside the sealed record, with its proof of possession: the IM
    /// checks it and keeps nothing of it.
    pub identity: halfveil_ledger::IdentityProof,
}

/// The IM asks a payee's bank whether its accounts may receive.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ApprovalItemWire {
    pub id: Hash32,
    pub payee: AccountId,
    pub amount: Amount,
}

/// Where a transfer the IM already committed is: its block's height and its op index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommittedAt {
    pub id: Hash32,
    pub height: Height,
    pub index: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Request {
    /// Bank to IM.
    Forward(ForwardBatch),
    /// Bank to IM.
    OpenAccount(OpenAccountRequest),
    /// IM to a payee's bank.
    Approve(Vec<ApprovalItemWire>),
    /// IM to a payer's bank: transfers refused after they were accepted.
    Rejected(Vec<Rejection>),
    /// Anyone to anyone: blocks `from..=to` (at most [`SYNC_BLOCKS_MAX`]).
    Blocks { from: Height, to: Height },
    /// Anyone to anyone: the head.
    Status,
    /// Bank to IM: a holder's key rotation or account closing (an `Op::RotateKey` or
    /// `Op::CloseAccount`), answered with `Opened { account, height }` once committed.
    Lifecycle(Box<Op>),
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Response {
    Ack,
    /// The IM's immediate answer to a forward: signed refusals, and the transfers it had
    /// already committed (a bank forwards again what it accepted and never heard about);
    /// the rest are accepted.
    Forwarded {
        rejected: Vec<Rejection>,
        committed: Vec<CommittedAt>,
    },
    /// The account is committed at `height`.
    Opened {
        account: AccountId,
        height: Height,
    },
    /// A payee bank's verdict: a payee-ok attestation over the approved ids (if any) and
    /// signed refusals.
    Approval {
        attestation: Option<BatchAttestation>,
        refused: Vec<Rejection>,
    },
    Blocks(Vec<Block>),
    Status {
        height: Height,
        hash: Hash32,
    },
    /// The request was refused as a whole.
    Error {
        code: RejectCode,
        message: String,
    },
    /// A replica of a replicated IM that does not lead: ask `leader` (a genesis replica
    /// index), or another replica if it names none.
    NotLeader {
        leader: Option<u16>,
    },
}

/// Bank id of the sender, as the IM knows it from genesis; for messages only banks send.
pub fn sender_bank(bank_peers: &[libp2p::PeerId], peer: &libp2p::PeerId) -> Option<BankId> {
    bank_peers
        .iter()
        .position(|candidate| candidate == peer)
        .and_then(|index| u16::try_from(index).ok())
        .map(BankId)
}

/// A chain's protocol name that libp2p refuses (it cannot happen for a hex genesis hash).
#[derive(Debug, thiserror::Error)]
#[error("{source}")]
pub struct ProtocolNameError {
    /// The refused name.
    pub name: String,
    pub source: libp2p::swarm::InvalidProtocol,
}

/// `name` as a stream protocol.
fn stream_protocol(name: String) -> Result<StreamProtocol, ProtocolNameError> {
    StreamProtocol::try_from_owned(name.clone())
        .map_err(|source| ProtocolNameError { name, source })
}

/// The request-response protocol name of a chain.
pub fn protocol_name(genesis_hash: &Hash32) -> Result<StreamProtocol, ProtocolNameError> {
    stream_protocol(format!("/halfveil/{}/rr/1", genesis_hash.to_hex()))
}

/// The protocol of a chain's persistent links (`links.rs`).
pub fn link_protocol_name(genesis_hash: &Hash32) -> Result<StreamProtocol, ProtocolNameError> {
    stream_protocol(format!("/halfveil/{}/link/1", genesis_hash.to_hex()))
}

/// The gossipsub topic of a chain's blocks.
pub fn blocks_topic(genesis_hash: &Hash32) -> String {
    format!("/halfveil/{}/blocks/1", genesis_hash.to_hex())
}

/// postcard over a closed-after-write stream.
#[derive(Clone, Copy, Debug, Default)]
pub struct WireCodec;

/// Why a peer's bytes were refused; inside an `io::Error` of kind `InvalidData`, so the
/// network can tell a peer's fault ([`offence_of`]) from a broken connection.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("a message over the {limit}-byte limit")]
    Oversized { limit: usize },
    /// Not the canonical encoding of a message.
    #[error("{0}")]
    Undecodable(#[source] CodecError),
}

impl From<WireError> for io::Error {
    fn from(error: WireError) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, error)
    }
}

/// The offence an I/O error from reading a peer's message stands for, if it is one.
pub fn offence_of(error: &io::Error) -> Option<crate::peer_score::Offence> {
    use crate::peer_score::Offence;
    match error.get_ref()?.downcast_ref::<WireError>()? {
        WireError::Oversized { .. } => Some(Offence::Oversized),
        WireError::Undecodable(_) => Some(Offence::Undecodable),
    }
}

async fn read_value<T, R>(io: &mut R) -> io::Result<T>
where
    T: Serialize + serde::de::DeserializeOwned,
    R: AsyncRead + Unpin + Send,
{
    let mut bytes = Vec::new();
    io.take(MESSAGE_BYTES_MAX as u64 + 1)
        .read_to_end(&mut bytes)
        .await?;
    if bytes.len() > MESSAGE_BYTES_MAX {
        return Err(WireError::Oversized {
            limit: MESSAGE_BYTES_MAX,
        }
        .into());
    }
    codec::decode(&bytes, MESSAGE_BYTES_MAX).map_err(|error| WireError::Undecodable(error).into())
}

async fn write_value<T, W>(io: &mut W, value: &T) -> io::Result<()>
where
    T: Serialize,
    W: AsyncWrite + Unpin + Send,
{
    let bytes = codec::encode(value)
        .map_err(|error| io::Error::new(io::ErrorKind::InvalidInput, error.to_string()))?;
    if bytes.len() > MESSAGE_BYTES_MAX {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "message too large",
        ));
    }
    io.write_all(&bytes).await?;
    io.close().await
}

impl libp2p::request_response::Codec for WireCodec {
    type Protocol = StreamProtocol;
    type Request = Request;
    type Response = Response;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Request>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_value(io).await
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Response>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_value(io).await
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        request: Request,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_value(io, &request).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        response: Response,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_value(io, &response).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;
    use futures::io::Cursor;

    fn read(bytes: Vec<u8>) -> io::Result<Request> {
        block_on(read_value::<Request, _>(&mut Cursor::new(bytes)))
    }

    #[test]
    fn requests_round_trip_and_bad_bytes_are_refused() {
        let request = Request::Blocks {
            from: Height(3),
            to: Height(9),
        };
        let mut written = Cursor::new(Vec::new());
        block_on(write_value(&mut written, &request)).unwrap();
        let bytes = written.into_inner();
        assert!(matches!(
            read(bytes.clone()).unwrap(),
            Request::Blocks {
                from: Height(3),
                to: Height(9)
            }
        ));

        let mut trailing = bytes.clone();
        trailing.push(0);
        assert_eq!(
            read(trailing).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        let truncated = bytes[..bytes.len() - 1].to_vec();
        assert_eq!(
            read(truncated).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        assert_eq!(
            read(vec![0xff; 64]).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        assert_eq!(
            read(Vec::new()).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        // A forward that claims more transfers than the bytes hold is refused before any
        // allocation of that size.
        let mut huge_claim = vec![0u8]; // Request::Forward
        huge_claim.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
        assert!(read(huge_claim).is_err());
    }

    #[test]
    fn names_carry_the_genesis_hash() {
        let one = Hash32([1; 32]);
        let two = Hash32([2; 32]);
        assert_ne!(protocol_name(&one).unwrap(), protocol_name(&two).unwrap());
        assert!(blocks_topic(&one).contains(&one.to_hex()));
        assert_ne!(blocks_topic(&one), blocks_topic(&two));
    }
}
