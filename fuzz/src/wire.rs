//! What nodes send each other: request-response messages (read by the node's own codec,
//! `halfveil_node::protocol::WireCodec`) and the frames of the persistent links
//! (`halfveil_node::links::read_frame`).

use futures::executor::block_on;
use futures::io::Cursor;
use halfveil_ledger::{crypto, Hash32};
use halfveil_node::admission::{check_jobs, Job};
use halfveil_node::links::{encode_frame, encode_framed, read_frame, read_framed, Frame};
use halfveil_node::protocol::{protocol_name, ForwardBatch, Request, WireCodec};
use halfveil_node::replica::{RaftRequest, RaftResponse, RAFT_BYTES_MAX};
use libp2p::request_response::Codec;

use crate::assert_canonical;
use crate::world::world;

fn protocol() -> libp2p::StreamProtocol {
    protocol_name(&Hash32([0; 32])).expect("protocol name")
}

/// A request as the node's request-response codec reads it; a request that reads is the
/// canonical encoding, and the codec writes it back as the same bytes. A forwarded batch
/// then goes through the IM's admission check, whose verdict on each credential must be
/// single verification's.
pub fn node_request(data: &[u8]) {
    let protocol = protocol();
    let mut codec = WireCodec;
    let Ok(request) = block_on(codec.read_request(&protocol, &mut Cursor::new(data))) else {
        return;
    };
    assert_canonical(&request, data);
    if let Request::Forward(batch) = &request {
        admit(batch);
    }
    let mut written = Cursor::new(Vec::new());
    block_on(codec.write_request(&protocol, &mut written, request)).expect("write");
    assert_eq!(written.into_inner(), data);
}

/// The IM's admission check of a forward, as if the attestation's bank had sent it.
fn admit(batch: &ForwardBatch) {
    let world = world();
    let bank = batch.attestation.bank;
    let Some(bank_key) = world.params.bank_key(bank).copied() else {
        return;
    };
    let keys: Vec<_> = batch
        .requests
        .iter()
        .map(|request| {
            world
                .state
                .account(&request.transfer.payer)
                .map(|account| account.tx_key)
        })
        .collect();
    let job = Job {
        bank,
        bank_key,
        keys: keys.clone(),
        batch: batch.clone(),
        context: (),
    };
    let [checked] = <[_; 1]>::try_from(check_jobs(&world.params.chain_id, vec![job]))
        .expect("one verdict per job");
    let Ok((ids, credentials_ok)) = checked.verdict else {
        return;
    };
    assert_eq!(ids.len(), batch.requests.len());
    assert_eq!(credentials_ok.len(), batch.requests.len());
    for (((id, request), key), ok) in ids
        .iter()
        .zip(&batch.requests)
        .zip(&keys)
        .zip(credentials_ok)
    {
        assert_eq!(request.transfer.id().ok(), Some(*id));
        let message =
            halfveil_ledger::transaction_credential_message(id, &request.identity_credential)
                .expect("message");
        let single =
            key.is_some_and(|key| crypto::verify(&key, &message, &request.tx_credential).is_ok());
        assert_eq!(
            ok, single,
            "admission's verdict on a credential is not single verification's"
        );
    }
}

/// A response as the node's request-response codec reads it.
pub fn node_response(data: &[u8]) {
    let protocol = protocol();
    let mut codec = WireCodec;
    let Ok(response) = block_on(codec.read_response(&protocol, &mut Cursor::new(data))) else {
        return;
    };
    assert_canonical(&response, data);
    let mut written = Cursor::new(Vec::new());
    block_on(codec.write_response(&protocol, &mut written, response)).expect("write");
    assert_eq!(written.into_inner(), data);
}

/// A link stream: frames back to back, read until the stream ends or breaks the framing;
/// each frame read is its own encoding, and a clean end is only at a frame boundary.
pub fn link_frame(data: &[u8]) {
    let mut cursor = Cursor::new(data);
    let mut buffer = Vec::new();
    loop {
        let start = cursor.position() as usize;
        match block_on(read_frame(&mut cursor, &mut buffer)) {
            Ok(Some(frame)) => {
                let end = cursor.position() as usize;
                let encoded = encode_frame(&frame).expect("a frame read encodes");
                assert_eq!(
                    encoded,
                    data[start..end],
                    "a frame re-encodes to other bytes"
                );
                if let Frame::Request {
                    request: Request::Forward(batch),
                    ..
                } = &frame
                {
                    admit(batch);
                }
            }
            Ok(None) => {
                assert_eq!(start, data.len(), "a clean end inside the stream");
                return;
            }
            Err(_) => return,
        }
    }
}

/// A raft stream between IM replicas: the first byte says which side reads it (even: the
/// requests a replica's server reads, odd: the answers its client reads), then frames back
/// to back, read as the replica reads them; each frame read is its own encoding.
pub fn raft_frame(data: &[u8]) {
    let Some((side, stream)) = data.split_first() else {
        return;
    };
    if side % 2 == 0 {
        read_raft_stream::<RaftRequest>(stream);
    } else {
        read_raft_stream::<RaftResponse>(stream);
    }
}

fn read_raft_stream<T>(data: &[u8])
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    let mut cursor = Cursor::new(data);
    let mut buffer = Vec::new();
    loop {
        let start = cursor.position() as usize;
        match block_on(read_framed::<T, _>(
            &mut cursor,
            &mut buffer,
            RAFT_BYTES_MAX,
        )) {
            Ok(Some(message)) => {
                let end = cursor.position() as usize;
                let encoded =
                    encode_framed(&message, RAFT_BYTES_MAX).expect("a frame read encodes");
                assert_eq!(
                    encoded,
                    data[start..end],
                    "a raft frame re-encodes to other bytes"
                );
            }
            Ok(None) => {
                assert_eq!(start, data.len(), "a clean end inside the stream");
                return;
            }
            Err(_) => return,
        }
    }
}
