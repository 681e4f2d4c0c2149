//! Persistent streams between peers for the requests that come many times a second: a
//! bank's forwarded batches, the IM's approval requests and its refusals after acceptance,
//! and their responses.
//!
//! Request-response costs a Yamux stream, a protocol negotiation and a timer per exchange
//! (docs/decisions/0012-persistent-links.md). Here each node keeps one outbound stream to each peer,
//! opened when first needed, and writes these requests, and its responses to the peer's,
//! there as frames: a 4-byte little-endian length, then one [`Frame`] in the canonical
//! encoding, read strictly (bounded by [`FRAME_BYTES_MAX`], no trailing bytes). The peer
//! reads them from the stream it accepted. A link that fails is dropped and the requests
//! waiting on it fail; the next request opens a new one. Timeouts are checked by the
//! network task on the runtime's own timer.

use std::io;
use std::time::Duration;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, StreamExt};
use halfveil_ledger::{codec, CodecError};
use libp2p::{PeerId, Stream, StreamProtocol};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tracing::debug;

use crate::peer_score::Offence;
use crate::protocol::{offence_of, Request, Response, WireError};

/// The largest frame: a forwarded batch of the most transfers with the longest memos is
/// about 2.5 MB.
pub const FRAME_BYTES_MAX: usize = 16 << 20;
/// Frames queued for one peer's link before requests to it fail as overloaded (as many
/// as request-response allowed streams at once).
pub const LINK_QUEUE: usize = 256;
/// How long opening a link may take.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);
/// Frames waiting when the writer wakes are written together, up to this many bytes, so
/// a burst costs one Noise frame and one flush rather than one each.
const COALESCE_BYTES: usize = 256 * 1024;
const LENGTH_BYTES: usize = 4;

/// Why a frame could not be encoded, or links could not be accepted.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The frame has no canonical encoding.
    #[error("{0}")]
    Encode(#[source] CodecError),
    /// The encoded frame is larger than a peer reads.
    #[error("a frame of {bytes} bytes is over the {limit}-byte limit")]
    TooLarge { bytes: usize, limit: usize },
    /// Links on this protocol are already being accepted.
    #[error("cannot accept links: {0}")]
    Accept(#[source] libp2p_stream::AlreadyRegistered),
}

/// One message on a link.
#[derive(Debug, Serialize, Deserialize)]
pub enum Frame {
    Request { id: u64, request: Request },
    Response { id: u64, response: Response },
}

/// The frame's bytes on the wire: its length, then its canonical encoding.
pub fn encode_frame(frame: &Frame) -> Result<Vec<u8>, LinkError> {
    encode_framed(frame, FRAME_BYTES_MAX)
}

/// Reads one frame; `None` when the stream ends cleanly between frames.
pub async fn read_frame<R: AsyncRead + Unpin>(
    io: &mut R,
    buffer: &mut Vec<u8>,
) -> io::Result<Option<Frame>> {
    read_framed(io, buffer, FRAME_BYTES_MAX).await
}

/// Any value's bytes on a stream: its length (4 bytes, little-endian), then its canonical
/// encoding of at most `limit` bytes. Links and the IM replicas' raft streams use it.
pub fn encode_framed<T: Serialize>(value: &T, limit: usize) -> Result<Vec<u8>, LinkError> {
    let mut bytes = vec![0u8; LENGTH_BYTES];
    let body = codec::encode(value).map_err(LinkError::Encode)?;
    let too_large = || LinkError::TooLarge {
        bytes: body.len(),
        limit,
    };
    if body.len() > limit {
        return Err(too_large());
    }
    let length = u32::try_from(body.len()).map_err(|_| too_large())?;
    bytes[..LENGTH_BYTES].copy_from_slice(&length.to_le_bytes());
    bytes.extend_from_slice(&body);
    Ok(bytes)
}

/// Reads one value framed by [`encode_framed`], strictly, refusing a length over `limit`
/// before reading it; `None` when the stream ends cleanly between frames.
pub async fn read_framed<T, R>(
    io: &mut R,
    buffer: &mut Vec<u8>,
    limit: usize,
) -> io::Result<Option<T>>
where
    T: Serialize + serde::de::DeserializeOwned,
    R: AsyncRead + Unpin,
{
    let mut length = [0u8; LENGTH_BYTES];
    let mut got = 0;
    while got < LENGTH_BYTES {
        match io.read(&mut length[got..]).await? {
            0 if got == 0 => return Ok(None),
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            read => got += read,
        }
    }
    let length = u32::from_le_bytes(length) as usize;
    if length > limit {
        return Err(WireError::Oversized { limit }.into());
    }
    buffer.clear();
    buffer.resize(length, 0);
    io.read_exact(buffer).await?;
    codec::decode(buffer, limit)
        .map(Some)
        .map_err(|error| WireError::Undecodable(error).into())
}

/// What link tasks tell the network task.
#[derive(Debug)]
pub enum LinkEvent {
    Frame {
        peer: PeerId,
        frame: Box<Frame>,
    },
    /// `peer` sent what an honest peer never sends; its link was dropped.
    Offence {
        peer: PeerId,
        offence: Offence,
    },
    /// The outbound link `link` to `peer` failed or could not be opened.
    Down {
        peer: PeerId,
        link: u64,
    },
}

/// The sending end of one outbound link.
#[derive(Debug)]
pub struct Link {
    pub id: u64,
    pub frames: mpsc::Sender<Vec<u8>>,
}

/// Starts the task that opens a stream to `peer` and writes the frames sent to the
/// returned link, until the link is dropped (then it closes the stream) or the stream
/// fails (then it reports [`LinkEvent::Down`]).
pub fn open(
    mut control: libp2p_stream::Control,
    protocol: StreamProtocol,
    peer: PeerId,
    id: u64,
    events: mpsc::Sender<LinkEvent>,
) -> Link {
    let (frames, mut queue) = mpsc::channel::<Vec<u8>>(LINK_QUEUE);
    tokio::spawn(async move {
        let result = async {
            let mut stream =
                match tokio::time::timeout(OPEN_TIMEOUT, control.open_stream(peer, protocol)).await
                {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(error)) => return Err(io::Error::other(error.to_string())),
                    Err(_) => return Err(io::ErrorKind::TimedOut.into()),
                };
            write_frames(&mut stream, &mut queue).await
        }
        .await;
        if let Err(error) = result {
            debug!(%peer, %error, "link down");
            let _ = events.send(LinkEvent::Down { peer, link: id }).await;
        }
    });
    Link { id, frames }
}

async fn write_frames<W: AsyncWrite + Unpin>(
    stream: &mut W,
    queue: &mut mpsc::Receiver<Vec<u8>>,
) -> io::Result<()> {
    let mut buffer = Vec::new();
    while let Some(frame) = queue.recv().await {
        match queue.try_recv() {
            Err(_) => stream.write_all(&frame).await?,
            Ok(next) => {
                buffer.clear();
                buffer.extend_from_slice(&frame);
                buffer.extend_from_slice(&next);
                while buffer.len() < COALESCE_BYTES {
                    match queue.try_recv() {
                        Ok(more) => buffer.extend_from_slice(&more),
                        Err(_) => break,
                    }
                }
                stream.write_all(&buffer).await?;
            }
        }
        stream.flush().await?;
    }
    stream.close().await
}

/// Accepts the links peers open to this node and reads their frames into `events`, one
/// task per stream; a stream that breaks the framing is dropped.
pub fn accept(
    mut control: libp2p_stream::Control,
    protocol: StreamProtocol,
    events: mpsc::Sender<LinkEvent>,
) -> Result<(), LinkError> {
    let mut incoming = control.accept(protocol).map_err(LinkError::Accept)?;
    tokio::spawn(async move {
        while let Some((peer, stream)) = incoming.next().await {
            tokio::spawn(read_frames(peer, stream, events.clone()));
        }
    });
    Ok(())
}

async fn read_frames(peer: PeerId, mut stream: Stream, events: mpsc::Sender<LinkEvent>) {
    let mut buffer = Vec::new();
    loop {
        match read_frame(&mut stream, &mut buffer).await {
            Ok(Some(frame)) => {
                let frame = Box::new(frame);
                if events.send(LinkEvent::Frame { peer, frame }).await.is_err() {
                    return;
                }
            }
            Ok(None) => return,
            Err(error) => {
                debug!(%peer, %error, "inbound link dropped");
                if let Some(offence) = offence_of(&error) {
                    let _ = events.send(LinkEvent::Offence { peer, offence }).await;
                }
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;
    use futures::io::Cursor;
    use halfveil_ledger::Height;

    fn read_all(bytes: Vec<u8>) -> io::Result<Vec<Frame>> {
        block_on(async {
            let mut cursor = Cursor::new(bytes);
            let mut buffer = Vec::new();
            let mut frames = Vec::new();
            while let Some(frame) = read_frame(&mut cursor, &mut buffer).await? {
                frames.push(frame);
            }
            Ok(frames)
        })
    }

    #[test]
    fn frames_round_trip_back_to_back() {
        let mut bytes = encode_frame(&Frame::Request {
            id: 7,
            request: Request::Blocks {
                from: Height(1),
                to: Height(3),
            },
        })
        .unwrap();
        bytes.extend(
            encode_frame(&Frame::Response {
                id: 7,
                response: Response::Ack,
            })
            .unwrap(),
        );
        let frames = read_all(bytes).unwrap();
        assert!(matches!(
            frames.as_slice(),
            [
                Frame::Request {
                    id: 7,
                    request: Request::Blocks { .. }
                },
                Frame::Response {
                    id: 7,
                    response: Response::Ack
                }
            ]
        ));
    }

    #[test]
    fn bad_frames_are_refused() {
        let good = encode_frame(&Frame::Response {
            id: 1,
            response: Response::Ack,
        })
        .unwrap();
        // Cut short inside the length and inside the body: a broken connection, no
        // offence of the peer.
        let cut = read_all(good[..2].to_vec()).unwrap_err();
        assert_eq!(offence_of(&cut), None);
        assert!(read_all(good[..good.len() - 1].to_vec()).is_err());
        // A length over the limit is refused before anything is allocated.
        let mut huge = ((FRAME_BYTES_MAX + 1) as u32).to_le_bytes().to_vec();
        huge.extend_from_slice(&[0; 16]);
        let refused = read_all(huge).unwrap_err();
        assert_eq!(offence_of(&refused), Some(Offence::Oversized));
        // A trailing byte inside the declared length.
        let mut trailing = good.clone();
        trailing.push(0);
        let length = (good.len() - LENGTH_BYTES + 1) as u32;
        trailing[..LENGTH_BYTES].copy_from_slice(&length.to_le_bytes());
        assert!(read_all(trailing).is_err());
        // Garbage.
        let garbage = read_all(vec![3, 0, 0, 0, 0xff, 0xff, 0xff]).unwrap_err();
        assert_eq!(offence_of(&garbage), Some(Offence::Undecodable));
    }

    #[test]
    fn queued_frames_are_written_in_order() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let written = runtime.block_on(async {
            let (sender, mut queue) = mpsc::channel(16);
            let frames: Vec<Vec<u8>> = (0..5u64)
                .map(|id| {
                    encode_frame(&Frame::Response {
                        id,
                        response: Response::Ack,
                    })
                    .unwrap()
                })
                .collect();
            for frame in &frames {
                sender.send(frame.clone()).await.unwrap();
            }
            drop(sender);
            let mut out = Cursor::new(Vec::new());
            write_frames(&mut out, &mut queue).await.unwrap();
            (out.into_inner(), frames.concat())
        });
        assert_eq!(written.0, written.1);
        let ids: Vec<u64> = read_all(written.0)
            .unwrap()
            .into_iter()
            .map(|frame| match frame {
                Frame::Response { id, .. } => id,
                Frame::Request { .. } => u64::MAX,
            })
            .collect();
        assert_eq!(ids, vec![0, 1, 2, 3, 4]);
    }
}
